import json

import pytest

from edgelstm import spec
from edgelstm.errors import BundleError


def _manifest() -> spec.Manifest:
    info = spec.ModelInfo("student", spec.ModelKind.FRAMES, 3, 8, 4, 1, 100, 1000)
    inputs, outputs = spec.step_io(info)
    art = spec.Artifact(spec.Role.STEP, spec.Backend.ONNXRUNTIME, spec.Precision.FP32,
                        (spec.FileHash("step.onnx", "0" * 64, 10),), inputs, outputs)
    return spec.Manifest(spec.FORMAT_VERSION, info, ("a", "b", "c"),
                         spec.Preprocess((32, 32), spec.ColourOrder.BGR, (0.5,) * 3, (0.25,) * 3),
                         spec.Temporal(8, 1, 15.0, spec.ResetPolicy(0.5)), spec.state_specs(1, 4), (art,),
                         "f" * 64, (), spec.Versions("0.1.0"))


def test_roundtrip() -> None:
    m = _manifest()
    assert spec.Manifest.from_dict(json.loads(m.to_json())) == m


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.pop("labels"), "missing field 'manifest.labels'"),
    (lambda d: d.update(colour="x"), "unknown field 'manifest.colour'"),
    (lambda d: d["model"].update(num_classes="3"), "manifest.model.num_classes"),
    (lambda d: d["artifacts"][0].update(backend="tflite"), "one of onnxruntime, openvino"),
    (lambda d: d.update(format_version=spec.FORMAT_VERSION + 1), "newer than this edgelstm"),
])
def test_rejects_bad_manifests(mutate, needle) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(_manifest().to_json())
    mutate(d)
    with pytest.raises(BundleError, match="re-export|upgrade|remove") as e:
        spec.Manifest.from_dict(d)
    assert needle in str(e.value)


def test_dynamic_axes_follow_names() -> None:
    info = spec.ModelInfo("s", spec.ModelKind.FRAMES, 3, 8, 4, 2, 1, 1)
    inputs, outputs = spec.step_io(info)
    axes = spec.dynamic_axes(inputs, outputs)
    assert axes[spec.H_IN] == {1: spec.BATCH} and axes[spec.FEATURES] == {0: spec.BATCH}


# The INT8 report exactly as edgelstm 0.1 wrote it (export's QuantReport.to_json, trimmed to one backend).
V01_QUANTIZATION = {
    "gate": {"max_drop_points": 1.0, "min_final_agreement": 0.98},
    "data": {"source": "synthetic", "split": "test", "eval_clips": 200, "calib_clips": 64, "max_drop": 1.0},
    "trials": [{"backend": "onnxruntime", "kept_float": [], "accuracy_fp32": 0.825, "accuracy_int8": 0.825,
                "frame_agreement": 0.99, "final_agreement": 1.0, "flips_fp32": 12.5, "flips_int8": 11.9,
                "passed": True, "inference_precision": "", "drop_points": 0.0}],
    "backends": {"onnxruntime": {
        "fp32": {"bytes": 1000, "latency_ms": 0.05, "latency_ms_by_batch": {"1": 0.05, "8": 0.02, "32": 0.01},
                 "graphs": {"encoder": {"file": "encoder-fp32.onnx", "op_types": {"Conv": 7}}}},
        "int8": {"bytes": 600, "latency_ms": 0.06, "latency_ms_by_batch": {"1": 0.06, "8": 0.018, "32": 0.009},
                 "graphs": {"encoder": {"file": "encoder-int8.onnx", "op_types": {"QuantizeLinear": 4}}}},
        "int8_fp32_latency_ratio": 1.2, "int8_fp32_latency_ratio_by_batch": {"1": 1.2, "8": 0.9, "32": 0.9},
        "int8_pays": False, "int8_pays_from_batch": 8,
        "chosen": {"backend": "onnxruntime", "kept_float": [], "accuracy_fp32": 0.825, "accuracy_int8": 0.825,
                   "frame_agreement": 0.99, "final_agreement": 1.0, "flips_fp32": 12.5, "flips_int8": 11.9,
                   "passed": True, "inference_precision": "", "drop_points": 0.0}}},
}


@pytest.mark.parametrize("quantization", [{}, V01_QUANTIZATION])
def test_a_v01_manifest_still_loads(quantization: dict) -> None:
    """Bundles written before the INT8 report was typed: an empty object, or export's free-form layout."""
    d = json.loads(_manifest().to_json())
    d["quantization"] = quantization
    m = spec.Manifest.from_dict(d)
    if not quantization:
        assert m.quantization is None
        return
    q = m.quantization
    assert q is not None and q.gate.min_clips == 0 and q.trials[0].clips == 0  # fields added since: defaults
    assert q.verdict("onnxruntime", 1)[0] is False and q.verdict("onnxruntime", 8)[0] is True
    assert q.backends["onnxruntime"].fp32.graphs["encoder"].op_types == {"Conv": 7}


def test_int8_report_fields_are_typed() -> None:
    d = json.loads(_manifest().to_json())
    bad = json.loads(json.dumps(V01_QUANTIZATION))
    bad["backends"]["onnxruntime"]["int8_fp32_latency_ratio_by_batch"]["8"] = "fast"
    d["quantization"] = bad
    with pytest.raises(BundleError, match=r"int8_fp32_latency_ratio_by_batch\.8"):
        spec.Manifest.from_dict(d)


def test_gate_needs_enough_clips_for_its_tolerance() -> None:
    from edgelstm.quantreport import clips_needed, wilson_interval

    assert clips_needed(1.0, 0.98) == 100   # one clip = 1 point
    assert clips_needed(5.0, 0.9) == 20
    assert clips_needed(5.0, 0.98) == 50    # the agreement bound dominates
    lo, hi = wilson_interval(39, 40)
    assert 0.85 < lo < 0.9 and hi > 0.99    # 39/40 agreeing says little about 98%

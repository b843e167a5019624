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


# --- semantics after types: values a runnable model cannot have (issue 10 §3) -------------------------
def _selftest(**kw: object) -> dict[str, object]:
    st = {"seed": 1, "steps": 2, "streams": 1, "logits": [[0.1, 0.2, 0.3]]}
    return {**st, **kw}


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["temporal"].update(clip_len=0), "field 'manifest.temporal.clip_len' is 0; expected >= 1"),
    (lambda d: d["temporal"].update(frame_stride=-2), "'manifest.temporal.frame_stride' is -2; expected >= 1"),
    (lambda d: d["temporal"].update(train_fps=-1.0), "'manifest.temporal.train_fps' is -1.0; expected a finite"),
    (lambda d: d["temporal"].update(train_fps=float("nan")), "'manifest.temporal.train_fps' is nan"),
    (lambda d: d["temporal"]["reset"].update(max_gap_s=0), "'manifest.temporal.reset.max_gap_s' is 0.0; expected "
                                                           "a finite number > 0"),
    (lambda d: d["preprocess"].update(size=[100000, 100000]), "'manifest.preprocess.size[0]' is 100000; "
                                                              "expected 1..4096"),
    (lambda d: d["preprocess"].update(size=[32, 0]), "'manifest.preprocess.size[1]' is 0"),
    (lambda d: d["preprocess"].update(std=[0.25, 0.0, 0.25]), "'manifest.preprocess.std[1]' is 0.0; expected a finite "
                                                              "number > 0"),
    (lambda d: d["preprocess"].update(mean=[0.5, float("inf"), 0.5]), "'manifest.preprocess.mean[1]' is inf"),
    (lambda d: d.update(features={"mean": [0.0] * 3, "std": [1.0] * 3}), "'manifest.features.mean' is '3 values'"),
    (lambda d: d.update(features={"mean": [0.0] * 8, "std": [1.0] * 7 + [0.0]}), "'manifest.features.std[7]' is 0.0"),
    (lambda d: d["model"].update(hidden_size=100000), "'manifest.model.hidden_size' is 100000; expected 1..65536"),
    (lambda d: d["model"].update(num_layers=4096, hidden_size=65536), "num_layers x hidden_size <= 16777216"),
    (lambda d: d["model"].update(num_classes=0), "'manifest.model.num_classes' is 0"),
    (lambda d: d.update(labels=["a", "b"]), "'manifest.labels' is '2 labels'; expected one label per class "
                                            "(model.num_classes is 3)"),
    (lambda d: d["artifacts"][0]["outputs"][0].update(shape=["batch", 5]),
     "'manifest.artifacts[0].outputs[0].shape' is ['batch', 5]; expected logits with model.num_classes (3)"),
    (lambda d: d["state"][0].update(shape=[1, "batch", 0]), "'manifest.state[0].shape[2]' is 0"),
    (lambda d: d.update(selftest=_selftest(steps=0)), "'manifest.selftest.steps' is 0; expected 1..64"),
    (lambda d: d.update(selftest=_selftest(streams=2)), "'manifest.selftest.logits' is '1 rows of [3]'"),
    (lambda d: d.update(selftest=_selftest(tolerance=0.0)), "'manifest.selftest.tolerance' is 0.0"),
])
def test_refuses_values_no_model_can_have(mutate, needle) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(_manifest().to_json())
    mutate(d)
    with pytest.raises(BundleError, match="Fix: re-export the bundle") as e:
        spec.Manifest.from_dict(d)
    assert needle in str(e.value)


def test_unknown_fps_and_a_selftest_are_accepted() -> None:
    """0.1 bundles and unknown-fps data write train_fps 0: still a valid manifest. A self-test round-trips."""
    d = json.loads(_manifest().to_json())
    d["temporal"]["train_fps"] = 0.0
    d["selftest"] = _selftest()
    m = spec.Manifest.from_dict(d)
    assert m.temporal.train_fps == 0.0 and m.selftest is not None and m.selftest.tolerance == 1e-3
    assert spec.Manifest.from_dict(json.loads(m.to_json())) == m
    assert m.without_hashes().selftest == m.selftest  # embedded in the ONNX files with the rest


# --- tasks (issue 13): a bundle says what its output means ------------------------------------------------
def _detect(d: dict) -> dict:
    d.update(task="detect", detection={"background": 0, "events": {
        "on": 0.6, "off": 0.3, "target_false_alarms_per_hour": 30.0, "false_alarms_per_hour": 12.5}})
    return d


def test_a_manifest_without_a_task_loads_as_a_classifier() -> None:
    d = json.loads(_manifest().to_json())
    del d["task"], d["detection"]
    m = spec.Manifest.from_dict(d)
    assert m.task == spec.Task.CLASSIFY and m.detection is None


def test_a_detection_manifest_round_trips() -> None:
    m = spec.Manifest.from_dict(_detect(json.loads(_manifest().to_json())))
    assert m.task == spec.Task.DETECT and m.detection is not None and m.detection.events.on == 0.6
    assert m.detection.events.split == "val" and m.labels[m.detection.background] == "a"
    assert spec.Manifest.from_dict(json.loads(m.to_json())) == m


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.update(task="detect"), "'manifest.detection' is None; expected the background label"),
    (lambda d: _detect(d)["detection"].update(background=3), "'manifest.detection.background' is 3; expected an "
                                                             "index into labels (0..2)"),
    (lambda d: _detect(d)["detection"]["events"].update(off=0.7), "'manifest.detection.events.off' is 0.7"),
    (lambda d: _detect(d)["detection"]["events"].update(on=0.0), "'manifest.detection.events.on' is 0.0"),
    (lambda d: _detect(d).update(task="classify"), "'manifest.detection' is 'a detection section'"),
    (lambda d: d.update(task="caption"), "'manifest.captioning' is 'absent'; expected a captioning section exactly when"),
])
def test_refuses_a_detection_section_that_cannot_run(mutate, needle) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(_manifest().to_json())
    mutate(d)
    with pytest.raises(BundleError) as e:
        spec.Manifest.from_dict(d)
    assert needle in str(e.value)

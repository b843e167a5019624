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

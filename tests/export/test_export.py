"""FP32 export, the whole way: checkpoint -> bundle -> runtime loader -> outputs equal PyTorch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgelstm import spec
from edgelstm.errors import BundleError, ExportCheckError, UsageError
from edgelstm.runtime.stream import BackendOptions, open_model
from edgelstm.runtime.bundle import load_bundle
from edgelstm.spec import Backend, Precision, Role
from tests.bundles import make_bundle, make_checkpoint, make_feature_checkpoint

FP32_TOL = 1e-4  # float reassociation only; the bound for fp32 artefacts


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def ckpt(work: Path) -> Path:
    return make_checkpoint(work)


@pytest.fixture(scope="module")
def bundle(work: Path, ckpt: Path) -> Path:
    return make_bundle(work, checkpoint=ckpt, formats=("onnx", "openvino"), name="split")


def _torch_logits(ckpt_path: Path, X_rgb: np.ndarray) -> np.ndarray:
    import torch

    from edgelstm.models.checkpoint import load_checkpoint

    with torch.no_grad():
        return load_checkpoint(ckpt_path).model.step_logits(torch.from_numpy(X_rgb)).numpy()


def test_manifest_describes_the_bundle(bundle: Path, ckpt: Path) -> None:
    from edgelstm.fsutil import sha256_file

    m = load_bundle(bundle).manifest  # verifies every hash
    assert m.source_checkpoint_sha256 == sha256_file(ckpt)
    assert m.preprocess is not None and m.preprocess.colour_order == spec.ColourOrder.BGR
    assert m.preprocess.layout == "NHWC" and m.preprocess.size == (32, 32)
    assert {a.key for a in m.artifacts} == {f"{r}:{b}:fp32" for r in ("encoder", "step", "clip")
                                           for b in ("onnxruntime", "openvino")}
    assert [s.input for s in m.state] == [spec.H_IN, spec.C_IN] and m.state[0].shape == (1, spec.BATCH, 16)
    assert m.temporal.clip_len == 8 and m.temporal.train_fps == 15.0
    assert m.versions.opset == 17 and m.versions.torch.startswith("2.")
    assert all(r.passed for r in m.parity)
    strict = [r for r in m.parity if r.tolerance >= 0]
    assert len(strict) == 4 and all(r.frames >= 200 and r.max_abs_diff <= FP32_TOL for r in strict)


def test_each_onnx_file_carries_the_spec(bundle: Path) -> None:
    import onnx

    m = load_bundle(bundle).manifest
    for a in m.artifacts:
        if a.backend != Backend.ONNXRUNTIME:
            continue
        model = onnx.load(str(bundle / a.files[0].path))
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta[spec.METADATA_KEY] == m.without_hashes().to_json()
        lstm = [n for n in model.graph.node if n.op_type == "LSTM"]
        assert all(all(att.i == 0 for att in n.attribute if att.name == "layout") for n in lstm)
        assert not list(bundle.glob("*.onnx.data"))


@pytest.mark.parametrize("backend", [Backend.ONNXRUNTIME, Backend.OPENVINO])
def test_streaming_equals_torch_at_another_batch(bundle: Path, ckpt: Path, backend: Backend) -> None:
    """3 streams (the export traced 2), 30 frames, state carried, BGR in: equals torch on RGB."""
    from tests.bundles import synthetic_clips

    X, _ = synthetic_clips(3, size=(32, 32), num_classes=4, split="test", clip_len=30)
    ref = _torch_logits(ckpt, X)
    b = load_bundle(bundle)
    opts = BackendOptions(inference_precision="f32" if backend == Backend.OPENVINO else "")
    enc = open_model(b, b.find(Role.ENCODER, backend, Precision.FP32), opts)
    step = open_model(b, b.find(Role.STEP, backend, Precision.FP32), opts)
    h = np.zeros((1, 3, 16), np.float32)
    c = h.copy()
    bgr = np.ascontiguousarray(X[..., ::-1])
    for t in range(X.shape[1]):
        feats = enc.run({spec.FRAMES: np.ascontiguousarray(bgr[:, t])})[spec.FEATURES]
        out = step.run({spec.FEATURES: feats, spec.H_IN: h, spec.C_IN: c})
        h, c = out[spec.H_OUT], out[spec.C_OUT]
        np.testing.assert_allclose(out[spec.LOGITS], ref[:, t], atol=FP32_TOL, rtol=0)
    clip = open_model(b, b.find(Role.CLIP, backend, Precision.FP32), opts)
    for T in (5, 30):  # the time axis is dynamic
        got = clip.run({spec.CLIP: np.ascontiguousarray(bgr[:, :T])})[spec.CLIP_LOGITS]
        np.testing.assert_allclose(got, ref[:, :T], atol=FP32_TOL, rtol=0)


def test_openvino_records_its_default_precision(bundle: Path) -> None:
    m = load_bundle(bundle).manifest
    ov = [a for a in m.artifacts if a.backend == Backend.OPENVINO]
    assert all(a.inference_precision in ("f32", "bf16", "f16") for a in ov)
    xml = (bundle / ov[0].files[0].path).read_text()
    assert 'element_type="f16"' not in xml  # saved with compress_to_fp16=False
    if ov[0].inference_precision != "f32":  # this CPU (AVX512-BF16) defaults to bf16: deviation recorded
        informational = [r for r in m.parity if r.tolerance < 0]
        assert informational and all(0 < r.max_abs_diff < 0.5 for r in informational)


def test_fused_and_feature_models(work: Path, ckpt: Path) -> None:
    fused = load_bundle(make_bundle(work, checkpoint=ckpt, graph="fused", name="fused")).manifest
    assert {a.role for a in fused.artifacts} == {Role.FUSED, Role.CLIP}
    assert all(r.passed for r in fused.parity)
    feat = load_bundle(make_bundle(work, checkpoint=make_feature_checkpoint(work), name="feat")).manifest
    assert feat.preprocess is None and feat.model.kind == spec.ModelKind.FEATURES
    assert {a.role for a in feat.artifacts} == {Role.STEP, Role.CLIP}
    assert all(r.passed and r.max_abs_diff <= FP32_TOL for r in feat.parity)


def test_teacher_refused_with_distill_hint(work: Path) -> None:
    from edgelstm.export import export_bundle

    teacher = make_checkpoint(work, model="teacher_tiny", trained=False)
    with pytest.raises(UsageError, match="distill"):
        export_bundle(teacher, work / "teacher")
    assert not (work / "teacher").exists()


def test_existing_bundle_kept_unless_force_and_failed_export_leaves_nothing(
        work: Path, ckpt: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgelstm.export import export_bundle, parity

    before = (bundle / spec.MANIFEST_NAME).read_text()
    with pytest.raises(UsageError, match="--force"):
        export_bundle(ckpt, bundle)
    real = parity.compare
    monkeypatch.setattr(parity, "compare", lambda *a, **k: __import__("dataclasses").replace(
        real(*a, **k), max_abs_diff=1.0, passed=False))
    with pytest.raises(ExportCheckError, match="streaming-equivalence"):
        export_bundle(ckpt, bundle, force=True)
    assert (bundle / spec.MANIFEST_NAME).read_text() == before
    load_bundle(bundle)  # still whole and valid
    assert not [p for p in work.iterdir() if p.name.endswith(".partial")]


def _copy(bundle: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(bundle, dest)
    return dest


def test_tampered_bundles_give_clear_errors(bundle: Path, tmp_path: Path) -> None:
    b = _copy(bundle, tmp_path / "modified")
    data = bytearray((b / "step-fp32.onnx").read_bytes())
    data[-20] ^= 0xFF
    (b / "step-fp32.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"step-fp32\.onnx.*SHA-256.*re-export"):
        load_bundle(b)

    b = _copy(bundle, tmp_path / "missing")
    (b / "openvino" / "step-fp32.bin").unlink()
    with pytest.raises(BundleError, match=r"step-fp32\.bin.*missing"):
        load_bundle(b)

    for name, mutate, needle in [
        ("unknown", lambda d: d["model"].update(colour="x"), "unknown field 'manifest.model.colour'"),
        ("nofield", lambda d: d.pop("state"), "missing field 'manifest.state'"),
        ("newer", lambda d: d.update(format_version=spec.FORMAT_VERSION + 1), "upgrade edgelstm"),
    ]:
        b = _copy(bundle, tmp_path / name)
        d = json.loads((b / spec.MANIFEST_NAME).read_text())
        mutate(d)
        (b / spec.MANIFEST_NAME).write_text(json.dumps(d))
        with pytest.raises(BundleError, match="manifest.json") as e:
            load_bundle(b)
        assert needle in str(e.value)


def test_model_not_matching_its_manifest(bundle: Path, tmp_path: Path) -> None:
    """A step file swapped for the encoder (hashes updated, so only the I/O check can catch it)."""
    import dataclasses

    b = _copy(bundle, tmp_path / "swapped")
    m = load_bundle(b).manifest
    enc, step = (m.artifact(r, Backend.ONNXRUNTIME, Precision.FP32) for r in (Role.ENCODER, Role.STEP))
    assert enc is not None and step is not None
    arts = tuple(dataclasses.replace(a, files=enc.files) if a is step else a for a in m.artifacts)
    (b / spec.MANIFEST_NAME).write_text(dataclasses.replace(m, artifacts=arts).to_json())
    bb = load_bundle(b)
    with pytest.raises(BundleError, match=r"encoder-fp32\.onnx.*has no input 'features'.*re-export"):
        open_model(bb, bb.find(Role.STEP, Backend.ONNXRUNTIME, Precision.FP32))


def test_cli_export_and_usage_errors(work: Path, ckpt: Path) -> None:
    from click.testing import CliRunner

    from edgelstm.cli import cli

    r = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(work / "cli"), "--size", "32,32"])
    assert r.exit_code == 0, r.output
    assert "step:onnxruntime:fp32" in r.output and "pass" in r.output
    load_bundle(work / "cli")
    r = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(work / "cli2"), "--size", "36,36"])
    assert r.exit_code == 2 and "--size" in r.output and not (work / "cli2").exists()
    r = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(work / "cli3"), "--format", "tflite"])
    assert r.exit_code == 2 and "unknown format 'tflite'" in r.output

"""INT8 the whole way: trained tiny checkpoint -> bundle -> INT8 behind the gate, both backends."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgelstm import spec
from edgelstm.errors import ExportCheckError, UsageError
from edgelstm.runtime.bundle import load_bundle
from edgelstm.spec import Backend, Precision, Role
from tests.bundles import make_bundle, make_checkpoint, make_feature_checkpoint


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8")


@pytest.fixture(scope="module")
def ckpt(work: Path) -> Path:
    return make_checkpoint(work, steps=300)


@pytest.fixture(scope="module")
def int8_bundle(work: Path, ckpt: Path) -> Path:
    return make_bundle(work, checkpoint=ckpt, formats=("onnx", "openvino"), int8=True, name="int8")


def test_gate_passes_and_is_recorded(int8_bundle: Path) -> None:
    m = load_bundle(int8_bundle).manifest
    q = m.quantization
    assert q is not None and set(q.backends) == {"onnxruntime", "openvino"}
    assert q.gate.max_drop_points == 5.0 and q.gate.min_clips == 20 and q.data.eval_clips == 50
    for b, info in q.backends.items():
        chosen = info.chosen
        # the gate's own thresholds, and the statistics it reports with them
        assert chosen.passed and chosen.drop_points <= 5.0 and chosen.final_agreement >= 0.9
        assert chosen.clips == 50 and chosen.points_per_clip == 2.0
        lo, hi = chosen.final_agreement_ci95
        assert lo <= chosen.final_agreement <= hi and hi - lo > 0.02  # 50 clips cannot pin agreement down
        assert chosen.frame_agreement >= 0.8  # margin: per-frame argmax is noisier than the final decision
        assert chosen.accuracy_fp32 > 0.4  # a trained model (chance is 0.25), so agreement means something
        assert info.int8.latency_ms > 0 and isinstance(info.int8_pays, bool)
    assert q.data.source == "synthetic" and q.data.split == "test"
    assert m.versions.nncf


def test_onnxruntime_int8_op_types(int8_bundle: Path) -> None:
    from edgelstm.export.onnx import op_counts

    m = load_bundle(int8_bundle).manifest
    enc = m.artifact(Role.ENCODER, Backend.ONNXRUNTIME, Precision.INT8)
    step = m.artifact(Role.STEP, Backend.ONNXRUNTIME, Precision.INT8)
    assert enc is not None and step is not None
    enc_ops = op_counts(int8_bundle / enc.files[0].path)
    assert enc_ops.get("QuantizeLinear", 0) >= 2 and enc_ops.get("DequantizeLinear", 0) >= 4  # static QDQ
    assert "ConvInteger" not in enc_ops  # dynamic mode's slow path is never used for convolutions
    assert m.quantization is not None
    kept = m.quantization.backends["onnxruntime"].chosen.kept_float
    step_ops = op_counts(int8_bundle / step.files[0].path)
    if "lstm" in kept:
        assert "LSTM" in step_ops and "DynamicQuantizeLSTM" not in step_ops
    else:
        assert step_ops.get("DynamicQuantizeLSTM") == 1 and "LSTM" not in step_ops


def test_openvino_int8_records_what_ran(int8_bundle: Path) -> None:
    m = load_bundle(int8_bundle).manifest
    assert m.quantization is not None
    enc = m.quantization.backends["openvino"].int8.graphs["encoder"]
    assert enc.op_types.get("FakeQuantize", 0) >= 1
    executed = enc.executed
    assert any("i8" in p or "u8" in p for precs in executed.values() for p in precs), executed


def test_int8_runs_through_the_runtime(int8_bundle: Path) -> None:
    from edgelstm.runtime.clips import stream_logits
    from tests.bundles import synthetic_clips

    X, _ = synthetic_clips(16, size=(32, 32), num_classes=4, split="val")
    for backend in (Backend.ONNXRUNTIME, Backend.OPENVINO):
        fp = stream_logits(int8_bundle, X, backend=backend, precision=Precision.FP32)
        q = stream_logits(int8_bundle, X, backend=backend, precision=Precision.INT8)
        assert q.shape == fp.shape and np.isfinite(q).all()
        assert not np.array_equal(q, fp)  # INT8 really ran: not the FP32 model under another name
        assert (q[:, -1].argmax(-1) == fp[:, -1].argmax(-1)).mean() >= 0.75  # margin: 4 of 16 clips may flip


# A small gate for tests whose judge is a stub: 20 clips are enough for 5 points and 90% agreement.
SMALL_GATE: dict[str, Any] = {"max_drop": 5.0, "min_agreement": 0.9, "calib_clips": 8, "eval_clips": 20}


def _stub_judge(passes: Callable[[tuple[str, ...]], bool]) -> Any:
    """A judge that decides by what stayed float, not by this CPU's INT8 rounding; it records what it saw."""
    from edgelstm.export.gate import judge

    seen: list[tuple[str, tuple[str, ...]]] = []

    def stub(backend, kept, fp32, int8, y, settings):  # type: ignore[no-untyped-def]
        seen.append((str(backend), kept))
        return dataclasses.replace(judge(backend, kept, fp32, int8, y, settings), passed=passes(kept))

    stub.seen = seen  # type: ignore[attr-defined]
    return stub


def test_quantize_existing_bundle_atomically(work: Path, ckpt: Path) -> None:
    from edgelstm.export import quantize_bundle

    b = make_bundle(work, checkpoint=ckpt, name="later")
    stub = _stub_judge(lambda kept: "lstm" in kept)  # passes once the LSTM stays float
    report = quantize_bundle(b, calib_data=None, **SMALL_GATE, judge=stub)
    m = load_bundle(b).manifest
    # the ladder, deduplicated: onnxruntime keeps stem and depthwise float by default, so every rung does too
    assert stub.seen == [("onnxruntime", ("stem", "depthwise")), ("onnxruntime", ("stem", "depthwise", "head")),
                         ("onnxruntime", ("stem", "depthwise", "lstm", "head"))]
    assert report.backends["onnxruntime"].chosen.kept_float == ("stem", "depthwise", "lstm", "head")
    step = m.artifact(Role.STEP, Backend.ONNXRUNTIME, Precision.INT8)
    assert step is not None and "runs FP32" in step.notes  # LSTM and head float: nothing left in the step graph
    assert m.quantization == report
    # every ONNX file (fp32 too) carries the new spec
    from edgelstm.export.onnx import read_embedded_spec

    assert read_embedded_spec(b / "encoder-fp32.onnx") == m.without_hashes().to_json()


def test_gate_failure_leaves_bundle_unchanged(work: Path, ckpt: Path) -> None:
    from edgelstm.export import quantize_bundle

    b = make_bundle(work, checkpoint=ckpt, name="strict", formats=("onnx", "openvino"))
    before = (b / spec.MANIFEST_NAME).read_text()
    stub = _stub_judge(lambda kept: False)
    with pytest.raises(ExportCheckError, match="accuracy gate") as e:
        quantize_bundle(b, calib_data="synthetic", **SMALL_GATE, backends=("openvino",), judge=stub)
    # NNCF keeps proj and head together, so ("head",) and ("lstm", "head") become these; the stem rung comes last
    assert [k for _, k in stub.seen] == [(), ("proj", "head"), ("proj", "lstm", "head"),
                                         ("stem", "proj", "lstm", "head")]
    assert "stem" in str(e.value) and "deploy FP32" in str(e.value)
    assert (b / spec.MANIFEST_NAME).read_text() == before
    assert not list(b.rglob("*int8*"))


def test_requantizing_one_backend_keeps_the_other(work: Path, ckpt: Path) -> None:
    from edgelstm.export import quantize_bundle

    b = make_bundle(work, checkpoint=ckpt, name="both", formats=("onnx", "openvino"))
    quantize_bundle(b, backends=("openvino",), **SMALL_GATE, judge=_stub_judge(lambda kept: True))
    quantize_bundle(b, backends=("onnxruntime",), **SMALL_GATE, judge=_stub_judge(lambda kept: True))
    m = load_bundle(b).manifest
    assert m.quantization is not None and set(m.quantization.backends) == {"openvino", "onnxruntime"}
    assert {t.backend for t in m.quantization.trials} == {"openvino", "onnxruntime"}
    for backend in (Backend.ONNXRUNTIME, Backend.OPENVINO):
        assert m.artifact(Role.ENCODER, backend, Precision.INT8) is not None


def test_too_few_gate_clips_is_a_usage_error(work: Path, ckpt: Path) -> None:
    from click.testing import CliRunner

    from edgelstm.cli import cli
    from edgelstm.export import quantize_bundle

    b = make_bundle(work, checkpoint=ckpt, name="few")
    before = (b / spec.MANIFEST_NAME).read_text()
    with pytest.raises(UsageError, match="at least 100 clips"):
        quantize_bundle(b, eval_clips=40)  # the default gate: 1 point, 98% agreement
    r = CliRunner().invoke(cli, ["export", str(ckpt), "--out", str(work / "few2"), "--int8", "--eval-clips", "30",
                                 "--max-drop", "2"])
    assert r.exit_code == 2 and "at least 50 clips" in r.output and "--eval-clips 50" in r.output
    assert not (work / "few2").exists()
    r = CliRunner().invoke(cli, ["quantize", str(b), "--max-drop", "0"])
    assert r.exit_code == 2 and "--max-drop 0" in r.output
    assert (b / spec.MANIFEST_NAME).read_text() == before


def test_int8_without_calib_data_is_a_usage_error(work: Path) -> None:
    from click.testing import CliRunner

    from edgelstm.cli import cli

    feat = make_feature_checkpoint(work)
    r = CliRunner().invoke(cli, ["export", str(feat), "--out", str(work / "f8"), "--int8"])
    assert r.exit_code == 2 and "--calib-data" in r.output
    assert not (work / "f8").exists()
    with pytest.raises(UsageError):
        from edgelstm.export import export_bundle

        export_bundle(feat, work / "f9", int8=True)


def test_latency_recorded_per_batch(int8_bundle: Path) -> None:
    from edgelstm.export.quantize import BATCHES

    q = load_bundle(int8_bundle).manifest.quantization
    assert q is not None
    for b, info in q.backends.items():
        by_batch = info.int8_fp32_latency_ratio_by_batch
        assert set(by_batch) == {str(n) for n in BATCHES}
        assert by_batch["1"] == info.int8_fp32_latency_ratio
        assert all(facts.latency_ms_by_batch[k] > 0 for facts in (info.fp32, info.int8) for k in by_batch)
        # the crossover is the smallest batch measured where INT8 was not slower, or None
        paying = [n for n in BATCHES if by_batch[str(n)] <= 1.0]
        assert info.int8_pays_from_batch == (paying[0] if paying else None)
        assert info.int8_pays == (by_batch["1"] <= 1.0)


@pytest.mark.parametrize("scope, quantized", [("all", 7), ("pointwise", 4), ("stem", 1), ("dense", 3)])
def test_conv_scope_keeps_depthwise_float(work: Path, scope: str, quantized: int) -> None:
    """The default student's encoder: stem + 3 depthwise + 3 pointwise convs; the scope picks which go INT8."""
    import torch

    from edgelstm.export import graphs
    from edgelstm.export.onnx import export_onnx, op_counts
    from edgelstm.export.quantize_ort import ConvScope, OrtInt8Config, QFormat, quantize
    from edgelstm.models import create_model

    torch.manual_seed(0)
    model = graphs.deployable(create_model("student", num_classes=4), "student", (32, 32))
    io = spec.encoder_io((32, 32), model.encoder.feature_size)
    src = work / "student-encoder.onnx"
    if not src.exists():
        export_onnx(graphs.EncoderGraph(model), src, *io)
    rng = np.random.default_rng(0)
    feeds = [{spec.FRAMES: rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)} for _ in range(4)]
    dst = work / f"student-encoder-{scope}.onnx"
    cfg = OrtInt8Config(format=QFormat.QOPERATOR, convs=ConvScope(scope))
    chosen = quantize(src, dst, (), feeds, config=cfg)
    ops = op_counts(dst)
    assert ops.get("QLinearConv", 0) == quantized and ops.get("Conv", 0) == 7 - quantized, ops
    assert len(chosen["depthwise"]) == (3 if scope == "all" else 0)
    assert len(chosen["stem"]) == (0 if scope == "dense" else 1)

"""`edgelstm profile` end to end on a tiny real bundle (CliRunner, few frames). No timing assertions."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgelstm.cli import cli

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.bundles import make_bundle, make_checkpoint  # noqa: E402

FAST = ("--frames", "8", "--warmup", "2", "--fps", "120")
STAGE_HEADERS = ("capture wait", "decode", "preprocess", "encoder", "LSTM step", "postprocess", "total")
ENGINE_STAGES = ("preprocess", "encoder", "step", "postprocess")  # the parts of the engine's total


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ONNX + OpenVINO FP32, ONNX INT8, clip graphs; the checkpoint sits beside the bundle (found by SHA-256)."""
    from edgelstm.export import quantize_bundle

    work = tmp_path_factory.mktemp("profile")
    ckpt = make_checkpoint(work)
    path = make_bundle(work, formats=("onnx", "openvino"), checkpoint=ckpt)
    # eval_clips: the fewest the default gate (1 point, 98% agreement) accepts
    quantize_bundle(path, calib_data="synthetic", backends=("onnx",), calib_clips=16, eval_clips=100)
    return path


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["profile", *args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_profile_table_json_png(bundle: Path, tmp_path: Path) -> None:
    js, png = tmp_path / "out" / "p.json", tmp_path / "out" / "p.png"
    code, out, err = _run(str(bundle), "--device", "cpu,intel-cpu", *FAST, "--json", str(js), "--plot", str(png))
    assert code == 0, err
    for h in STAGE_HEADERS:
        assert h in out
    assert "per stage, ms p50/p90/p99" in out and "total ms" in out  # the summary and the per-stage table
    assert "clip re-inference" in out and "PyTorch eager" in out and "frame age" in out
    data = json.loads(js.read_text())
    assert data["stages"] == ["capture_wait", "decode", "preprocess", "encoder", "step", "postprocess", "total"]
    assert data["machine"]["cores"] >= 1 and data["machine"]["cpu"]
    rows = {(r["mode"], r["backend"], r["precision"]) for r in data["rows"]}
    assert {("stream", "onnxruntime", "fp32"), ("stream", "onnxruntime", "int8"), ("stream", "openvino", "fp32"),
            ("clip", "onnxruntime", "fp32"), ("clip", "openvino", "fp32"), ("eager-stream", "torch", "fp32"),
            ("eager-clip", "torch", "fp32")} <= rows
    # OpenVINO INT8 is not in this bundle: said so, not silently dropped
    assert any("openvino int8" in n for n in data["notes"])
    for r in data["rows"]:
        assert set(r["stages"]) == set(data["stages"])
        assert set(r["stages"]["total"]) == {"p50", "p90", "p99", "mean"}
        assert r["frames"] == 8 and len(r["totals_ms"]) == 8
        assert r["stages"]["total"]["p50"] > 0 and r["first_ms"] > 0 and r["fps"] > 0
        assert r["age_ms"]["p99"] >= r["age_ms"]["p50"] > 0
        assert r["bare_ms"]["p50"] > 0 and r["peak_rss_mb"] > 0 and r["dropped"] >= 0
        assert r["inference_precision"]
    stream = [r for r in data["rows"] if r["mode"] == "stream"]
    assert all(r["model_bytes"] > 0 for r in stream)
    ov = next(r for r in stream if r["backend"] == "openvino")
    assert ov["inference_precision"] == "f32"  # the intel-cpu profile pins f32: reported as what ran
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not list(png.parent.glob(".*tmp"))  # written atomically


def test_profile_a_video_file_shows_decode(bundle: Path, tmp_path: Path) -> None:
    """--source FILE: decoding (the source's read) is its own stage with p50/p90/p99, apart from the engine's
    stages, whose means add up to at most the total's."""
    import cv2
    import numpy as np

    video = tmp_path / "cam.avi"
    wr = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 120.0, (64, 48))
    rng = np.random.default_rng(0)
    for i in range(40):
        wr.write(np.roll(cv2.resize(rng.integers(0, 256, (4, 4, 3), np.uint8), (64, 48)), 2 * i, axis=1))
    wr.release()
    js = tmp_path / "f.json"
    code, out, err = _run(str(bundle), "--device", "cpu", "--backend", "onnxruntime", "--precision", "fp32",
                          "--no-baselines", *FAST, "--source", str(video), "--json", str(js))
    assert code == 0, err
    assert "decode" in out
    data = json.loads(js.read_text())
    assert "decode" in data["stages"] and str(video) in data["settings"]["source"]
    (row,) = data["rows"]
    dec = row["stages"]["decode"]
    assert set(dec) == {"p50", "p90", "p99", "mean"} and 0 <= dec["p50"] <= dec["p90"] <= dec["p99"]
    assert dec["mean"] > 0  # a JPEG decoded per frame
    parts = sum(row["stages"][s]["mean"] for s in ENGINE_STAGES)
    assert parts <= row["stages"]["total"]["mean"] + 4 * 5e-5  # means of per-decision sums, rounded to 0.1 us


def test_profile_streams_two(bundle: Path, tmp_path: Path) -> None:
    js = tmp_path / "s.json"
    code, out, err = _run(str(bundle), "--device", "cpu", "--precision", "fp32", "--no-baselines", *FAST,
                          "--streams", "2", "--json", str(js))
    assert code == 0, err
    assert "one engine" in out and "2 engines" in out
    streams = json.loads(js.read_text())["streams"]
    assert [s["layout"] for s in streams] == ["one engine", "2 engines"]
    for s in streams:
        assert s["streams"] == 2 and s["decided"] > 0 and s["capacity_fps"] > 0
        assert s["read"] >= s["decided"]
    assert streams[0]["mean_batch"] >= 1.0


def test_profile_accuracy_library(bundle: Path) -> None:
    from edgelstm.measure.profiler import profile_bundle

    r = profile_bundle(bundle, devices=["cpu"], frames=5, warmup=1, fps=200, accuracy="synthetic", accuracy_clips=12)
    stream = [x for x in r.rows if x.mode == "stream"]
    assert {x.precision for x in stream} == {"fp32", "int8"}
    fp32 = next(x for x in stream if x.precision == "fp32")
    assert fp32.agreement == 1.0  # FP32 against itself: the reference is the same logits
    for x in r.rows:
        assert x.accuracy is not None and 0.0 <= x.accuracy <= 1.0
        assert x.agreement is not None and 0.0 <= x.agreement <= 1.0
    clip = next(x for x in r.rows if x.mode == "clip")
    assert clip.agreement is not None and clip.agreement > 0.95  # the same FP32 arithmetic, run as a clip
    assert r.settings["accuracy"]["clips"] == 12
    summary, stages = r.table().renderables
    assert "configuration" in str(summary.columns[0].header) and "accuracy" in [str(c.header) for c in summary.columns]
    assert len(stages.rows) == len(summary.rows) == len(r.rows)


@pytest.mark.parametrize("args, message", [
    (("--device", "cpx"), "unknown device 'cpx'"),
    (("--backend", "tensorflow"), "unknown backend 'tensorflow'"),
    (("--precision", "int4"), "unknown precision 'int4'"),
    (("--device", "nvidia-cuda"), "cannot run here"),
])
def test_profile_clear_errors(bundle: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = _run(str(bundle), *args, *FAST)
    assert code != 0 and message in err and "Traceback" not in err
    assert "expected" in err or "Fix" in err


def test_profile_missing_bundle(tmp_path: Path) -> None:
    code, _, err = _run(str(tmp_path / "nope"))
    assert code == 1 and "no such bundle folder" in err

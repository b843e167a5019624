"""Online action detection end to end on a tiny untrimmed set (20 s videos at 32x32, tiny models, 2 epochs):
train a teacher, distill a student, export it, evaluate checkpoint and bundle, run the demo. Asserts the
contract, not the accuracy: the bundle says it detects (background label, thresholds from training), the
bundle and the checkpoint score the same, the engine's events are the metrics' events, the demo writes them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelstm.cli import cli
from edgelstm.data.untrimmed import load_untrimmed
from edgelstm.runtime.events import events_from_probs
from edgelstm.spec import Manifest, Task

DATA = ["--data", "synthetic", "--counts", "2,1,1", "--video-seconds", "20", "--clip-len", "16", "--batch-size",
        "4", "--epochs", "2", "--threads", "1", "--target-false-alarms", "100000"]


def _run(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("detect")
    _run("train", "--task", "detect", "--model", "teacher_tiny", "--out", str(root / "teacher"), *DATA)
    out = _run("distill", "--task", "detect", "--teacher", str(root / "teacher" / "best.pt"), "--student",
               "student_tiny", "--out", str(root / "student"), "--unlabeled", "synthetic:1", *DATA)
    assert "val frame mAP" in out and "best checkpoint" in out
    metrics = json.loads((root / "student" / "metrics.json").read_text())
    assert metrics["unlabeled_videos"] == 1 and metrics["unlabeled_frames"] == 20 * 15  # one more 20 s video at 15 fps
    _run("export", str(root / "student" / "best.pt"), "--out", str(root / "bundle"))
    _run("data", "synthetic", "--untrimmed", "--out", str(root / "videos"), "--seconds", "8", "--train", "1", "--val",
         "1", "--test", "1", "--seed", "5")
    return root


def test_the_bundle_is_a_detector_with_the_thresholds_training_chose(runs: Path) -> None:
    m = Manifest.read(runs / "bundle" / "manifest.json")
    metrics = json.loads((runs / "student" / "metrics.json").read_text())
    assert m.task == Task.DETECT and m.detection is not None
    assert m.labels[m.detection.background] == "background" and len(m.labels) == 11
    assert m.detection.events.on == metrics["event_thresholds"]["on"]
    assert metrics["objective"] == "distill" and metrics["test"]["frame_map"] is not None


def test_checkpoint_and_bundle_score_the_same(runs: Path) -> None:
    videos = str(runs / "videos")  # written files: the segments CSV, the class list of untrimmed.json
    torch_res = json.loads(_run("eval", str(runs / "student" / "best.pt"), "--task", "detect", "--data", videos,
                                "--json"))
    onnx_res = json.loads(_run("eval", str(runs / "bundle"), "--data", videos, "--json"))  # the task from the manifest
    for key in ("frame_map", "delay_p50_s", "delay_p90_s", "false_alarms_per_hour", "missed", "stage_accuracy"):
        assert key in torch_res and key in onnx_res
    assert torch_res["artifact"] == "torch" and onnx_res["artifact"] == "onnxruntime:fp32"
    assert torch_res["frames"] == onnx_res["frames"] == 120 and torch_res["instances"] == onnx_res["instances"]
    assert torch_res["frame_map"] == pytest.approx(onnx_res["frame_map"], abs=1e-3)
    for key in ("events", "missed", "false_alarms"):
        assert torch_res[key] == onnx_res[key]


def test_engine_events_are_the_metrics_events(runs: Path) -> None:
    from edgelstm.runtime.engine import Engine
    from edgelstm.runtime.frames import softmax
    from edgelstm.spec import ColourOrder

    video = load_untrimmed("synthetic", size=(32, 32), counts=(1, 1, 1), seconds=20)["test"][0]
    eng = Engine.load(runs / "bundle")
    d = eng.manifest.detection
    assert d is not None
    preds = [eng.step_batch([f], [0], colour=ColourOrder.RGB)[0] for f in video.frames]
    probs = softmax(np.stack([p.logits for p in preds]))
    expected = events_from_probs(probs, background=d.background, on=d.events.on, off=d.events.off)
    starts = [(c.event.label, c.event.start) for p in preds for c in p.events if c.change == "start"]
    assert starts == [(e.label, e.start) for e in expected]
    assert [p.event is not None for p in preds] == [any(e.start <= t < e.end for e in expected)
                                                    for t in range(len(preds))]


def test_demo_writes_decisions_and_events(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    _run("demo", str(runs / "bundle"), "--source", "synthetic", "--headless", "--max-frames", "40", "--fps", "60",
         "--jsonl", str(out))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    decisions = [x for x in lines if "decision" in x]
    events = [x for x in lines if "event" in x and "decision" not in x]
    assert len(decisions) == 40 and all("event" in x for x in decisions)
    assert all(x["event"] in ("start", "end") and x["label"] != "background" for x in events)
    assert all(x["truth"] in Manifest.read(runs / "bundle" / "manifest.json").labels for x in decisions)


def test_training_refuses_a_set_without_val_actions(tmp_path: Path) -> None:
    from edgelstm.data.synthetic_source import write_video

    (tmp_path / "vids" / "train").mkdir(parents=True)
    write_video(tmp_path / "vids" / "train" / "a.avi", np.full((30, 16, 16, 3), 90, np.uint8), 15.0)
    (tmp_path / "vids" / "segments.csv").write_text("video,label,start_s,end_s\ntrain/a.avi,jump,0.5,1.5\n")
    r = CliRunner().invoke(cli, ["train", "--task", "detect", "--model", "student_tiny", "--data",
                                 str(tmp_path / "vids"), "--size", "16,16", "--clip-len", "4", "--out",
                                 str(tmp_path / "run")])
    assert r.exit_code == 1 and "the val split has 0 video(s) and no action in them" in r.output
    assert "Fix: add videos under val/" in r.output and not (tmp_path / "run").exists()

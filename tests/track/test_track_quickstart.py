"""``edgelstm quickstart --task track`` end to end at toy size: every stage runs and the run folder holds what the
classify quickstart's does, plus track_report.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgelstm.cli import cli
from edgelstm.train.pipeline_track import TrackStageConfig

TOY = TrackStageConfig(size=(32, 32), frames=12, clip_len=6, counts=(6, 2, 3), crop_size=16, teacher="tracker_tiny",
                       student="tracker_tiny", teacher_epochs=1, student_epochs=1, batch_size=4, progress=False)


@pytest.mark.slow  # about 30 s of CPU (INT8 gate on two backends, the profile); the stages are tested on their own
def test_track_quickstart_runs_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgelstm.quickstart_track as qt

    real = qt.run_track_quickstart
    monkeypatch.setattr(qt, "run_track_quickstart", lambda out, **kw: real(out, **kw, config=TOY))
    out = tmp_path / "qs"
    r = CliRunner().invoke(cli, ["quickstart", "--task", "track", "--out", str(out), "--demo-frames", "10",
                                 "--profile-frames", "20"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for name in ("train/teacher/best.pt", "train/student_distilled/best.pt", "train/student_scratch/best.pt",
                 "train/train_stage.json", "bundle/manifest.json", "demo.mp4", "demo.jsonl", "profile.json",
                 "profile.png", "track_report.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "track_report.json").read_text())
    assert [row["name"] for row in report["rows"]] == ["teacher", "student_distilled", "student_scratch"]
    loop = report["closed_loop"]
    assert loop["passed"] and loop["step_px"] <= 1e-4  # each step of the loop, same crops (see closed_loop_parity)
    assert loop["free_max_px"] < 2.0  # left to their own boxes: a feedback loop over uint8 crops
    assert {e["artifact"] for e in report["engine"]} >= {"onnxruntime:fp32", "openvino:fp32"}
    assert json.loads((out / "bundle" / "manifest.json").read_text())["task"] == "track"


def test_track_quickstart_refuses_the_footage_preset(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["quickstart", "--task", "track", "--preset", "footage", "--out", str(tmp_path / "q")])
    assert r.exit_code == 2 and "--task track with --preset footage" in r.output
    assert not (tmp_path / "q").exists()

"""The tracker through the command line: data track (OTB layout) -> train/distill --task track on that folder ->
export -> eval --task track (checkpoint in PyTorch, bundle through the engine)."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from edgelstm.cli import cli


def _run(*args: object) -> str:
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_track_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "seqs"
    assert "wrote 7 sequences" in _run("data", "track", "--out", data, "--size", "32,32", "--frames", "10",
                                       "--train", "4", "--val", "1", "--test", "2")
    common = ("--data", data, "--clip-len", "5", "--epochs", "1", "--batch-size", "2", "--threads", "2")
    out = _run("train", "--task", "track", "--model", "tracker_tiny", "--out", tmp_path / "t", *common)
    assert "success AUC" in out and "best checkpoint" in out
    _run("distill", "--task", "track", "--teacher", tmp_path / "t" / "best.pt", "--student", "tracker_tiny",
         "--out", tmp_path / "s", *common)
    _run("export", tmp_path / "s" / "best.pt", "--out", tmp_path / "b")
    ckpt = json.loads(_run("eval", tmp_path / "s" / "best.pt", "--data", data, "--json"))
    bundle = json.loads(_run("eval", tmp_path / "b", "--data", data, "--json"))
    assert ckpt["task"] == bundle["task"] == "track" and ckpt["artifact"] == "torch"
    assert abs(ckpt["mean_iou"] - bundle["mean_iou"]) < 1e-3  # the engine tracks as PyTorch does
    assert bundle["fps"] > 0 and set(bundle["stages_ms"]) >= {"preprocess", "encoder", "step", "postprocess"}
    assert bundle["sequences"] == 2 and bundle["frames"] == 18

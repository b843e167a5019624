"""`edgelstm train/distill --task caption` and `edgelstm export` of the result, through the CLI."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edgelstm.cli import cli

TINY = ["--size", "16,16", "--counts", "16,4,4", "--clip-len", "4", "--epochs", "1"]


def test_train_distill_export(tmp_path: Path) -> None:
    run = CliRunner().invoke
    r = run(cli, ["train", "--task", "caption", "--model", "captioner_teacher_tiny", *TINY, "--out",
                  str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    assert "test BLEU-4" in r.output and "motion words" in r.output
    r = run(cli, ["distill", "--task", "caption", "--teacher", str(tmp_path / "t" / "best.pt"), "--student",
                  "captioner_tiny", *TINY, "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    r = run(cli, ["export", str(tmp_path / "s" / "best.pt"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "decoder-fp32.onnx").is_file()
    r = run(cli, ["export", str(tmp_path / "t" / "best.pt"), "--out", str(tmp_path / "tb")])
    assert r.exit_code == 2 and "not causal" in r.output  # the bidirectional teacher cannot stream

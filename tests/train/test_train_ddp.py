"""train and distill run unchanged under torchrun: two CPU processes with gloo."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgelstm.models.checkpoint import load_checkpoint

ARGS = ["--size", "16,16", "--clip-len", "4", "--counts", "24,10,10", "--batch-size", "4", "--epochs", "1",
        "--threads", "1"]


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "edgelstm", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_train_and_distill_with_two_gloo_processes(tmp_path: Path) -> None:
    r = _torchrun(["train", "--model", "teacher_tiny", "--out", str(tmp_path / "t"), *ARGS], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert m["world_size"] == 2
    assert r.stdout.count("best checkpoint") == 2  # both ranks ran the same command to the end
    r = _torchrun(["distill", "--teacher", str(tmp_path / "t" / "best.pt"), "--student", "student_tiny",
                   "--out", str(tmp_path / "s"), *ARGS[4:]], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["world_size"] == 2
    assert load_checkpoint(tmp_path / "s" / "best.pt").name == "student_tiny"

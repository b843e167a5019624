"""The on-device promise, for real: a fresh venv with only the base install runs the demo, without torch.

Slow (a venv and a pip install, about a minute with a warm pip cache): opt in with --runslow
(`make test-base`). The bundle is exported in the main environment, as a user would ship it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_on_a_base_install(tmp_path: Path) -> None:
    from tests.bundles import make_bundle

    bundle = make_bundle(tmp_path, formats=("onnx",))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no --system-site-packages
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
                       capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(py), "-c", "import torch"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr
    r = subprocess.run([str(venv / "bin" / "edgelstm"), "demo", str(bundle), "--source", "synthetic", "--headless",
                        "--max-frames", "20"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 20 and all(x["label"] for x in lines)
    assert "frames decided" in r.stderr
    r = subprocess.run([str(py), "-c", "import edgelstm, sys; print(edgelstm.__file__)"], capture_output=True,
                       text=True, env=env, cwd=tmp_path)
    assert str(venv) in r.stdout  # the installed copy ran, not the checkout

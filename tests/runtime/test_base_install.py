"""The on-device promise, for real: a fresh venv with only the base install runs the demo, without torch.

Slow (a venv and a pip install, about a minute with a warm pip cache): opt in with --runslow
(`make test-base`). The venv is the session fixture ``base_venv`` (tests/conftest.py), shared
with tests/test_imports.py. The bundle is exported in the main environment, as a user would ship it.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import BaseVenv  # the session fixture's type


@pytest.mark.slow
def test_demo_runs_on_a_base_install(tmp_path: Path, base_venv: BaseVenv) -> None:
    from tests.bundles import make_bundle

    bundle = make_bundle(tmp_path, formats=("onnx",))
    venv, py, env = base_venv.root, base_venv.python, base_venv.env
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

"""mypy over the whole package, as part of the suite (`make test` -> `.ci/run`), so a type error is a red test.

Configuration: ``[tool.mypy]`` in pyproject.toml. The output is in the failure message, one error a line.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_passes_on_the_package() -> None:
    r = subprocess.run([sys.executable, "-m", "mypy", "edgelstm"], capture_output=True, text=True, cwd=ROOT,
                       timeout=900)
    assert r.returncode == 0, f"mypy edgelstm (exit {r.returncode}):\n{r.stdout}{r.stderr}"
    assert "Success" in r.stdout, r.stdout  # it checked something: "Success: no issues found in N source files"

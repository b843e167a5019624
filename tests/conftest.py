from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent / "runtime"))  # toy_bundle, fakes: shared by runtime/ and measure/ tests


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Decoded videos, teacher outputs and frozen-encoder features go to a folder of this session, not the user's
    ~/.cache/edgelstm (a test must not read what an earlier run left there)."""
    old = os.environ.get("EDGELSTM_CACHE")
    os.environ["EDGELSTM_CACHE"] = str(tmp_path_factory.mktemp("edgelstm-cache"))
    yield
    if old is None:
        os.environ.pop("EDGELSTM_CACHE", None)
    else:
        os.environ["EDGELSTM_CACHE"] = old


@dataclass(frozen=True)
class BaseVenv:
    """A fresh venv holding only the base install (`pip install .`, no extras): what a device gets."""

    root: Path
    env: dict[str, str]   # the environment to run it with (no PYTHONPATH / VIRTUAL_ENV from the dev venv)
    cwd: Path             # a folder outside the checkout, so the installed copy is the one imported

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> BaseVenv:
    """Built once per session (a venv and a pip install, about a minute): use it only from tests marked slow."""
    home = tmp_path_factory.mktemp("base-install")
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no --system-site-packages
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # Install a clean copy of the sources: building in the checkout reuses its build/lib, which keeps modules
    # since deleted or moved (they would be installed and imported as if they still existed).
    src = home / "src"
    shutil.copytree(ROOT / "edgelstm", src / "edgelstm", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        str(src)], capture_output=True, text=True, timeout=900, env=env, cwd=home)
    assert r.returncode == 0, r.stderr[-3000:]
    return BaseVenv(venv, env, home)


@pytest.fixture(scope="session")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A hand-built frame-model bundle (tests/runtime/toy_bundle.py) with ONNX and OpenVINO artefacts and a fused
    graph; the graph takes RGB."""
    from toy_bundle import make_toy_bundle

    return make_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", openvino=True, fused=True)


@pytest.fixture(scope="session")
def toy_features(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A feature model whose state turns NaN when the first feature is negative."""
    from toy_bundle import make_toy_bundle

    from edgelstm.spec import ModelKind

    return make_toy_bundle(tmp_path_factory.mktemp("toyf") / "bundle", kind=ModelKind.FEATURES, poison=True)

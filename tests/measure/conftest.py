"""The runtime's toy bundles (tests/runtime/toy_bundle.py), for measuring them: the same session fixtures."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgelstm.spec import ModelKind

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))  # toy_bundle, fakes

from toy_bundle import Toy, make_toy_bundle  # noqa: E402


@pytest.fixture(scope="session")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Toy:
    """A frame model with ONNX and OpenVINO artefacts and a fused graph; graph takes RGB."""
    return make_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", openvino=True, fused=True)


@pytest.fixture(scope="session")
def toy_features(tmp_path_factory: pytest.TempPathFactory) -> Toy:
    """A feature model whose state turns NaN when the first feature is negative."""
    return make_toy_bundle(tmp_path_factory.mktemp("toyf") / "bundle", kind=ModelKind.FEATURES, poison=True)

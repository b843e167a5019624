"""Tiny video datasets written with OpenCV, in each layout the loader accepts (imported by the tests here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelstm.data.synthetic import CLASSES, SyntheticActions, SyntheticConfig
from edgelstm.data.synthetic_source import write_video

SIZE = (16, 16)
T = 6
FEW = CLASSES[:3]


def render(label: int, index: int, frames: int = T) -> np.ndarray:
    cfg = SyntheticConfig(size=SIZE, clip_len=frames, train=100)
    return SyntheticActions(cfg, "train")[label + len(CLASSES) * index][0]


def write_class_tree(root: Path, per_class: int = 4, frames: int = T) -> list[Path]:
    paths = []
    for c, name in enumerate(FEW):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            p = root / name / f"{name}_{i}.avi"
            write_video(p, render(c, i, frames), 15.0)
            paths.append(p)
    return paths


@pytest.fixture
def class_tree(tmp_path: Path) -> Path:
    write_class_tree(tmp_path / "videos")
    return tmp_path / "videos"

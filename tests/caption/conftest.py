"""Shared, session-scoped: a few captioned synthetic clips, a tiny trained streaming captioner, and its bundle."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def caption_data() -> Any:
    from edgelstm.data.caption_set import load_captions

    return load_captions("synthetic", size=(16, 16), clip_len=4, counts=(40, 8, 8))


@pytest.fixture(scope="session")
def caption_student(tmp_path_factory: pytest.TempPathFactory, caption_data: Any) -> Path:
    from edgelstm.train.caption import CaptionConfig, fit_caption

    root = tmp_path_factory.mktemp("caption-student")
    return fit_caption(CaptionConfig(model="captioner_tiny", out=root / "s", epochs=3, threads=1, progress=False,
                                     lr=1e-2), caption_data).best


@pytest.fixture(scope="session")
def caption_bundle(tmp_path_factory: pytest.TempPathFactory, caption_student: Path) -> Path:
    from edgelstm.export import export_bundle

    out = tmp_path_factory.mktemp("caption-bundle") / "bundle"
    export_bundle(caption_student, out, formats=("onnx", "openvino"), parity_frames=16)
    return out

"""``edgelstm explain`` on real exports: the same (untrained, tiny) checkpoint explained through torch and
through its exported bundle must give the same logits, gates and saliency, and each path's numpy cell must
reproduce its own model. Covers the exporter's graph shapes: a frame student (encoder graph, Transpose /
Gather / Gemm head) and a 2-layer feature LSTM with in-graph standardisation (Slice / Concat state)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelstm.measure.explain import Explanation, explain_stream
from edgelstm.measure.explain_model import open_model
from edgelstm.measure.explain_source import read_stream

pytest.importorskip("torch")


def _explain(target: Path, source: str) -> Explanation:
    """The library path without the PNG (test_explain.py covers the outputs)."""
    model = open_model(target)
    return explain_stream(model, read_stream(model, source), window=4)


def _both(ckpt: Path, bundle: Path, source: str) -> tuple[Explanation, Explanation]:
    a, b = _explain(ckpt, source), _explain(bundle, source)
    for e in (a, b):
        assert e.parity["logits"] < 1e-4 and e.parity["h"] < 1e-5, e.parity
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-4)
    np.testing.assert_allclose(a.gates.f, b.gates.f, atol=1e-5)
    np.testing.assert_allclose(a.saliency, b.saliency, atol=1e-3)
    return a, b


def test_frame_student_checkpoint_and_bundle_agree(tmp_path: Path) -> None:
    import cv2

    from edgelstm.export import export_bundle
    from tests.bundles import make_checkpoint

    ckpt = make_checkpoint(tmp_path, trained=False)
    export_bundle(ckpt, tmp_path / "b", formats=("onnx",))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 15.0, (48, 40))
    for i in range(8):
        writer.write(np.random.default_rng(i).integers(0, 256, (40, 48, 3), np.uint8))
    writer.release()
    a, b = _both(ckpt, tmp_path / "b", str(video))
    assert a.saliency.shape == (8, 4) and "onnxruntime" in b.model.runs and "torch" in a.model.runs


def test_two_layer_feature_lstm_checkpoint_and_bundle_agree(tmp_path: Path) -> None:
    import torch

    from edgelstm.export import export_bundle
    from edgelstm.models import create_model
    from edgelstm.models.checkpoint import Checkpoint, save_checkpoint
    from edgelstm.spec import DataFacts, ModelKind

    torch.manual_seed(0)
    config = {"input_size": 5, "hidden_size": 7, "num_layers": 2, "num_classes": 3,
              "feature_mean": [0.5] * 5, "feature_std": [2.0] * 5}
    data = DataFacts(kind=ModelKind.FEATURES, clip_len=8, fps=15.0, feature_size=5, source="features",
                     feature_mean=(0.5,) * 5, feature_std=(2.0,) * 5)
    ckpt = tmp_path / "lstm2.pt"
    save_checkpoint(ckpt, Checkpoint(model=create_model("lstm", **config), name="lstm", config=config,
                                     classes=["a", "b", "c"], data=data))
    export_bundle(ckpt, tmp_path / "b", formats=("onnx",))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(0.5, 2.0, (9, 5)).astype(np.float32))
    a, _ = _both(ckpt, tmp_path / "b", str(tmp_path / "x.npy"))
    assert a.gates.f.shape == (9, 2, 7)  # (T, layers, hidden)

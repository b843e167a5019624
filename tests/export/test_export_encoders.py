"""A student on the pretrained EfficientNet-Lite0 encoder exports, streams and quantizes like any other: the
encoder is just the encoder graph. 32x32 frames keep it to seconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelstm.runtime.bundle import load_bundle
from edgelstm.spec import Backend, Precision, Role
from tests.bundles import CLIP_LEN, FPS, make_bundle, synthetic_clips
from tests.export.test_quantize import SMALL_GATE, _stub_judge


def encoder_checkpoint(tmp_path: Path, encoder: str, *, weights: str | None = None, size: tuple[int, int] = (32, 32),
                       num_classes: int = 4, steps: int = 20, grid: int = 1) -> Path:
    """A student on ``encoder`` (pretrained when ``weights``), briefly trained on the synthetic set."""
    import torch

    from edgelstm.data.synthetic import CLASSES
    from edgelstm.models import create_model
    from edgelstm.models.backbones import load_encoder_weights
    from edgelstm.models.checkpoint import Checkpoint, save_checkpoint
    from edgelstm.spec import DataFacts, ModelKind
    from tests.bundles import _train

    torch.manual_seed(0)
    X, y = synthetic_clips(40 * num_classes, size=size, num_classes=num_classes)
    mean = tuple(float(v) for v in X.reshape(-1, 3).mean(0) / 255)
    std = tuple(float(v) for v in X.reshape(-1, 3).std(0) / 255)
    config = {"num_classes": num_classes, "encoder": encoder, "pretrained": weights is not None, "feature_size": 32,
              "hidden_size": 16, "mean": list(mean), "std": list(std), "encoder_grid": grid}
    net = create_model("student", **config)
    if weights is not None:
        load_encoder_weights(net.encoder, weights)
    acc = _train(net, X, y, steps=steps)
    data = DataFacts(kind=ModelKind.FRAMES, clip_len=CLIP_LEN, size=size, mean=mean, std=std,  # type: ignore[arg-type]
                     stride=1, fps=FPS, source="synthetic")
    path = Path(tmp_path) / f"student-{encoder}.pt"
    save_checkpoint(path, Checkpoint(model=net, name="student", config=config, classes=list(CLASSES[:num_classes]),
                                     data=data, metrics={"train_acc": acc}))
    return path


def test_a_grid_pooled_encoder_exports_with_parity(tmp_path: Path) -> None:
    """96x96 frames give MobileNetV3's trunk a 3x3 map; a 2x2 grid over it has overlapping windows (what adaptive
    pooling does and the ONNX exporter refuses): it must export as a plain AveragePool and stream like torch."""
    from edgelstm.export.onnx import op_counts

    ckpt = encoder_checkpoint(tmp_path, "mobilenet_v3_small", size=(96, 96), num_classes=3, steps=4, grid=2)
    bundle = make_bundle(tmp_path, checkpoint=ckpt, formats=("onnx", "openvino"), parity_frames=12)  # parity inside
    m = load_bundle(bundle).manifest
    enc = m.artifact(Role.ENCODER, Backend.ONNXRUNTIME, Precision.FP32)
    assert enc is not None and op_counts(bundle / enc.files[0].path)["AveragePool"] >= 1


@pytest.fixture(scope="module")
def lite0_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("lite0")
    ckpt = encoder_checkpoint(work, "efficientnet_lite0", weights="imagenet")
    return make_bundle(work, checkpoint=ckpt, formats=("onnx", "openvino"), parity_frames=40)  # parity inside


def test_lite0_student_exports_with_its_normalisation(lite0_bundle: Path) -> None:
    from edgelstm.export.onnx import op_counts
    from edgelstm.models.efficientnet_lite import LITE0_NORM

    m = load_bundle(lite0_bundle).manifest
    assert (m.preprocess.mean, m.preprocess.std) == LITE0_NORM  # the weights' (x-127)/128, baked into the graph
    enc = m.artifact(Role.ENCODER, Backend.ONNXRUNTIME, Precision.FP32)
    assert enc is not None
    ops = op_counts(lite0_bundle / enc.files[0].path)
    assert ops["Conv"] == 49 and "Sigmoid" not in ops and "HardSigmoid" not in ops  # no squeeze-excite, no swish
    assert ops["Clip"] >= 33  # ReLU6 after every expand/depthwise conv


def test_lite0_student_quantizes_behind_the_gate(lite0_bundle: Path) -> None:
    from edgelstm.export.quantize import quantize_bundle
    from edgelstm.runtime.clips import stream_logits

    stub = _stub_judge(lambda kept: True)
    quantize_bundle(lite0_bundle, calib_data=None, **SMALL_GATE, judge=stub)
    assert {b for b, _ in stub.seen} == {"onnxruntime", "openvino"}
    X, _ = synthetic_clips(4, size=(32, 32), num_classes=4, split="val")
    for backend in (Backend.ONNXRUNTIME, Backend.OPENVINO):
        fp = stream_logits(lite0_bundle, X, backend=backend, precision=Precision.FP32)
        q = stream_logits(lite0_bundle, X, backend=backend, precision=Precision.INT8)
        assert q.shape == fp.shape and np.isfinite(q).all() and not np.array_equal(q, fp)  # INT8 really ran

"""Registered model variants. Names users can rely on: ``lstm``, ``student``, ``teacher``."""
from __future__ import annotations

from typing import Any, cast

from edgelstm.models.backbones import build_encoder, pretrained_norm
from edgelstm.models.clip_models import BiLSTMClipModel, PoolingClipModel, StreamingClipModel
from edgelstm.models.encoders import TinyEncoder
from edgelstm.models.lstm_classifier import LSTMVideoClassifier
from edgelstm.models.motion import MotionStudent, MotionTeacher, map_encoder
from edgelstm.models.registry import register_model


@register_model
def lstm(*, input_size: int, num_classes: int, hidden_size: int = 128, num_layers: int = 1,
         feature_mean: list[float] | None = None, feature_std: list[float] | None = None) -> LSTMVideoClassifier:
    """The reference LSTMVideoClassifier over pre-extracted features (default for feature data), standardising
    its input when given the training split's per-feature statistics."""
    return LSTMVideoClassifier(input_size, hidden_size, num_layers, num_classes, feature_mean=feature_mean,
                               feature_std=feature_std)


def _frame_norm(encoder: str, pretrained: bool, norm: dict[str, Any]) -> dict[str, Any]:
    """A pretrained encoder sees frames normalised as its weights were trained, not with the data's statistics."""
    if not pretrained:
        return norm
    mean, std = pretrained_norm(encoder)
    return {"mean": mean, "std": std}


@register_model
def student(*, num_classes: int, hidden_size: int = 128, feature_size: int = 128,
            widths: tuple[int, ...] = (16, 32, 64, 64), encoder: str = "mobile", pretrained: bool = False,
            encoder_grid: int | None = None, encoder_blocks: int | None = None,
            **norm: tuple[float, ...]) -> StreamingClipModel:
    """Causal student: a per-frame encoder (MobileNet-like by default; ``encoder``: see models.backbones) + one
    LSTM layer (default for clips). ``pretrained``: the encoder starts from pretrained weights (loaded after
    building, with ``load_encoder_weights``), so frames are normalised as those weights expect."""
    enc = build_encoder(encoder, feature_size=feature_size, widths=tuple(widths), grid=encoder_grid,
                        blocks=encoder_blocks)
    return StreamingClipModel(cast(Any, enc), hidden_size, 1, num_classes, **_frame_norm(encoder, pretrained, norm))


@register_model
def student_tiny(*, num_classes: int, hidden_size: int = 16, **norm: tuple[float, ...]) -> StreamingClipModel:
    """A very small causal model for tests and smoke runs."""
    return StreamingClipModel(TinyEncoder(), hidden_size, 1, num_classes, **norm)


@register_model
def teacher(*, num_classes: int, hidden_size: int = 192, num_layers: int = 2, bidirectional: bool = True,
            feature_size: int = 256, widths: tuple[int, ...] = (32, 64, 128, 128), encoder: str = "wide",
            pretrained: bool = False, encoder_grid: int | None = None, encoder_blocks: int | None = None,
            **norm: tuple[float, ...]) -> BiLSTMClipModel:
    """A per-frame encoder (edgelstm's wide CNN by default, or any of models.backbones) + two-layer bidirectional
    LSTM. Non-causal: for distillation, not deployment."""
    enc = build_encoder(encoder, feature_size=feature_size, widths=tuple(widths), grid=encoder_grid,
                        blocks=encoder_blocks)
    return BiLSTMClipModel(cast(Any, enc), hidden_size, num_layers, num_classes, bidirectional,
                           **_frame_norm(encoder, pretrained, norm))


@register_model
def teacher_tiny(*, num_classes: int, hidden_size: int = 24, **norm: tuple[float, ...]) -> BiLSTMClipModel:
    """A very small bidirectional teacher for tests."""
    return BiLSTMClipModel(TinyEncoder(width=12, feature_size=24), hidden_size, 1, num_classes, True, **norm)


@register_model
def pooling(*, num_classes: int, feature_size: int = 128, widths: tuple[int, ...] = (16, 32, 64, 64),
            encoder: str = "mobile", pretrained: bool = False, encoder_grid: int | None = None,
            encoder_blocks: int | None = None, **norm: tuple[float, ...]) -> PoolingClipModel:
    """Frame-pooling baseline: the student's encoder, mean over time, no LSTM."""
    enc = build_encoder(encoder, feature_size=feature_size, widths=tuple(widths), grid=encoder_grid,
                        blocks=encoder_blocks)
    return PoolingClipModel(cast(Any, enc), num_classes, **_frame_norm(encoder, pretrained, norm))


@register_model
def motion_student(*, num_classes: int, hidden_size: int = 128, encoder: str = "efficientnet_lite0",
                   pretrained: bool = False, encoder_grid: int | None = None, encoder_blocks: int | None = 6,
                   map_channels: int = 16, **norm: tuple[float, ...]) -> MotionStudent:
    """Causal student whose step sees its frame's map beside the previous frame's (``models.motion``): an ImageNet
    trunk's first ``encoder_blocks`` blocks (Lite0: 6, 40 channels at stride 8), reduced to ``map_channels``, a
    local correlation with the previous map, pooled to ``encoder_grid`` (4), + one LSTM. The previous map is a
    third state tensor of the step graph."""
    enc = map_encoder(encoder, blocks=encoder_blocks, channels=map_channels)
    return MotionStudent(enc, hidden_size, num_classes, grid=encoder_grid or 4,
                         **_frame_norm(encoder, pretrained, norm))


@register_model
def motion_teacher(*, num_classes: int, hidden_size: int = 192, num_layers: int = 2,
                   encoder: str = "efficientnet_lite0", pretrained: bool = False, encoder_grid: int | None = None,
                   encoder_blocks: int | None = 6, map_channels: int = 16,
                   **norm: tuple[float, ...]) -> MotionTeacher:
    """The motion student's encoder and correlation under a two-layer bidirectional LSTM: for distillation."""
    enc = map_encoder(encoder, blocks=encoder_blocks, channels=map_channels)
    return MotionTeacher(enc, hidden_size, num_layers, num_classes, grid=encoder_grid or 4,
                         **_frame_norm(encoder, pretrained, norm))

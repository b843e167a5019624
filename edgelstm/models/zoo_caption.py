"""Registered captioners (:mod:`edgelstm.models.captioner`): ``captioner`` (the streaming student),
``captioner_teacher``, and tiny variants for tests. ``vocab_size`` and ``num_classes`` (the motion classes; 1 for
data without them) come from the data."""
from __future__ import annotations

from typing import Any, cast

from edgelstm.models.backbones import build_encoder
from edgelstm.models.captioner import CaptionStudent, CaptionTeacher
from edgelstm.models.encoders import TinyEncoder
from edgelstm.models.registry import register_model


@register_model
def captioner(*, num_classes: int, vocab_size: int, hidden_size: int = 128, feature_size: int = 128,
              embed_size: int = 32, widths: tuple[int, ...] = (16, 32, 64, 64), encoder: str = "mobile",
              **norm: tuple[float, ...]) -> CaptionStudent:
    """The student's MobileNet-like encoder and causal LSTM, plus a one-layer word decoder of the same width."""
    enc = build_encoder(encoder, feature_size=feature_size, widths=tuple(widths))
    return CaptionStudent(cast(Any, enc), hidden_size, 1, num_classes, vocab_size, embed_size, **norm)


@register_model
def captioner_teacher(*, num_classes: int, vocab_size: int, hidden_size: int = 128, num_layers: int = 2,
                      feature_size: int = 192, embed_size: int = 64, decoder_size: int = 192,
                      widths: tuple[int, ...] = (24, 48, 96, 96), **norm: tuple[float, ...]) -> CaptionTeacher:
    """A plain-convolution encoder (the classify teacher's, narrower: the caption quickstart trains three models in
    its time) and a two-layer bidirectional LSTM, with a wider decoder that sees the clip's mean at every word."""
    enc = build_encoder("wide", feature_size=feature_size, widths=tuple(widths))
    return CaptionTeacher(cast(Any, enc), hidden_size, num_layers, num_classes, vocab_size, embed_size, decoder_size,
                          **norm)


@register_model
def captioner_tiny(*, num_classes: int, vocab_size: int, hidden_size: int = 16,
                   **norm: tuple[float, ...]) -> CaptionStudent:
    """A very small streaming captioner for tests."""
    return CaptionStudent(TinyEncoder(), hidden_size, 1, num_classes, vocab_size, 8, **norm)


@register_model
def captioner_teacher_tiny(*, num_classes: int, vocab_size: int, hidden_size: int = 16,
                           **norm: tuple[float, ...]) -> CaptionTeacher:
    """A very small captioning teacher for tests."""
    return CaptionTeacher(TinyEncoder(width=12, feature_size=24), hidden_size, 1, num_classes, vocab_size, 8, 24,
                          **norm)

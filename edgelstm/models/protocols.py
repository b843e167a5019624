"""What code outside a model reads from it, as protocols.

Models are passed around as ``nn.Module`` (a checkpoint holds whichever model was registered), and
torch types any attribute of a module as ``Tensor | Module``. Code that has checked which kind of
model it holds (``causal``, ``hasattr(model, "step_logits")``, ...) views it through one of these.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn


class StepModel(Protocol):
    """A causal model with logits after every step (:class:`StreamingClipModel`, :class:`LSTMVideoClassifier`)."""

    def step_logits(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, ...) -> (B, T, K)
        ...


class StreamingModel(StepModel, Protocol):
    """A streaming model as export and distillation see it: an ``lstm`` and a ``head`` over its outputs."""

    @property
    def lstm(self) -> nn.LSTM: ...

    @property
    def head(self) -> nn.Module: ...


class FrameModel(StreamingModel, Protocol):
    """A streaming model over frames: ``encode_frames`` turns uint8 (N, H, W, 3) frames into (N, F) features."""

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor: ...


class FeatureModel(Protocol):
    """A model over pre-extracted features (:class:`LSTMVideoClassifier`): the width of one step's input."""

    @property
    def input_size(self) -> int: ...


if TYPE_CHECKING:  # the models in this package are what the protocols describe
    from edgelstm.models.clip_models import StreamingClipModel
    from edgelstm.models.lstm_classifier import LSTMVideoClassifier

    def _conforms(frames: StreamingClipModel, features: LSTMVideoClassifier
                  ) -> tuple[FrameModel, StreamingModel, FeatureModel]:
        return frames, features, features

"""The torch modules that become the exported graphs, one per :class:`~edgelstm.spec.Role`.

Each wraps a trained model without copying its arithmetic: the encoder graph is the model's
``encode_frames``, the step graph its ``lstm`` and ``head`` for one time step, the clip graph its
``step_logits``. Frame graphs take OpenCV's BGR uint8 NHWC frames (``FrameNorm.bgr_input``), so
HWC->CHW, the channel swap and normalisation run in-graph.
"""
from __future__ import annotations

import copy
from typing import Any, cast

import torch
from torch import nn

from edgelstm.errors import UsageError
from edgelstm.models.lstm_classifier import LSTMVideoClassifier
from edgelstm.models.protocols import FrameModel, StepModel, StreamingModel
from edgelstm.spec import ModelKind


def deployable(model: nn.Module, name: str, size: tuple[int, int] | None = None) -> nn.Module:
    """A copy of ``model`` ready to export: eval mode, BGR input, fixed pooling for ``size``.

    Refuses models that cannot stream.
    """
    if not getattr(model, "causal", False) or not hasattr(model, "lstm") or not hasattr(model, "head"):
        raise UsageError(f"model '{name}' is not causal (a bidirectional teacher or an order-free pooling model) "
                         "and cannot run as a streaming step model",
                         expected="a causal LSTM student (student, student_tiny, lstm)",
                         fix="distill it into a causal student first: `edgelstm distill --teacher CKPT`, then export "
                             "the student")
    lstm = cast(StreamingModel, model).lstm  # it has one (checked above)
    if lstm.bidirectional or not lstm.batch_first:
        raise UsageError(f"model '{name}' has a bidirectional or time-major LSTM",
                         expected="a unidirectional, batch_first LSTM",
                         fix="distill it into a causal student first (`edgelstm distill`)")
    m = copy.deepcopy(model).eval()
    norm = getattr(m, "norm", None)
    if norm is not None:
        norm.bgr_input = True
    if size is not None and getattr(m, "encoder", None) is not None:
        _fix_pools(m, size)
    return m


def _fix_pools(model: nn.Module, size: tuple[int, int]) -> None:
    """Replace each AdaptiveAvgPool2d by the equal fixed AvgPool2d for frames of ``size``.

    The ONNX exporter cannot export adaptive pooling once the batch and time axes are dynamic
    (the spatial size is lost in the flatten); for a size the grid divides, a fixed pool is the
    same arithmetic (the parity check proves it).
    """
    seen: dict[str, tuple[int, int]] = {}
    pools = {n: mod for n, mod in model.named_modules() if isinstance(mod, nn.AdaptiveAvgPool2d)}
    hooks = [mod.register_forward_pre_hook(lambda mod, inp, n=n: seen.__setitem__(n, tuple(inp[0].shape[-2:])))
             for n, mod in pools.items()]
    try:
        with torch.no_grad():
            cast(FrameModel, model).encode_frames(torch.zeros(1, size[0], size[1], 3, dtype=torch.uint8))
    finally:
        for h in hooks:
            h.remove()
    for n, mod in pools.items():
        out = mod.output_size if isinstance(mod.output_size, tuple) else (mod.output_size, mod.output_size)
        (fh, fw), (gh, gw) = seen[n], out
        gh, gw = gh or fh, gw or fw  # a None axis keeps the input's size
        if fh % gh or fw % gw:
            raise UsageError(f"frames of {size[0]}x{size[1]} give a {fh}x{fw} feature map that the {gh}x{gw} "
                             f"pooling grid does not divide", expected="a frame size whose feature map the grid divides",
                             fix="export with --size H,W a multiple of the encoder's total stride times the grid "
                                 "(e.g. the size the model was trained at)")
        kernel = (fh // gh, fw // gw)
        parent_name, _, attr = n.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, nn.AvgPool2d(kernel, kernel))


def kind_of(model: nn.Module) -> ModelKind:
    """Frames (a frame encoder in front of the LSTM) or features (straight into the LSTM)."""
    return ModelKind.FRAMES if getattr(model, "encoder", None) is not None else ModelKind.FEATURES


class EncoderGraph(nn.Module):
    """frames uint8 (N, H, W, 3) BGR -> features (N, F). Stateless."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = cast(FrameModel, model)  # a frame model from :func:`deployable`

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(frames)


class StepGraph(nn.Module):
    """features (N, F) or frames (N, H, W, 3) when ``fused``, h and c (L, N, hidden) -> logits, h_out, c_out."""

    def __init__(self, model: nn.Module, *, fused: bool) -> None:
        super().__init__()
        self.model, self.fused = cast(StreamingModel, model), fused  # from :func:`deployable`

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.fused:  # (N, F); fused: a frame model
            feats = cast(FrameModel, self.model).encode_frames(x)
        else:  # a feature model standardises its raw input in-graph; a frame model's encoder output passes
            feats = self.model.standardize(x) if isinstance(self.model, LSTMVideoClassifier) else x
        out, (h_out, c_out) = self.model.lstm(feats.unsqueeze(1), (h, c))  # (N, 1, hidden)
        return self.model.head(out[:, 0]), h_out, c_out


class CarryStepGraph(StepGraph):
    """A motion model's step: also the previous step's features (1, N, F) in and this step's out (``prev``)."""

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor,  # type: ignore[override]
                prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = cast(FrameModel, self.model).encode_frames(x) if self.fused else x
        return cast(Any, self.model).step_features(feats, h, c, prev)


def step_graph(model: nn.Module, *, fused: bool) -> StepGraph:
    """The step graph for ``model``: h and c as state, and the previous features if the model carries them."""
    return (CarryStepGraph if getattr(model, "carries_features", False) else StepGraph)(model, fused=fused)


class ClipGraph(nn.Module):
    """clip (N, T, H, W, 3) uint8 BGR or (N, T, F) float -> clip_logits (N, T, K), one row per step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = cast(StepModel, model)  # a causal model from :func:`deployable`

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.model.step_logits(clip)

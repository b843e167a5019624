"""Re3-style recurrent regression trackers: a CNN over a crop pair, an LSTM, a head regressing the box.

Each step sees the previous and the current frame, both cropped around the previous box (with context) and
put side by side, uint8 (N, S, 2S, 3) (:mod:`edgelstm.runtime.track_geometry`). The model normalises the pair
in-graph, stacks its halves as six channels (early fusion: the first convolution already sees what moved) and
encodes them; the LSTM carries the target's appearance and motion from step to step; the head regresses the
four box outputs (:data:`edgelstm.trackspec.OUTPUTS`). Being a :class:`StreamingClipModel`, it exports, streams,
quantizes and profiles through the same code as a classifier: only what its tensors mean differs.
"""
from __future__ import annotations

import torch
from torch import nn

from edgelstm.models.clip_models import IMAGENET_MEAN, IMAGENET_STD, StreamingClipModel
from edgelstm.models.encoders import Encoder, conv_bn
from edgelstm.models.registry import register_model
from edgelstm.trackspec import OUTPUTS

PAIR_CHANNELS = 6  # the previous and the current crop, three channels each


class PairCNN(Encoder):
    """(N, 6, S, S) -> (N, F): a strided stem over both crops at once, then depthwise-separable blocks
    (``depthwise``) or plain 3x3 convolutions, pooled to a ``grid`` x ``grid`` map (where the target is)."""

    def __init__(self, widths: tuple[int, ...] = (24, 32, 64, 64), strides: tuple[int, ...] = (2, 2, 2, 1),
                 feature_size: int = 128, grid: int = 4, depthwise: bool = True) -> None:
        layers: list[nn.Module] = [conv_bn(PAIR_CHANNELS, widths[0], stride=strides[0])]
        for cin, cout, s in zip(widths[:-1], widths[1:], strides[1:]):
            if depthwise:
                layers += [conv_bn(cin, cin, stride=s, groups=cin), conv_bn(cin, cout, k=1)]
            else:
                layers.append(conv_bn(cin, cout, stride=s))
        super().__init__(nn.Sequential(*layers), widths[-1], feature_size, grid)


class PairTracker(StreamingClipModel):
    """A causal tracker: crop pairs (B, T, S, 2S, 3) uint8 -> box outputs (B, T, 4) at every step."""

    def __init__(self, encoder: Encoder, hidden_size: int, num_layers: int, crop_size: int,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__(encoder, hidden_size, num_layers, len(OUTPUTS), mean, std)
        self.crop_size = crop_size

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, S, 2S, 3) uint8 crop pairs -> (N, F)."""
        x = self.norm(frames)  # (N, 3, S, 2S)
        s = self.crop_size
        # (N, 6, S, S); contiguous: the permuted NHWC input would make every convolution run channels-last, 3x slower
        # on CPU here (a no-op in the exported graph)
        return self.encoder(torch.cat([x[..., :s], x[..., s:]], 1).contiguous())  # type: ignore[no-any-return]

    def encode(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, T, S, 2S, 3) uint8 -> (B, T, F)."""
        b, t = clip.shape[:2]
        return self.encode_frames(clip.flatten(0, 1)).view(b, t, -1)


@register_model
def tracker(*, crop_size: int = 32, hidden_size: int = 128, feature_size: int = 128,
            widths: tuple[int, ...] = (24, 32, 64, 64), **norm: tuple[float, ...]) -> PairTracker:
    """The student: MobileNet-like pair encoder + one LSTM layer."""
    enc = PairCNN(tuple(widths), feature_size=feature_size, grid=_grid(crop_size))
    return PairTracker(enc, hidden_size, 1, crop_size, **norm)


@register_model
def tracker_teacher(*, crop_size: int = 32, hidden_size: int = 256, num_layers: int = 2, feature_size: int = 256,
                    widths: tuple[int, ...] = (32, 64, 128, 128), **norm: tuple[float, ...]) -> PairTracker:
    """The teacher: the same form, twice as wide, with a two-layer LSTM of 256 (causal, so it tracks too). Wide
    plain convolutions (a 13x larger teacher) learnt more slowly than the student in the quickstart's budget."""
    enc = PairCNN(tuple(widths), feature_size=feature_size, grid=_grid(crop_size))
    return PairTracker(enc, hidden_size, num_layers, crop_size, **norm)


@register_model
def tracker_tiny(*, crop_size: int = 16, hidden_size: int = 12, **norm: tuple[float, ...]) -> PairTracker:
    """A very small tracker for tests and smoke runs."""
    enc = PairCNN((8, 12), strides=(2, 2), feature_size=16, grid=2)
    return PairTracker(enc, hidden_size, 1, crop_size, **norm)


def _grid(crop_size: int) -> int:
    """The pooled map's side: the encoder's 4x4 map at 32x32 crops, fewer cells for smaller crops."""
    return 4 if crop_size >= 32 else 2


TRACKERS = frozenset({"tracker", "tracker_teacher", "tracker_tiny"})

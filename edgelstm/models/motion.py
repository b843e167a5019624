"""Motion-aware models: each step sees its frame's feature map beside the previous frame's.

A per-frame encoder followed by an LSTM must find motion by comparing one step's pooled features with the
next, a product of two steps' features it has to learn per content and position; on the footage task it learns
the training videos instead (37% on unseen ones). These models compute the comparison directly, FlowNet-style:

    z_t = L2-normalise(conv1x1(map_t))                    per cell, over channels (the encoder's output)
    corr_t[d] = sum_c z_t(x) * z_{t-1}(x + d)            for every displacement d within ``radius`` cells
    lstm input = Linear(LayerNorm(pool(ReLU(conv3x3(corr_t)))))

The correlation is content-agnostic (a cosine similarity per displacement), so what it learns from five videos
transfers to others. Streaming, the previous map is state: the step graph takes ``prev`` (1, N, F) beside h and c
and returns the current map as ``prev_out`` (:data:`edgelstm.spec.P_IN`); from zero at a reset, as in training.
"""
from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from edgelstm.errors import UsageError
from edgelstm.models.backbones import ENCODERS, encoder_spec, grid_pool, truncate
from edgelstm.models.clip_models import (IMAGENET_MEAN, IMAGENET_STD, BiLSTMClipModel, FrameClipModel,
                                         StreamingClipModel)


class MapEncoder(nn.Module):
    """A trunk prefix whose reduced, per-cell normalised map is the feature: (N, 3, H, W) -> (N, channels*h*w).

    Splits like every encoder (``body``, ``pool_maps``, ``project``), so a frozen body caches. The map's side
    depends on the frame size; it is recorded at each projection and kept in the checkpoint (buffer ``hw``)."""

    hw: torch.Tensor  # buffer (2,) int64: the map's side at the last projection, kept in the checkpoint

    def __init__(self, body: nn.Module, in_channels: int, channels: int, name: str) -> None:
        super().__init__()
        self.body, self.name, self.channels = body, name, channels
        self.reduce = nn.Conv2d(in_channels, channels, 1)
        self.register_buffer("hw", torch.zeros(2, dtype=torch.int64))

    @property
    def map_hw(self) -> tuple[int, int]:
        return int(self.hw[0]), int(self.hw[1])

    @property
    def feature_size(self) -> int:
        return self.channels * self.map_hw[0] * self.map_hw[1]

    def pool_maps(self, maps: torch.Tensor) -> torch.Tensor:  # nothing pooled: where things are is the point
        return maps

    def project(self, maps: torch.Tensor) -> torch.Tensor:  # (N, C, h, w) -> (N, channels * h * w)
        if not torch.jit.is_tracing():  # an export traces at the size it already recorded
            self.hw.copy_(torch.tensor(maps.shape[-2:]))
        return F.normalize(self.reduce(maps), dim=1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.body(x))


def correlation(a: torch.Tensor, b: torch.Tensor, radius: int) -> torch.Tensor:
    """(N, C, h, w) x 2 -> (N, (2r+1)^2, h, w): sum over channels of a(x) * b(x + d), b zero outside its map."""
    h, w = a.shape[-2:]
    bp = F.pad(b, (radius, radius, radius, radius))
    side = 2 * radius + 1
    return torch.stack([(a * bp[:, :, dy:dy + h, dx:dx + w]).sum(1) for dy in range(side) for dx in range(side)], 1)


class MotionBlock(nn.Module):
    """(current, previous) flattened maps (N, F) -> the LSTM's input (N, out)."""

    def __init__(self, encoder: MapEncoder, *, radius: int = 2, width: int = 32, grid: int = 4,
                 out: int = 128) -> None:
        super().__init__()
        self.encoder = [encoder]  # a plain list: the encoder stays registered once, in the model
        self.radius, self.grid = radius, grid
        self.conv = nn.Sequential(nn.Conv2d((2 * radius + 1) ** 2, width, 3, padding=1), nn.ReLU())
        self.inp = nn.Sequential(nn.LayerNorm(width * grid * grid), nn.Linear(width * grid * grid, out), nn.ReLU(),
                                 nn.Dropout(0.2))
        self.out_size = out

    def forward(self, cur: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        enc = self.encoder[0]
        shape = (cur.shape[0], enc.channels, *enc.map_hw)
        z = self.conv(correlation(cur.reshape(shape), prev.reshape(shape), self.radius))
        return self.inp(grid_pool(z, self.grid).flatten(1))


class _Motion:
    """What both motion models add: the LSTM's inputs for a clip of flattened maps, the first step against zeros."""

    motion: MotionBlock

    def lstm_inputs(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T, out)
        b, t = feats.shape[:2]
        prev = torch.cat([torch.zeros_like(feats[:, :1]), feats[:, :-1]], 1)
        return self.motion(feats.flatten(0, 1), prev.flatten(0, 1)).view(b, t, -1)


class MotionStudent(_Motion, StreamingClipModel):
    """The causal student with a motion block: its step carries the previous map as a third state tensor."""

    carries_features = True

    def __init__(self, encoder: MapEncoder, hidden_size: int, num_classes: int, *, grid: int = 4,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        FrameClipModel.__init__(self, cast(Any, encoder), mean, std)  # a map encoder splits like any Encoder
        self.hidden_size, self.num_layers = hidden_size, 1
        self.motion = MotionBlock(encoder, grid=grid)
        self.lstm = nn.LSTM(self.motion.out_size, hidden_size, 1, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def step_logits_features(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T, K)
        out, _ = self.lstm(self.lstm_inputs(feats))
        return self.head(out)

    def step_features(self, feats: torch.Tensor, h: torch.Tensor, c: torch.Tensor, prev: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step from features (N, F), h and c (1, N, hidden) and prev (1, N, F): logits, h, c, prev_out."""
        out, (h_out, c_out) = self.lstm(self.motion(feats, prev[0]).unsqueeze(1), (h, c))
        return self.head(out[:, 0]), h_out, c_out, feats.unsqueeze(0)

    def step(self, frame: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """One frame (B, H, W, 3) uint8 and (h, c, prev) -> (B, K) logits and the new (h, c, prev)."""
        feats = self.encode_frames(frame)
        h, c, prev = state if state is not None else self.init_state(feats.shape[0])
        logits, h, c, prev = self.step_features(feats, h, c, prev)
        return logits, (h, c, prev)

    def init_state(self, batch: int) -> Any:
        z = torch.zeros(1, batch, self.hidden_size)
        return z, z.clone(), torch.zeros(1, batch, int(self.encoder.feature_size))


class MotionTeacher(_Motion, BiLSTMClipModel):
    """The teacher over the same motion block: a two-layer bidirectional LSTM over its outputs. Never streams."""

    def __init__(self, encoder: MapEncoder, hidden_size: int, num_layers: int, num_classes: int, *, grid: int = 4,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        FrameClipModel.__init__(self, cast(Any, encoder), mean, std)  # a map encoder splits like any Encoder
        self.hidden_size, self.num_layers, self.bidirectional, self.causal = hidden_size, num_layers, True, False
        self.motion = MotionBlock(encoder, grid=grid, out=2 * 128)
        self.lstm = nn.LSTM(self.motion.out_size, hidden_size, num_layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def forward_features(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return BiLSTMClipModel.forward_features(self, self.lstm_inputs(feats), lengths)


def map_encoder(name: str, *, blocks: int | None, channels: int = 16) -> MapEncoder:
    """An ImageNet trunk (``models.backbones``), its first ``blocks`` blocks, as a :class:`MapEncoder`."""
    build = encoder_spec(name).body
    if build is None:
        raise UsageError(f"a motion model on encoder '{name}'", expected="an ImageNet trunk: " + ", ".join(
            n for n, s in ENCODERS.items() if s.body), fix="pass --encoder efficientnet_lite0 (the default)")
    body, in_channels = build()
    if blocks is not None:
        body, in_channels = truncate(body, blocks, name)
    return MapEncoder(body, in_channels, channels, name)

"""Per-frame CNN encoders: (N, 3, H, W) normalised float -> (N, F) features.

Each keeps a coarse spatial grid (adaptive pooling to ``grid`` x ``grid``) before its
projection, so absolute position survives: motion direction is a change of position over
time, which global average pooling would erase.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """The base of edgelstm's own encoders: ``body`` (its blocks), pooling to a ``grid`` x ``grid`` map, projection
    to ``feature_size``. Every encoder splits the same way (``body``, ``pool_maps``, ``project``), so a frozen
    prefix can be run once and cached (:mod:`edgelstm.train.feature_cache`)."""

    feature_size: int

    def __init__(self, body: nn.Module, channels: int, feature_size: int, grid: int) -> None:
        super().__init__()
        self.body = body
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.proj = nn.Sequential(nn.Flatten(), nn.Linear(channels * grid * grid, feature_size), nn.ReLU(inplace=True))
        self.feature_size = feature_size

    def pool_maps(self, maps: torch.Tensor) -> torch.Tensor:  # (N, C, h, w) -> (N, C, grid, grid)
        return self.pool(maps)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:  # (N, C, grid, grid) -> (N, F)
        return self.proj(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, F)
        return self.project(self.pool_maps(self.body(x)))


class TinyEncoder(Encoder):
    """Two strided convolutions: for tests and smoke runs."""

    def __init__(self, width: int = 8, feature_size: int = 16, grid: int = 2) -> None:
        body = nn.Sequential(conv_bn(3, width, stride=2), conv_bn(width, 2 * width, stride=2))
        super().__init__(body, 2 * width, feature_size, grid)


class MobileEncoder(Encoder):
    """MobileNet-like: a strided stem, then depthwise-separable blocks. For students."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 64), strides: tuple[int, ...] = (2, 2, 2, 1),
                 feature_size: int = 128, grid: int = 4) -> None:
        layers: list[nn.Module] = [conv_bn(3, widths[0], stride=strides[0])]
        for cin, cout, s in zip(widths[:-1], widths[1:], strides[1:]):
            layers += [conv_bn(cin, cin, stride=s, groups=cin), conv_bn(cin, cout, k=1)]
        super().__init__(nn.Sequential(*layers), widths[-1], feature_size, grid)


class WideEncoder(Encoder):
    """Plain 3x3 convolutions, wider: for teachers."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 128), strides: tuple[int, ...] = (2, 2, 2, 1),
                 feature_size: int = 256, grid: int = 4) -> None:
        layers: list[nn.Module] = []
        cin = 3
        for cout, s in zip(widths, strides):
            layers.append(conv_bn(cin, cout, stride=s))
            cin = cout
        super().__init__(nn.Sequential(*layers), widths[-1], feature_size, grid)

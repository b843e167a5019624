"""torchvision's video classifiers as trainable models: ``edgelstm train --model torchvision:NAME``.

:data:`VIDEO_NETS` holds what torchvision 0.28 documents for each (models/video/*.py: the weights enum, the
classifier's key, ``crop_size``, ``clip_len``, ``mean``, ``std``); ``distill --teacher torchvision:NAME`` reads the
same table (edgelstm.train.teacher_loaders). :class:`VideoNet` takes edgelstm's uint8 (B, T, H, W, 3) RGB clips,
normalises them as those weights expect, in the model (so a checkpoint is self-contained), and feeds the network
(B, 3, T, H, W). Trained with ``--init-weights FILE`` (Kinetics-400 weights, say) it is a fine-tuned teacher for
``edgelstm distill``; it sees whole clips and never streams, so it is not exported.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgelstm.errors import UsageError, closest
from edgelstm.models.tv import import_torchvision

PREFIX = "torchvision:"
_KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class VideoNetSpec:
    weights: str                                       # the weights enum torchvision documents for the model
    head: str                                          # the classifier's weight key: its first dim is the class count
    size: tuple[int, int]                              # crop_size of those weights
    clip_len: int                                      # frames per clip they were evaluated with
    norm: tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std), 0..1 scale, RGB
    fixed_input: bool = False                          # positional embeddings: only size x clip_len fits


# resnet.py: crop 112, clip_len=16, Kinetics mean/std; s3d.py: crop 224, clip_len 128 (16 keeps it affordable);
# mvit.py: crop 224, mean 0.45 std 0.225, clip_len 16 fixed by the positional embeddings; swin_transformer.py:
# crop 224, ImageNet mean/std, clip_len 32. tests/train/test_teachers.py checks this against the installed enums.
VIDEO_NETS: dict[str, VideoNetSpec] = {
    "r3d_18": VideoNetSpec("R3D_18_Weights.KINETICS400_V1", "fc.weight", (112, 112), 16, _KINETICS),
    "mc3_18": VideoNetSpec("MC3_18_Weights.KINETICS400_V1", "fc.weight", (112, 112), 16, _KINETICS),
    "r2plus1d_18": VideoNetSpec("R2Plus1D_18_Weights.KINETICS400_V1", "fc.weight", (112, 112), 16, _KINETICS),
    "s3d": VideoNetSpec("S3D_Weights.KINETICS400_V1", "classifier.1.weight", (224, 224), 16, _KINETICS),
    "mvit_v1_b": VideoNetSpec("MViT_V1_B_Weights.KINETICS400_V1", "head.1.weight", (224, 224), 16,
                              ((0.45,) * 3, (0.225,) * 3), fixed_input=True),
    "mvit_v2_s": VideoNetSpec("MViT_V2_S_Weights.KINETICS400_V1", "head.1.weight", (224, 224), 16,
                              ((0.45,) * 3, (0.225,) * 3), fixed_input=True),
    "swin3d_t": VideoNetSpec("Swin3D_T_Weights.KINETICS400_V1", "head.weight", (224, 224), 32, _IMAGENET),
    "swin3d_s": VideoNetSpec("Swin3D_S_Weights.KINETICS400_V1", "head.weight", (224, 224), 32, _IMAGENET),
}


def video_net_spec(name: str) -> VideoNetSpec:
    """The table entry for ``name`` (with or without the ``torchvision:`` prefix)."""
    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if arch not in VIDEO_NETS:
        raise UsageError(f"unknown torchvision video model '{arch}'{closest(arch, VIDEO_NETS)}",
                         expected=PREFIX + f", {PREFIX}".join(VIDEO_NETS), fix="pass one of these names")
    return VIDEO_NETS[arch]


class VideoNet(nn.Module):
    """A torchvision video classifier over edgelstm's uint8 clips: (B, T, H, W, 3) RGB -> (B, num_classes)."""

    causal = False
    scale: torch.Tensor  # buffers (1, 3, 1, 1, 1)
    shift: torch.Tensor

    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        spec = video_net_spec(arch)
        tv = import_torchvision(f"--model {PREFIX}{arch}",
                                fix="pip install 'edgelstm[train]' (it pins torchvision==0.28.0 with torch 2.13.0)")
        self.arch, self.spec = arch, spec
        self.net = getattr(tv.models.video, arch)(weights=None, num_classes=num_classes)
        mean, std = (torch.tensor(v).view(1, 3, 1, 1, 1) for v in spec.norm)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", mean / std)
        self.head_prefix = spec.head.rsplit(".", 1)[0] + "."
        self.head_name = "net." + self.head_prefix[:-1]  # the classifier, for teachers' features
        head = self.net.get_submodule(self.head_prefix[:-1])  # a Linear, or s3d's 1x1x1 Conv3d
        self.feature_size = int(getattr(head, "in_features", 0) or getattr(head, "in_channels"))

    def forward(self, clip: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Whole clips; ``lengths`` is accepted for the common signature (padding frames are seen as they are)."""
        x = clip.permute(0, 4, 1, 2, 3).float()  # (B, 3, T, H, W)
        out: torch.Tensor = self.net(x * self.scale - self.shift)
        return out


def video_net(name: str, *, num_classes: int) -> VideoNet:
    """``create_model("torchvision:NAME", num_classes=K)``: frames are normalised as torchvision's weights for NAME
    expect, whatever the data's statistics."""
    return VideoNet(name[len(PREFIX):] if name.startswith(PREFIX) else name, num_classes)

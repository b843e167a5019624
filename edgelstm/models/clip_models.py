"""Clip models over raw frames: encoder + temporal model + head.

All take uint8 clips (B, T, H, W, 3) in RGB order; :class:`FrameNorm` turns them into
normalised float (B*T, 3, H, W) inside the model, so the same arithmetic is exported into
the ONNX graph and the device feeds uint8 frames with no float copy on the host.
"""
from __future__ import annotations

import torch
from torch import nn

from edgelstm.models.encoders import Encoder
from edgelstm.models.lstm_classifier import State, last_valid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrameNorm(nn.Module):
    """uint8 (N, H, W, 3) -> float (N, 3, H, W), (x/255 - mean)/std, in the model's RGB order.

    ``bgr_input=True`` (set at export) takes OpenCV's BGR frames and reorders the channels in-graph.
    """

    scale: torch.Tensor  # buffers, (1, 3, 1, 1)
    shift: torch.Tensor

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("scale", (1.0 / (255.0 * torch.tensor(std))).view(1, 3, 1, 1))
        self.register_buffer("shift", (torch.tensor(mean) / torch.tensor(std)).view(1, 3, 1, 1))
        self.mean, self.std = tuple(mean), tuple(std)
        self.bgr_input = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float()  # (N, 3, H, W)
        if self.bgr_input:
            x = x.flip(1)
        return x * self.scale - self.shift


class FrameClipModel(nn.Module):
    causal = False

    def __init__(self, encoder: Encoder, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.norm = FrameNorm(mean, std)
        self.encoder = encoder

    def encode(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 -> (B, T, F)."""
        b, t = clip.shape[:2]
        feats = self.encoder(self.norm(clip.flatten(0, 1)))
        return feats.view(b, t, -1)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, F)."""
        return self.encoder(self.norm(frames))

    def forward(self, clip: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 clips -> (B, K) logits (of each clip's last valid frame, with ``lengths``)."""
        return self.forward_features(self.encode(clip), lengths)

    def forward_features(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """What the model does after its encoder: (B, T, F) per-frame features -> (B, K)."""
        raise NotImplementedError


class StreamingClipModel(FrameClipModel):
    """The student: encoder + unidirectional LSTM + head, causal, with a per-frame ``step``."""

    causal = True

    def __init__(self, encoder: Encoder, hidden_size: int, num_layers: int, num_classes: int,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__(encoder, mean, std)
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.lstm = nn.LSTM(encoder.feature_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def step_logits(self, clip: torch.Tensor) -> torch.Tensor:  # (B, T, H, W, 3) -> (B, T, K)
        return self.step_logits_features(self.encode(clip))

    def step_logits_features(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T, K)
        out, _ = self.lstm(feats)
        return self.head(out)

    def forward_features(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return last_valid(self.step_logits_features(feats), lengths)

    def step(self, frame: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One frame (B, H, W, 3) uint8 and (h, c) -> (B, K) logits and the new (h, c)."""
        out, state = self.lstm(self.encode_frames(frame).unsqueeze(1), state)
        return self.head(out[:, 0]), state

    def init_state(self, batch: int) -> State:
        z = torch.zeros(self.num_layers, batch, self.hidden_size)
        return z, z.clone()


class BiLSTMClipModel(FrameClipModel):
    """The teacher: wider encoder, stacked (optionally bidirectional) LSTM. Sees the whole clip; never streams."""

    def __init__(self, encoder: Encoder, hidden_size: int, num_layers: int, num_classes: int,
                 bidirectional: bool = True,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__(encoder, mean, std)
        self.hidden_size, self.num_layers, self.bidirectional = hidden_size, num_layers, bidirectional
        self.lstm = nn.LSTM(encoder.feature_size, hidden_size, num_layers, batch_first=True,
                            bidirectional=bidirectional)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        self.causal = not bidirectional

    def forward_features(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is not None and self.bidirectional and bool((lengths < feats.shape[1]).any()):
            # the backward direction must start at each clip's last valid frame, not in the padding
            packed = nn.utils.rnn.pack_padded_sequence(feats, lengths.cpu().clamp(min=1), batch_first=True,
                                                       enforce_sorted=False)
            out, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                                      total_length=feats.shape[1])
        else:
            out, _ = self.lstm(feats)  # (B, T, D*hidden)
        if not self.bidirectional:
            return self.head(last_valid(out, lengths))
        fwd = last_valid(out[..., : self.hidden_size], lengths)  # forward direction at the last valid step
        bwd = out[:, 0, self.hidden_size:]                       # backward direction at the first step
        return self.head(torch.cat([fwd, bwd], dim=-1))


class PoolingClipModel(FrameClipModel):
    """The order-free baseline: the same encoder, features averaged over time, no LSTM."""

    def __init__(self, encoder: Encoder, num_classes: int,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__(encoder, mean, std)
        self.head = nn.Linear(encoder.feature_size, num_classes)

    def forward_features(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            return self.head(feats.mean(1))
        mask = (torch.arange(feats.shape[1]).view(1, -1) < lengths.view(-1, 1)).unsqueeze(-1).float()
        return self.head((feats * mask).sum(1) / mask.sum(1).clamp(min=1))

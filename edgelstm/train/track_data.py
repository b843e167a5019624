"""What a tracker trains on: windows of sequences cut into crop pairs around the boxes it would have had.

Each epoch takes a window of ``clip_len`` frames from every training sequence (a random start). Its first box is
given (as a user gives it); at every later frame the crop pair is cut around an *estimate* of the previous box,
and the target is the true box relative to that window (:func:`edgelstm.runtime.track_geometry.encode`). The
estimate is the true box jittered (centre and size), or, from the second epoch on and for a growing share of
the windows, the box the model itself tracked over the window (Re3's unrolled training: a tracker must learn
to recover from its own errors, which jitter only imitates). The crops come from the same functions the
device uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgelstm.data.tracking import TrackSequence
from edgelstm.runtime.track_geometry import clamp_box, crop, crop_pair, encode
from edgelstm.trackspec import Tracking


@dataclass(frozen=True)
class Windows:
    frames: list[np.ndarray]  # each (L, H, W, 3) uint8 RGB (frame sizes may differ between windows)
    boxes: np.ndarray         # (N, L, 4) true boxes
    mask: np.ndarray          # (N, L - 1) 1 where the step is a real frame (short sequences are padded)


@dataclass(frozen=True)
class PairBatch:
    x: np.ndarray   # (N, L - 1, S, 2S, 3) uint8 crop pairs, RGB
    y: np.ndarray   # (N, L - 1, 4) float32 targets
    mask: np.ndarray  # (N, L - 1) float32


def sample_windows(seqs: list[TrackSequence], length: int, rng: np.random.Generator) -> Windows:
    """One window of ``length`` frames per sequence at a random start; a shorter sequence is padded with its
    last frame (masked out of the loss)."""
    frames, boxes, mask = [], [], []
    for seq in seqs:
        n = len(seq)
        start = int(rng.integers(0, n - length + 1)) if n > length else 0
        idx = np.minimum(np.arange(start, start + length), n - 1)
        frames.append(seq.frames[idx])
        boxes.append(seq.boxes[idx])
        mask.append((np.arange(start + 1, start + length) < n).astype(np.float32))
    return Windows(frames, np.stack(boxes).astype(np.float64), np.stack(mask))


def jitter(boxes: np.ndarray, rng: np.random.Generator, frame_hw: list[tuple[int, int]], *, shift: float = 0.15,
           scale: float = 0.08, t: Tracking) -> np.ndarray:
    """Estimates of ``boxes`` (N, L, 4): centres moved by N(0, shift x side), sides by exp(N(0, scale)); the
    first box of each window stays exact (it is the one given)."""
    b = boxes.copy()
    n, length = b.shape[:2]
    w, h = b[..., 2], b[..., 3]
    dx, dy = rng.normal(0, shift, (n, length)) * w, rng.normal(0, shift, (n, length)) * h
    sw, sh = np.exp(rng.normal(0, scale, (n, length))), np.exp(rng.normal(0, scale, (n, length)))
    cx, cy = b[..., 0] + w / 2 + dx, b[..., 1] + h / 2 + dy
    out = np.stack([cx - w * sw / 2, cy - h * sh / 2, w * sw, h * sh], -1)
    out[:, 0] = boxes[:, 0]
    for i, hw in enumerate(frame_hw):
        out[i] = clamp_box(out[i], hw, t.min_side)
    return out


def crop_pairs(win: Windows, estimates: np.ndarray, t: Tracking) -> PairBatch:
    """Crop pairs around ``estimates`` (N, L, 4) of the previous box, and the targets that reach the true box."""
    n, length = win.boxes.shape[:2]
    s = t.crop_size
    x = np.empty((n, length - 1, s, 2 * s, 3), np.uint8)
    for i, frames in enumerate(win.frames):
        for k in range(1, length):
            prev = crop(frames[k - 1], estimates[i, k - 1], t)
            crop_pair(prev, frames[k], estimates[i, k - 1], t, x[i, k - 1])
    y = encode(estimates[:, :-1], win.boxes[:, 1:], t) / t.output_scale
    # A step whose target left the window (its centre outside the crop: the tracker lost it) teaches nothing the
    # crop can show: masked out. The rest is kept within what decoding can reach (the crop, max_scale_change).
    seen = (np.abs(y[..., 0]) < 0.5) & (np.abs(y[..., 1]) < 0.5)
    lim = math.log(t.max_scale_change)
    y = np.concatenate([np.clip(y[..., :2], -0.5, 0.5), np.clip(y[..., 2:], -lim, lim)], -1) * t.output_scale
    return PairBatch(x, y.astype(np.float32), win.mask * seen)


def frame_stats(seqs: list[TrackSequence], *, max_frames: int = 2048
                ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per RGB channel mean and std (0..1 scale) of a strided subset of the training frames."""
    frames = np.concatenate([s.frames[:: max(1, len(s) // 8)] for s in seqs])[:max_frames]
    frames = frames.astype(np.float32) / 255
    mean, std = frames.mean(axis=(0, 1, 2)), frames.std(axis=(0, 1, 2)).clip(min=1e-3)
    return (tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std))  # type: ignore[return-value]

"""Truncated backpropagation through time over long videos: windows in order, the LSTM state carried across.

A streaming model on a camera never starts from a zero state in the middle of the day, so a detection model
learns from windows of ``W`` frames taken *in order* from long videos. A batch is ``B`` lanes; each lane
walks through whole videos, one window per step, and hands its LSTM state from the end of window ``k`` to the
start of window ``k + 1`` (detached: gradients stop at the window's start). When a lane moves on to another
video its state is zeroed (``Window.reset``). A non-causal teacher sees each window on its own.

:func:`video_logits` gives per-frame logits of a whole video: a causal model window after window with its
state carried (exactly the full-sequence output), a bidirectional one on overlapping windows, each frame
taken from a window where it has context on both sides.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from edgelstm.data.untrimmed import Video
from edgelstm.errors import UsageError
from edgelstm.models.lstm_classifier import State

Chunk = tuple[int, int, bool]  # (video, first frame, the lane's first window of this video)


@dataclass
class Window:
    x: torch.Tensor              # (B, W, H, W, 3) uint8 frames
    y: torch.Tensor              # (B, W) int64 per-frame labels
    reset: torch.Tensor          # (B,) bool: the lane starts a video here, its state starts from zero
    teacher: torch.Tensor | None  # (B, W, K) the teacher's per-frame logits (distillation)
    chunks: list[Chunk]          # where each lane's window comes from


class Lanes:
    """``batch`` lanes walking the videos window by window; an epoch is ``steps()`` batches."""

    def __init__(self, videos: Sequence[Video], *, batch: int, window: int, seed: int,
                 targets: Sequence[np.ndarray] | None = None) -> None:
        usable = [len(v) >= window for v in videos]
        if not any(usable):
            longest = max((len(v) for v in videos), default=0)
            raise UsageError(f"--clip-len {window} (the training window) with videos of at most {longest} frames",
                             expected="a window no longer than the videos", fix=f"pass --clip-len {max(1, longest)} "
                             "or less")
        self.videos, self.batch, self.window, self.seed = videos, batch, window, seed
        self.targets = targets
        self._usable = [i for i, ok in enumerate(usable) if ok]

    def steps(self) -> int:
        windows = sum(len(self.videos[i]) // self.window for i in self._usable)
        return max(1, windows // self.batch)

    def lane(self, lane: int, epoch: int) -> Iterator[Chunk]:
        """One lane's windows, in order through the videos of a shuffled cycle (each lane starts elsewhere in
        it), each video from a random offset below one window."""
        rng = np.random.default_rng([self.seed, epoch, lane])
        order = [self._usable[i] for i in np.random.default_rng([self.seed, epoch]).permutation(len(self._usable))]
        k = (lane * len(order)) // self.batch
        while True:
            v = order[k % len(order)]
            k += 1
            n = len(self.videos[v])
            start = int(rng.integers(0, min(self.window, n - self.window + 1)))
            for j, s in enumerate(range(start, n - self.window + 1, self.window)):
                yield v, s, j == 0

    def epoch(self, epoch: int, device: torch.device | str = "cpu") -> Iterator[Window]:
        lanes = [self.lane(b, epoch) for b in range(self.batch)]
        w = self.window
        for _ in range(self.steps()):
            chunks = [next(it) for it in lanes]
            x = np.stack([self.videos[v].frames[s:s + w] for v, s, _ in chunks])
            y = np.stack([self.videos[v].labels[s:s + w] for v, s, _ in chunks])
            t = None if self.targets is None else torch.from_numpy(
                np.stack([self.targets[v][s:s + w] for v, s, _ in chunks])).to(device)
            yield Window(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device),
                         torch.tensor([first for _, _, first in chunks], device=device), t, chunks)


# --- models over windows ---------------------------------------------------------------------------------
def is_causal(model: nn.Module) -> bool:
    return bool(getattr(model, "causal", False)) and hasattr(model, "step_logits")


def carry(state: State | None, reset: torch.Tensor) -> State | None:
    """The state a window starts from: the last window's final state, detached, zero in lanes that reset."""
    if state is None:
        return None
    keep = (~reset).to(state[0].dtype).view(1, -1, 1)  # (1, B, 1)
    return state[0].detach() * keep, state[1].detach() * keep


def window_logits(model: nn.Module, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State | None]:
    """(B, W, H, W, 3) frames -> (B, W, K) per-frame logits, and the final state of a causal model (a
    bidirectional one sees the window whole and returns no state)."""
    m = cast(Any, model)
    feats = m.encode(x)  # (B, W, F)
    if is_causal(model):
        out, new = m.lstm(feats, state)
        return m.head(out), new
    out, _ = m.lstm(feats)  # (B, W, D * hidden): both directions at every frame
    return m.head(out), None


@torch.no_grad()
def video_logits(model: nn.Module, frames: np.ndarray, *, window: int,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """(T, H, W, 3) frames of one video -> (T, K) per-frame logits (see the module docstring)."""
    model.eval()
    t = len(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).unsqueeze(0)  # (1, T, H, W, 3)
    if is_causal(model):
        state, parts = None, []
        for s in range(0, t, window):
            logits, state = window_logits(model, x[:, s:s + window], state)
            parts.append(logits[0])
        return torch.cat(parts).float().cpu().numpy()
    if t <= window:
        return window_logits(model, x)[0][0].float().cpu().numpy()
    half, q = max(1, window // 2), window // 4
    starts = list(range(0, t - window + 1, half))
    if starts[-1] != t - window:
        starts.append(t - window)
    out: np.ndarray | None = None
    for i, s in enumerate(starts):
        part = window_logits(model, x[:, s:s + window])[0][0].float().cpu().numpy()
        if out is None:
            out = np.empty((t, part.shape[-1]), np.float32)
        lo = 0 if i == 0 else s + q
        hi = t if i == len(starts) - 1 else s + q + half
        out[lo:hi] = part[lo - s:hi - s]
    return out if out is not None else np.zeros((0, 0), np.float32)

"""Logits to a decision: softmax, top-k, temporal smoothing (EMA) and hysteresis.

A per-frame argmax flickers between close classes; the shown label should not. ``Smoother``
keeps an exponential moving average of the probabilities per stream and changes the shown
label only when another class beats it by a margin. Both are off by default (``ema=0``,
``hysteresis=0``), so the engine's raw decision equals the model's argmax.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelstm.errors import UsageError


@dataclass(frozen=True)
class Smoothing:
    ema: float = 0.0         # weight of the past in the moving average: 0 off, 0.9 very smooth
    hysteresis: float = 0.0  # a new label must beat the shown one by this much probability

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema < 1.0:
            raise UsageError(f"EMA weight {self.ema}", expected="0 <= ema < 1 (0 turns smoothing off)",
                             fix="pass e.g. --ema 0.5")
        if not 0.0 <= self.hysteresis < 1.0:
            raise UsageError(f"hysteresis {self.hysteresis}", expected="0 <= hysteresis < 1 (a probability margin)",
                             fix="pass e.g. --hysteresis 0.1")

    @property
    def active(self) -> bool:
        return self.ema > 0.0 or self.hysteresis > 0.0


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (..., K) logits, stable for large values."""
    z: np.ndarray = logits - logits.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def top_k(probs: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` largest of a (K,) vector, largest first."""
    k = min(k, probs.shape[-1])
    idx = np.argpartition(-probs, k - 1)[:k]
    return [int(i) for i in idx[np.argsort(-probs[idx], kind="stable")]]


class Smoother:
    """Per-stream EMA of probabilities and a hysteresis on the shown label."""

    def __init__(self, streams: int, num_classes: int, cfg: Smoothing = Smoothing()) -> None:
        self.cfg = cfg
        self._avg = np.zeros((streams, num_classes), np.float32)
        self._shown = np.full(streams, -1, np.int64)  # -1: nothing shown yet

    def reset(self, stream: int | None = None) -> None:
        sel = slice(None) if stream is None else stream
        self._avg[sel] = 0.0
        self._shown[sel] = -1

    def update_batch(self, streams: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`update` for (n,) distinct streams and their (n, K) probabilities at once."""
        if not self.cfg.active:
            return probs, probs.argmax(axis=1)
        shown = self._shown[streams]  # (n,) gathered copies
        fresh = shown < 0
        if self.cfg.ema == 0.0:
            avg = probs.copy()
        else:
            avg = self.cfg.ema * self._avg[streams] + (1.0 - self.cfg.ema) * probs
            avg[fresh] = probs[fresh]
        avg = avg.astype(np.float32, copy=False)
        best = avg.argmax(axis=1)
        r = np.arange(len(streams))
        prev = np.where(fresh, best, shown)
        switch = fresh | (best == prev) | (avg[r, best] >= avg[r, prev] + self.cfg.hysteresis)
        shown = np.where(switch, best, prev)
        self._avg[streams] = avg
        self._shown[streams] = shown
        return avg, shown

    def update(self, stream: int, probs: np.ndarray) -> tuple[np.ndarray, int]:
        """Fold one frame's (K,) probabilities in; return the smoothed ones and the label to show."""
        if not self.cfg.active:
            return probs, int(probs.argmax())
        shown = int(self._shown[stream])
        avg = self._avg[stream]
        if shown < 0 or self.cfg.ema == 0.0:
            avg[:] = probs
        else:
            avg *= self.cfg.ema
            avg += (1.0 - self.cfg.ema) * probs
        best = int(avg.argmax())
        if shown < 0 or best == shown or avg[best] >= avg[shown] + self.cfg.hysteresis:
            shown = best
        self._shown[stream] = shown
        return avg.copy(), shown

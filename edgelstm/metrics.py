"""Accuracy from per-step logits, the one implementation for checkpoints and bundles (numpy only): what
training reports per epoch (`edgelstm.train`) and what `edgelstm eval` and the profile report (`edgelstm.measure`).

Everything reads ``(N, T, K)`` logits: a causal model's output after each frame. A clip's answer is
its last valid step; "accuracy after seeing a fraction f of the clip" reads step ``ceil(f * length)``.
A PyTorch checkpoint's logits come from :func:`edgelstm.train.evaluate.fraction_logits`, a bundle's
from :func:`edgelstm.runtime.stream.stream_logits`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)


def fraction_key(f: float) -> str:
    """0.25 -> "25%": the key of ``accuracy_at_fraction`` in reports and JSON."""
    return f"{int(f * 100)}%"


def clip_lengths(logits: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    n, t = logits.shape[:2]
    return np.full(n, t, np.int64) if lengths is None else np.asarray(lengths).astype(np.int64)


def steps_seen(lengths: np.ndarray, fraction: float) -> np.ndarray:
    """Frames seen per clip after ``fraction`` of it: ``ceil(f * length)``, at least one."""
    return np.maximum(1, np.ceil(fraction * lengths - 1e-9).astype(np.int64))


def logits_at(logits: np.ndarray, steps: np.ndarray) -> np.ndarray:  # (N, T, K), (N,) frames seen -> (N, K)
    out: np.ndarray = logits[np.arange(len(logits)), steps - 1]
    return out


def accuracy_at_fractions(logits: np.ndarray, y: np.ndarray, lengths: np.ndarray | None,
                          fractions: Sequence[float] = FRACTIONS) -> dict[float, float]:
    """Accuracy after the first ``ceil(f * length)`` frames of each clip, for each fraction ``f``."""
    lens = clip_lengths(logits, lengths)
    return {f: float((logits_at(logits, steps_seen(lens, f)).argmax(-1) == y).mean()) for f in fractions}


@dataclass(frozen=True)
class AccuracyReport:
    accuracy: float                          # at each clip's last valid step
    per_class: dict[str, float | None]       # None: no clip of that class in the split
    accuracy_at_fraction: dict[str, float]   # "10%" -> accuracy after seeing 10% of each clip
    confusion: list[list[int]]               # rows: true class, columns: predicted


def accuracy_report(logits: np.ndarray, y: np.ndarray, lengths: np.ndarray | None,
                    labels: Sequence[str]) -> AccuracyReport:
    """Clip accuracy (from the last valid step), per class, confusion, and against the fraction of each clip seen."""
    pred = logits_at(logits, clip_lengths(logits, lengths)).argmax(-1)
    k = len(labels)
    conf = np.zeros((k, k), np.int64)
    ok = (y >= 0) & (y < k) & (pred < k)  # a dataset with other classes was warned about by the caller
    np.add.at(conf, (y[ok], pred[ok]), 1)
    per_class = {lab: float((pred[y == i] == i).mean()) if (y == i).any() else None for i, lab in enumerate(labels)}
    at_fraction = {fraction_key(f): v for f, v in accuracy_at_fractions(logits, y, lengths).items()}
    return AccuracyReport(accuracy=float((pred == y).mean()), per_class=per_class, accuracy_at_fraction=at_fraction,
                          confusion=conf.tolist())


@dataclass(frozen=True)
class Agreement:
    reference: str                  # what was compared with: "torch", "openvino:fp32", a callable's name
    frame_argmax_agreement: float   # share of valid frames where both argmaxes agree
    max_abs_diff: float             # over valid frames
    frames: int                     # valid frames compared

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "frame_argmax_agreement": self.frame_argmax_agreement,
                "max_abs_diff": self.max_abs_diff, "frames": self.frames}


def agreement(a: np.ndarray, b: np.ndarray, lengths: np.ndarray | None, *, reference: str = "") -> Agreement:
    """Per-frame argmax agreement and max |difference| of two (N, T, K) logits, valid steps only."""
    from edgelstm.errors import UsageError

    if a.shape != b.shape:
        raise UsageError(f"reference logits of shape {list(b.shape)}", expected=f"{list(a.shape)} like the bundle's",
                         fix="the reference must return per-step logits (N, T, K) for the same clips")
    n, t, _ = a.shape
    mask = np.ones((n, t), bool) if lengths is None else np.arange(t)[None] < lengths[:, None]
    return Agreement(reference=reference, frame_argmax_agreement=float((a.argmax(-1) == b.argmax(-1))[mask].mean()),
                     max_abs_diff=float(np.abs(a - b)[mask].max()), frames=int(mask.sum()))

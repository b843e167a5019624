"""What training needs to evaluate a torch model: clip logits, per-step logits, early and stream accuracy.

Early accuracy answers "how right is the model after seeing 10%, 25%, 50%, 100% of a clip": the
logits come from :func:`fraction_logits` (a causal model's per-step logits; a non-causal one on each
truncated clip) and the arithmetic from :mod:`edgelstm.metrics`, which ``edgelstm eval``
(:mod:`edgelstm.measure.evaluate`) uses for checkpoints and bundles alike.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from edgelstm.data import Dataset, Split
from edgelstm.metrics import FRACTIONS, accuracy_at_fractions, clip_lengths, steps_seen
from edgelstm.models.protocols import StepModel
from edgelstm.spec import DataFacts

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model: nn.Module, split: Split, *, batch_size: int = 128, device: torch.device | str = "cpu",
            steps: int | None = None) -> np.ndarray:
    """Clip logits (N, K) of ``split``; with ``steps``, of each clip truncated to its first ``steps`` frames."""
    model.eval()
    out = []
    for i in range(0, len(split), batch_size):
        x = torch.from_numpy(split.X[i:i + batch_size]).to(device)
        lengths = None if split.lengths is None else torch.from_numpy(split.lengths[i:i + batch_size]).to(device)
        if steps is not None:
            x = x[:, :steps]
            lengths = None if lengths is None else lengths.clamp(max=steps)
        out.append(model(x, lengths).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


@torch.no_grad()
def per_step_logits(model: nn.Module, X: np.ndarray, *, batch_size: int = 128,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """(N, T, H, W, 3) uint8 clips or (N, T, F) features -> (N, T, K) per-step logits of a causal model."""
    model.eval()
    causal = cast(StepModel, model)  # the caller's model is causal
    out = [causal.step_logits(torch.from_numpy(np.ascontiguousarray(X[i:i + batch_size])).to(device)).float().cpu()
           for i in range(0, len(X), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0, 0), np.float32)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(-1) == y).mean()) if len(y) else 0.0


def _causal(model: nn.Module) -> bool:
    return bool(getattr(model, "causal", False)) and hasattr(model, "step_logits")


def fraction_logits(model: nn.Module, X: np.ndarray, lengths: np.ndarray | None, *,
                    fractions: tuple[float, ...] = FRACTIONS, batch_size: int = 128,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """(N, T, K) logits after each frame, for :func:`edgelstm.metrics.accuracy_report`.

    A causal model: its per-step logits (exact at every step). Any other model: the step each clip
    ends at (run with its lengths) and the steps that ``fractions`` of it read (run on the clip
    truncated there) are filled in; other steps stay zero.
    """
    if _causal(model):
        return per_step_logits(model, X, batch_size=batch_size, device=device)
    n, t = X.shape[:2]
    full = predict(model, Split(X, np.zeros(n, np.int64), lengths), batch_size=batch_size, device=device)
    out = np.zeros((n, t, full.shape[-1]), np.float32)
    lens = clip_lengths(out, lengths)
    seen = np.stack([steps_seen(lens, f) for f in fractions], 1)  # (N, F) frames seen per clip and fraction
    for k in np.unique(seen[seen < lens[:, None]]):  # clips that have seen the same number of frames run together
        idx = np.flatnonzero((seen == k).any(1))
        sub = Split(X[idx], np.zeros(len(idx), np.int64), None)
        out[idx, k - 1] = predict(model, sub, batch_size=batch_size, device=device, steps=int(k))
    out[np.arange(n), lens - 1] = full
    return out


def early_accuracy(model: nn.Module, split: Split, *, fractions: tuple[float, ...] = FRACTIONS,
                   batch_size: int = 128, device: torch.device | str = "cpu") -> dict[str, float]:
    """Accuracy after the first ``ceil(f * length)`` frames of each clip, keyed by ``f`` ("0.25")."""
    if not len(split):
        return {f"{f:g}": 0.0 for f in fractions}
    logits = fraction_logits(model, split.X, split.lengths, fractions=fractions, batch_size=batch_size, device=device)
    return {f"{f:g}": v for f, v in accuracy_at_fractions(logits, split.y, split.lengths, fractions).items()}


def dataset_for_checkpoint(facts: DataFacts, spec: str, *, cache_dir: str | Path | None = None,
                           counts: tuple[int, int, int] | None = None) -> Dataset:
    """Load ``spec`` the way the checkpoint's model was trained (size, clip length, sampling, seed)."""
    from edgelstm.data import load_dataset

    if counts is None and spec == "synthetic" and facts.synthetic_counts:
        counts = facts.synthetic_counts  # the same clips the model was tested on
    return load_dataset(spec, **facts.load_options(), counts=counts, cache_dir=cache_dir)


def stream_accuracy(model: nn.Module, split: Split, *, batch_size: int = 64,
                    device: torch.device | str = "cpu") -> dict[str, float]:
    """A causal model on each clip followed by another one with no state reset in between.

    ``first``: accuracy at the end of the first clip; ``second``: at the end of the second, which
    shows whether the model lets go of the previous action (a live stream never resets on its own).
    """
    if not (getattr(model, "causal", False) and hasattr(model, "step_logits")) or split.lengths is not None:
        return {}
    n, t = len(split), split.X.shape[1]
    other = np.roll(np.arange(n), 1)
    model.eval()
    first, second = [], []
    with torch.no_grad():
        for i in range(0, n, batch_size):
            idx = np.arange(i, min(n, i + batch_size))
            x = torch.from_numpy(np.concatenate([split.X[idx], split.X[other[idx]]], 1)).to(device)
            steps = cast(StepModel, model).step_logits(x).float().cpu().numpy()
            first.append(steps[:, t - 1].argmax(-1))
            second.append(steps[:, 2 * t - 1].argmax(-1))
    return {"first": float((np.concatenate(first) == split.y).mean()),
            "second": float((np.concatenate(second) == split.y[other]).mean())}

"""Evaluation of a torch model or checkpoint: accuracy, per class, confusion, and early accuracy.

Early accuracy answers "how right is the model after seeing 10%, 25%, 50%, 100% of a clip":
a causal model is read off its per-step logits; a non-causal one runs on the truncated clip.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgelstm.data import Dataset, Split

log = logging.getLogger(__name__)

FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)


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
    out = [model.step_logits(torch.from_numpy(np.ascontiguousarray(X[i:i + batch_size])).to(device)).float().cpu()
           for i in range(0, len(X), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0, 0), np.float32)


def step_predictions(model: nn.Module, split: Split, *, batch_size: int = 128,
                     device: torch.device | str = "cpu") -> np.ndarray:
    """Per-step logits (N, T, K) of a causal model on a split."""
    return per_step_logits(model, split.X, batch_size=batch_size, device=device)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(-1) == y).mean()) if len(y) else 0.0


def early_accuracy(model: nn.Module, split: Split, *, fractions: tuple[float, ...] = FRACTIONS,
                   batch_size: int = 128, device: torch.device | str = "cpu") -> dict[str, float]:
    """Accuracy after the first ``ceil(f * length)`` frames of each clip, for each fraction ``f``."""
    t = split.X.shape[1]
    lengths = split.lengths if split.lengths is not None else np.full(len(split), t)
    out: dict[str, float] = {}
    steps_logits = step_predictions(model, split, batch_size=batch_size, device=device) \
        if getattr(model, "causal", False) and hasattr(model, "step_logits") else None
    for f in fractions:
        seen = np.maximum(1, np.ceil(f * lengths - 1e-9).astype(np.int64))  # frames seen per clip
        if steps_logits is not None:
            pred = steps_logits[np.arange(len(split)), seen - 1].argmax(-1)
        else:
            pred = np.zeros(len(split), np.int64)
            for k in np.unique(seen):  # clips that have seen the same number of frames run together
                idx = np.flatnonzero(seen == k)
                sub = Split(split.X[idx], split.y[idx], None)
                pred[idx] = predict(model, sub, batch_size=batch_size, device=device, steps=int(k)).argmax(-1)
        out[f"{f:g}"] = float((pred == split.y).mean()) if len(split) else 0.0
    return out


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    per_class: dict[str, float]
    confusion: list[list[int]]   # rows: true class, columns: predicted
    early: dict[str, float]      # fraction of the clip seen -> accuracy
    n: int
    split: str
    classes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "per_class": self.per_class, "early": self.early, "n": self.n,
                "split": self.split, "classes": self.classes, "confusion": self.confusion}


def evaluate(model: nn.Module, ds: Dataset, *, split: str = "test", batch_size: int = 128,
             device: torch.device | str = "cpu") -> EvalResult:
    data = ds[split]
    pred = predict(model, data, batch_size=batch_size, device=device).argmax(-1)
    k = ds.num_classes
    conf = np.zeros((k, k), np.int64)
    np.add.at(conf, (data.y, pred), 1)
    per_class = {c: (float(conf[i, i] / conf[i].sum()) if conf[i].sum() else float("nan"))
                 for i, c in enumerate(ds.classes)}
    return EvalResult(accuracy=float((pred == data.y).mean()) if len(data) else 0.0, per_class=per_class,
                      confusion=conf.tolist(), early=early_accuracy(model, data, batch_size=batch_size, device=device),
                      n=len(data), split=split, classes=list(ds.classes))


def plot_confusion(result: EvalResult, path: str | Path, *, title: str = "") -> None:
    """Write the confusion matrix as a PNG (row-normalised colours, counts in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgelstm.fsutil import atomic_path

    conf = np.array(result.confusion, dtype=np.float64)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    k = len(result.classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), result.classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), result.classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or f"{result.split}: accuracy {result.accuracy:.3f} (n={result.n})", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def evaluate_checkpoint(path: str | Path, data: str | Dataset, *, split: str = "test", out: str | Path | None = None,
                        cache_dir: str | Path | None = None, seed: int = 0) -> EvalResult:
    """Evaluate a checkpoint on ``data`` (a spec for load_dataset, loaded with the checkpoint's sampling facts).

    With ``out``, writes ``eval_<split>.json`` and ``confusion_<split>.png`` there.
    """
    from edgelstm.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    ds = data if isinstance(data, Dataset) else dataset_for_checkpoint(ckpt.data, data, cache_dir=cache_dir, seed=seed)
    _check_classes(ckpt.classes, ds, path)
    result = evaluate(ckpt.model, ds, split=split)
    if out is not None:
        from edgelstm.fsutil import write_text_atomic

        out = Path(out)
        write_text_atomic(out / f"eval_{split}.json", json.dumps(result.to_dict(), indent=2) + "\n")
        plot_confusion(result, out / f"confusion_{split}.png", title=f"{Path(path).name} on {split}: "
                       f"accuracy {result.accuracy:.3f}")
    return result


def dataset_for_checkpoint(facts: dict[str, Any], spec: str, *, cache_dir: str | Path | None = None,
                           seed: int = 0, counts: tuple[int, int, int] | None = None) -> Dataset:
    """Load ``spec`` the way the checkpoint's model was trained (size, clip length, sampling)."""
    from edgelstm.data import load_dataset

    size = tuple(facts["size"]) if facts.get("size") else (64, 64)
    if counts is None and spec == "synthetic" and facts.get("synthetic_counts"):
        counts = tuple(facts["synthetic_counts"])  # the same clips the model was tested on
    return load_dataset(spec, size=size, clip_len=int(facts.get("clip_len") or 16),
                        sampling=facts.get("sampling", "uniform"), stride=int(facts.get("stride") or 2),
                        seed=int(facts.get("data_seed", seed)), counts=counts, cache_dir=cache_dir)


def _check_classes(classes: list[str], ds: Dataset, path: str | Path) -> None:
    from edgelstm.errors import DataError

    if list(classes) != list(ds.classes):
        raise DataError(f"the dataset's classes ({', '.join(ds.classes[:5])}, ...) differ from the checkpoint's "
                        f"({', '.join(classes[:5])}, ...)", expected="the classes the model was trained on",
                        fix="evaluate on the dataset the model was trained on", path=path)


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
            steps = model.step_logits(x).float().cpu().numpy()
            first.append(steps[:, t - 1].argmax(-1))
            second.append(steps[:, 2 * t - 1].argmax(-1))
    return {"first": float((np.concatenate(first) == split.y).mean()),
            "second": float((np.concatenate(second) == split.y[other]).mean())}


def checkpoint_reference(path: str | Path, *, batch_size: int = 64):  # noqa: ANN201
    """A PyTorch checkpoint as a per-step logits function ``(X, lengths) -> (N, T, K)``, for comparing a
    bundle's artefacts with the model they came from (``edgelstm eval BUNDLE --checkpoint CKPT``)."""
    from edgelstm.errors import UsageError
    from edgelstm.models.checkpoint import load_checkpoint

    model = load_checkpoint(path).model.eval()
    if not (getattr(model, "causal", False) and hasattr(model, "step_logits")):
        raise UsageError(f"checkpoint '{path}' holds a non-causal model", path=path,
                         expected="the causal model the bundle was exported from",
                         fix="pass the student checkpoint the bundle came from")

    def torch_checkpoint(X: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        return per_step_logits(model, X, batch_size=batch_size)

    return torch_checkpoint

"""Measure a bundle through the device code path: per-step logits and accuracy on a dataset split.

:func:`stream_logits` runs clips frame by frame through :class:`~edgelstm.runtime.engine.Engine`
(the same preprocessing, state handling and graphs as ``edgelstm demo``), never the clip graph,
with clips batched as streams. :func:`evaluate_bundle` turns that into accuracy, per-class
accuracy, accuracy against the fraction of the clip seen, and per-frame argmax agreement with a
reference: another artefact, or any callable (the PyTorch checkpoint's, built by the caller, so
this module never imports torch).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.devices import DeviceProfile
from edgelstm.errors import DataError, UsageError
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.stream import stream_logits
from edgelstm.spec import Backend, Precision

log = logging.getLogger(__name__)

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
# (X, lengths) -> (N, T, K) per-step logits; e.g. a PyTorch checkpoint's step_logits, wrapped by the caller
Reference = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


def _bundle(b: str | Path | Bundle) -> Bundle:
    return b if isinstance(b, Bundle) else load_bundle(b)


def _resolve_artifact(artifact: str | tuple[str, str]) -> tuple[Backend, Precision]:
    be, _, prec = artifact.partition(":") if isinstance(artifact, str) else (artifact[0], ":", artifact[1])
    try:
        return Backend(be), Precision(prec or "fp32")
    except ValueError:
        raise UsageError(f"artefact '{artifact}'", expected="BACKEND:PRECISION such as onnxruntime:fp32, "
                         "openvino:fp32, onnxruntime:int8", fix="pass one of the bundle's artefacts") from None


def _last_valid(logits: np.ndarray, lengths: np.ndarray) -> np.ndarray:  # (N, T, K) -> (N, K)
    out: np.ndarray = logits[np.arange(len(logits)), lengths - 1]
    return out


def accuracy_report(logits: np.ndarray, y: np.ndarray, lengths: np.ndarray | None,
                    labels: tuple[str, ...]) -> dict[str, Any]:
    """Clip accuracy (from the last valid step), per class, and against the fraction of each clip seen."""
    n, t, _ = logits.shape
    lens = np.full(n, t) if lengths is None else lengths.astype(np.int64)
    pred = _last_valid(logits, lens).argmax(-1)
    per_class = {lab: float((pred[y == i] == i).mean()) if (y == i).any() else None for i, lab in enumerate(labels)}
    at_fraction = {}
    for f in FRACTIONS:
        seen = np.maximum(1, np.ceil(f * lens - 1e-9).astype(np.int64))
        at_fraction[f"{int(f * 100)}%"] = float((_last_valid(logits, seen).argmax(-1) == y).mean())
    return {"accuracy": float((pred == y).mean()), "per_class": per_class, "accuracy_at_fraction": at_fraction}


def agreement(a: np.ndarray, b: np.ndarray, lengths: np.ndarray | None) -> dict[str, float]:
    """Per-frame argmax agreement and max |difference| of two (N, T, K) logits, valid steps only."""
    if a.shape != b.shape:
        raise UsageError(f"reference logits of shape {list(b.shape)}", expected=f"{list(a.shape)} like the bundle's",
                         fix="the reference must return per-step logits (N, T, K) for the same clips")
    n, t, _ = a.shape
    mask = np.ones((n, t), bool) if lengths is None else np.arange(t)[None] < lengths[:, None]
    return {"frame_argmax_agreement": float((a.argmax(-1) == b.argmax(-1))[mask].mean()),
            "max_abs_diff": float(np.abs(a - b)[mask].max()), "frames": int(mask.sum())}


def evaluate_bundle(bundle_path: str | Path | Bundle, dataset_or_spec: Any, *, split: str = "test",
                    artifact: str | tuple[str, str] = "onnxruntime:fp32", device: str | DeviceProfile = "cpu",
                    threads: int | None = None, reference: str | tuple[str, str] | Reference | None = None,
                    checkpoint: Reference | None = None, limit: int | None = None) -> dict[str, Any]:
    """Accuracy of one artefact on a dataset split, run frame by frame as on a device.

    ``dataset_or_spec``: a loaded :class:`edgelstm.data.dataset.Dataset`, or what
    :func:`edgelstm.data.load_dataset` takes ("synthetic", a folder, a .csv, a .npz); it is loaded at
    the bundle's size and clip length. ``reference``: another artefact ("openvino:fp32") or a
    callable ``(X, lengths) -> (N, T, K)`` logits; ``checkpoint`` is the same as a callable reference,
    labelled "torch" (the caller builds it from the PyTorch checkpoint; this module imports no torch).
    """
    b = _bundle(bundle_path)
    m = b.manifest
    ds = dataset_or_spec
    if not hasattr(ds, "splits"):
        from edgelstm.data.dataset import load_dataset

        size = m.preprocess.size if m.preprocess is not None else (64, 64)
        ds = load_dataset(str(ds), size=size, clip_len=m.temporal.clip_len)
    if split not in ds.splits:
        raise UsageError(f"split '{split}'", expected="one of " + ", ".join(ds.splits), fix="pass --split test")
    X, y, lengths = ds.splits[split].X, ds.splits[split].y, ds.splits[split].lengths
    if limit is not None:
        X, y = X[:limit], y[:limit]
        lengths = None if lengths is None else lengths[:limit]
    if len(ds.classes) != len(m.labels) or tuple(ds.classes) != tuple(m.labels):
        log.warning("dataset classes %s differ from the bundle's labels %s", ds.classes[:5], m.labels[:5])
    be, prec = _resolve_artifact(artifact)
    # the device profile gives device, threads and hints; the artefact picks backend and precision
    eng = Engine.load(b, device=device, backend=str(be), precision=str(prec), threads=threads,
                      streams=max(1, min(32, len(y))))
    t0 = time.perf_counter()
    logits = stream_logits(b, X, lengths=lengths, engine=eng)
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {"artifact": f"{be}:{prec}", "device": eng.info["device"],
                              "inference_precision": eng.inference_precision,
                              "split": split, "clips": int(len(y)),
                              "frames": int(X.shape[0] * X.shape[1]), "seconds": round(seconds, 3),
                              **accuracy_report(logits, y, lengths, m.labels)}
    ref_fn, ref_name = (checkpoint, "torch") if checkpoint is not None else (reference, "")
    if ref_fn is not None:
        if callable(ref_fn):
            ref_logits = np.asarray(ref_fn(X, lengths), np.float32)
            ref_name = ref_name or getattr(ref_fn, "__name__", "callable")
        else:
            rbe, rprec = _resolve_artifact(ref_fn)
            ref_logits = stream_logits(b, X, backend=rbe, precision=rprec, lengths=lengths)
            ref_name = f"{rbe}:{rprec}"
        result["agreement"] = {"reference": ref_name, **agreement(logits, ref_logits, lengths)}
        result["reference_accuracy"] = accuracy_report(ref_logits, y, lengths, m.labels)["accuracy"]
    if not math.isfinite(result["accuracy"]):
        raise DataError("the split is empty", expected="at least one clip", fix="choose another split")
    return result

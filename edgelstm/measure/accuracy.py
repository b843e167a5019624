"""Accuracy beside speed in ``edgelstm profile``, and finding the bundle's source checkpoint.

Accuracy runs through :func:`~edgelstm.runtime.stream.stream_logits` and :mod:`edgelstm.metrics`
(``accuracy_report``, ``agreement``): clips frame by frame through the same engine configuration that was timed, FP32 of
the same backend as the reference for argmax agreement. Clip re-inference runs the clip graph on
whole clips; PyTorch eager runs the checkpoint (torch imported only then).
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import CheckpointError
from edgelstm.fsutil import sha256_file
from edgelstm.measure.report import ProfileReport
from edgelstm.metrics import accuracy_report, agreement
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.clips import stream_logits
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.stream import open_model
from edgelstm.spec import CLIP, CLIP_LOGITS, Backend, ColourOrder, Precision, Role

log = logging.getLogger(__name__)


def find_checkpoint(b: Bundle, given: str | Path | None) -> tuple[Path | None, str]:
    """(checkpoint, "") or (None, why): the given file, else a .pt near the bundle whose SHA-256 the manifest names."""
    if importlib.util.find_spec("torch") is None:
        return None, "PyTorch eager: skipped, torch is not installed (pip install 'edgelstm[train]')"
    want = b.manifest.source_checkpoint_sha256
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise CheckpointError("no such checkpoint file", expected="the .pt file the bundle was exported from",
                                  fix="check --checkpoint, or drop it to look beside the bundle", path=path)
        if want and sha256_file(path) != want:
            log.warning("%s is not the checkpoint this bundle was exported from (SHA-256 differs)", path)
        return path, ""
    root = b.path.resolve()
    # beside the bundle, and in a run folder laid out as the quickstart's (RUN/bundle, RUN/train/NAME/best.pt)
    candidates = [*root.glob("*.pt"), *root.parent.glob("*.pt"), *root.parent.glob("*/*.pt"),
                  *root.parent.glob("*/*/*.pt")]
    for path in candidates:
        if path.stat().st_size < 2**30 and sha256_file(path) == want:
            return path, ""
    return None, (f"PyTorch eager: skipped, no checkpoint with the manifest's SHA-256 ({want[:12]}…) beside the "
                  f"bundle; pass --checkpoint PATH")


def _dataset(b: Bundle, spec: str, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray, Any]:
    from edgelstm.data.dataset import load_dataset

    m = b.manifest
    ds = load_dataset(spec, **m.data_options())
    if split not in ds.splits:
        from edgelstm.errors import UsageError

        raise UsageError(f"split '{split}'", expected="one of " + ", ".join(ds.splits), fix="pass --split test")
    sp = ds.splits[split]
    X, y, lengths = sp.X, sp.y, sp.lengths
    if limit is not None:
        X, y, lengths = X[:limit], y[:limit], None if lengths is None else lengths[:limit]
    return X, y, lengths


def add_accuracy(b: Bundle, report: ProfileReport, spec: str, *, split: str = "test", limit: int | None = 200,
                 checkpoint: Path | None = None) -> None:
    """Fill ``accuracy`` and ``agreement`` (per-frame argmax, with FP32 of the same backend) on every row."""
    X, y, lengths = _dataset(b, spec, split, limit)
    m = b.manifest
    cache: dict[tuple[str, str, str], np.ndarray] = {}

    def logits(device: str, backend: str, precision: str) -> np.ndarray:
        key = (device, backend, precision)
        if key not in cache:
            eng = Engine.load(b, device=device, backend=backend, precision=precision, streams=min(32, len(y)))
            cache[key] = stream_logits(b, X, lengths=lengths, engine=eng)  # (N, T, K)
        return cache[key]

    def reference(backend: str) -> np.ndarray:
        fp32 = next((k for k in cache if k[1] == backend and k[2] == "fp32"), None)
        if fp32 is not None:
            return cache[fp32]
        row = report.row("stream", backend, "fp32")
        return logits(row.device if row else ("cpu" if backend == Backend.ONNXRUNTIME else "intel-cpu"), backend,
                      "fp32")

    for r in report.rows:
        if r.mode == "stream":
            out = logits(r.device, r.backend, r.precision)
            ref = reference(r.backend)
        elif r.mode == "clip":
            out = _clip_logits(b, r.device, Backend(r.backend), X)
            ref = reference(r.backend)
        elif checkpoint is not None:
            from edgelstm.measure.eager import eager_model

            out = eager_model(checkpoint, m, window=m.temporal.clip_len)[0].step_logits(X, lengths)
            ref = reference(str(Backend.ONNXRUNTIME))
        else:
            continue
        r.accuracy = accuracy_report(out, y, lengths, m.labels).accuracy
        r.agreement = agreement(out, ref, lengths).frame_argmax_agreement
    report.settings["accuracy"] = {"data": spec, "split": split, "clips": int(len(y)),
                                   "agreement": "per-frame argmax agreement with FP32 on the same backend "
                                                "(PyTorch eager: with onnxruntime FP32)"}


def _clip_logits(b: Bundle, device: str, backend: Backend, X: np.ndarray) -> np.ndarray:
    """The clip graph on whole clips (N, T, H, W, 3) RGB -> (N, T, K), with the timed row's options."""
    m = b.manifest
    options = Engine.load(b, device=device, backend=str(backend), precision="fp32").plan.options
    runner = open_model(b, b.find(Role.CLIP, backend, Precision.FP32), options)
    order = m.preprocess.colour_order if m.preprocess is not None else ColourOrder.RGB
    Xg = X[..., ::-1] if order == ColourOrder.BGR else X  # the dataset is RGB
    return np.concatenate([runner.run({CLIP: np.ascontiguousarray(Xg[i:i + 16])})[CLIP_LOGITS]
                           for i in range(0, len(Xg), 16)]).astype(np.float32)

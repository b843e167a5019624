"""Whole clips through the :class:`~edgelstm.runtime.engine.Engine`, frame by frame, the state reset
between clips: the device's own code path, for evaluation (``edgelstm eval``, the profile's accuracy)
and export's INT8 gate."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelstm.errors import DataError
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.stream import BackendOptions
from edgelstm.spec import Backend, ColourOrder, Manifest, ModelKind, Precision


def check_clips(manifest: Manifest, X: np.ndarray) -> None:
    """Refuse clips that are not the model's input: uint8 (N, T, H, W, 3) frames, or (N, T, F) features."""
    m = manifest
    if m.model.kind == ModelKind.FRAMES:
        size = m.preprocess.size if m.preprocess is not None else (0, 0)
        want = (*size, 3)
        if X.ndim != 5 or X.shape[2:] != want or X.dtype != np.uint8:
            raise DataError(f"clips of shape {list(X.shape)} {X.dtype}",
                            expected=f"uint8 (N, T, {want[0]}, {want[1]}, 3) frames at the model's size",
                            fix=f"load the dataset with size={size}")
    elif X.ndim != 3 or X.shape[2] != m.model.feature_size:
        raise DataError(f"features of shape {list(X.shape)}", expected=f"(N, T, {m.model.feature_size})",
                        fix="load the feature set the model was trained on")


def stream_logits(bundle: str | Path | Bundle, X: np.ndarray, *, backend: Backend | str = Backend.ONNXRUNTIME,
                  precision: Precision | str = Precision.FP32, options: BackendOptions = BackendOptions(),
                  lengths: np.ndarray | None = None, colour: ColourOrder | str = ColourOrder.RGB,
                  batch: int = 32, engine: Engine | None = None, verify: bool = True) -> np.ndarray:
    """Per-step logits (N, T, K) of clips run frame by frame through the engine.

    ``X``: uint8 frames (N, T, H, W, 3) at the model's size in ``colour`` order (datasets give RGB;
    the engine converts to the graph's order), or float features (N, T, F). The state is reset
    between clips; up to ``batch`` clips run side by side as streams. ``verify``: replay the bundle's
    self-test when the engine is loaded here (export's INT8 gate, which compares against FP32 itself, skips it). Steps at or past
    ``lengths[i]`` are the model's output on the padding, as the PyTorch model computes them too.
    """
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    check_clips(b.manifest, X)
    n, t = X.shape[:2]
    if lengths is not None and (lengths.shape != (n,) or (lengths < 1).any() or (lengths > t).any()):
        raise DataError(f"lengths of shape {list(lengths.shape)}", expected=f"({n},) integers in 1..{t}",
                        fix="pass the dataset's lengths unchanged")
    streams = max(1, min(batch, n))
    eng = engine or Engine.load(b, backend=str(backend), precision=str(precision), options=options,
                                streams=streams, verify=verify)
    streams = min(streams, eng.streams)
    out = np.empty((n, t, len(eng.labels)), np.float32)  # (N, T, K)
    if X.dtype.kind == "f":
        X = X.astype(np.float32, copy=False)
    order = ColourOrder(colour)
    for start in range(0, n, streams):
        chunk = X[start:start + streams]  # (B, T, ...)
        ids = list(range(len(chunk)))
        eng.reset()
        for step in range(t):
            preds = eng.step_batch(chunk[:, step], ids, colour=order)
            out[start:start + len(chunk), step] = np.stack([p.logits for p in preds])
    return out

"""Calibration and gate data: real clips of the dataset, fed as the runtime feeds them.

Calibration is sequence-aware: each clip starts from the zero state, and the state fed at step t
is the one the FP32 model itself produced at step t-1, exactly as the runtime carries it (the feeds
are recorded from the runtime's own loop, ``edgelstm.runtime.stream.Chain``). A stateless encoder
just sees every frame of the clips.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgelstm.errors import DataError, UsageError
from edgelstm.spec import Manifest, ModelKind

log = logging.getLogger(__name__)


def resolve_calib_data(calib_data: str | None, trained_on: str) -> str:
    """``calib_data``, or 'synthetic' when the model was trained on it (``trained_on``, the checkpoint's
    and manifest's data source); otherwise a usage error (exit 2)."""
    if calib_data:
        return str(calib_data)
    if trained_on == "synthetic":
        return "synthetic"
    raise UsageError("INT8 needs calibration data and none was given (the model was not trained on the "
                     "embedded synthetic set, so there is no default)",
                     expected="--calib-data with the data the model was trained on",
                     fix="pass --calib-data DATA (a video folder, a .csv, a .npz of features, or 'synthetic')")


@dataclass(frozen=True)
class GateData:
    calib: np.ndarray          # (N, T, ...) RGB frames or features, train split
    X: np.ndarray              # held-out clips (N, T, ...)
    y: np.ndarray              # (N,) labels in the bundle's label order
    lengths: np.ndarray | None
    source: str
    split: str


def load_gate_data(calib_data: str, manifest: Manifest, *, calib_clips: int, eval_clips: int) -> GateData:
    """Calibration clips from the train split and held-out clips (test, else val) at the bundle's size."""
    from edgelstm.data import load_dataset

    kw: dict[str, Any] = manifest.data_options()
    if calib_data == "synthetic":  # render only what we need; oversample when the model knows fewer classes
        from edgelstm.data.synthetic import CLASSES

        scale = math.ceil(len(CLASSES) / max(1, len(set(manifest.labels) & set(CLASSES))))
        kw["counts"] = (calib_clips, 1, eval_clips * scale)
    ds = load_dataset(calib_data, **kw)
    split = "test" if "test" in ds.splits and len(ds.splits["test"]) else "val"
    X, y, lengths = ds.splits[split]
    keep, y = _map_labels(tuple(ds.classes), manifest.labels, y, calib_data)
    X, y = X[keep][:eval_clips], y[keep][:eval_clips]
    lengths = None if lengths is None else lengths[keep][:eval_clips]
    calib = ds.splits["train"].X[:calib_clips]
    if manifest.model.kind == ModelKind.FEATURES and calib.dtype.kind == "f":
        calib, X = calib.astype(np.float32), X.astype(np.float32)
    if len(y) == 0 or len(calib) == 0:
        raise DataError(f"'{calib_data}' gave {len(calib)} calibration and {len(y)} held-out clips",
                        expected="clips in its train and test (or val) splits", fix="pass a larger --calib-data")
    log.info("gate data: %d calibration clips, %d held-out %s clips from %s", len(calib), len(y), split, calib_data)
    return GateData(calib, X, y, lengths, calib_data, split)


def _map_labels(classes: tuple[str, ...], labels: tuple[str, ...], y: np.ndarray,
                source: str) -> tuple[np.ndarray, np.ndarray]:
    """Keep clips whose class the model knows and renumber them in the model's label order."""
    if classes == labels:
        return np.ones(len(y), bool), y
    unknown = [lab for lab in labels if lab not in classes]
    if unknown:
        raise DataError(f"the data's classes ({', '.join(classes[:6])}...) lack the model's '{unknown[0]}'",
                        expected="the dataset the model was trained on", fix="pass that dataset to --calib-data",
                        path=source)
    index = {c: labels.index(c) if c in labels else -1 for c in classes}
    mapped = np.array([index[classes[i]] for i in y], np.int64)
    log.warning("the model knows %d of the data's %d classes; the gate uses those clips only",
                len(labels), len(classes))
    return mapped >= 0, mapped

"""Tracking metrics, the OTB protocol: mean IoU, success AUC and precision at 20 pixels.

One implementation, used by training (best checkpoint on val), ``edgelstm eval --task track``, the INT8 gate and
the quickstart's table. Boxes are ``(x, y, w, h)`` in pixels. Each sequence is scored from its second frame:
the first is the box the tracker was given. numpy only.

- **IoU** of the predicted and true box per frame, averaged over all frames of all sequences;
- **success AUC**: the fraction of frames whose IoU exceeds t, for t in 0, 0.05, ..., 1 (OTB's 21 thresholds),
  averaged over t (the area under the success plot; close to the mean IoU);
- **precision at 20 px**: the fraction of frames whose box centre is within 20 pixels of the true centre (OTB's
  threshold, in pixels of the frame: on small frames it is lenient, so the mean centre error is reported too).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_PX = 20.0


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes (..., 4) and (..., 4)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    x0 = np.maximum(a[..., 0], b[..., 0])
    y0 = np.maximum(a[..., 1], b[..., 1])
    x1 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y1 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)  # type: ignore[no-any-return]


def centre_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in pixels between the centres of boxes (..., 4) and (..., 4)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    dx = (a[..., 0] + a[..., 2] / 2) - (b[..., 0] + b[..., 2] / 2)
    dy = (a[..., 1] + a[..., 3] / 2) - (b[..., 1] + b[..., 3] / 2)
    return np.hypot(dx, dy)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class TrackReport:
    mean_iou: float
    success_auc: float
    precision_20px: float
    mean_centre_error_px: float
    sequences: int
    frames: int              # frames scored (each sequence's first, the given box, is not)
    success_curve: tuple[float, ...] = ()  # success rate at each of SUCCESS_THRESHOLDS

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else [round(x, 5) for x in v] if isinstance(v, tuple)
                    else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        return (f"mean IoU {self.mean_iou:.3f}, success AUC {self.success_auc:.3f}, precision@20px "
                f"{100 * self.precision_20px:.1f}%, mean centre error {self.mean_centre_error_px:.1f} px "
                f"({self.sequences} sequences, {self.frames} frames)")


def track_report(pred: Sequence[np.ndarray], truth: Sequence[np.ndarray]) -> TrackReport:
    """Score predicted boxes against true ones, sequence by sequence (each (T, 4), the same T)."""
    if len(pred) != len(truth):
        raise ValueError(f"{len(pred)} predicted sequences for {len(truth)} true ones")
    ious, errs = [], []
    for p, t in zip(pred, truth):
        p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
        if p.shape != t.shape or p.ndim != 2 or p.shape[1] != 4:
            raise ValueError(f"predicted boxes {p.shape} against true {t.shape}: expected both (T, 4)")
        ious.append(iou(p[1:], t[1:]))
        errs.append(centre_error(p[1:], t[1:]))
    o = np.concatenate(ious) if ious else np.zeros(0)
    e = np.concatenate(errs) if errs else np.zeros(0)
    if not len(o):
        return TrackReport(0.0, 0.0, 0.0, float("nan"), len(pred), 0, ())
    curve = tuple(float((o > th).mean()) for th in SUCCESS_THRESHOLDS)
    return TrackReport(mean_iou=float(o.mean()), success_auc=float(np.mean(curve)),
                       precision_20px=float((e <= PRECISION_PX).mean()), mean_centre_error_px=float(e.mean()),
                       sequences=len(pred), frames=int(len(o)), success_curve=curve)

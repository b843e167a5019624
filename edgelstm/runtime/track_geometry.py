"""The crop and box arithmetic of a tracking model, in numpy and OpenCV: one definition for training, export,
evaluation and the device (:mod:`edgelstm.runtime.track`), so that what the model learnt from is what it gets.

Boxes are ``(x, y, w, h)`` in pixels of the frame: the top-left corner (0-based, continuous: pixel ``i`` covers
``[i, i + 1)``) and the size. The *window* of a box is the box scaled ``context`` times about its centre;
:func:`crop` resamples it to ``crop_size`` x ``crop_size`` (bilinear, zeros outside the frame, an INTER_AREA
reduction first when the window is more than twice the crop). A model step sees :func:`crop_pair`: the
previous frame's crop and the current frame's, both of the previous box's window. Its four outputs are the new
box relative to that window (:func:`encode`, :func:`decode`).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from edgelstm.trackspec import Tracking


def window(box: np.ndarray, context: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre x, centre y, width, height of the window of ``box`` (..., 4)."""
    b = np.asarray(box, np.float64)
    return b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2, b[..., 2] * context, b[..., 3] * context


def crop(frame: np.ndarray, box: np.ndarray, t: Tracking, out: np.ndarray | None = None) -> np.ndarray:
    """The window of ``box`` in ``frame`` (H, W, 3) uint8, resampled to (S, S, 3), into ``out`` if given."""
    s = t.crop_size
    cx, cy, ww, wh = (float(v) for v in window(box, t.context))
    x0, y0 = cx - ww / 2, cy - wh / 2
    sx, sy = s / ww, s / wh
    src, off_x, off_y, gx, gy = frame, 0.0, 0.0, 1.0, 1.0
    k = int(1.0 / max(sx, sy))  # a window more than twice the crop: reduce by area first (no aliasing)
    if k >= 2:
        h, w = frame.shape[:2]
        rx0, ry0 = max(0, math.floor(x0) - k), max(0, math.floor(y0) - k)
        rx1, ry1 = min(w, math.ceil(x0 + ww) + k), min(h, math.ceil(y0 + wh) + k)
        if rx1 - rx0 >= k and ry1 - ry0 >= k:
            roi = frame[ry0:ry1, rx0:rx1]
            small_w, small_h = max(1, (rx1 - rx0) // k), max(1, (ry1 - ry0) // k)
            src = cv2.resize(roi, (small_w, small_h), interpolation=cv2.INTER_AREA)
            off_x, off_y, gx, gy = rx0, ry0, (rx1 - rx0) / small_w, (ry1 - ry0) / small_h
    # dst index u: u + 0.5 = (off + (X + 0.5) * g - x0) * s, for source index X (pixel centres at +0.5)
    m = np.array([[sx * gx, 0.0, (off_x + 0.5 * gx - x0) * sx - 0.5],
                  [0.0, sy * gy, (off_y + 0.5 * gy - y0) * sy - 0.5]])
    dst = out if out is not None else np.empty((s, s, 3), np.uint8)
    cv2.warpAffine(src, m, (s, s), dst=dst, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                   borderValue=(0, 0, 0))
    return dst


def crop_pair(prev_crop: np.ndarray, frame: np.ndarray, box: np.ndarray, t: Tracking,
              out: np.ndarray | None = None) -> np.ndarray:
    """(S, 2S, 3): ``prev_crop`` (the previous frame's crop of ``box``'s window) left, the current frame's right."""
    s = t.crop_size
    dst = out if out is not None else np.empty((s, 2 * s, 3), np.uint8)
    dst[:, :s] = prev_crop
    crop(frame, box, t, dst[:, s:])
    return dst


def encode(prev: np.ndarray, box: np.ndarray, t: Tracking) -> np.ndarray:
    """The outputs that move ``prev`` to ``box`` (..., 4): centre shift over the window, log size ratio, scaled."""
    p, b = np.asarray(prev, np.float64), np.asarray(box, np.float64)
    cx, cy, ww, wh = window(p, t.context)
    out = np.stack([(b[..., 0] + b[..., 2] / 2 - cx) / ww, (b[..., 1] + b[..., 3] / 2 - cy) / wh,
                    np.log(b[..., 2] / p[..., 2]), np.log(b[..., 3] / p[..., 3])], -1)
    return (out * t.output_scale).astype(np.float32)  # type: ignore[no-any-return]


def decode(prev: np.ndarray, outputs: np.ndarray, t: Tracking, frame_hw: tuple[int, int]) -> np.ndarray:
    """The box (..., 4) that ``outputs`` (..., 4) make of ``prev``, kept inside the frame (:func:`clamp_box`);
    a non-finite output keeps that part of ``prev``."""
    p = np.asarray(prev, np.float64)
    o = np.asarray(outputs, np.float64) / t.output_scale
    o = np.where(np.isfinite(o), o, 0.0)
    cx, cy, ww, wh = window(p, t.context)
    lim = math.log(t.max_scale_change)
    w = p[..., 2] * np.exp(np.clip(o[..., 2], -lim, lim))
    h = p[..., 3] * np.exp(np.clip(o[..., 3], -lim, lim))
    ncx, ncy = cx + o[..., 0] * ww, cy + o[..., 1] * wh
    return clamp_box(np.stack([ncx - w / 2, ncy - h / 2, w, h], -1), frame_hw, t.min_side)


def clamp_box(box: np.ndarray, frame_hw: tuple[int, int], min_side: float) -> np.ndarray:
    """Sides within [min_side, the frame's], the centre inside the frame."""
    b = np.asarray(box, np.float64)
    fh, fw = float(frame_hw[0]), float(frame_hw[1])
    w = np.clip(b[..., 2], min(min_side, fw), fw)
    h = np.clip(b[..., 3], min(min_side, fh), fh)
    cx = np.clip(b[..., 0] + b[..., 2] / 2, 0.0, fw)
    cy = np.clip(b[..., 1] + b[..., 3] / 2, 0.0, fh)
    return np.stack([cx - w / 2, cy - h / 2, w, h], -1)


def box_problem(box: object, frame_hw: tuple[int, int]) -> str:
    """Why ``box`` cannot start or score a track in a frame of ``frame_hw`` (H, W), or '' when it can: four
    finite numbers, a positive width and height, and at least part of it inside the frame."""
    try:
        b = np.asarray(box, np.float64).reshape(-1)
    except (TypeError, ValueError):
        return "not four numbers"
    if b.shape != (4,):
        return f"{b.size} numbers, not four (x, y, w, h)"
    if not np.isfinite(b).all():
        return "not all finite"
    x, y, w, h = (float(v) for v in b)
    if w <= 0 or h <= 0:
        return f"width {w:g} and height {h:g}: both must be > 0"
    fh, fw = frame_hw
    if x >= fw or y >= fh or x + w <= 0 or y + h <= 0:
        return f"outside the {fw}x{fh} frame (x {x:g}..{x + w:g}, y {y:g}..{y + h:g})"
    return ""


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """'x,y,w,h' (commas, tabs or spaces between) -> four floats; None when it is not four numbers."""
    parts = text.replace(",", " ").replace("\t", " ").split()
    if len(parts) != 4:
        return None
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        return None
    return x, y, w, h

"""A frame on its way into the model and its logits on their way out.

In: the checks a frame must pass, and the resize (with exact halvings for large frames) and colour
swap straight into the engine's preallocated uint8 batch buffer; the graph normalises in-graph, so
there is no float copy here. Out: softmax, top-k, temporal smoothing (EMA) and hysteresis. A
per-frame argmax flickers between close classes; the shown label should not: ``Smoother`` keeps an
exponential moving average of the probabilities per stream and changes the shown label only when
another class beats it by a margin. Both are off by default (``ema=0``, ``hysteresis=0``), so the
engine's raw decision equals the model's argmax.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgelstm.errors import FrameError, UsageError
from edgelstm.spec import ColourOrder, Manifest, ModelKind, Preprocess, ResizeMode

INTERP = {ResizeMode.BILINEAR: cv2.INTER_LINEAR, ResizeMode.AREA: cv2.INTER_AREA,
          ResizeMode.NEAREST: cv2.INTER_NEAREST}
# AREA resize of a large frame: exact 2x2 box halvings first (OpenCV's SIMD path, memory-bound), then
# INTER_AREA on the rest. 640x480 -> 32x32 here: 0.12 ms instead of 0.19 ms; against the exact box average
# it is off by at most 3.5 grey levels (mean 0.34, direct INTER_AREA: 0.25) from rounding at each halving
# (benchmarks/host_overhead.py, tests/runtime/test_engine.py). Small frames (tests, small cameras) skip it.
HALVE_ABOVE_PIXELS = 65_536


def graph_order(X: np.ndarray, manifest: Manifest) -> np.ndarray:
    """Dataset frames (..., H, W, 3), which are RGB, in the colour order the bundle's graphs take (BGR);
    features pass unchanged. The one place offline code (parity, calibration, accuracy) flips channels."""
    pre = manifest.preprocess
    if manifest.model.kind == ModelKind.FRAMES and pre is not None and pre.colour_order == ColourOrder.BGR:
        return np.ascontiguousarray(X[..., ::-1])
    return X


class FrameResizer:
    """Writes a checked BGR/RGB uint8 frame of any size into one (H, W, 3) slot in the model's colour order."""

    def __init__(self, pre: Preprocess) -> None:
        self.size = pre.size
        self.colour = pre.colour_order
        self._interp = INTERP[pre.resize]
        self._halves: dict[tuple[int, int], np.ndarray] = {}  # scratch for _halve, one per frame size

    def into(self, dst: np.ndarray, frame: np.ndarray, colour: ColourOrder) -> None:
        check_frame(frame)
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        h, w = self.size
        swap = colour != self.colour
        if frame.shape[0] == h and frame.shape[1] == w:
            if swap:
                cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=dst)
            else:
                np.copyto(dst, frame)
            return
        src = frame
        if self._interp == cv2.INTER_AREA:
            src = self._halve(frame, h, w)
        cv2.resize(src, (w, h), dst=dst, interpolation=self._interp)  # straight into the batch buffer
        if swap:  # after the resize: fewer pixels to swap
            cv2.cvtColor(dst, cv2.COLOR_BGR2RGB, dst=dst)

    def _halve(self, frame: np.ndarray, h: int, w: int) -> np.ndarray:
        """Exact 2x2 box halvings of a large frame while it stays >= 4x the target (see HALVE_ABOVE_PIXELS)."""
        src = frame
        while (src.shape[0] * src.shape[1] >= HALVE_ABOVE_PIXELS and src.shape[0] >= 4 * h and src.shape[1] >= 4 * w
               and src.shape[0] % 2 == 0 and src.shape[1] % 2 == 0):
            key = (src.shape[0] // 2, src.shape[1] // 2)
            half = self._halves.get(key)
            if half is None:
                half = self._halves[key] = np.empty((*key, 3), np.uint8)
            cv2.resize(src, (key[1], key[0]), dst=half, interpolation=cv2.INTER_AREA)
            src = half
        return src


def check_frame(frame: Any) -> None:
    """Raise :class:`FrameError` unless ``frame`` is a uint8 (H, W, 3) image."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"a frame of type {type(frame).__name__}", expected="a numpy uint8 array (H, W, 3), BGR",
                         fix="pass the array cv2.VideoCapture.read() returns")
    if frame.ndim != 3 or frame.shape[2] != 3:
        fix = ("convert it with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)" if frame.ndim == 2 or
               (frame.ndim == 3 and frame.shape[2] == 1) else
               "drop the alpha channel with cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)" if frame.ndim == 3 and
               frame.shape[2] == 4 else "pass one frame (H, W, 3) at a time, channels last")
        raise FrameError(f"a frame of shape {list(frame.shape)}", expected="(H, W, 3): one colour image, channels last",
                         fix=fix)
    if min(frame.shape[:2]) < 1:
        raise FrameError(f"an empty frame of shape {list(frame.shape)}", expected="at least 1x1 pixels",
                         fix="check the source delivers images")
    if frame.dtype != np.uint8:
        what = f"a {frame.dtype} frame"
        if frame.dtype.kind == "f" and not np.isfinite(frame).all():
            what += " with NaN/Inf values"
        raise FrameError(what, expected="uint8 pixels 0..255 (the graph normalises them itself)",
                         fix="pass the camera's uint8 frame; for float images use "
                             "np.clip(np.nan_to_num(img), 0, 255).astype(np.uint8)")


def check_features(x: Any, size: int) -> np.ndarray:
    """A (F,) float feature vector as float32, or :class:`FrameError`."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise FrameError(f"features of type {type(x).__name__}{'' if not isinstance(x, np.ndarray) else ' ' + str(x.dtype)}",
                         expected=f"a float32 vector of {size} features", fix="pass np.asarray(features, np.float32)")
    if x.shape != (size,):
        raise FrameError(f"features of shape {list(x.shape)}", expected=f"({size},): one frame's feature vector",
                         fix="pass one time step at a time, with the feature size the model was trained on")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise FrameError(f"features with {int((~np.isfinite(x)).sum())} NaN/Inf value(s)",
                         expected="finite numbers", fix="fix the feature extractor, or skip this frame")
    return x.astype(np.float32, copy=False)


# --- out: logits to a decision --------------------------------------------------------------
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

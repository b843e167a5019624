"""The demo of a tracker: where its tracks start, what a decision writes and draws, and a box drawn with the mouse.

- ``--init-box x,y,w,h`` starts stream 0's track (repeat it for streams 1, 2, ...); ``--source synthetic`` plays
  one long embedded tracking sequence (:class:`TrackCamera`) and starts from its own first box; any other stream
  without a box starts from a centred one (:func:`edgelstm.runtime.track.default_box`).
- With a window, dragging a rectangle over it restarts stream 0's track from that box (:class:`BoxPicker`).
- Each decision is a JSON line with the box (:func:`track_record`); the overlay draws it (:func:`draw_track`).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, cast

import cv2
import numpy as np

from edgelstm.errors import UsageError
from edgelstm.runtime.loop import Decision
from edgelstm.runtime.offline_sources import SyntheticSource
from edgelstm.runtime.sources import Pacer, RawFrame, Source
from edgelstm.runtime.track import TrackPrediction
from edgelstm.runtime.track_geometry import parse_box

CAMERA_SIZE = (240, 320)  # (H, W) of the synthetic tracking camera
WINDOW = "edgelstm"


def parse_init_box(text: str) -> tuple[float, float, float, float]:
    """``--init-box x,y,w,h`` -> four numbers, or a :class:`UsageError` (the frame check comes with the frame)."""
    box = parse_box(text)
    if box is None or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise UsageError(f"--init-box '{text}'", expected="x,y,w,h: the target's top-left corner and size in pixels "
                         "of the source's frames, w and h > 0", fix="pass e.g. --init-box 120,80,40,60")
    return box


class TrackCamera:
    """One long embedded tracking sequence as a camera (BGR frames paced at ``fps``; nothing dropped, so its
    first frame is the one :attr:`first_box` belongs to)."""

    live = False

    def __init__(self, *, size: tuple[int, int] = CAMERA_SIZE, fps: float = 15.0, seed: int = 0,
                 frames: int = 1800) -> None:
        from edgelstm.data.tracking import stream

        self.name, self.fps, self.size, self.seed, self.frames = "synthetic (tracking)", fps, size, seed, frames
        self._frames = stream(size=size, seed=seed, frames=frames)
        self.first_box: np.ndarray = np.zeros(4)
        self._first: tuple[np.ndarray, np.ndarray] | None = None
        self._pacer = Pacer(fps)

    def open(self) -> None:
        from edgelstm.data.tracking import stream

        self._frames = stream(size=self.size, seed=self.seed, frames=self.frames)
        self._first = next(self._frames)
        self.first_box = self._first[1].astype(np.float64)
        self._pacer.reset()

    def read(self) -> RawFrame | None:
        self._pacer.wait()
        t0 = time.perf_counter()
        if self._first is not None:
            (img, _), self._first = self._first, None
        else:
            got = next(self._frames, None)
            if got is None:
                return None
            img = got[0]
        return RawFrame(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), None, None, decode_ms=(time.perf_counter() - t0) * 1e3)

    def close(self) -> None:
        pass


def start_tracks(engine: Any, srcs: list[Source], init_boxes: Sequence[tuple[float, float, float, float]],
                 *, fps: float) -> list[Source]:
    """The sources a tracker runs on (the synthetic camera becomes :class:`TrackCamera`) with each stream's
    first box given to the engine: ``init_boxes[i]`` for stream i, else the camera's own first box."""
    if len(init_boxes) > len(srcs):
        raise UsageError(f"{len(init_boxes)} --init-box for {len(srcs)} source(s)",
                         expected="at most one --init-box per --source (in order)", fix="drop the extra --init-box")
    out: list[Source] = [TrackCamera(fps=fps, seed=i) if isinstance(s, SyntheticSource) else s
                         for i, s in enumerate(srcs)]
    for i, s in enumerate(out):
        if i < len(init_boxes):
            engine.init(init_boxes[i], i)
        elif isinstance(s, TrackCamera):
            s.open()  # renders its first frame: the box to start from
            engine.init(s.first_box, i)
    return out


def track_record(d: Decision) -> dict[str, Any]:
    """One JSON line of a tracker: frame, timestamps, the box, whether this frame started the track, stage
    latencies, frame age."""
    p = cast(TrackPrediction, d.prediction)
    return {"decision": d.number, "stream": d.stream, "frame": d.frame.index, "epoch": d.frame.epoch,
            "t_capture": round(d.frame.t_capture, 6),
            "t_media": round(d.frame.t_media, 6) if math.isfinite(d.frame.t_media) else None,
            "box": [round(v, 2) for v in p.box], "started": p.started,
            "latency_ms": {k: round(v, 4) for k, v in p.timings.as_dict().items()},
            "age_ms": round(d.age_ms, 3), "reset": d.reset or p.reset or None}


def draw_track(img: np.ndarray, d: Decision, *, fps: float, drawing: tuple[int, int, int, int] | None = None
               ) -> np.ndarray:
    """The frame with the tracked box, FPS, latency and frame age (and a box being drawn with the mouse)."""
    out = img.copy()
    h, w = out.shape[:2]
    s = max(0.4, min(w, h) / 480)
    th = max(1, int(round(s * 2)))
    p = cast(TrackPrediction, d.prediction)
    x, y, bw, bh = p.box
    colour = (0, 200, 255) if p.started else (255, 255, 0)
    corners = (int(round(x)), int(round(y))), (int(round(x + bw)), int(round(y + bh)))
    cv2.rectangle(out, *corners, (0, 0, 0), th + 2)  # a dark outline: visible on any target
    cv2.rectangle(out, *corners, colour, th)
    if drawing is not None:
        x0, y0, x1, y1 = drawing
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 255, 255), 1)
    info = f"{fps:4.1f} FPS  {p.timings.total:5.2f} ms  age {d.age_ms:5.1f} ms" + ("  start" if p.started else "")
    cv2.putText(out, info, (int(8 * s), h - int(10 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, (0, 255, 255),
                max(1, th // 2), cv2.LINE_AA)
    return out


class BoxPicker:
    """Drag a rectangle in the window to restart stream 0's track from it (applied at its next frame)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.start: tuple[int, int] | None = None
        self.drawing: tuple[int, int, int, int] | None = None
        cv2.setMouseCallback(WINDOW, self._on_mouse)

    def _on_mouse(self, event: int, x: int, y: int, flags: int, param: Any) -> None:
        if event == cv2.EVENT_LBUTTONDOWN:
            self.start = (x, y)
        elif event == cv2.EVENT_MOUSEMOVE and self.start is not None:
            self.drawing = (*self.start, x, y)
        elif event == cv2.EVENT_LBUTTONUP and self.start is not None:
            (x0, y0), self.start, self.drawing = self.start, None, None
            if abs(x - x0) >= 2 and abs(y - y0) >= 2:
                self.engine.init((min(x0, x), min(y0, y), abs(x - x0), abs(y - y0)), 0)


class TrackOutputs:
    """What the demo's sink does for a tracker: the JSON line and the overlay (with a :class:`BoxPicker` when a
    window is shown)."""

    def __init__(self, engine: Any, *, show: bool) -> None:
        self.picker = BoxPicker(engine) if show else None

    def record(self, d: Decision) -> dict[str, Any]:
        return track_record(d)

    def draw(self, d: Decision, *, fps: float) -> np.ndarray:
        return draw_track(d.frame.image, d, fps=fps, drawing=self.picker.drawing if self.picker else None)

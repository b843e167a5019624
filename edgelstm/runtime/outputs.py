"""What a decision turns into: an overlay on the frame, a recorded video, a JSON line, a window."""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from edgelstm.errors import EdgeLSTMError, UsageError
from edgelstm.fsutil import output_target
from edgelstm.runtime.loop import Decision

log = logging.getLogger(__name__)


def decision_record(d: Decision, labels: tuple[str, ...], *, detect: bool = False) -> dict[str, Any]:
    """One JSON line: frame index, timestamps, label, probability, stage latencies, frame age (and with
    ``detect``, the current event)."""
    p = d.prediction
    rec: dict[str, Any] = {
        "decision": d.number, "stream": d.stream, "frame": d.frame.index, "epoch": d.frame.epoch,
        "t_capture": round(d.frame.t_capture, 6),
        "t_media": round(d.frame.t_media, 6) if math.isfinite(d.frame.t_media) else None,
        "label": p.label if p.index >= 0 else None, "index": p.index,
        "probability": round(p.probability, 6),
        "top": [[labels[i], round(q, 6)] for i, q in p.top],
        "latency_ms": {k: round(v, 4) for k, v in p.timings.as_dict().items()},
        "age_ms": round(d.age_ms, 3), "reset": d.reset or p.reset or None,
    }
    if d.frame.truth is not None:
        rec["truth"] = labels[d.frame.truth] if 0 <= d.frame.truth < len(labels) else d.frame.truth
    if detect:  # the open event after this frame (None: no action going on)
        rec["event"] = labels[p.event.label] if p.event is not None else None
    return rec


def event_records(d: Decision, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """One JSON line per event that started or ended on this decision's frame (detection models): ``event``
    start or end, the action, the frame and media time (an end is the first frame after the event), the
    confidence (at the start: the probability that started it; at the end: its highest) and, at the end, its
    length in decisions."""
    out = []
    for c in d.prediction.events:
        e = c.event
        rec: dict[str, Any] = {"event": str(c.change), "stream": d.stream, "label": labels[e.label],
                               "frame": d.frame.index,
                               "t_media": round(d.frame.t_media, 6) if math.isfinite(d.frame.t_media) else None,
                               "confidence": round(e.confidence, 6)}
        if e.end is not None:
            rec["decisions"] = e.end - e.start
        out.append(rec)
    return out


class JsonlWriter:
    """JSON lines to stdout, or to a file written beside its destination and renamed into place on close.

    A FIFO or character device (``--jsonl /dev/stdout``, a ``mkfifo`` pipe) is written through, line by
    line; a symlink's target is written (see :mod:`edgelstm.fsutil`).
    """

    def __init__(self, path: str | Path | None) -> None:
        self.dest = Path(path) if path is not None else None
        self._tmp: Path | None = None
        self._through = self.dest is None
        if self.dest is None:
            self._f: IO[str] = sys.stdout
            return
        target, self._through = output_target(self.dest)
        if self._through:
            self._f = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            return
        self._target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = _partial(target.parent, f".{target.name}", ".partial")
        self._f = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, rec: dict[str, Any]) -> None:
        self._f.write(json.dumps(rec, allow_nan=False, default=_nan_free) + "\n")
        if self._through:
            self._f.flush()  # a consumer on the other end of a pipe sees each decision at once

    def close(self, *, keep: bool = True) -> None:
        """Rename the file into place; ``keep=False`` removes it instead and leaves any old file as it was."""
        if self.dest is None:
            self._f.flush()
            return
        if not self._f.closed:
            self._f.close()
        if self._tmp is not None:
            if keep:
                os.replace(self._tmp, self._target)
            else:
                self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _partial(folder: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new temporary file beside the output: ``prefix + suffix`` if free, else a unique name (another run's)."""
    path = folder / f"{prefix}{suffix}"
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), path
    except FileExistsError:
        fd, tmp = tempfile.mkstemp(prefix=f"{prefix}.", suffix=suffix, dir=folder)
        return fd, Path(tmp)


def _nan_free(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


class Recorder:
    """The annotated video, written under a temporary name and renamed into place when finalised."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.dest = Path(path)
        if self.dest.suffix.lower() not in (".mp4", ".avi", ".mkv"):
            raise UsageError(f"--record {self.dest}", expected="a .mp4, .avi or .mkv file name",
                             fix="e.g. --record out.mp4")
        target, self._through = output_target(self.dest)  # a FIFO or device is written through
        target.parent.mkdir(parents=True, exist_ok=True)
        self._target = target
        if self._through:
            self.tmp = target
        else:  # a unique name beside the target, with the suffix OpenCV picks the container from
            fd, self.tmp = _partial(target.parent, f".{target.stem}", f".partial{self.dest.suffix}")
            os.close(fd)
        self.fps = fps if fps > 0 else 15.0
        self.fourcc = "mp4v" if self.dest.suffix.lower() == ".mp4" else "MJPG"
        self._w: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, img: np.ndarray) -> None:
        if self._w is None:
            h, w = img.shape[:2]
            self._w = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter.fourcc(*self.fourcc), self.fps, (w, h))
            if not self._w.isOpened():
                raise EdgeLSTMError(f"OpenCV cannot write {self.fourcc} video", path=self.dest,
                                    fix="record to .avi (MJPG), which every OpenCV build writes")
        self._w.write(img)
        self.frames += 1

    def close(self, *, keep: bool = True) -> None:
        """Finalise the video and rename it into place; ``keep=False`` removes it instead."""
        if self._w is not None:
            self._w.release()
            self._w = None
        if self._through:
            return
        if keep and self.frames:
            os.replace(self.tmp, self._target)
        else:
            self.tmp.unlink(missing_ok=True)


def draw_overlay(img: np.ndarray, d: Decision, labels: tuple[str, ...], *, fps: float) -> np.ndarray:
    """The frame with the shown label and probability, top-k bars, FPS, latency and frame age."""
    out = img.copy()
    h, w = out.shape[:2]
    s = max(0.4, min(w, h) / 480)  # text scale: readable at 640x480 and on small test frames
    th = max(1, int(round(s * 2)))
    p = d.prediction
    title = f"{p.label} {p.probability:.0%}" if p.index >= 0 else "(no decision)"
    cv2.rectangle(out, (0, 0), (w, int(34 * s)), (0, 0, 0), -1)
    cv2.putText(out, title, (int(8 * s), int(26 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * s, (255, 255, 255), th,
                cv2.LINE_AA)
    bar_w = int(w * 0.35)
    for row, (i, q) in enumerate(p.top):
        y = int((48 + row * 22) * s)
        cv2.rectangle(out, (int(8 * s), y - int(12 * s)), (int(8 * s) + int(bar_w * q), y + int(4 * s)),
                      (0, 200, 0) if i == p.index else (160, 160, 160), -1)
        cv2.putText(out, f"{labels[i]} {q:.2f}", (int(10 * s), y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * s,
                    (255, 255, 255), max(1, th // 2), cv2.LINE_AA)
    if p.event is not None:  # a detection model's current event, as a red banner above the status line
        cv2.rectangle(out, (0, h - int(52 * s)), (w, h - int(28 * s)), (0, 0, 200), -1)
        cv2.putText(out, f"EVENT {labels[p.event.label]} {p.event.confidence:.0%}", (int(8 * s), h - int(34 * s)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6 * s, (255, 255, 255), max(1, th // 2), cv2.LINE_AA)
    info = f"{fps:4.1f} FPS  {p.timings.total:5.1f} ms  age {d.age_ms:5.1f} ms"
    cv2.putText(out, info, (int(8 * s), h - int(10 * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, (0, 255, 255),
                max(1, th // 2), cv2.LINE_AA)
    return out


def display_available() -> tuple[bool, str]:
    """Whether a window can be shown here, and why not."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    try:
        cv2.namedWindow("edgelstm", cv2.WINDOW_NORMAL)
    except cv2.error as e:
        return False, f"this OpenCV build cannot open windows ({str(e).splitlines()[-1][:80]})"
    return True, ""

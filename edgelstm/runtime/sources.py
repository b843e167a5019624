"""Video sources: camera, file, RTSP/HTTP URL, image folder and the synthetic generator.

A :class:`Source` only opens, reads and closes; :class:`~edgelstm.runtime.capture.Capture` runs it in a
thread, keeps the newest frame, reconnects and detects stalls. ``read()`` returns a
:class:`RawFrame` or None at the source's real end (files, folders); a live source that stops
delivering raises :class:`~edgelstm.errors.SourceError` so that it is reopened.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edgelstm.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class RawFrame:
    image: np.ndarray          # BGR uint8 (H, W, 3), as cameras deliver it
    t_media: float | None = None  # seconds on the source's own clock; None: use the capture time
    truth: int | None = None   # synthetic source: the class being rendered


class Source(Protocol):
    name: str
    live: bool    # frames arrive in real time: keep only the newest, reconnect on failure
    fps: float    # nominal frame rate; 0 when unknown

    def open(self) -> None: ...
    def read(self) -> RawFrame | None: ...
    def close(self) -> None: ...


class Pacer:
    """Sleep so that frame i is released at start + i / fps (a live camera's cadence)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.start = 0.0
        self.count = 0

    def reset(self) -> None:
        self.start, self.count = time.monotonic(), 0

    def wait(self) -> None:
        if self.period:
            delay = self.start + self.count * self.period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -self.period:  # fell behind (a slow read): carry on from now, as a camera would,
                self.start, self.count = time.monotonic(), 0  # rather than release a burst to catch up
        self.count += 1


class CaptureSource:
    """cv2.VideoCapture on a camera index, a video file or a stream URL."""

    def __init__(self, target: int | str, *, realtime: bool = False, timeout_s: float = 5.0) -> None:
        self.target = target
        self.kind = "camera" if isinstance(target, int) else "url" if str(target).startswith(URL_SCHEMES) else "file"
        self.name = f"camera {target}" if self.kind == "camera" else str(target)
        # Files default to every-frame mode (deterministic, nothing dropped); realtime plays them at their fps.
        self.live = self.kind != "file" or realtime
        self.realtime = realtime and self.kind == "file"
        self.timeout_s = timeout_s
        self.fps = 0.0
        self._cap: cv2.VideoCapture | None = None
        self._pacer = Pacer(0.0)
        self._read = 0
        self._claimed = 0

    def open(self) -> None:
        if self.kind == "url":
            ms = int(self.timeout_s * 1000)
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            within = f" (no video from it within {self.timeout_s:g} s)" if self.kind == "url" else ""
            raise SourceError(f"OpenCV cannot open {self.name}{within}", expected=_EXPECTED[self.kind],
                              fix=_FIX[self.kind])
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0
        self._claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind == "file" else 0
        self._cap, self._read = cap, 0
        self._pacer = Pacer(self.fps if self.realtime else 0.0)
        self._pacer.reset()

    def read(self) -> RawFrame | None:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open", fix="call open() first")
        self._pacer.wait()
        ok, img = self._cap.read()
        if not ok or img is None:
            if self.kind == "file":  # the real end, whatever the header claimed
                if self._claimed > self._read:
                    log.warning("%s: the header claims %d frames but the file holds %d; ended at the real end",
                                self.name, self._claimed, self._read)
                return None
            raise SourceError(f"{self.name} delivered no frame (disconnected?)", fix=_FIX[self.kind])
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        t = self._read / self.fps if self.kind == "file" and self.fps else None
        self._read += 1
        return RawFrame(img, t)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


_EXPECTED = {"camera": "a connected camera", "url": "a reachable RTSP/HTTP video stream",
             "file": "a video file OpenCV can decode", "folder": "a folder of images"}
_FIX = {"camera": "check the camera is connected and not in use (ls /dev/video*; are you in the 'video' group?), "
                  "or try --source synthetic",
        "url": "check the URL, credentials and network; try it with `ffplay URL`; "
               "raise --open-timeout for a slow stream",
        "file": "check the file plays (ffplay FILE), or re-encode it: ffmpeg -i IN -c:v mjpeg OUT.avi",
        "folder": "put .jpg/.png images in the folder"}


class ImageFolderSource:
    """The images of a folder in name order, as frames at ``fps`` (media time i / fps)."""

    live = False

    def __init__(self, folder: str | Path, *, fps: float = 15.0) -> None:
        self.folder = Path(folder)
        self.name, self.fps = str(folder), fps
        self._files: list[Path] = []
        self._i = 0

    def open(self) -> None:
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self._files:
            raise SourceError("holds no images", expected=f"files ending in {', '.join(IMAGE_EXTS)}",
                              fix=_FIX["folder"], path=self.folder)
        self._i = 0

    def read(self) -> RawFrame | None:
        while self._i < len(self._files):
            path = self._files[self._i]
            self._i += 1
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("%s: not a readable image; skipped", path)
                continue
            return RawFrame(img, (self._i - 1) / self.fps if self.fps else None)
        return None

    def close(self) -> None:
        self._files = []


class SyntheticSource:
    """The embedded dataset's generator as a camera: 640x480 BGR frames paced at ``fps``.

    Clips of random classes are rendered back to back in a helper thread (a clip is rendered whole),
    so rendering does not disturb the cadence; the preprocess resizes to the model's size.
    """

    live = True

    def __init__(self, *, size: tuple[int, int] = (480, 640), fps: float = 15.0, clip_len: int = 16,
                 seed: int = 0, noise: float = 6.0) -> None:
        self.name, self.fps, self.size = "synthetic", fps, size
        self.clip_len, self.seed, self.noise = clip_len, seed, noise
        self._pacer = Pacer(fps)
        self._queue: queue.Queue[tuple[np.ndarray, int]] = queue.Queue(maxsize=2 * clip_len)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _render(self) -> None:
        from edgelstm.data.synthetic import stream

        for frame, label in stream(size=self.size, clip_len=self.clip_len, seed=self.seed, noise=self.noise):
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            while not self._stop.is_set():
                try:
                    self._queue.put((bgr, label), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                return

    def open(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._render, name="synthetic-render", daemon=True)
        self._thread.start()
        self._first: tuple[np.ndarray, int] | None = self._queue.get(timeout=30.0)  # camera warm-up
        self._pacer.reset()

    def read(self) -> RawFrame | None:
        self._pacer.wait()
        if self._first is not None:
            (img, label), self._first = self._first, None
        else:
            img, label = self._queue.get(timeout=30.0)
        return RawFrame(img, None, label)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


def synthetic_camera_size(model_size: tuple[int, int], long_side: int = 480) -> tuple[int, int]:
    """A camera-like frame size with the model's aspect ratio (the synthetic scenes are not squashed)."""
    scale = max(1, long_side // max(model_size))
    return model_size[0] * scale, model_size[1] * scale


def open_source(spec: str | int | Path, *, realtime: bool = False, fps: float | None = None,
                size: tuple[int, int] = (480, 640), timeout_s: float = 5.0, clip_len: int = 16) -> Source:
    """A source from what a user types: ``0`` (camera), a file, a folder, a URL, or ``synthetic``.

    ``realtime`` plays a file at its own fps (frames the model cannot keep up with are dropped, as
    with a camera); by default a file is read frame by frame, so every decision is reproducible.
    ``fps`` paces the synthetic source and dates the images of a folder (default 15); ``size`` and
    ``clip_len`` shape the synthetic scenes (give the model's clip length so actions last as in training).
    """
    text = str(spec).strip()
    if text == "synthetic":
        return SyntheticSource(size=size, fps=fps or 15.0, clip_len=clip_len)
    if text.isdigit():
        return CaptureSource(int(text), timeout_s=timeout_s)
    if text.startswith(URL_SCHEMES):
        return CaptureSource(text, timeout_s=timeout_s)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, fps=fps or 15.0)
    if path.is_file():
        return CaptureSource(str(path), realtime=realtime)
    raise SourceError(f"no such file or folder '{text}'",
                      expected="a camera index (0), a video file, a folder of images, an rtsp:// or http(s):// URL, "
                               "or 'synthetic'", fix="check the path, or try --source synthetic")

"""Where frames come from, and the thread that takes them: camera, video file and RTSP/HTTP URL sources
(image folders and the synthetic camera are in :mod:`edgelstm.runtime.offline_sources`), and
:class:`Capture`, one thread per source.

A :class:`Source` only opens, reads and closes. ``read()`` returns a :class:`RawFrame` or None at the
source's real end (files, folders); a live source that stops delivering raises
:class:`~edgelstm.errors.SourceError` so that it is reopened. :class:`Capture` runs a source in a
thread: live sources (camera, URL, synthetic, a file played in real time) hand over only the newest
frame, so a frame not taken before the next arrives is dropped and counted and no stale buffered frame
ever reaches the model; other sources (a file read frame by frame, an image folder) go through a small
blocking queue: nothing is dropped, decoding overlaps inference. Live sources are reopened with
bounded back-off, and stalls are detected.
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

from edgelstm.errors import SourceError, UsageError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class RawFrame:
    image: np.ndarray          # BGR uint8 (H, W, 3), as cameras deliver it
    t_media: float | None = None  # seconds on the source's own clock; None: use the capture time
    truth: int | None = None   # synthetic source: the class being rendered
    decode_ms: float | None = None  # time the source spent making this frame (decode), pacing excluded;
                                    # None: the capture thread times the whole read()


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
                              fix=SOURCE_FIX[self.kind])
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
        t0 = time.perf_counter()
        ok, img = self._cap.read()
        if not ok or img is None:
            if self.kind == "file":  # the real end, whatever the header claimed
                if self._claimed > self._read:
                    log.warning("%s: the header claims %d frames but the file holds %d; ended at the real end",
                                self.name, self._claimed, self._read)
                return None
            raise SourceError(f"{self.name} delivered no frame (disconnected?)", fix=SOURCE_FIX[self.kind])
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        decode_ms = (time.perf_counter() - t0) * 1e3
        t = self._read / self.fps if self.kind == "file" and self.fps else None
        self._read += 1
        return RawFrame(img, t, decode_ms=decode_ms)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


_EXPECTED = {"camera": "a connected camera", "url": "a reachable RTSP/HTTP video stream",
             "file": "a video file OpenCV can decode", "folder": "a folder of images"}
SOURCE_FIX = {"camera": "check the camera is connected and not in use (ls /dev/video*; are you in the 'video' group?), "
                  "or try --source synthetic",
        "url": "check the URL, credentials and network; try it with `ffplay URL`; "
               "raise --open-timeout for a slow stream",
        "file": "check the file plays (ffplay FILE), or re-encode it: ffmpeg -i IN -c:v mjpeg OUT.avi",
        "folder": "put .jpg/.png images in the folder"}


def open_source(spec: str | int | Path, *, realtime: bool = False, fps: float | None = None,
                size: tuple[int, int] = (480, 640), timeout_s: float = 5.0, clip_len: int = 16,
                untrimmed: bool = False) -> Source:
    """A source from what a user types: ``0`` (camera), a file, a folder, a URL, or ``synthetic``.

    ``realtime`` plays a file at its own fps (frames the model cannot keep up with are dropped, as
    with a camera); by default a file is read frame by frame, so every decision is reproducible.
    ``fps`` paces the synthetic source and dates the images of a folder (default 15); ``size`` and
    ``clip_len`` shape the synthetic scenes (give the model's clip length so actions last as in training);
    ``untrimmed`` plays the embedded untrimmed set instead (actions at random times between background).
    """
    from edgelstm.runtime.offline_sources import ImageFolderSource, SyntheticSource

    text = str(spec).strip()
    if text == "synthetic":
        return SyntheticSource(size=size, fps=fps or 15.0, clip_len=clip_len, untrimmed=untrimmed)
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


# --- the capture thread ---------------------------------------------------------------------

@dataclass(frozen=True)
class Reconnect:
    """Bounded exponential back-off for reopening a live source."""

    attempts: int = 5      # reopen tries after a failure before giving up (0: fail at once)
    first_s: float = 0.5
    max_s: float = 8.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 0 or self.first_s < 0 or self.max_s < self.first_s or self.factor < 1:
            raise UsageError(f"reconnect policy {self}", expected="attempts >= 0, 0 <= first_s <= max_s, factor >= 1",
                             fix="e.g. --reconnect-attempts 5")

    def delays(self) -> list[float]:
        return [min(self.max_s, self.first_s * self.factor ** i) for i in range(self.attempts)]


@dataclass(frozen=True)
class Frame:
    image: np.ndarray   # BGR uint8 (H, W, 3)
    index: int          # frames read from this source so far, dropped ones included
    t_capture: float    # time.monotonic() just after it was read: the frame's age is measured from here
    t_media: float      # seconds on the source's clock (a file's position); live: the capture time; NaN: none
    epoch: int          # how many times the source was reopened before this frame
    truth: int | None = None
    decode_ms: float = 0.0  # the source's time to make it (decode, conversion; see RawFrame.decode_ms)


class Capture:
    """Reads one source in a thread. ``poll()`` takes the next frame without blocking."""

    def __init__(self, source: Source, *, reconnect: Reconnect = Reconnect(), stall_timeout_s: float = 5.0,
                 wake: threading.Event | None = None, buffer: int = 4) -> None:
        if stall_timeout_s <= 0:
            raise UsageError(f"stall timeout {stall_timeout_s}", expected="seconds > 0", fix="--stall-timeout 5")
        self.source, self.reconnect, self.stall_timeout_s = source, reconnect, stall_timeout_s
        self.live = source.live
        self.wake = wake or threading.Event()
        self.read = self.dropped = self.reconnects = self.stalls = 0
        self.epoch = 0
        self.ended = False
        self.error: SourceError | None = None
        self._lock = threading.Lock()
        self._latest: Frame | None = None
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=buffer)
        self._stop = threading.Event()
        self._reopen = threading.Event()
        self._last_frame = 0.0
        self._stalled = False
        self._thread: threading.Thread | None = None
        self.give_up_s = stall_timeout_s * (reconnect.attempts + 1) + sum(reconnect.delays())

    @property
    def finished(self) -> bool:
        """Ended or failed, and every delivered frame taken."""
        return (self.ended or self.error is not None) and self._latest is None and self._queue.empty()

    def start(self) -> Capture:
        self.source.open()  # errors here reach the caller as they are: a clear SourceError before any frame
        self._last_frame = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"capture {self.source.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(2.0, self.stall_timeout_s))
        self.source.close()

    # --- consumer side --------------------------------------------------------------------
    def poll(self) -> Frame | None:
        if self.live:
            with self._lock:
                frame, self._latest = self._latest, None
            return frame
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def has_frame(self) -> bool:
        return self._latest is not None if self.live else not self._queue.empty()

    def check_stall(self, now: float) -> bool:
        """True once per stall: no frame for ``stall_timeout_s``. Requests a reopen; gives up past a bound."""
        if not self.live or self.finished or self.error is not None:
            return False
        quiet = now - self._last_frame
        if quiet > self.give_up_s:
            self.error = SourceError(f"{self.source.name} stalled: no frame for {quiet:.1f} s, reopening did not help",
                                     fix="check the camera/stream; raise --stall-timeout for a slow source")
            self.wake.set()
            return False
        if quiet > self.stall_timeout_s and not self._stalled:
            self._stalled = True
            self.stalls += 1
            log.warning("%s: no frame for %.1f s (stalled); reopening it", self.source.name, quiet)
            self._reopen.set()
            return True
        return False

    # --- the capture thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if self._reopen.is_set():
                self._reopen.clear()
                if not self._reconnect("stalled"):
                    break
                continue
            t0 = time.perf_counter()
            try:
                raw = self.source.read()
            except Exception as e:  # noqa: BLE001 - SourceError, cv2.error, a queue timeout: all mean "no frame"
                if self._stop.is_set():
                    break
                if not self.live:
                    self.error = e if isinstance(e, SourceError) else SourceError(
                        f"reading {self.source.name} failed ({type(e).__name__}: {e})", fix="check the file")
                    break
                if not self._reconnect(str(e)):
                    break
                continue
            if raw is None:
                self.ended = True
                break
            now = time.monotonic()
            # live: the capture time is the clock; a file without fps has none (NaN: the gate feeds every frame)
            t_media = raw.t_media if raw.t_media is not None else now if self.live else float("nan")
            decode_ms = raw.decode_ms if raw.decode_ms is not None else (time.perf_counter() - t0) * 1e3
            frame = Frame(raw.image, self.read, now, t_media, self.epoch, raw.truth, decode_ms)
            self.read += 1
            self._last_frame, self._stalled = now, False
            self._deliver(frame)
        self.wake.set()

    def _deliver(self, frame: Frame) -> None:
        if self.live:
            with self._lock:
                if self._latest is not None:
                    self.dropped += 1  # the model did not take the previous one in time
                self._latest = frame
            self.wake.set()
            return
        while not self._stop.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
                self.wake.set()
                return
            except queue.Full:
                continue

    def _reconnect(self, why: str) -> bool:
        log.warning("%s failed (%s); reopening", self.source.name, why)
        self.source.close()
        t0 = time.monotonic()
        last = why
        for attempt, delay in enumerate(self.reconnect.delays(), 1):
            if self._stop.wait(delay):
                return False
            try:
                self.source.open()
            except Exception as e:  # noqa: BLE001 - any failure to open is one failed attempt
                last = str(e)
                log.warning("%s: reopen attempt %d/%d failed: %s", self.source.name, attempt,
                            self.reconnect.attempts, last)
                continue
            self.epoch += 1
            self.reconnects += 1
            self._last_frame, self._stalled = time.monotonic(), False
            log.warning("%s: reopened after %.1f s (attempt %d)", self.source.name, time.monotonic() - t0, attempt)
            return True
        self.error = SourceError(f"{self.source.name} failed and did not come back after {self.reconnect.attempts} "
                                 f"reopen attempt(s) over {time.monotonic() - t0:.1f} s (last error: {last})",
                                 fix="check the camera/stream, or allow more --reconnect-attempts")
        return False

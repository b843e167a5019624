"""A capture thread per source: newest frame only, reconnect with back-off, stall detection.

Live sources (camera, URL, synthetic, a file played in real time) hand over only the newest
frame: a frame not taken before the next arrives is dropped and counted, so no stale buffered
frame ever reaches the model. Other sources (a file read frame by frame, an image folder) go
through a small blocking queue: nothing is dropped, decoding overlaps inference.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from edgelstm.errors import SourceError, UsageError
from edgelstm.runtime.sources import Source

log = logging.getLogger(__name__)


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
            frame = Frame(raw.image, self.read, now, t_media, self.epoch, raw.truth)
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

"""Sources that misbehave on cue, and tiny video files written with OpenCV."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgelstm.errors import SourceError
from edgelstm.runtime.sources import RawFrame


def frames(n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8 BGR frames: smooth enough that MJPG keeps them close."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (4, 4, 3), np.uint8), size[::-1], interpolation=cv2.INTER_CUBIC)
    return np.stack([np.roll(base, 2 * i, axis=1) for i in range(n)])


def write_video(path: Path, imgs: np.ndarray, fps: float) -> Path:
    h, w = imgs.shape[1:3]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert wr.isOpened()
    for f in imgs:
        wr.write(f)
    wr.release()
    return path


class ScriptedSource:
    """A live source at ``fps`` whose reads fail, stall or whose reopens fail when told to.

    ``fail_at``: read numbers that raise (a disconnect); ``stall_at``: read numbers that block for
    ``stall_s``; ``bad_opens``: how many reopen attempts fail after each failure.
    """

    live = True

    def __init__(self, *, fps: float = 100.0, n: int = 10_000, fail_at: tuple[int, ...] = (),
                 stall_at: tuple[int, ...] = (), stall_s: float = 0.5, bad_opens: int = 0,
                 size: tuple[int, int] = (8, 8)) -> None:
        self.name, self.fps = "scripted", fps
        self.imgs = frames(64, size)
        self.n, self.fail_at, self.stall_at, self.stall_s = n, fail_at, stall_at, stall_s
        self.bad_opens = bad_opens
        self.reads = self.opens = self.failed_opens = 0
        self._pending_bad = 0
        self.opened = threading.Event()

    def open(self) -> None:
        if self._pending_bad > 0:
            self._pending_bad -= 1
            self.failed_opens += 1
            raise SourceError("scripted: camera not there yet")
        self.opens += 1
        self.opened.set()

    def read(self) -> RawFrame | None:
        time.sleep(1.0 / self.fps)
        i = self.reads
        self.reads += 1
        if i >= self.n:
            return None
        if i in self.fail_at:
            self._pending_bad = self.bad_opens
            raise SourceError("scripted: disconnected")
        if i in self.stall_at:
            time.sleep(self.stall_s)
        return RawFrame(self.imgs[i % len(self.imgs)], None)

    def close(self) -> None:
        pass

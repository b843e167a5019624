"""Sources that are not a camera: the images of a folder, and the embedded dataset's generator as a
live camera (``--source synthetic``). Both follow :class:`~edgelstm.runtime.sources.Source`."""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgelstm.errors import SourceError
from edgelstm.runtime.sources import IMAGE_EXTS, SOURCE_FIX, Pacer, RawFrame

log = logging.getLogger(__name__)


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
                              fix=SOURCE_FIX["folder"], path=self.folder)
        self._i = 0

    def read(self) -> RawFrame | None:
        while self._i < len(self._files):
            path = self._files[self._i]
            self._i += 1
            t0 = time.perf_counter()
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("%s: not a readable image; skipped", path)
                continue
            return RawFrame(img, (self._i - 1) / self.fps if self.fps else None,
                            decode_ms=(time.perf_counter() - t0) * 1e3)
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
                 seed: int = 0, noise: float = 6.0, untrimmed: bool = False) -> None:
        self.name, self.fps, self.size = "synthetic", fps, size
        self.clip_len, self.seed, self.noise = clip_len, seed, noise
        self.untrimmed = untrimmed  # the untrimmed set (labels with background first), for detectors
        self._pacer = Pacer(fps)
        self._queue: queue.Queue[tuple[np.ndarray, int]] = queue.Queue(maxsize=2 * clip_len)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _render(self) -> None:
        from edgelstm.data import synthetic, untrimmed_synth

        frames = untrimmed_synth.stream(size=self.size, fps=self.fps, seed=self.seed) if self.untrimmed else \
            synthetic.stream(size=self.size, clip_len=self.clip_len, seed=self.seed, noise=self.noise)
        for frame, label in frames:
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
        t0 = time.perf_counter()  # rendered ahead in the helper thread: the wait for it, if any
        if self._first is not None:
            (img, label), self._first = self._first, None
        else:
            img, label = self._queue.get(timeout=30.0)
        return RawFrame(img, None, label, decode_ms=(time.perf_counter() - t0) * 1e3)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


def synthetic_camera_size(model_size: tuple[int, int], long_side: int = 480) -> tuple[int, int]:
    """A camera-like frame size with the model's aspect ratio (the synthetic scenes are not squashed)."""
    scale = max(1, long_side // max(model_size))
    return model_size[0] * scale, model_size[1] * scale

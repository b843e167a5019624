"""The pieces ``edgelstm profile`` drives the live loop with: sources, a probe, baselines, memory.

* :class:`ReplaySource` replays pre-rendered 640x480 frames as a camera (paced, newest frame only)
  or as a file (un-paced, nothing dropped). The synthetic camera renders each frame on the fly
  (about 16 ms of CPU per 640x480 frame here), which would steal a core from the model being
  measured; replaying rendered frames keeps capture cheap and identical for every configuration.
* :class:`Probe` is an ``on_decision`` callback that records what the loop's own stats do not:
  the time the loop waited for the next frame between two decisions (capture wait).
* :class:`WindowEngine` runs any per-window or per-frame model behind the engine's interface
  (``step_batch``, ``reset``, ``streams``, ``manifest``), with the engine's preprocessing, so a
  baseline (clip re-inference, PyTorch eager) goes through the very same loop as the runtime.
* :class:`PeakRSS` samples the process's resident memory in a thread.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from edgelstm.runtime.engine import Prediction, Timings, check_frame
from edgelstm.runtime.frames import softmax, top_k
from edgelstm.runtime.loop import Decision
from edgelstm.runtime.samples import Samples
from edgelstm.runtime.sources import Frame, Pacer, RawFrame
from edgelstm.spec import ColourOrder, Manifest, ResizeMode

log = logging.getLogger(__name__)

CAMERA_SIZE = (480, 640)  # (H, W) of the replayed synthetic camera
_INTERP = {ResizeMode.BILINEAR: cv2.INTER_LINEAR, ResizeMode.AREA: cv2.INTER_AREA,
           ResizeMode.NEAREST: cv2.INTER_NEAREST}


def render_frames(count: int = 32, *, size: tuple[int, int] = CAMERA_SIZE, seed: int = 0) -> list[np.ndarray]:
    """``count`` BGR uint8 frames of the embedded synthetic stream, rendered once."""
    from edgelstm.data.synthetic import stream

    it = stream(size=size, clip_len=16, seed=seed)
    return [cv2.cvtColor(next(it)[0], cv2.COLOR_RGB2BGR) for _ in range(count)]


class ReplaySource:
    """Pre-rendered frames, looped. ``live``: paced at ``fps`` like a camera; else read back to back."""

    def __init__(self, frames: Sequence[np.ndarray], *, fps: float, live: bool, offset: int = 0,
                 limit: int | None = None, name: str = "synthetic (replayed)") -> None:
        self.frames = list(frames)
        self.fps, self.live, self.name = fps, live, name
        self.offset, self.limit = offset, limit
        self._pacer = Pacer(fps if live else 0.0)
        self._i = 0

    def open(self) -> None:
        self._i = 0
        self._pacer.reset()

    def read(self) -> RawFrame | None:
        if self.limit is not None and self._i >= self.limit:
            return None
        self._pacer.wait()
        t0 = time.perf_counter()
        img = self.frames[(self.offset + self._i) % len(self.frames)]  # rendered once: no decoding
        t = None if self.live else self._i / self.fps if self.fps else None
        self._i += 1
        return RawFrame(img, t, decode_ms=(time.perf_counter() - t0) * 1e3)

    def close(self) -> None:
        pass


@dataclass
class Probe:
    """on_decision: capture wait per decision batch (end of the previous decision -> start of this one)."""

    wait_ms: list[float] = field(default_factory=list)
    first_ms: float = float("nan")  # total of the first decision this probe saw
    _last_tm: Any = None
    _end: float = 0.0
    downstream: Callable[[Decision], None] | None = None

    def __call__(self, d: Decision) -> None:
        now = time.perf_counter()
        tm = d.prediction.timings
        if tm is not self._last_tm:  # a new batch (the predictions of one batch share their Timings)
            if self._last_tm is None:
                self.first_ms = tm.total
            else:
                self.wait_ms.append(max(0.0, (now - tm.total / 1e3 - self._end) * 1e3))
            self._last_tm = tm
        if self.downstream is not None:
            self.downstream(d)
        self._end = time.perf_counter()


class WindowModel(Protocol):
    """A baseline model: frames (n, T, H, W, 3) uint8 in the graph's colour order -> logits (n, K).

    ``T`` is 1 for a streaming model (which keeps its own state per stream id and resets it in
    ``reset``), the window so far (up to the clip length) for clip re-inference.
    """

    def __call__(self, window: np.ndarray, ids: list[int]) -> np.ndarray: ...
    def reset(self, stream: int | None) -> None: ...


class WindowEngine:
    """Duck-types :class:`~edgelstm.runtime.engine.Engine` for ``run_loop`` around a :class:`WindowModel`.

    Preprocessing matches the engine's (resize straight into a uint8 buffer, channel swap when the
    model's order differs); each stream keeps a ring of its last ``window`` frames.
    """

    def __init__(self, manifest: Manifest, model: WindowModel, *, streams: int = 1, window: int = 1,
                 colour: ColourOrder | None = None, info: dict[str, Any] | None = None) -> None:
        if manifest.preprocess is None:
            raise ValueError("WindowEngine needs a frame model")
        self.manifest, self.model, self.streams, self.window = manifest, model, streams, window
        self.labels = manifest.labels
        self.size = manifest.preprocess.size
        self.colour = colour or manifest.preprocess.colour_order
        self._interp = _INTERP[manifest.preprocess.resize]
        self._ring = np.zeros((streams, window, *self.size, 3), np.uint8)  # (S, T, H, W, 3), oldest first
        self._count = np.zeros(streams, np.int64)
        self.info: dict[str, Any] = dict(info or {})
        self.inference_precision = str(self.info.get("inference_precision", ""))

    def reset(self, stream: int | None = None) -> None:
        self._count[slice(None) if stream is None else stream] = 0
        self.model.reset(stream)

    def step(self, frame: np.ndarray, stream: int = 0) -> Prediction:
        return self.step_batch([frame], [stream])[0]

    def step_batch(self, frames: Sequence[np.ndarray], streams: Sequence[int] | None = None,
                   *, colour: ColourOrder = ColourOrder.BGR) -> list[Prediction]:
        t0 = time.perf_counter_ns()
        ids = list(range(len(frames))) if streams is None else [int(s) for s in streams]
        for s, frame in zip(ids, frames):
            self._push(s, frame, colour)
        filled = int(min(self._count[ids].min(), self.window))
        window = self._ring[ids, self.window - filled:]  # (n, T', H, W, 3): the last T' frames, oldest first
        t1 = time.perf_counter_ns()
        logits = np.asarray(self.model(window, ids), np.float32)  # (n, K)
        t2 = time.perf_counter_ns()
        probs = softmax(logits)
        preds = []
        zero = Timings(0.0, 0.0, 0.0, 0.0, 0.0)
        for i, s in enumerate(ids):
            j = int(probs[i].argmax())
            preds.append(Prediction(s, j, self.labels[j], float(probs[i, j]), probs[i], logits[i],
                                    tuple((k, float(probs[i, k])) for k in top_k(probs[i], 5)), zero))
        t3 = time.perf_counter_ns()
        tm = Timings(preprocess=(t1 - t0) / 1e6, encoder=0.0, step=(t2 - t1) / 1e6, postprocess=(t3 - t2) / 1e6,
                     total=(t3 - t0) / 1e6)
        return [Prediction(p.stream, p.index, p.label, p.probability, p.probabilities, p.logits, p.top, tm)
                for p in preds]

    def _push(self, s: int, frame: np.ndarray, colour: ColourOrder) -> None:
        check_frame(frame)
        ring = self._ring[s]
        if self.window > 1:
            ring[:-1] = ring[1:]  # shift the window by one frame (T-1 small frames: cheap next to the model)
        dst = ring[-1]
        h, w = self.size
        if frame.shape[:2] == (h, w):
            np.copyto(dst, frame)
        else:
            cv2.resize(np.ascontiguousarray(frame), (w, h), dst=dst, interpolation=self._interp)
        if colour != self.colour:
            cv2.cvtColor(dst, cv2.COLOR_BGR2RGB, dst=dst)
        self._count[s] += 1


class PeakRSS:
    """Resident memory of this process, sampled every ``period_s`` in a thread (psutil), in bytes."""

    def __init__(self, period_s: float = 0.02) -> None:
        import psutil

        self._proc = psutil.Process()
        self.period_s = period_s
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def stats(values: Sequence[float] | Samples) -> dict[str, float]:
    """p50, p90, p99 and mean of ``values`` (NaN when empty), rounded to microseconds."""
    if not len(values):
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "mean": math.nan}
    a = np.asarray(values, np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": round(float(p50), 4), "p90": round(float(p90), 4), "p99": round(float(p99), 4),
            "mean": round(float(a.mean()), 4)}


__all__ = ["CAMERA_SIZE", "Frame", "PeakRSS", "Probe", "ReplaySource", "WindowEngine", "WindowModel",
           "render_frames", "stats"]

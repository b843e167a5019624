"""Soak: stream many frames through the runtime and check memory, state and latency stay put.

:func:`soak` runs one engine with two streams, the synthetic camera (rendered live, un-paced) and a
video file that loops forever, through :func:`~edgelstm.runtime.loop.run_loop` until ``frames``
decisions. It reports RSS at start and end, the largest |h| and |c| the LSTM state reached, latency
p50/p99 in the first and last windows of frames (drift), resets and frames dropped.
``benchmarks/soak.py`` runs it for 100,000+ frames; a test runs a few thousand with the same bounds.
"""
from __future__ import annotations

import gc
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.loop import Decision, Rate, run_loop
from edgelstm.runtime.offline_sources import SyntheticSource
from edgelstm.runtime.sources import CaptureSource, RawFrame
from edgelstm.spec import C_IN, H_IN

log = logging.getLogger(__name__)

FRAMES_PER_10_MIN = 18_000  # at 30 fps


class LoopingFile:
    """A video file read frame by frame (nothing dropped), reopened at its end, forever."""

    live = False

    def __init__(self, path: str | Path) -> None:
        self.inner = CaptureSource(str(path))
        self.name, self.fps = f"{path} (looping)", 0.0
        self.loops = 0
        self._offset = 0.0

    def open(self) -> None:
        self.inner.open()
        self.fps = self.inner.fps

    def read(self) -> RawFrame | None:
        raw = self.inner.read()
        if raw is None:  # the end: start again, as a looping playlist does (media time keeps running)
            self.loops += 1
            self._offset += self.inner._read / self.fps if self.fps else 0.0
            self.inner.close()
            self.inner.open()
            raw = self.inner.read()
            if raw is None:
                return None
        t = None if raw.t_media is None else raw.t_media + self._offset
        return RawFrame(raw.image, t, raw.truth, raw.decode_ms)

    def close(self) -> None:
        self.inner.close()


def write_test_video(path: str | Path, *, frames: int = 90, size: tuple[int, int] = (480, 640),
                     fps: float = 30.0) -> Path:
    """An MJPEG .avi of the synthetic stream at ``size`` (H, W): a camera-like file to loop."""
    from edgelstm.data.synthetic import stream

    path = Path(path)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (size[1], size[0]))
    it = stream(size=size, clip_len=16, seed=1)
    for _ in range(frames):
        w.write(cv2.cvtColor(next(it)[0], cv2.COLOR_RGB2BGR))
    w.release()
    return path


@dataclass
class SoakReport:
    frames: int
    seconds: float
    rss_start_mb: float
    rss_end_mb: float
    loop_stats_mb: float                # what LoopStats's fixed sample rings hold (does not grow with frames)
    max_abs_h: float
    max_abs_c: float
    window: int                         # frames in each of the first/last latency windows
    first: dict[str, float]             # latency p50/p99 (ms) over the first ``window`` decisions
    last: dict[str, float]
    dropped: int
    resets: dict[str, int]
    file_loops: int
    per_stream: dict[str, int] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    @property
    def growth_without_stats_mb(self) -> float:
        """RSS growth (LoopStats's rings are allocated before the start mark, so nothing to subtract)."""
        return self.rss_growth_mb

    @property
    def drift(self) -> float:
        """Last window's p50 over the first's."""
        return self.last["p50"] / self.first["p50"] if self.first["p50"] else math.nan

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rss_growth_mb": round(self.rss_growth_mb, 2),
                "growth_without_stats_mb": round(self.growth_without_stats_mb, 2), "drift_p50": round(self.drift, 3)}


def soak(bundle: str | Path | Bundle, *, frames: int = 100_000, video: str | Path | None = None,
         device: str = "cpu", backend: str | None = None, precision: str | None = None,
         synthetic_size: tuple[int, int] = (120, 160), window: int | None = None) -> SoakReport:
    """Run ``frames`` decisions over two streams (synthetic camera, looping file); see the module docstring."""
    import psutil

    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if video is None:
        raise ValueError("soak needs a video file to loop (write_test_video makes one)")
    eng = Engine.load(b, device=device, backend=backend, precision=precision, streams=2)
    looping = LoopingFile(video)
    sources: list[Any] = [SyntheticSource(size=synthetic_size, fps=0.0, seed=3), looping]
    for _ in range(20):  # warm-up outside the measured window
        eng.step_batch([np.zeros((*synthetic_size, 3), np.uint8)] * 2)
    eng.reset()
    peak = {H_IN: 0.0, C_IN: 0.0}
    totals = np.zeros(frames, np.float64)  # preallocated: the probe itself must not grow
    n = [0]
    per_stream = [0, 0]
    proc = psutil.Process()
    settle = min(1000, frames // 10)  # RSS "start" after the first decisions: threads, decoders, arenas are up
    rss: dict[str, int] = {}

    def on_decision(d: Decision) -> None:
        per_stream[d.stream] += 1
        if d.number == settle:
            rss["start"] = proc.memory_info().rss
        if d.prediction.timings is not getattr(on_decision, "last", None):
            on_decision.last = d.prediction.timings  # type: ignore[attr-defined]
            totals[n[0]] = d.prediction.timings.total
            n[0] += 1
            for s in (0, 1):
                for k, arr in zip((H_IN, C_IN), eng.state(s)):
                    v = float(np.abs(arr).max())
                    peak[k] = v if not v == v or not peak[k] == peak[k] else max(peak[k], v)  # NaN sticks

    gc.collect()
    t0 = time.monotonic()
    st = run_loop(eng, sources, on_decision=on_decision, max_frames=frames, rate=Rate.ALL, stall_timeout_s=30.0)
    seconds = time.monotonic() - t0
    gc.collect()
    rss1 = proc.memory_info().rss
    rss0 = rss.get("start", rss1)
    stats_bytes = st.nbytes  # LoopStats's sample rings: fixed at construction, allocated before RSS "start"
    totals = totals[:n[0]]
    if st.error:
        raise RuntimeError(f"soak: a source failed: {st.error}")
    w = window or max(1, min(FRAMES_PER_10_MIN, len(totals) // 5))
    return SoakReport(frames=st.frames_decided, seconds=round(seconds, 2), rss_start_mb=round(rss0 / 2**20, 2),
                      rss_end_mb=round(rss1 / 2**20, 2), loop_stats_mb=round(stats_bytes / 2**20, 2), max_abs_h=peak[H_IN], max_abs_c=peak[C_IN], window=w,
                      first=_pp(list(totals[:w])), last=_pp(list(totals[-w:])), dropped=st.frames_dropped,
                      resets=dict(st.resets), file_loops=looping.loops,
                      per_stream={"synthetic": per_stream[0], "file": per_stream[1]},
                      device={k: eng.info[k] for k in ("backend", "precision", "device", "threads")}
                      | {"inference_precision": eng.inference_precision})


def _pp(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4)}

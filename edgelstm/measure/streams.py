"""N streams on one engine (encoder batched across streams) against N engines, each in its own loop thread."""
from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.loop import LoopStats
from edgelstm.measure.config import Interrupted, ProfileConfig, Settings
from edgelstm.measure.harness import PeakRSS, ReplaySource, stats
from edgelstm.measure.loop_measure import first_frame, run_measured, sources
from edgelstm.measure.report import StreamsRow


def measure_streams(b: Bundle, cfg: ProfileConfig, n: int, s: Settings, camera: list[np.ndarray], *,
                    threads: int | None = None, seconds: float | None = None) -> list[StreamsRow]:
    """N camera-rate streams on one engine (encoder batched) against N engines, each in its own loop thread."""
    seconds = seconds or max(2.0, s.frames / s.fps)
    load = dict(device=cfg.device, backend=str(cfg.backend), precision=str(cfg.precision), threads=threads)
    out = []
    with PeakRSS() as rss:
        eng = Engine.load(b, streams=n, **load)  # type: ignore[arg-type]
        for _ in range(s.warmup):
            eng.step_batch([camera[0] if camera else first_frame(s)] * n)
        eng.reset()
        st, _ = run_measured(eng, sources(s, camera, live=True, n=n), seconds=seconds, abort=s.abort)
        fast, _ = run_measured(eng, sources(s, camera, live=False, n=n), max_frames=n * max(s.frames, 30),
                               abort=s.abort)
    out.append(_streams_row(cfg, "one engine", n, s, st, [fast], rss.peak))
    del eng
    gc.collect()
    with PeakRSS() as rss:
        engines = [Engine.load(b, streams=1, **load) for _ in range(n)]  # type: ignore[arg-type]
        for e in engines:
            for _ in range(s.warmup):
                e.step(camera[0] if camera else first_frame(s))
        paced = _threaded(engines, s, camera, live=True, seconds=seconds)
        unpaced = _threaded(engines, s, camera, live=False, max_frames=max(s.frames, 30))
    merged = _merge(paced)
    out.append(_streams_row(cfg, f"{n} engines", n, s, merged, unpaced, rss.peak))
    return out


def _threaded(engines: list[Engine], s: Settings, camera: list[np.ndarray], *, live: bool,
              seconds: float | None = None, max_frames: int | None = None) -> list[LoopStats]:
    results: list[Any] = [None] * len(engines)

    def run(i: int) -> None:
        src = sources(s, camera, live=live)[0]
        if isinstance(src, ReplaySource):
            src.offset = 7 * i
        try:
            results[i] = run_measured(engines[i], [src], seconds=seconds, max_frames=max_frames, abort=s.abort)[0]
        except Interrupted:
            pass

    ts = [threading.Thread(target=run, args=(i,), name=f"profile-engine-{i}") for i in range(len(engines))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if s.abort is not None and s.abort.is_set():
        raise Interrupted
    return [r for r in results if r is not None]


def _merge(stats_list: list[LoopStats]) -> LoopStats:
    out = LoopStats()
    for st in stats_list:
        out.frames_read += st.frames_read
        out.frames_decided += st.frames_decided
        out.frames_dropped += st.frames_dropped
        out.ages_ms += st.ages_ms
        out.stages_ms["total"] += st.stages_ms["total"]
        out.batch_sizes += st.batch_sizes
        out.wall_s = max(out.wall_s, st.wall_s)
    return out


def _aggregate_fps(stats_list: Sequence[LoopStats]) -> float:
    span = max(st.last_decision for st in stats_list) - min(st.first_decision for st in stats_list)
    decided = sum(st.frames_decided for st in stats_list)
    return (decided - len(stats_list)) / span if span > 0 else 0.0


def _streams_row(cfg: ProfileConfig, layout: str, n: int, s: Settings, st: LoopStats, fast: Sequence[LoopStats],
                 peak: int) -> StreamsRow:
    return StreamsRow(label=cfg.label, layout=layout, streams=n, fps_per_stream=s.fps, offered_fps=n * s.fps,
                      decided_fps=round(st.frames_decided / st.wall_s, 1) if st.wall_s else 0.0,
                      capacity_fps=round(_aggregate_fps(fast), 1), read=st.frames_read, decided=st.frames_decided,
                      dropped=st.frames_dropped, age_ms=stats(st.ages_ms), latency_ms=stats(st.stages_ms["total"]),
                      mean_batch=round(st.batch_sizes.lifetime_mean, 2) if st.batch_sizes.count else 0.0,
                      peak_rss_mb=round(peak / 2**20, 1))

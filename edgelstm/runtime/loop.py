"""The live loop: sources -> capture threads -> temporal gate -> engine -> on_decision.

``run_loop`` is the library object behind ``edgelstm demo`` and ``edgelstm profile``. It feeds the
LSTM at the rate it was trained on (``Temporal.train_fps``; extra frames from a faster camera are
skipped), resets a stream's state on the manifest's reset policy (a gap longer than
``max_gap_s``, a reconnect, every N frames) instead of feeding it a jump it never saw in
training, batches the streams that have a frame ready through one encoder call, and records
per-stage timings and frame ages in :class:`LoopStats`: bounded (lifetime counters and a
fixed ring of the last ``window`` samples per stage), so a loop that runs for weeks keeps flat memory.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from edgelstm.errors import SourceError, UsageError
from edgelstm.runtime.engine import Engine, Prediction
from edgelstm.runtime.samples import DEFAULT_CAPACITY, Samples
from edgelstm.runtime.sources import Capture, Frame, Reconnect, Source
from edgelstm.spec import Temporal

log = logging.getLogger(__name__)

# decode: the source's read, in the capture thread (overlapped with the model; not part of total);
# preprocess..postprocess: the engine's stages of the decision; total: the engine's whole step_batch
STAGES = ("decode", "preprocess", "encoder", "step", "postprocess", "total")


class Rate(StrEnum):
    TRAINED = "trained"  # feed frames at the manifest's train_fps, skip the extras
    ALL = "all"          # feed every frame the source delivers (a source already at the trained rate)


@dataclass(frozen=True)
class Decision:
    number: int            # decisions so far on this loop (all streams)
    stream: int
    frame: Frame
    prediction: Prediction
    age_ms: float          # now - frame.t_capture when the decision was made
    reset: str             # why the state was reset before this frame ("" if not): gap, reconnect, every_frames


class TemporalGate:
    """Decides, per frame of one stream, whether to feed it and whether to reset the state first."""

    def __init__(self, temporal: Temporal, rate: Rate = Rate.TRAINED) -> None:
        self.t = temporal
        self.period = 1.0 / temporal.train_fps if rate == Rate.TRAINED and temporal.train_fps > 0 else 0.0
        self.tolerance = 0.25 * self.period  # camera timestamps jitter; do not skip a frame that is merely early
        self.last_fed: float | None = None
        self.next_due = 0.0
        self.epoch = 0
        self.fed_since_reset = 0

    def admit(self, t_media: float, epoch: int) -> tuple[bool, str]:
        """(feed it?, reset reason or ""). A NaN ``t_media`` (a file without fps) feeds every frame."""
        reason = ""
        new_segment = self.last_fed is None
        clock = t_media == t_media  # not NaN
        if not new_segment:
            if epoch != self.epoch:
                new_segment, reason = True, "reconnect" if self.t.reset.on_reconnect else ""
            elif clock and self.last_fed is not None and self.last_fed == self.last_fed:
                if t_media < self.last_fed - 1e-6:
                    new_segment, reason = True, "time went backwards"
                elif self.t.reset.max_gap_s > 0 and t_media - self.last_fed > self.t.reset.max_gap_s:
                    new_segment, reason = True, "gap"
        self.epoch = epoch
        if clock and self.period:
            if not new_segment and t_media < self.next_due - self.tolerance:
                return False, ""  # sooner than the trained rate: skip
            if new_segment:
                self.next_due = t_media
            # Keep the cadence on schedule (the long-run rate stays train_fps); after a late frame, restart from it.
            late = t_media - self.next_due >= self.period
            self.next_due = t_media + self.period if late else self.next_due + self.period
        if not reason and self.t.reset.every_frames and self.fed_since_reset >= self.t.reset.every_frames:
            reason = "every_frames"
        if reason:
            self.fed_since_reset = 0
        self.last_fed = t_media
        self.fed_since_reset += 1
        return True, reason


@dataclass
class LoopStats:
    """What the loop did: lifetime counters, and the last ``window`` samples of each timing (a ring).

    Percentiles (``summary()``, ``percentile``) cover the retained window (the newest ``window``
    decisions); counts, ``mean_fps`` and each store's ``count``/``lifetime_mean``/``peak`` cover the whole run.
    Memory is fixed at construction: nothing grows per decision.
    """

    frames_read: int = 0       # delivered by the sources (dropped ones included)
    frames_decided: int = 0    # fed to the model
    frames_dropped: int = 0    # overwritten by a newer frame before the loop took them (live sources)
    frames_skipped: int = 0    # taken but not fed: faster than the trained rate
    reconnects: int = 0
    stalls: int = 0
    resets: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    window: int = DEFAULT_CAPACITY  # samples kept per store for percentiles
    stages_ms: dict[str, Samples] = field(default_factory=dict)
    ages_ms: Samples = field(default_factory=Samples)
    output_ms: Samples = field(default_factory=Samples)  # time spent in on_decision (overlay, writing)
    batch_sizes: Samples = field(default_factory=Samples)
    first_decision: float = 0.0  # time.monotonic() of the first and last decisions (for the mean FPS)
    last_decision: float = 0.0
    ended: str = ""            # why the loop stopped: "end of source", "max frames", "stopped", an error
    error: str = ""

    def __post_init__(self) -> None:
        if not self.stages_ms:
            self.stages_ms = {s: Samples(self.window) for s in STAGES}
        if self.window != DEFAULT_CAPACITY:
            self.ages_ms, self.output_ms, self.batch_sizes = (Samples(self.window) for _ in range(3))

    def percentile(self, values: Sequence[float] | Samples, q: float) -> float:
        if isinstance(values, Samples):
            return values.percentile(q)
        return float(np.percentile(values, q)) if len(values) else float("nan")

    @property
    def mean_fps(self) -> float:
        """Decisions per second between the first and the last (start-up excluded)."""
        span = self.last_decision - self.first_decision
        return (self.frames_decided - 1) / span if self.frames_decided > 1 and span > 0 else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes the sample stores hold (fixed at construction)."""
        return sum(v.capacity * 8 for v in (*self.stages_ms.values(), self.ages_ms, self.output_ms,
                                             self.batch_sizes))

    def summary(self) -> dict[str, Any]:
        total = self.stages_ms["total"]
        return {
            "frames_read": self.frames_read, "frames_decided": self.frames_decided,
            "frames_dropped": self.frames_dropped, "frames_skipped": self.frames_skipped,
            "reconnects": self.reconnects, "stalls": self.stalls, "resets": dict(self.resets),
            "latency_ms": {s: {"p50": _r(self.percentile(v, 50)), "p99": _r(self.percentile(v, 99))}
                           for s, v in self.stages_ms.items()},
            "age_ms": {"p50": _r(self.percentile(self.ages_ms, 50)), "p99": _r(self.percentile(self.ages_ms, 99))},
            "p50_ms": _r(self.percentile(total, 50)), "p99_ms": _r(self.percentile(total, 99)),
            "mean_ms": _r(total.lifetime_mean), "max_ms": _r(total.peak if total.count else float("nan")),
            "percentile_window": len(total),
            "mean_fps": _r(self.mean_fps),
            "wall_s": _r(self.wall_s), "ended": self.ended, "error": self.error,
        }


def _r(x: float) -> float:
    return round(x, 3) if np.isfinite(x) else float("nan")


def run_loop(engine: Engine, sources: Source | Sequence[Source], *,
             on_decision: Callable[[Decision], None] | None = None, stop_event: threading.Event | None = None,
             max_frames: int | None = None, rate: Rate | str = Rate.TRAINED, temporal: Temporal | None = None,
             reconnect: Reconnect = Reconnect(), stall_timeout_s: float = 5.0) -> LoopStats:
    """Run until the sources end, ``stop_event`` is set, ``max_frames`` decisions are made, or a source fails.

    Source ``i`` is engine stream ``i``. A source that cannot be opened raises :class:`SourceError`
    before anything runs; one that fails for good mid-run stops the loop with ``stats.error`` set
    (the caller still gets the stats, and decides whether that is an error).
    """
    srcs = [sources] if not isinstance(sources, Sequence) else list(sources)
    if not srcs or len(srcs) > engine.streams:
        raise UsageError(f"{len(srcs)} source(s) for an engine with {engine.streams} stream(s)",
                         expected="at least one source, at most one per stream", fix="load the engine with streams=N")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"max frames {max_frames}", expected="an integer >= 1", fix="pass --max-frames 100")
    stop = stop_event or threading.Event()
    temporal = temporal or engine.manifest.temporal
    wake = threading.Event()
    caps: list[Capture] = []
    stats = LoopStats()
    try:
        for s in srcs:
            caps.append(Capture(s, reconnect=reconnect, stall_timeout_s=stall_timeout_s, wake=wake).start())
        gates = [TemporalGate(temporal, Rate(rate)) for _ in caps]
        t0 = time.monotonic()
        _loop(engine, caps, gates, stats, on_decision, stop, wake, max_frames)
        stats.wall_s = time.monotonic() - t0
    finally:
        for c in caps:
            c.stop()
        for c in caps:
            stats.frames_read += c.read
            stats.frames_dropped += c.dropped
            stats.reconnects += c.reconnects
            stats.stalls += c.stalls
    return stats


def _loop(engine: Engine, caps: list[Capture], gates: list[TemporalGate], stats: LoopStats,
          on_decision: Callable[[Decision], None] | None, stop: threading.Event, wake: threading.Event,
          max_frames: int | None) -> None:
    while True:
        if stop.is_set():
            stats.ended = "stopped"
            return
        wake.clear()
        if all(not c.live for c in caps) and any(not c.finished and not c.has_frame() and c.error is None
                                                 for c in caps):
            # Files and folders only: step the streams in lockstep so the encoder batch is full
            # (nothing is lost by waiting: no frame of theirs goes stale).
            wake.wait(0.05)
            continue
        ready: list[tuple[int, Frame, str]] = []
        now = time.monotonic()
        for i, cap in enumerate(caps):
            frame = cap.poll()
            if frame is None:
                cap.check_stall(now)
                continue
            feed, reason = gates[i].admit(frame.t_media, frame.epoch)
            if not feed:
                stats.frames_skipped += 1
                continue
            if reason:
                engine.reset(i)
                stats.resets[reason] += 1
            ready.append((i, frame, reason))
        if max_frames is not None:
            ready = ready[: max_frames - stats.frames_decided]
        if ready:
            preds = engine.step_batch([f.image for _, f, _ in ready], [i for i, _, _ in ready])
            stats.batch_sizes.append(len(ready))
            for (i, frame, reason), pred in zip(ready, preds):
                _record(stats, pred, frame, i, reason, on_decision)
                if pred.reset:
                    stats.resets[pred.reset] += 1
            if max_frames is not None and stats.frames_decided >= max_frames:
                stats.ended = "max frames"
                return
            continue
        failed = [c for c in caps if c.error is not None]
        if failed:
            stats.ended, stats.error = "source failed", str(failed[0].error)
            log.error("%s", failed[0].error)
            return
        if all(c.finished for c in caps):
            stats.ended = "end of source"
            return
        wake.wait(0.05)


def _record(stats: LoopStats, pred: Prediction, frame: Frame, stream: int, reason: str,
            on_decision: Callable[[Decision], None] | None) -> None:
    now = time.monotonic()
    age = (now - frame.t_capture) * 1e3
    if not stats.frames_decided:
        stats.first_decision = now
    stats.last_decision = now
    stats.frames_decided += 1
    tm, st = pred.timings, stats.stages_ms
    st["decode"].append(frame.decode_ms)
    st["preprocess"].append(tm.preprocess)
    st["encoder"].append(tm.encoder)
    st["step"].append(tm.step)
    st["postprocess"].append(tm.postprocess)
    st["total"].append(tm.total)
    stats.ages_ms.append(age)
    if on_decision is not None:
        t = time.perf_counter()
        on_decision(Decision(stats.frames_decided - 1, stream, frame, pred, age, reason))
        stats.output_ms.append((time.perf_counter() - t) * 1e3)


__all__ = ["Decision", "LoopStats", "Rate", "TemporalGate", "run_loop", "SourceError"]

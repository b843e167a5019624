"""Measuring one configuration in the live loop: cold first inference, warm-up, a camera-rate run,
an un-paced run for throughput, and the model call alone for the loop's overhead."""
from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from edgelstm.errors import UsageError
from edgelstm.measure.config import Interrupted, Settings
from edgelstm.measure.harness import PeakRSS, Probe, ReplaySource, stats
from edgelstm.measure.report import Row
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.loop import LoopStats, Rate, run_loop
from edgelstm.runtime.sources import Source, open_source
from edgelstm.runtime.stream import open_model
from edgelstm.spec import FEATURES, FRAMES, Role


def sources(s: Settings, camera: list[np.ndarray], *, live: bool, n: int = 1, limit: int | None = None) -> list[Source]:
    if s.source == "synthetic":
        return [ReplaySource(camera, fps=s.fps, live=live, offset=7 * i, limit=limit) for i in range(n)]
    return [open_source(s.source, realtime=live, fps=s.fps) for _ in range(n)]


def run_measured(engine: Any, sources: Sequence[Source], *, max_frames: int | None = None,
                 seconds: float | None = None, abort: threading.Event | None = None) -> tuple[LoopStats, Probe]:
    """run_loop with a :class:`Probe`, every frame fed (rate 'all'), until ``max_frames`` or ``seconds``.

    ``abort`` set (from any thread) stops the loop within 50 ms and raises :class:`Interrupted`.
    """
    probe = Probe()
    stop = threading.Event()
    deadline = time.monotonic() + seconds if seconds else math.inf

    def watch() -> None:
        while not stop.wait(0.05):
            if time.monotonic() >= deadline or (abort is not None and abort.is_set()):
                stop.set()

    watcher = threading.Thread(target=watch, name="profile-timer", daemon=True)
    watcher.start()
    try:
        st = run_loop(cast(Engine, engine), list(sources), on_decision=probe, stop_event=stop, max_frames=max_frames,
                      rate=Rate.ALL, stall_timeout_s=10.0)
    finally:
        stop.set()
        watcher.join()
    if abort is not None and abort.is_set():
        raise Interrupted
    if st.error:
        raise UsageError(f"the source failed while profiling: {st.error}", fix="check --source")
    return st, probe


def measure(b: Bundle, eng: Any, s: Settings, camera: list[np.ndarray], *, label: str, mode: str, device: str,
             bare: Callable[[], object] | None = None, window: int = 1, note: str = "", load_s: float = 0.0) -> Row:
    gc.collect()
    with PeakRSS() as rss:
        frame = camera[0] if camera else first_frame(s)
        first = eng.step(frame).timings.total  # cold: the first inference on a freshly loaded model
        for i in range(s.warmup + window):
            eng.step(camera[i % len(camera)] if camera else frame)
        st, probe = run_measured(eng, sources(s, camera, live=True), max_frames=s.frames, abort=s.abort)
        fast, _ = run_measured(eng, sources(s, camera, live=False), max_frames=max(s.frames, 30), abort=s.abort)
        bare_ms = _bare(eng, bare, s.frames, s.abort)
    stages = {k: stats(v) for k, v in st.stages_ms.items()}
    stages["capture_wait"] = stats(probe.wait_ms)
    info = eng.info
    return Row(label=label, mode=mode, backend=str(info.get("backend", "")), precision=str(info.get("precision", "")),
               device=device, inference_precision=str(eng.inference_precision), graph=str(info.get("graph", "")),
               threads=int(info.get("threads") or 0), window=window, load_s=round(load_s, 3), first_ms=round(first, 4),
               stages=stages, age_ms=stats(st.ages_ms), bare_ms=bare_ms, fps=round(fast.mean_fps, 1),
               paced_fps=round(st.mean_fps, 1), frames=st.frames_decided, dropped=st.frames_dropped,
               peak_rss_mb=round(rss.peak / 2**20, 1), model_bytes=int(info.get("model_bytes") or _bytes(b, eng)),
               totals_ms=[round(x, 4) for x in st.stages_ms["total"]], unpaced_ms=stats(fast.stages_ms["total"]),
               note=note)


def first_frame(s: Settings) -> np.ndarray:
    src = open_source(s.source)
    src.open()
    try:
        raw = src.read()
    finally:
        src.close()
    if raw is None:
        raise UsageError(f"{s.source} delivered no frame", fix="check --source")
    return raw.image


def _bytes(b: Bundle, eng: Any) -> int:
    if not isinstance(eng, Engine):
        return 0
    roles = {"split": (Role.ENCODER, Role.STEP), "fused": (Role.FUSED,), "step": (Role.STEP,)}[eng.plan.graph]
    return sum(f.bytes for r in roles for f in b.find(r, eng.plan.backend, eng.plan.precision).files)


def _bare(eng: Any, bare: Callable[[], object] | None, n: int, abort: threading.Event | None = None) -> dict[str, float]:
    """The model call alone at batch 1, back to back, after a few warm calls (ms)."""
    call = bare or engine_call(eng)
    for _ in range(5):
        call()
    times = []
    for _ in range(max(n, 60)):
        if abort is not None and abort.is_set():
            raise Interrupted
        t = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - t) / 1e6)
    return stats(times)


def engine_call(eng: Engine) -> Callable[[], None]:
    """The engine's graphs at batch 1 on a ready uint8 frame, opened again with the engine's options."""
    b, plan, m = eng.bundle, eng.plan, eng.manifest
    roles = {"split": (Role.ENCODER, Role.STEP), "fused": (Role.FUSED,), "step": (Role.STEP,)}[plan.graph]
    runners = {r: open_model(b, b.find(r, plan.backend, plan.precision), plan.options) for r in roles}
    h, w = m.preprocess.size if m.preprocess else (0, 0)
    x = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)  # (1, H, W, 3)
    state = {st.input: np.zeros([1 if isinstance(d, str) else d for d in st.shape], np.float32) for st in m.state}
    outs = {st.output: st.input for st in m.state}

    def call() -> None:
        if plan.graph == "split":
            feats = runners[Role.ENCODER].run({FRAMES: x})[FEATURES]
            res = runners[Role.STEP].run({FEATURES: feats, **state})
        else:
            res = runners[Role.FUSED].run({FRAMES: x, **state})
        for o, i in outs.items():
            state[i] = res[o]
    return call

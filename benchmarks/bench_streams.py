"""P6: how many 30-fps streams of a real decoded video one engine serves on this machine.

One engine steps all N streams (encoder batched), each stream its own capture thread decoding the video
at 30 fps, for ``seconds``; N passes when every frame up to each stream's last decision was decided (none
overwritten before the loop took it) and frame age p99 is at most 100 ms. N doubles from 1 until it fails,
then bisects between the last pass and the first fail (to within an eighth); a failed N is tried once more
before it counts as failed. The engine is loaded as a deployer gets it: a device profile and its default
precision ("auto": INT8 only where the bundle's report says it passed its gate and pays at N streams).
"""
from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Any

AGE_P99_MS = 100.0


def serve(bundle: Any, video: str, n: int, *, device: str, seconds: float, warmup: int = 5) -> dict[str, Any]:
    """N paced streams of ``video`` on one engine for ``seconds``: what was read, decided and missed."""
    from edgelstm.measure.config import Settings
    from edgelstm.measure.loop_measure import first_frame
    from edgelstm.runtime.engine import Engine

    eng = Engine.load(bundle, device=device, streams=n)
    try:
        frame = first_frame(Settings(source=video))
        for _ in range(warmup):
            eng.step_batch([frame] * n)
        eng.reset()
        st, seen = _paced(eng, video, n, seconds)
        info = eng.info
    finally:
        eng.close()
        del eng
        gc.collect()
    return _result(n, info, st, seen)


def _paced(eng: Any, video: str, n: int, seconds: float) -> tuple[Any, dict[int, list[int]]]:
    """run_loop on N realtime sources of ``video`` until ``seconds``; per stream, the frame indices decided."""
    from edgelstm.errors import UsageError
    from edgelstm.runtime.loop import Rate, run_loop
    from edgelstm.runtime.sources import open_source

    seen: dict[int, list[int]] = {i: [] for i in range(n)}
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        st = run_loop(eng, [open_source(video, realtime=True) for _ in range(n)],
                      on_decision=lambda d: seen[d.stream].append(d.frame.index), stop_event=stop, rate=Rate.ALL,
                      stall_timeout_s=10.0)
    finally:
        timer.cancel()
    if st.error:
        raise UsageError(f"the video failed while measuring streams: {st.error}", fix="check the video file")
    return st, seen


def _result(n: int, info: dict[str, Any], st: Any, seen: dict[int, list[int]]) -> dict[str, Any]:
    """One trial's row. ``missed``: frames never decided before each stream's last decision. The loop's own
    ``dropped`` also counts the frame or two a capture thread delivers after the timer stops the loop."""
    from edgelstm.measure.harness import stats

    missed = sum(max(ix) + 1 - len(set(ix)) if ix else 1 for ix in seen.values())
    age = stats(st.ages_ms)
    return {"streams": n, "backend": str(info.get("backend", "")), "precision": str(info.get("precision", "")),
            "read": st.frames_read, "decided": st.frames_decided, "dropped": st.frames_dropped, "missed": missed,
            "decided_fps": round(st.frames_decided / st.wall_s, 1) if st.wall_s else 0.0,
            "age_ms": age, "mean_batch": round(st.batch_sizes.lifetime_mean, 2) if st.batch_sizes.count else 0.0,
            "all_decided": missed == 0, "passed": missed == 0 and age.get("p99", float("inf")) <= AGE_P99_MS}


def max_streams(bundle: Any, video: str, *, device: str, seconds: float, limit: int = 128, retries: int = 1,
                say: Callable[[str], None] = print) -> dict[str, Any]:
    """The largest N that :func:`serve` passes (0 if even one stream fails), with every trial. A failed N is
    tried again up to ``retries`` times (one stall of a busy machine drops a frame); it passes if any try does."""
    trials: list[dict[str, Any]] = []

    def trial(n: int) -> bool:
        for attempt in range(1 + retries):
            t = time.perf_counter()
            r = {**serve(bundle, video, n, device=device, seconds=seconds), "attempt": attempt + 1}
            trials.append(r)
            say(f"  {n:3d} streams: decided {r['decided']}/{r['read']}, missed {r['missed']}, age p99 "
                f"{r['age_ms'].get('p99', float('nan')):.0f} ms, {r['precision']} -> "
                f"{'pass' if r['passed'] else 'fail'} ({time.perf_counter() - t:.0f} s)")
            if r["passed"]:
                return True
        return False

    lo, hi, n = 0, None, 1
    while n <= limit:
        if not trial(n):
            hi = n
            break
        lo, n = n, n * 2
    while hi is not None and hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        if trial(mid):
            lo = mid
        else:
            hi = mid
    return {"streams": lo, "first_fail": hi, "limit": limit, "device": device, "seconds": seconds,
            "retries": retries, "trials": sorted(trials, key=lambda r: (r["streams"], r["attempt"]))}

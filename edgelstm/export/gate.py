"""The accuracy gate's measurements: FP32 vs INT8 artefacts through the runtime's evaluation path.

Every number here comes from ``edgelstm.runtime.stream.stream_logits`` (clips run frame by frame
through the Engine, state reset between clips), the code path the device runs.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgelstm.quantreport import GateSettings, Trial, wilson_interval
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.clips import stream_logits
from edgelstm.runtime.stream import BackendOptions
from edgelstm.spec import Backend, ModelKind, Precision

Judge = Callable[[Backend, tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, GateSettings], Trial]


def logits(bundle: Bundle, X: np.ndarray, backend: Backend, precision: Precision, lengths: Any = None) -> np.ndarray:
    # no self-test: parity proved the FP32 graphs, and how far INT8 moves from them is what the gate measures
    return stream_logits(bundle, X, backend=backend, precision=precision, lengths=lengths, colour="rgb",
                         verify=False)


def flips_per_100(lg: np.ndarray) -> float:
    """Label changes between consecutive frames of each stream, per 100 frames."""
    pred = lg.argmax(-1)  # (N, T)
    return float(100.0 * (pred[:, 1:] != pred[:, :-1]).sum() / max(1, pred.size))


def judge(backend: Backend, kept: tuple[str, ...], fp32: np.ndarray, int8: np.ndarray, y: np.ndarray,
          settings: GateSettings) -> Trial:
    """The gate's verdict on one trial: FP32 and INT8 per-step logits (N, T, K) of the same held-out clips."""
    n = len(y)
    acc32 = float((fp32[:, -1].argmax(-1) == y).mean())
    acc8 = float((int8[:, -1].argmax(-1) == y).mean())
    frame = float((fp32.argmax(-1) == int8.argmax(-1)).mean())
    same = int((fp32[:, -1].argmax(-1) == int8[:, -1].argmax(-1)).sum())
    drop = 100.0 * (acc32 - acc8)
    ok = drop <= settings.max_drop_points and same / n >= settings.min_final_agreement
    return Trial(str(backend), kept, acc32, acc8, frame, same / n, flips_per_100(fp32), flips_per_100(int8), ok,
                 drop_points=round(drop, 3), clips=n, points_per_clip=round(100.0 / n, 3),
                 final_agreement_ci95=tuple(round(v, 4) for v in wilson_interval(same, n)))  # type: ignore[arg-type]


def latency_ms(bundle: Bundle, backend: Backend, precision: Precision, *, frames: int = 200,
               warmup: int = 20) -> float:
    """Median per-frame latency of the streaming graphs at batch 1 (encoder + step, or fused)."""
    return latency_by_batch(bundle, backend, (precision,), batches=(1,), frames=frames, warmup=warmup)[precision][1]


def latency_by_batch(bundle: Bundle, backend: Backend, precisions: tuple[Precision, ...], *,
                     batches: tuple[int, ...] = (1,), frames: int = 200, warmup: int = 20,
                     threads: int | None = None) -> dict[Precision, dict[int, float]]:
    """Median ms per frame of the streaming chain for each precision and batch (streams stepped together).

    Precisions alternate call by call, so a busy machine slows them alike. ``threads``
    defaults to what the runtime's CPU profile picks for this model (one thread below
    ``SMALL_MODEL_MACS``), so the ratio is the one a device sees.
    """
    from edgelstm.runtime.engine import SMALL_MODEL_MACS
    from edgelstm.runtime.stream import open_chain

    m = bundle.manifest
    if threads is None:
        threads = 1 if 0 < m.model.macs_per_frame < SMALL_MODEL_MACS else 0
    chains = {p: open_chain(bundle, backend, p, BackendOptions(threads=threads)) for p in precisions}
    any_chain = next(iter(chains.values()))
    out: dict[Precision, dict[int, float]] = {p: {} for p in precisions}
    for batch in batches:
        x = _latency_input(m, any_chain, batch)
        states = {p: c.zero_state(batch) for p, c in chains.items()}
        times: dict[Precision, list[float]] = {p: [] for p in precisions}
        calls = max(10, frames // batch)
        for i in range(warmup + calls):
            for p, chain in chains.items():
                t0 = time.perf_counter()
                states[p] = chain.step(x, states[p]).state
                if i >= warmup:
                    times[p].append(time.perf_counter() - t0)
        for p in precisions:
            out[p][batch] = float(1000.0 * np.median(times[p]) / batch)
    return out


def _latency_input(m: Any, chain: Any, batch: int) -> np.ndarray:
    """A batch of random frames (or zero features) shaped as the chain's first graph takes them."""
    if m.model.kind == ModelKind.FEATURES:
        return np.zeros((batch, m.model.feature_size), np.float32)
    h, w = m.preprocess.size
    return np.random.default_rng(0).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)

"""The accuracy gate's measurements: FP32 vs INT8 artefacts through the runtime's evaluation path.

Every number here comes from ``edgelstm.runtime.evaluate.stream_logits`` (clips run frame by frame
through the Engine, state reset between clips), the code path the device runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgelstm.runtime.backends import BackendOptions
from edgelstm.runtime.bundle import Bundle
from edgelstm.spec import Backend, Precision, Role


@dataclass
class Trial:
    """One quantization attempt of one backend: what stayed float, and how it measured."""

    backend: str
    kept_float: tuple[str, ...]
    accuracy_fp32: float
    accuracy_int8: float
    frame_agreement: float     # per-frame argmax agreement with FP32
    final_agreement: float     # agreement of the clips' final decisions
    flips_fp32: float          # label changes per 100 frames on streams
    flips_int8: float
    passed: bool
    inference_precision: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def drop(self) -> float:
        return 100.0 * (self.accuracy_fp32 - self.accuracy_int8)


def logits(bundle: Bundle, X: np.ndarray, backend: Backend, precision: Precision, lengths: Any = None) -> np.ndarray:
    from edgelstm.runtime.evaluate import stream_logits

    return stream_logits(bundle, X, backend=backend, precision=precision, lengths=lengths, colour="rgb")


def flips_per_100(lg: np.ndarray) -> float:
    """Label changes between consecutive frames of each stream, per 100 frames."""
    pred = lg.argmax(-1)  # (N, T)
    return float(100.0 * (pred[:, 1:] != pred[:, :-1]).sum() / max(1, pred.size))


def judge(backend: Backend, kept: tuple[str, ...], fp32: np.ndarray, int8: np.ndarray, y: np.ndarray,
          *, max_drop: float, min_final_agreement: float) -> Trial:
    acc32 = float((fp32[:, -1].argmax(-1) == y).mean())
    acc8 = float((int8[:, -1].argmax(-1) == y).mean())
    frame = float((fp32.argmax(-1) == int8.argmax(-1)).mean())
    final = float((fp32[:, -1].argmax(-1) == int8[:, -1].argmax(-1)).mean())
    ok = 100.0 * (acc32 - acc8) <= max_drop and final >= min_final_agreement
    return Trial(str(backend), kept, acc32, acc8, frame, final, flips_per_100(fp32), flips_per_100(int8), ok)


def latency_ms(bundle: Bundle, backend: Backend, precision: Precision, *, frames: int = 200,
               warmup: int = 20) -> float:
    """Median per-frame latency of the streaming graphs at batch 1 (encoder + step, or fused)."""
    from edgelstm.export.parity import open_chain

    from edgelstm import spec

    chain = open_chain(bundle, backend, precision, BackendOptions())
    m = bundle.manifest
    enc = m.artifact(Role.ENCODER, backend, precision) if chain.encoder is not None else None
    first = (enc or chain.step_art).inputs[0]
    shape = [1 if isinstance(d, str) else int(d) for d in first.shape]
    x = (np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8) if first.dtype == "uint8"
         else np.zeros(shape, np.float32))
    step_name = chain.step_art.inputs[0].name
    state = chain.init_state(1)
    times = []
    for _ in range(warmup + frames):
        t0 = time.perf_counter()
        feats = chain.encoder.run({spec.FRAMES: x})[spec.FEATURES] if chain.encoder is not None else x
        res = chain.step.run({step_name: feats, **state})
        times.append(time.perf_counter() - t0)
        state = {s.input: res[s.output] for s in m.state}
    return float(1000.0 * np.median(times[warmup:]))


def streaming_roles(bundle: Bundle) -> tuple[Role, ...]:
    m = bundle.manifest
    return tuple(r for r in (Role.ENCODER, Role.STEP, Role.FUSED)
                 if m.artifact(r, Backend.ONNXRUNTIME, Precision.FP32) is not None)

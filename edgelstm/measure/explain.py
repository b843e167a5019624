"""``edgelstm explain``: what a streaming LSTM decided over a stream, and why, as a PNG and a JSON.

1. The stream is read as the live loop feeds it and encoded once (:mod:`edgelstm.measure.explain_source`).
2. The model's LSTM runs on the numpy reference cell (:mod:`edgelstm.runtime.lstm_cell`), which returns
   every gate per step; its logits, h and c are checked against the model itself (the bundle's step
   graph, or torch) before anything is drawn.
3. **Temporal saliency by occlusion**: for each frame s, the frame is replaced (by the frame before it, or by
   the stream's mean frame) and only the LSTM and head are re-run from s for ``window`` steps, starting from
   the cached state before s. The saliency of frame s for the decision at t is how much the logit of the
   class decided at t drops: positive where the frame supported the decision. All frames are occluded at
   once as one batch, so the cost is ``window`` batched cell steps, not T x window model calls.

Outputs (atomic writes): ``explain.png`` (probabilities with the ground truth, gates and cell state, the most
active units, saliency), ``explain.json`` (the series behind it) and ``gates.npz`` (every gate of every unit).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import EdgeLSTMError, UsageError
from edgelstm.measure.explain_model import CellModel
from edgelstm.measure.explain_source import Stream
from edgelstm.runtime import lstm_cell
from edgelstm.runtime.lstm_cell import Gates

log = logging.getLogger(__name__)

OUTPUTS = ("explain.png", "explain.json", "gates.npz")
PARITY_TOLERANCE = 1e-3  # max |difference| per unit of logit (or state) scale: float32 graphs vs float64 numpy


class Occlusion(StrEnum):
    PREVIOUS = "previous"  # the frame before (the first frame: the one after): a frame that never happened
    MEAN = "mean"          # the stream's mean frame (a feature model: its mean features)


@dataclass(frozen=True)
class ExplainConfig:
    window: int | None = None         # decisions after an occluded frame that are re-run (None: 2x clip length)
    occlude: Occlusion = Occlusion.PREVIOUS
    max_frames: int | None = None     # decisions to explain (None: the whole source; synthetic: 5 clips)
    label: str | None = None          # the clip's true class, when known
    rate: str = "trained"             # feed at the trained rate (skip extra frames) or every frame ("all")
    top_classes: int = 5              # classes drawn in the probability timeline
    top_units: int = 16               # most active units drawn and written

    def __post_init__(self) -> None:
        for name in ("window", "max_frames", "top_classes", "top_units"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                option = "--" + name.replace("_", "-")
                raise UsageError(f"{option} {value!r}", expected="a positive whole number",
                                 fix=f"pass {option} 1 or more" + (" (or leave it out: twice the clip length)"
                                                                    if name == "window" else ""))
        if self.occlude not in tuple(Occlusion):
            raise UsageError(f"--occlude {self.occlude!r}", expected=" or ".join(Occlusion),
                             fix="pass --occlude previous or --occlude mean")


@dataclass(frozen=True)
class Explanation:
    model: CellModel
    stream: Stream
    gates: Gates            # each (T, L, H): every step, layer and unit
    logits: np.ndarray      # (T, K) from the numpy cell
    saliency: np.ndarray    # (T, W): [t, k] = drop of the logit decided at t when frame t - k is occluded; NaN: t < k
    window: int
    occlude: Occlusion
    parity: dict[str, float]  # max |numpy cell - model| of logits, h, c
    seconds: dict[str, float]  # wall time per phase

    @property
    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(1, keepdims=True))

    @property
    def decided(self) -> np.ndarray:  # (T,) the class decided at each step (the argmax)
        return np.asarray(self.logits.argmax(1))

    def top_units(self, n: int) -> np.ndarray:
        """The top layer's ``n`` most active units: largest mean |h| over the stream."""
        return np.asarray(np.argsort(-np.abs(self.gates.h[:, -1]).mean(0), kind="stable")[:n])


def explain_stream(model: CellModel, stream: Stream, *, window: int, occlude: Occlusion = Occlusion.PREVIOUS
                   ) -> Explanation:
    """Run the numpy cell over ``stream``, check it against the model, and compute occlusion saliency."""
    with one_blas_thread():
        return _explain_stream(model, stream, window, occlude)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """The cell's matmuls are small: one BLAS thread is fastest, and on a busy machine OpenBLAS's spinning threads
    made them 30x slower (2 loaded cores). threadpoolctl, where installed, limits them; elsewhere nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def _explain_stream(model: CellModel, stream: Stream, window: int, occlude: Occlusion) -> Explanation:
    t0 = time.perf_counter()
    trace = lstm_cell.run(model.layers, stream.lstm_x[:, None].astype(np.float64), resets=stream.resets)
    gates = Gates(*(getattr(trace, k)[:, :, 0] for k in ("i", "f", "g", "o", "c", "h")))  # (T, L, H)
    logits = np.asarray(model.head(gates.h[:, -1]), np.float64)
    t1 = time.perf_counter()
    parity = check_parity(model, stream, logits, gates)
    t2 = time.perf_counter()
    replaced = replacement(stream, occlude)
    sal = occlusion_saliency(model, stream.lstm_x, stream.resets, gates, logits, replaced, window)
    t3 = time.perf_counter()
    return Explanation(model, stream, gates, logits, sal, window, occlude, parity,
                       {"cell": t1 - t0, "reference": t2 - t1, "saliency": t3 - t2})


def check_parity(model: CellModel, stream: Stream, logits: np.ndarray, gates: Gates) -> dict[str, float]:
    """The numpy cell must reproduce the model (logits, h and c at every step), or nothing it shows is true."""
    ref_logits, ref_h, ref_c = model.reference(stream.inputs, stream.resets)
    diffs = {"logits": float(np.abs(ref_logits - logits).max()), "h": float(np.abs(ref_h - gates.h).max()),
             "c": float(np.abs(ref_c - gates.c).max())}
    scales = {"logits": float(np.abs(ref_logits).max()), "h": 1.0, "c": float(np.abs(ref_c).max())}
    bad = {k: v for k, v in diffs.items() if not v <= PARITY_TOLERANCE * max(1.0, scales[k])}
    if bad:
        raise EdgeLSTMError(f"the numpy reference cell does not reproduce the model: max |difference| "
                            + ", ".join(f"{k} {v:.3g}" for k, v in bad.items()), path=model.name,
                            expected=f"at most {PARITY_TOLERANCE:g} per unit of scale (float32 rounding)",
                            fix="its step graph computes something besides a standard LSTM between input and head; "
                                "explain the checkpoint it came from, and report this")
    return diffs


def replacement(stream: Stream, occlude: Occlusion) -> np.ndarray:
    """(T, F) the LSTM input that stands in for each frame when it is occluded."""
    x = stream.lstm_x
    if occlude == Occlusion.MEAN or len(x) < 2:
        return np.broadcast_to(stream.mean_x, x.shape)
    return np.concatenate([x[1:2], x[:-1]])  # frame s -> frame s - 1 (frame 0 -> frame 1)


def occlusion_saliency(model: CellModel, x: np.ndarray, resets: np.ndarray, gates: Gates, logits: np.ndarray,
                       replaced: np.ndarray, window: int) -> np.ndarray:
    """(T, W) saliency in lag form: [t, k] = logit of the class decided at t, minus the same logit with frame
    t - k occluded. Batch row s carries the run with frame s occluded, from the cached state before s."""
    n = len(x)
    w = min(window, n)
    zero = np.zeros_like(gates.h[:1])
    h = np.concatenate([zero, gates.h[:-1]]).transpose(1, 0, 2).copy()  # (L, T, H): the state before step s
    c = np.concatenate([zero, gates.c[:-1]]).transpose(1, 0, 2).copy()
    h[:, resets], c[:, resets] = 0.0, 0.0
    decided = logits.argmax(1)
    rows = np.arange(n)
    out = np.full((n, w), np.nan)
    for k in range(w):
        t = rows + k  # the step each row is at
        live = t < n
        tt = np.minimum(t, n - 1)
        if k:
            wipe = live & resets[tt]  # a reset after the occluded frame: from there on it cannot matter
            h[:, wipe], c[:, wipe] = 0.0, 0.0
        inp = replaced if k == 0 else x[tt]
        for layer, weights in enumerate(model.layers):
            g = lstm_cell.step(weights, inp, h[layer], c[layer])
            h[layer], c[layer], inp = g.h, g.c, g.h
        occluded = np.asarray(model.head(h[-1]), np.float64)  # (T, K)
        dec = decided[tt]
        drop = logits[tt, dec] - occluded[rows, dec]
        out[tt[live], k] = drop[live]  # row s wrote decision t = s + k: lag k
    return out


def saliency_matrix(expl: Explanation) -> np.ndarray:
    """(T, T) [t, s]: saliency of frame s for the decision at t; NaN outside the window (and for s > t)."""
    n, w = expl.saliency.shape
    full = np.full((n, n), np.nan)
    t = np.arange(n)
    for k in range(w):
        ok = t >= k
        full[t[ok], t[ok] - k] = expl.saliency[ok, k]
    return full


# --- outputs ------------------------------------------------------------------------------------
def to_json(expl: Explanation, *, top_classes: int, top_units: int) -> dict[str, Any]:
    s, g = expl.stream, expl.gates
    units = expl.top_units(top_units)
    probs = expl.probs
    shown = np.argsort(-probs.max(0), kind="stable")[:top_classes]

    def r(a: np.ndarray, digits: int = 5) -> Any:
        return [None if isinstance(v, float) and not math.isfinite(v) else v
                for v in np.round(a, digits).tolist()] if a.ndim == 1 else [r(row, digits) for row in a]

    return {
        "model": expl.model.name, "runs": expl.model.runs, "source": s.source, "labels": list(expl.model.labels),
        "steps": len(s.lstm_x), "window": expl.window, "occlude": str(expl.occlude),
        "parity_max_abs_diff": expl.parity, "seconds": {k: round(v, 3) for k, v in expl.seconds.items()},
        "frame": s.frames.tolist(), "time_s": r(s.times, 4), "truth": s.truth.tolist(),
        "reset": list(s.reset_why), "decided": expl.decided.tolist(),
        "top_classes": shown.tolist(), "probabilities": r(probs[:, shown]), "logits": r(expl.logits, 4),
        "gate_means": {name: r(getattr(g, name).mean(2).T) for name in ("i", "f", "o", "g")},  # [layer][t]
        "abs_c_mean": r(np.abs(g.c).mean(2).T), "abs_h_mean": r(np.abs(g.h).mean(2).T),
        "top_units": {"layer": len(expl.model.layers) - 1, "units": units.tolist(),
                      "h": r(g.h[:, -1, units].T), "c": r(g.c[:, -1, units].T), "f": r(g.f[:, -1, units].T)},
        "saliency": {"meaning": "saliency[t][k]: drop of the logit decided at step t when frame t-k is occluded "
                                "(positive: the frame supported the decision); null where t-k < 0",
                     "values": r(expl.saliency, 4)},
    }


def write_outputs(expl: Explanation, out: Path, *, top_classes: int, top_units: int) -> list[Path]:
    """explain.json, gates.npz and explain.png into ``out``, each written atomically."""
    from edgelstm.fsutil import atomic_path, write_text_atomic
    from edgelstm.measure.explain_plot import plot_explanation

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in OUTPUTS]
    write_text_atomic(paths[1], json.dumps(to_json(expl, top_classes=top_classes, top_units=top_units)) + "\n")
    buf = io.BytesIO()
    g = expl.gates
    f32: dict[str, Any] = {k: np.asarray(v, np.float32) for k, v in
           {"i": g.i, "f": g.f, "g": g.g, "o": g.o, "c": g.c, "h": g.h, "logits": expl.logits,
            "saliency": expl.saliency}.items()}  # (T, L, H) gates; (T, K) logits; (T, W) saliency
    np.savez_compressed(buf, **f32, truth=expl.stream.truth, resets=expl.stream.resets)
    with atomic_path(paths[2]) as tmp:
        tmp.write_bytes(buf.getvalue())
    plot_explanation(expl, paths[0], top_classes=top_classes, top_units=top_units)
    return paths


def explain(target: str | Path, source: str, out: str | Path, config: ExplainConfig = ExplainConfig(), *,
            force: bool = False) -> tuple[Explanation, list[Path]]:
    """``edgelstm explain``: open ``target`` (bundle or checkpoint), explain ``source``, write into ``out``."""
    from edgelstm.fsutil import check_outputs
    from edgelstm.measure.explain_model import open_model
    from edgelstm.measure.explain_source import read_stream

    out = Path(out)
    check_outputs(inputs=[("TARGET", target), ("--source", source)],
                  outputs=[("--out", out / name) for name in OUTPUTS], force=force)  # before any work
    t0 = time.perf_counter()
    model = open_model(target)
    t1 = time.perf_counter()
    stream = read_stream(model, source, max_frames=config.max_frames, label=config.label, rate=config.rate)
    t2 = time.perf_counter()
    window = config.window or 2 * model.temporal.clip_len
    expl = explain_stream(model, stream, window=window, occlude=config.occlude)
    expl.seconds.update({"open": t1 - t0, "read_and_encode": t2 - t1})
    t3 = time.perf_counter()
    paths = write_outputs(expl, out, top_classes=config.top_classes, top_units=config.top_units)
    expl.seconds["write"] = time.perf_counter() - t3
    log.info("explain: %s", {k: round(v, 3) for k, v in expl.seconds.items()})
    return expl, paths

"""The streaming loop, written once: zero state -> encoder -> step -> feed h_out/c_out back.

:class:`Chain` holds the streaming graphs of one backend and precision (encoder + step, the fused
graph, or the step graph of a feature model) and :meth:`Chain.step` advances a batch of streams by
one time step under the manifest's state contract. Everything that runs a bundle over time calls
it: the :class:`~edgelstm.runtime.engine.Engine` (every decision on a device), export's parity
check, the INT8 calibration feed and the latency measurements; :func:`stream_logits` runs whole
clips through the Engine for evaluation and the INT8 gate.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgelstm import spec
from edgelstm.errors import DataError
from edgelstm.runtime.backends import BackendOptions, ModelRunner, open_model
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.spec import Artifact, Backend, ColourOrder, Manifest, ModelKind, Precision, Role

if TYPE_CHECKING:  # the engine imports this module; the reverse import is only for types
    from edgelstm.runtime.engine import Engine

State = dict[str, np.ndarray]            # state input name (h, c) -> (num_layers, N, hidden)
Feeds = dict[str, np.ndarray]            # tensor name -> array, one graph call
Recorder = Callable[[Role, Feeds], None]  # sees every graph call's feeds (INT8 calibration)


def zero_state(manifest: Manifest, batch: int) -> State:
    """The state every stream starts from, shaped by the manifest's state specs."""
    return {s.input: np.zeros([batch if isinstance(d, str) else int(d) for d in s.shape], np.float32)
            for s in manifest.state}


@dataclass(frozen=True)
class StepOut:
    logits: np.ndarray   # (N, K)
    state: State         # the state to feed at the next step (the graph's h_out/c_out under the input names)
    encoder_ns: int      # time in the encoder graph (0 without one)
    step_ns: int         # time in the step (or fused) graph


@dataclass(frozen=True)
class Chain:
    """The streaming graphs of one backend and precision, opened through the runtime's loader."""

    manifest: Manifest
    step_art: Artifact             # the step or fused artefact
    step_runner: ModelRunner
    encoder: ModelRunner | None = None   # None for the fused graph and feature models

    @property
    def role(self) -> Role:
        return self.step_art.role

    @property
    def first_input(self) -> str:
        """The step graph's first input: features (split graphs, feature models) or frames (fused)."""
        return self.step_art.inputs[0].name

    def zero_state(self, batch: int) -> State:
        return zero_state(self.manifest, batch)

    def step(self, x: np.ndarray, state: State, record: Recorder | None = None) -> StepOut:
        """One time step for a batch: ``x`` (N, H, W, 3) uint8 frames in the graph's colour order, or
        (N, F) features; ``state`` from :meth:`zero_state` or the previous step's ``StepOut.state``."""
        enc_ns = 0
        if self.encoder is not None:
            feeds = {spec.FRAMES: x}
            if record is not None:
                record(Role.ENCODER, feeds)
            t = time.perf_counter_ns()
            x = self.encoder.run(feeds)[spec.FEATURES]  # (N, F)
            enc_ns = time.perf_counter_ns() - t
        feeds = {self.first_input: x, **state}
        if record is not None:
            record(self.role, feeds)
        t = time.perf_counter_ns()
        out = self.step_runner.run(feeds)
        step_ns = time.perf_counter_ns() - t
        return StepOut(out[spec.LOGITS], {s.input: out[s.output] for s in self.manifest.state}, enc_ns, step_ns)

    def run(self, X: np.ndarray, record: Recorder | None = None) -> np.ndarray:
        """X (N, T, ...) inputs in the graph's colour order -> per-step logits (N, T, K), state from zero."""
        n, t = X.shape[:2]
        state = self.zero_state(n)
        out = np.empty((n, t, self.manifest.model.num_classes), np.float32)
        for i in range(t):
            res = self.step(np.ascontiguousarray(X[:, i]), state, record)
            out[:, i] = res.logits
            state = res.state
        return out


def open_chain(bundle: Bundle, backend: Backend, precision: Precision,
               opts: BackendOptions = BackendOptions(), *, graph: str = "auto") -> Chain:
    """The streaming graphs of ``backend``/``precision``: ``graph`` "split", "fused", "step", or "auto"
    (split when the bundle has it, else fused; feature models have only the step graph)."""
    m = bundle.manifest
    if m.model.kind == ModelKind.FEATURES:
        graph = "step"
    elif graph == "auto":
        has_split = all(m.artifact(r, backend, precision) for r in (Role.ENCODER, Role.STEP))
        graph = "split" if has_split or m.artifact(Role.FUSED, backend, precision) is None else "fused"
    if graph == "fused":
        art = bundle.find(Role.FUSED, backend, precision)
        return Chain(m, art, open_model(bundle, art, opts))
    art = bundle.find(Role.STEP, backend, precision)
    encoder = None
    if graph == "split":
        encoder = open_model(bundle, bundle.find(Role.ENCODER, backend, precision), opts)
    return Chain(m, art, open_model(bundle, art, opts), encoder)


# --- whole clips through the Engine (evaluation, the INT8 gate) -------------------------------
def check_clips(manifest: Manifest, X: np.ndarray) -> None:
    """Refuse clips that are not the model's input: uint8 (N, T, H, W, 3) frames, or (N, T, F) features."""
    m = manifest
    if m.model.kind == ModelKind.FRAMES:
        size = m.preprocess.size if m.preprocess is not None else (0, 0)
        want = (*size, 3)
        if X.ndim != 5 or X.shape[2:] != want or X.dtype != np.uint8:
            raise DataError(f"clips of shape {list(X.shape)} {X.dtype}",
                            expected=f"uint8 (N, T, {want[0]}, {want[1]}, 3) frames at the model's size",
                            fix=f"load the dataset with size={size}")
    elif X.ndim != 3 or X.shape[2] != m.model.feature_size:
        raise DataError(f"features of shape {list(X.shape)}", expected=f"(N, T, {m.model.feature_size})",
                        fix="load the feature set the model was trained on")


def stream_logits(bundle: str | Path | Bundle, X: np.ndarray, *, backend: Backend | str = Backend.ONNXRUNTIME,
                  precision: Precision | str = Precision.FP32, options: BackendOptions = BackendOptions(),
                  lengths: np.ndarray | None = None, colour: ColourOrder | str = ColourOrder.RGB,
                  batch: int = 32, engine: Engine | None = None) -> np.ndarray:
    """Per-step logits (N, T, K) of clips run frame by frame through the engine.

    ``X``: uint8 frames (N, T, H, W, 3) at the model's size in ``colour`` order (datasets give RGB;
    the engine converts to the graph's order), or float features (N, T, F). The state is reset
    between clips; up to ``batch`` clips run side by side as streams. Steps at or past
    ``lengths[i]`` are the model's output on the padding, as the PyTorch model computes them too.
    """
    from edgelstm.runtime.engine import Engine

    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    check_clips(b.manifest, X)
    n, t = X.shape[:2]
    if lengths is not None and (lengths.shape != (n,) or (lengths < 1).any() or (lengths > t).any()):
        raise DataError(f"lengths of shape {list(lengths.shape)}", expected=f"({n},) integers in 1..{t}",
                        fix="pass the dataset's lengths unchanged")
    streams = max(1, min(batch, n))
    eng = engine or Engine.load(b, backend=str(backend), precision=str(precision), options=options,
                                streams=streams)
    streams = min(streams, eng.streams)
    out = np.empty((n, t, len(eng.labels)), np.float32)  # (N, T, K)
    if X.dtype.kind == "f":
        X = X.astype(np.float32, copy=False)
    order = ColourOrder(colour)
    for start in range(0, n, streams):
        chunk = X[start:start + streams]  # (B, T, ...)
        ids = list(range(len(chunk)))
        eng.reset()
        for step in range(t):
            preds = eng.step_batch(chunk[:, step], ids, colour=order)
            out[start:start + len(chunk), step] = np.stack([p.logits for p in preds])
    return out

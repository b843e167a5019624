"""The streaming engine: one frame in, one decision out, LSTM state kept per stream.

``Engine.load`` verifies the bundle, picks backend, artefacts and options from a device profile
(:mod:`edgelstm.runtime.plan`), checks every model's real inputs against the manifest and replays the
bundle's self-test. ``engine.step(frame)`` validates the frame, resizes it straight into a
preallocated uint8 buffer (:mod:`edgelstm.runtime.frames`; the graph normalises in-graph, so there is
no float copy on the host), runs encoder and step (or the fused graph) through
:class:`~edgelstm.runtime.stream.Chain` on that buffer and on the state arrays, which the backends keep
bound from frame to frame (:mod:`edgelstm.runtime.binding`), and returns a :class:`Prediction` with
per-stage timings.
``step_batch`` does the same for one frame per stream, batching the encoder across streams.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.devices import DeviceProfile
from edgelstm.errors import BundleError, UsageError
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.decode import Caption, open_narrator
from edgelstm.runtime.events import Event, EventChange, EventTracker
from edgelstm.runtime.frames import (HALVE_ABOVE_PIXELS, FrameResizer, Smoother, Smoothing, check_features, check_frame,
                                     softmax)
from edgelstm.runtime.plan import GRAPHS, SMALL_MODEL_MACS, Plan, int8_verdict, make_plan, resolve_profile
from edgelstm.runtime.selftest import FULL_PRECISION, run_finite, run_selftest
from edgelstm.runtime.stream import BackendOptions, Chain, open_chain
from edgelstm.spec import C_IN, H_IN, ColourOrder, Manifest, ModelKind, Precision, Role, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timings:
    """Milliseconds per stage of one decision (for a batch: the whole batch's stages)."""

    preprocess: float
    encoder: float      # 0 for feature models and the fused graph (its encoder is inside `step`)
    step: float         # the LSTM step (or the fused graph)
    postprocess: float
    total: float

    def as_dict(self) -> dict[str, float]:
        return {"preprocess": self.preprocess, "encoder": self.encoder, "step": self.step,
                "postprocess": self.postprocess, "total": self.total}


@dataclass(frozen=True)
class Prediction:
    stream: int
    index: int                  # the label to show (after smoothing/hysteresis); -1: no decision
    label: str
    probability: float          # of ``index`` in ``probabilities``
    probabilities: np.ndarray   # (K,) softmax, smoothed when smoothing is on
    logits: np.ndarray          # (K,) raw model output for this frame
    top: tuple[tuple[int, float], ...]  # top-k (index, probability), best first
    timings: Timings
    reset: str = ""             # why the state was reset after this frame ("non-finite state"), if it was
    events: tuple[EventChange, ...] = ()  # detection models: what started or ended on this frame
    event: Event | None = None  # detection models: the event open after this frame
    caption: Caption | None = None  # caption models: the caption written on this frame (window end, action change)

    @property
    def raw_index(self) -> int:
        return int(self.logits.argmax())


class Engine:
    """Runs a bundle frame by frame for ``streams`` sources, each with its own LSTM state."""

    def __init__(self, bundle: Bundle, plan: Plan, chain: Chain, *, streams: int,
                 smoothing: Smoothing, k: int) -> None:
        m = bundle.manifest
        self.bundle, self.manifest, self.plan, self.streams = bundle, m, plan, streams
        self.labels = m.labels
        self.kind = m.model.kind
        self._chain = chain
        self._closed = False
        self._step_key = str(chain.role)  # the info entry of the step (or fused) graph
        self._smoother = Smoother(streams, m.model.num_classes, smoothing)
        self._k = max(1, k)
        self._static = plan.options.static_batch > 0
        self._state = {s.input: np.zeros([streams if isinstance(d, str) else d for d in s.shape], np.float32)
                       for s in m.state}  # each (num_layers, S, hidden)
        self._view_cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}  # see _views
        self._bad: set[int] = set()  # streams whose state went non-finite in the last batch
        d = m.detection  # detection models turn each frame's (unsmoothed) probabilities into events
        self._events = EventTracker(streams, background=d.background, on=d.events.on, off=d.events.off) \
            if m.task == Task.DETECT and d is not None else None
        self.narrator = open_narrator(bundle, plan.backend, plan.precision, plan.options, streams)  # caption models
        if self.kind == ModelKind.FRAMES:
            if m.preprocess is None:
                raise BundleError("a frame model's manifest has no preprocess section", path=bundle.path,
                                  fix="re-export the bundle")
            self._resizer = FrameResizer(m.preprocess)
            self.size = m.preprocess.size
            self.colour = m.preprocess.colour_order
            self._buf = np.zeros((streams, self.size[0], self.size[1], 3), np.uint8)  # (S, H, W, 3)
        else:
            self._buf = np.zeros((streams, m.model.feature_size), np.float32)  # (S, F)
        self.info: dict[str, Any] = {
            "backend": str(plan.backend), "precision": str(plan.precision), "graph": plan.graph,
            "device": plan.options.device, "threads": plan.options.threads, "streams": streams,
            "choice": "; ".join(plan.why),
            **({str(Role.ENCODER): chain.encoder.info} if chain.encoder is not None else {}),
            str(chain.role): chain.step_runner.info,
        }

    # --- construction -------------------------------------------------------------------
    @classmethod
    def load(cls, bundle: str | Path | Bundle, *, device: str | Path | DeviceProfile = "cpu",
             backend: str | None = None, precision: str | None = None, threads: int | None = None,
             streams: int = 1, graph: str = "auto", smoothing: Smoothing = Smoothing(), top_k: int = 5,
             options: BackendOptions | None = None, verify: bool = True) -> Engine:
        """Verify ``bundle``, choose artefacts and options from ``device``, open the models.

        ``backend``/``precision``/``threads`` override the profile; ``options`` replaces the
        profile's backend options altogether. ``precision="auto"`` (a profile's default) takes INT8
        only when the bundle's quantization report says it passed its gate and paid off.
        ``verify``: replay the bundle's self-test (:mod:`edgelstm.runtime.selftest`) on the chosen
        backend, precision and device, and refuse models that answer differently than at export.
        Use as ``with Engine.load(...) as eng:`` to release the models at the end (:meth:`close`).
        """
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise UsageError(f"streams={streams!r}", expected="an integer >= 1", fix="pass --streams 1 or more")
        b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        _check_memory(b.manifest, streams)
        profile = resolve_profile(device)
        plan = make_plan(b.manifest, profile, backend=backend, precision=precision, threads=threads, graph=graph,
                     streams=streams, options=options)
        chain = open_chain(b, plan.backend, plan.precision, plan.options, graph=plan.graph)
        if b.manifest.task == Task.TRACK and cls is Engine:  # a tracker's engine crops around each stream's box
            from edgelstm.runtime.track import TrackEngine

            cls = TrackEngine
        eng = cls(b, plan, chain, streams=streams, smoothing=smoothing, k=top_k)
        if verify:
            eng.info["selftest"] = eng.self_test()
        log.info("engine: %s", eng.info)
        return eng

    def self_test(self) -> str:
        """Replay the bundle's self-test on this engine's models (its own state is untouched); raises a
        :class:`BundleError` on a wrong answer and returns what passed."""
        st = self.manifest.selftest
        if st is None:
            if str(self.bundle.path) not in _NOTED:
                _NOTED.add(str(self.bundle.path))
                log.warning("%s has no self-test (exported before edgelstm 0.2), so its state wiring cannot be "
                            "verified; re-export it to add one", self.bundle.path)
            return "none in this bundle"
        self._check_open()
        batch = self.plan.options.static_batch
        if self.plan.precision == Precision.FP32 and self.inference_precision in FULL_PRECISION:
            return run_selftest(self._chain, st, batch=batch)
        # Reduced precision moves values (and, on random input, top-1) by the CPU's rounding: check the wiring
        # on this backend's FP32 graphs at f32, and that this chain answers finitely (see runtime.selftest).
        ref = open_chain(self.bundle, self.plan.backend, Precision.FP32,
                         dataclasses.replace(self.plan.options, inference_precision="f32"), graph=self.plan.graph)
        passed = run_selftest(ref, st, batch=batch)
        run_finite(self._chain, st, batch=batch)
        what = self.plan.precision if self.plan.precision != Precision.FP32 else self.inference_precision
        return f"{passed} on the FP32 graphs; {what} answers finite"

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the backend sessions and infer requests; stepping a closed engine is a UsageError."""
        if not self._closed:
            self._closed = True
            del self._chain  # the last reference to the runners: onnxruntime sessions / OpenVINO requests go

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the engine is closed", expected="an open engine",
                             fix="load a new one with Engine.load(...) (and step it inside its `with` block)")

    @property
    def inference_precision(self) -> str:
        """What the LSTM step actually runs in (OpenVINO: f32/bf16/f16; onnxruntime: the artefact's)."""
        return str(self.info[self._step_key].get("inference_precision", ""))

    # --- state ----------------------------------------------------------------------------
    def reset(self, stream: int | None = None) -> None:
        """Zero the LSTM state (and the smoothing) of one stream, or of all."""
        if stream is not None:
            self._check_stream(stream)
        for arr in self._state.values():
            arr[:, slice(None) if stream is None else stream] = 0.0
        self._smoother.reset(stream)
        if self._events is not None:
            self._events.reset(stream)
        if self.narrator is not None:
            self.narrator.reset(stream)

    def state(self, stream: int) -> tuple[np.ndarray, np.ndarray]:
        """A copy of one stream's LSTM state ``(h, c)``, each (num_layers, hidden), as the next frame will see it."""
        self._check_stream(stream)
        return self._state[H_IN][:, stream].copy(), self._state[C_IN][:, stream].copy()

    def _check_stream(self, stream: int) -> None:
        if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)):
            raise UsageError(f"stream {stream!r} ({type(stream).__name__})", expected=f"an int in 0..{self.streams - 1}",
                             fix=f"pass the stream's index as an int, e.g. stream={self.streams - 1}")
        if not 0 <= stream < self.streams:
            raise UsageError(f"stream {stream!r}", expected=f"0..{self.streams - 1} (the engine has "
                             f"{self.streams} stream(s))", fix="load the engine with more streams=")

    # --- the per-frame path -----------------------------------------------------------------
    def step(self, frame: np.ndarray, stream: int = 0) -> Prediction:
        """One BGR uint8 frame (H, W, 3) of any size, or one (F,) feature vector for feature models."""
        return self.step_batch([frame], streams=[stream])[0]

    def step_batch(self, frames: Sequence[np.ndarray] | np.ndarray, streams: Sequence[int] | None = None,
                   *, colour: ColourOrder = ColourOrder.BGR) -> list[Prediction]:
        """One frame per stream (``streams[i]`` for ``frames[i]``, default 0..n-1), encoder batched."""
        t0 = time.perf_counter_ns()
        self._check_open()
        n = len(frames)
        ids = self._ids(n, streams)
        slots = ids if self._static else range(n)
        for slot, frame in zip(slots, frames):
            self._prepare(slot, frame, colour)
        t1 = time.perf_counter_ns()
        logits, enc_ns, step_ns = self._infer(ids)
        t3 = time.perf_counter_ns()
        preds = self._postprocess(ids, logits)
        t4 = time.perf_counter_ns()
        tm = Timings(preprocess=(t1 - t0) / 1e6, encoder=enc_ns / 1e6, step=step_ns / 1e6,
                     postprocess=(t4 - t3) / 1e6, total=(t4 - t0) / 1e6)
        for p in preds:  # the batch shares one Timings; set in place rather than rebuilding each frozen Prediction
            object.__setattr__(p, "timings", tm)
        return preds

    def _ids(self, n: int, streams: Sequence[int] | np.ndarray | None) -> list[int]:
        """The stream of each of ``n`` frames, checked (type, range, one frame per stream)."""
        if streams is None:
            ids = list(range(n))
            if n > self.streams:
                self._check_stream(self.streams)  # the first stream id out of range
        else:
            if not isinstance(streams, (Sequence, np.ndarray)):
                raise UsageError(f"streams={streams!r}", expected="a sequence of stream ids, one per frame",
                                 fix="pass streams=[0, 1, ...], or use step(frame, stream=i) for one frame")
            for s in streams:
                self._check_stream(s)
            ids = [int(s) for s in streams]
        if len(ids) != n or n == 0:
            raise UsageError(f"{n} frames for {len(ids)} streams", expected="one frame per stream, at least one",
                             fix="pass as many stream ids as frames")
        if n > 1 and len(set(ids)) != n:
            raise UsageError(f"stream ids {ids} repeat", expected="each stream at most once per batch",
                             fix="step a stream's next frame in the next call")
        return ids

    def _prepare(self, slot: int, frame: np.ndarray, colour: ColourOrder) -> None:
        if self.kind == ModelKind.FEATURES:
            self._buf[slot] = check_features(frame, self._buf.shape[1])
            return
        self._resizer.into(self._buf[slot], frame, colour)

    def _infer(self, ids: list[int]) -> tuple[np.ndarray, int, int]:
        n = len(ids)
        rows: list[int] | None = None  # the stepped streams' rows of the results (static batch), None: all
        if self._static:  # fixed batch (NPU): run every slot, keep only the stepped streams' results
            sel: slice | list[int] = slice(None)
            rows, n = ids, self.streams
        elif ids[0] == 0 and ids[-1] == n - 1 and (n < 3 or ids == list(range(n))):
            sel = slice(0, n)  # streams 0..n-1: views of the state, no gather/scatter
        else:
            sel = ids
        if isinstance(sel, slice):
            batch, states = self._views(n)
        else:  # gathered copies
            batch, states = self._buf[:n], {name: arr[:, sel] for name, arr in self._state.items()}
        res = self._chain.step(batch, states)
        bad: list[int] = []
        for name, new in res.state.items():  # (num_layers, n, hidden)
            new_rows = new[:, rows] if rows is not None else new
            if not np.isfinite(new_rows).all():
                finite = np.isfinite(new_rows).all(axis=(0, 2))
                bad.extend(ids[i] for i in np.flatnonzero(~finite))
            if rows is None and isinstance(sel, slice):
                np.copyto(states[name], new)  # the state the next step's bound inputs read
            else:
                self._state[name][:, ids] = new_rows
        logits = res.logits[rows] if rows is not None else res.logits  # (n, K)
        for s in sorted(set(bad)):
            log.warning("stream %d: the LSTM state became non-finite (bad input or an overflowing model); "
                        "state reset", s)
            self.reset(s)
        self._bad = set(bad)
        return logits, res.encoder_ns, res.step_ns

    def _views(self, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The input buffer and state of streams 0..n-1 as views, the same objects every call: the
        backend keeps them bound (see :class:`~edgelstm.runtime.binding.BoundInputs`)."""
        got = self._view_cache.get(n)
        if got is None:
            got = self._view_cache[n] = (self._buf[:n], {name: a[:, :n] for name, a in self._state.items()})
        return got

    def _postprocess(self, ids: list[int], logits: np.ndarray) -> list[Prediction]:
        """Softmax, smoothing and top-k for the whole batch at once; one Prediction per stream."""
        raw = np.asarray(logits, dtype=np.float32)  # (n, K): ours (runners return the caller's arrays)
        bad = self._bad
        if not bad and np.isfinite(raw.sum()):  # the common case: one check for the whole batch
            ok = _all_ok(len(ids))
            probs = softmax(raw)  # (n, K), a new array
        else:
            ok = np.isfinite(raw).all(axis=1) & np.array([s not in bad for s in ids])
            probs = softmax(np.where(ok[:, None], raw, 0.0).astype(np.float32, copy=False))
        if self._smoother.cfg.active:
            shown_probs, shown = probs.copy(), probs.argmax(axis=1)
            if ok.any():
                rows = np.flatnonzero(ok)
                shown_probs[rows], shown[rows] = self._smoother.update_batch(np.asarray(ids)[rows], probs[rows])
        else:
            shown_probs, shown = probs, None
        order = np.argsort(-shown_probs, axis=1, kind="stable")[:, : self._k]  # (n, k), best first
        if shown is None:
            shown = order[:, 0]  # the argmax: a stable sort puts the first of equal maxima first
        order_l, probs_l, shown_l = order.tolist(), shown_probs.tolist(), shown.tolist()
        labels, zero, preds = self.labels, _PENDING, []
        for i, s in enumerate(ids):
            if not ok[i]:
                preds.append(Prediction(s, -1, "", 0.0, np.zeros_like(probs[i]), raw[i], (), zero,
                                        reset="non-finite state" if s in bad else "non-finite logits"))
                continue
            j, row = shown_l[i], probs_l[i]
            ev, nar = self._events, self.narrator
            preds.append(Prediction(s, j, labels[j], row[j], shown_probs[i], raw[i],
                                    tuple((c, row[c]) for c in order_l[i]), zero,
                                    events=ev.update(s, probs[i]) if ev is not None else (),
                                    event=ev.active(s) if ev is not None else None,
                                    caption=nar.update(s, j, {k: v[:, s:s + 1] for k, v in self._state.items()})
                                    if nar is not None else None))
        return preds


_NOTED: set[str] = set()  # bundles whose missing self-test was already logged


def _memory_bytes() -> int:
    """This machine's physical memory (0 when the OS does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def _check_memory(m: Manifest, streams: int) -> None:
    """Refuse up front an engine whose buffers (frames or features, and the state, per stream) would not fit
    in half of this machine's memory, instead of a MemoryError or swapping on the first frame."""
    per_stream = 4 * sum(int(np.prod([d for d in s.shape if isinstance(d, int)])) for s in m.state)
    if m.preprocess is not None:
        what = f"{m.preprocess.size[0]}x{m.preprocess.size[1]} frames"
        per_stream += m.preprocess.size[0] * m.preprocess.size[1] * 3
    else:
        what = f"{m.model.feature_size} features"
        per_stream += 4 * m.model.feature_size
    need, have = streams * per_stream, _memory_bytes()
    if have and need > have // 2:
        raise UsageError(f"{streams} stream(s) of {what} need {need / 2**30:.1f} GiB of buffers",
                         expected="buffers within half of this machine's memory",
                         fix="use fewer --streams, or a model exported at a smaller --size")


_OK: dict[int, np.ndarray] = {}


def _all_ok(n: int) -> np.ndarray:
    """A read-only all-True (n,) mask, made once per batch size."""
    if n not in _OK:
        _OK[n] = np.ones(n, bool)
        _OK[n].flags.writeable = False
    return _OK[n]


_PENDING = Timings(0.0, 0.0, 0.0, 0.0, 0.0)  # replaced by the batch's timings before step_batch returns



__all__ = ["GRAPHS", "HALVE_ABOVE_PIXELS", "SMALL_MODEL_MACS", "Engine", "Prediction", "Timings", "check_features",
           "check_frame", "int8_verdict", "resolve_profile"]

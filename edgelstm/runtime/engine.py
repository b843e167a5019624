"""The streaming engine: one frame in, one decision out, LSTM state kept per stream.

``Engine.load`` verifies the bundle, picks backend, artefacts and options from a device
profile, and checks every model's real inputs against the manifest. ``engine.step(frame)``
validates the frame, resizes it straight into a preallocated uint8 buffer (the graph
normalises in-graph, so there is no float copy on the host), runs encoder and step (or the
fused graph), and returns a :class:`Prediction` with per-stage timings. ``step_batch`` does the
same for one frame per stream, batching the encoder across streams.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgelstm.devices import DeviceProfile, load_profile
from edgelstm.errors import BundleError, FrameError, UsageError, unknown_choice
from edgelstm.runtime.backends import ORT_PROVIDERS, OV_DEVICES, BackendOptions, ModelRunner, open_model
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.postprocess import Smoother, Smoothing, softmax
from edgelstm.spec import (C_IN, FEATURES, FRAMES, H_IN, LOGITS, Backend, ColourOrder, Manifest, ModelKind, Precision,
                           ResizeMode, Role)

log = logging.getLogger(__name__)

_INTERP = {ResizeMode.BILINEAR: cv2.INTER_LINEAR, ResizeMode.AREA: cv2.INTER_AREA,
           ResizeMode.NEAREST: cv2.INTER_NEAREST}
GRAPHS = ("auto", "split", "fused")
# AREA resize of a large frame: exact 2x2 box halvings first (OpenCV's SIMD path, memory-bound), then
# INTER_AREA on the rest. 640x480 -> 32x32 here: 0.12 ms instead of 0.19 ms; against the exact box average
# it is off by at most 3.5 grey levels (mean 0.34, direct INTER_AREA: 0.25) from rounding at each halving
# (benchmarks/host_overhead.py, tests/runtime/test_engine.py). Small frames (tests, small cameras) skip it.
HALVE_ABOVE_PIXELS = 65_536
SMALL_MODEL_MACS = 10_000_000  # below this per frame, a CPU profile's "auto" threads means one thread


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

    @property
    def raw_index(self) -> int:
        return int(self.logits.argmax())


@dataclass
class _Plan:
    backend: Backend
    precision: Precision
    options: BackendOptions
    graph: str                           # "split", "fused" or "step" (feature models)
    why: list[str] = field(default_factory=list)


def resolve_profile(device: str | Path | DeviceProfile) -> DeviceProfile:
    return device if isinstance(device, DeviceProfile) else load_profile(device)


def int8_verdict(manifest: Manifest, backend: Backend, streams: int = 1) -> tuple[bool, str]:
    """Whether the bundle's quantization report says INT8 passed its gate and pays off on ``backend``
    for an engine stepping ``streams`` streams together.

    With ``int8_pays_from_batch`` in the report (export measures FP32/INT8 per batch), INT8 is chosen
    from that batch on and FP32 below it; older reports have only the batch-1 ratio.
    """
    report: Any = manifest.quantization
    if not report:
        return False, "the bundle has no quantization report"
    if isinstance(report.get(str(backend)), dict):
        report = report[str(backend)]
    elif isinstance(report.get("backends"), dict) and isinstance(report["backends"].get(str(backend)), dict):
        report = report["backends"][str(backend)]
    if isinstance(report.get("chosen"), dict):  # export's QuantReport: backends.<b>.chosen is the trial kept
        report = {**report, "passed": report["chosen"].get("passed")}
    passed = next((report[k] for k in ("passed", "gate_passed", "accepted") if k in report), None)
    if passed is not True:
        return False, f"INT8 did not pass its accuracy gate on {backend}" if passed is False else \
            f"the quantization report does not say whether INT8 passed on {backend}"
    by_batch = report.get("int8_fp32_latency_ratio_by_batch")
    if isinstance(by_batch, dict) and by_batch and "int8_pays_from_batch" in report:
        ratios = ", ".join(f"{k}: {v:.2f}x" for k, v in by_batch.items() if isinstance(v, (int, float)))
        start = report["int8_pays_from_batch"]
        if not isinstance(start, int) or isinstance(start, bool):
            return False, f"INT8 does not pay on {backend} at any batch measured (INT8/FP32 by batch {ratios})"
        if streams < start:
            return False, (f"INT8 does not pay on {backend} below batch {start} and the engine steps {streams} "
                           f"stream(s) (INT8/FP32 by batch {ratios})")
        return True, f"INT8 passed its gate and pays on {backend} from batch {start} ({streams} stream(s); {ratios})"
    paid = report.get("paid_off")
    if paid is None and isinstance(report.get("speedup"), (int, float)):
        paid = report["speedup"] > 1.0
    if paid is None and isinstance(report.get("int8_fp32_latency_ratio"), (int, float)):
        paid = report["int8_fp32_latency_ratio"] < 1.0
    if paid is not True:
        return False, f"INT8 passed its gate but was not faster on {backend}"
    return True, f"INT8 passed its gate and paid off on {backend}"


def _plan(manifest: Manifest, profile: DeviceProfile, *, backend: str | None, precision: str | None,
          threads: int | None, graph: str, streams: int, options: BackendOptions | None) -> _Plan:
    why = [f"device profile '{profile.name}'"]
    be = profile.backend
    if backend is not None:
        if backend not in {b.value for b in Backend}:
            raise unknown_choice("backend", backend, [b.value for b in Backend],
                                 fix="pass --backend onnxruntime or --backend openvino, or drop it")
        be = Backend(backend)
        valid = tuple(ORT_PROVIDERS) if be == Backend.ONNXRUNTIME else OV_DEVICES
        if profile.device not in valid:
            raise UsageError(f"device profile '{profile.name}' runs on {profile.backend} {profile.device}, "
                             f"which --backend {be} cannot drive", expected=f"a {be} device ({', '.join(valid)})",
                             fix=f"drop --backend, or choose a --device profile for {be} (`edgelstm devices`)")
    prec = precision or profile.precision
    if prec == "auto":
        ok, reason = int8_verdict(manifest, be, streams)
        has_int8 = any(a.backend == be and a.precision == Precision.INT8 for a in manifest.artifacts)
        prec = "int8" if ok and has_int8 else "fp32"
        why.append(f"precision {prec}: {reason}" + ("" if has_int8 or not ok else " (but no INT8 artefact)"))
    if prec not in {p.value for p in Precision}:
        raise unknown_choice("precision", prec, [p.value for p in Precision] + ["auto"],
                             fix="pass --precision auto, fp32 or int8")
    # The artefact's recorded inference precision passed export's parity check; f32 is the safe fallback
    # (OpenVINO's CPU plugin would otherwise pick bf16 on AVX512-BF16 CPUs, which no parity check covered).
    art_ip = next((a.inference_precision for a in manifest.artifacts
                   if a.backend == be and a.precision == Precision(prec) and a.inference_precision), "")
    default_ip = art_ip or ("f32" if be == Backend.OPENVINO else "")
    if threads is None and profile.threads == 0 and profile.device == "CPU" and \
            0 < manifest.model.macs_per_frame < SMALL_MODEL_MACS:
        # Measured here (2 cores): a 0.1 MMAC student ran 2.5x faster on average and with 3x lower p99 on one
        # onnxruntime thread than on the default pool; waking and spinning threads costs more than the work.
        threads = 1
        why.append(f"1 thread: {manifest.model.macs_per_frame / 1e6:.2f} MMAC/frame is faster single-threaded")
    if options is None:
        options = BackendOptions(device=profile.device, threads=profile.threads if threads is None else threads,
                                 performance_hint=profile.performance_hint,
                                 inference_precision=profile.inference_precision or default_ip,
                                 static_batch=streams if profile.static_batch else 0)
    else:
        options = dataclasses.replace(options, threads=options.threads if threads is None else threads,
                                      inference_precision=options.inference_precision or default_ip)
    if graph not in GRAPHS:
        raise unknown_choice("graph", graph, GRAPHS, fix="pass --graph auto, split or fused")
    if manifest.model.kind == ModelKind.FEATURES:
        graph = "step"
    elif graph == "auto":
        # Split first: its per-stage timings are what `profile` reports, and encoder batching across
        # streams is explicit. The fused graph is used when the bundle has only that.
        split = all(manifest.artifact(r, be, Precision(prec)) for r in (Role.ENCODER, Role.STEP))
        graph = "split" if split or manifest.artifact(Role.FUSED, be, Precision(prec)) is None else "fused"
    return _Plan(be, Precision(prec), options, graph, why)


class Engine:
    """Runs a bundle frame by frame for ``streams`` sources, each with its own LSTM state."""

    def __init__(self, bundle: Bundle, plan: _Plan, runners: dict[Role, ModelRunner], *, streams: int,
                 smoothing: Smoothing, k: int) -> None:
        m = bundle.manifest
        self.bundle, self.manifest, self.plan, self.streams = bundle, m, plan, streams
        self.labels = m.labels
        self.kind = m.model.kind
        self._runners = runners
        self._smoother = Smoother(streams, m.model.num_classes, smoothing)
        self._k = max(1, k)
        self._static = plan.options.static_batch > 0
        self._state = {s.input: np.zeros([streams if isinstance(d, str) else d for d in s.shape], np.float32)
                       for s in m.state}  # each (num_layers, S, hidden)
        self._state_out = {s.output: s.input for s in m.state}
        self._bad: set[int] = set()  # streams whose state went non-finite in the last batch
        if self.kind == ModelKind.FRAMES:
            if m.preprocess is None:
                raise BundleError("a frame model's manifest has no preprocess section", path=bundle.path,
                                  fix="re-export the bundle")
            self.size = m.preprocess.size
            self.colour = m.preprocess.colour_order
            self._interp = _INTERP[m.preprocess.resize]
            self._buf = np.zeros((streams, self.size[0], self.size[1], 3), np.uint8)  # (S, H, W, 3)
            self._halves: dict[tuple[int, int], np.ndarray] = {}  # scratch for _halve, one per frame size
        else:
            self._buf = np.zeros((streams, m.model.feature_size), np.float32)  # (S, F)
        self.info: dict[str, Any] = {
            "backend": str(plan.backend), "precision": str(plan.precision), "graph": plan.graph,
            "device": plan.options.device, "threads": plan.options.threads, "streams": streams,
            "choice": "; ".join(plan.why),
            **{f"{role}": r.info for role, r in runners.items()},
        }

    # --- construction -------------------------------------------------------------------
    @classmethod
    def load(cls, bundle: str | Path | Bundle, *, device: str | Path | DeviceProfile = "cpu",
             backend: str | None = None, precision: str | None = None, threads: int | None = None,
             streams: int = 1, graph: str = "auto", smoothing: Smoothing = Smoothing(), top_k: int = 5,
             options: BackendOptions | None = None) -> Engine:
        """Verify ``bundle``, choose artefacts and options from ``device``, open the models.

        ``backend``/``precision``/``threads`` override the profile; ``options`` replaces the
        profile's backend options altogether. ``precision="auto"`` (a profile's default) takes INT8
        only when the bundle's quantization report says it passed its gate and paid off.
        """
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise UsageError(f"streams={streams!r}", expected="an integer >= 1", fix="pass --streams 1 or more")
        b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        profile = resolve_profile(device)
        plan = _plan(b.manifest, profile, backend=backend, precision=precision, threads=threads, graph=graph,
                     streams=streams, options=options)
        roles = {"split": (Role.ENCODER, Role.STEP), "fused": (Role.FUSED,), "step": (Role.STEP,)}[plan.graph]
        runners = {r: open_model(b, b.find(r, plan.backend, plan.precision), plan.options) for r in roles}
        eng = cls(b, plan, runners, streams=streams, smoothing=smoothing, k=top_k)
        log.info("engine: %s", eng.info)
        return eng

    @property
    def inference_precision(self) -> str:
        """What the LSTM step actually runs in (OpenVINO: f32/bf16/f16; onnxruntime: the artefact's)."""
        role = Role.FUSED if self.plan.graph == "fused" else Role.STEP
        return str(self._runners[role].info.get("inference_precision", ""))

    # --- state ----------------------------------------------------------------------------
    def reset(self, stream: int | None = None) -> None:
        """Zero the LSTM state (and the smoothing) of one stream, or of all."""
        if stream is not None:
            self._check_stream(stream)
        for arr in self._state.values():
            arr[:, slice(None) if stream is None else stream] = 0.0
        self._smoother.reset(stream)

    def state(self, stream: int) -> tuple[np.ndarray, np.ndarray]:
        """A copy of one stream's LSTM state ``(h, c)``, each (num_layers, hidden), as the next frame will see it."""
        self._check_stream(stream)
        return self._state[H_IN][:, stream].copy(), self._state[C_IN][:, stream].copy()

    def _check_stream(self, stream: int) -> None:
        if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or not 0 <= stream < self.streams:
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
        n = len(frames)
        ids = list(range(n)) if streams is None else [int(s) for s in streams]
        if len(ids) != n or n == 0:
            raise UsageError(f"{n} frames for {len(ids)} streams", expected="one frame per stream, at least one",
                             fix="pass as many stream ids as frames")
        for s in ids:
            self._check_stream(s)
        if len(set(ids)) != n:
            raise UsageError(f"stream ids {ids} repeat", expected="each stream at most once per batch",
                             fix="step a stream's next frame in the next call")
        slots = ids if self._static else list(range(n))
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

    def _prepare(self, slot: int, frame: np.ndarray, colour: ColourOrder) -> None:
        if self.kind == ModelKind.FEATURES:
            self._buf[slot] = check_features(frame, self._buf.shape[1])
            return
        check_frame(frame)
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        dst = self._buf[slot]
        h, w = self.size
        swap = colour != self.colour
        if frame.shape[0] == h and frame.shape[1] == w:
            if swap:
                cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=dst)
            else:
                np.copyto(dst, frame)
            return
        src = frame
        if self._interp == cv2.INTER_AREA:
            src = self._halve(frame, h, w)
        cv2.resize(src, (w, h), dst=dst, interpolation=self._interp)  # straight into the batch buffer
        if swap:  # after the resize: fewer pixels to swap
            cv2.cvtColor(dst, cv2.COLOR_BGR2RGB, dst=dst)

    def _halve(self, frame: np.ndarray, h: int, w: int) -> np.ndarray:
        """Exact 2x2 box halvings of a large frame while it stays >= 4x the target (see HALVE_ABOVE_PIXELS)."""
        src = frame
        while (src.shape[0] * src.shape[1] >= HALVE_ABOVE_PIXELS and src.shape[0] >= 4 * h and src.shape[1] >= 4 * w
               and src.shape[0] % 2 == 0 and src.shape[1] % 2 == 0):
            key = (src.shape[0] // 2, src.shape[1] // 2)
            half = self._halves.get(key)
            if half is None:
                half = self._halves[key] = np.empty((*key, 3), np.uint8)
            cv2.resize(src, (key[1], key[0]), dst=half, interpolation=cv2.INTER_AREA)
            src = half
        return src

    def _infer(self, ids: list[int]) -> tuple[np.ndarray, int, int]:
        n = len(ids)
        if self._static:  # fixed batch (NPU): run every slot, keep only the stepped streams' results
            sel: Any = slice(None)
            rows: Any = ids
            n = self.streams
        elif ids[0] == 0 and ids[-1] == n - 1 and (n < 3 or ids == list(range(n))):
            sel, rows = slice(0, n), slice(None)  # streams 0..n-1: views of the state, no gather/scatter
        else:
            sel, rows = ids, slice(None)
        batch = self._buf[:n]
        states = {name: arr[:, sel] for name, arr in self._state.items()}  # slice: views; ids: gathered copies
        enc_ns = 0
        if self.plan.graph == "split":
            t = time.perf_counter_ns()
            feats = self._runners[Role.ENCODER].run({FRAMES: batch})[FEATURES]  # (n, F)
            enc_ns = time.perf_counter_ns() - t
            first = {FEATURES: feats}
        elif self.plan.graph == "fused":
            first = {FRAMES: batch}
        else:
            first = {FEATURES: batch}
        runner = self._runners[Role.FUSED if self.plan.graph == "fused" else Role.STEP]
        t = time.perf_counter_ns()
        out = runner.run({**first, **states})
        step_ns = time.perf_counter_ns() - t
        bad: list[int] = []
        for out_name, in_name in self._state_out.items():
            new = out[out_name]  # (num_layers, n, hidden)
            new_rows = new[:, rows] if not isinstance(rows, slice) else new
            if not np.isfinite(new_rows).all():
                finite = np.isfinite(new_rows).all(axis=(0, 2))
                bad.extend(ids[i] for i in np.flatnonzero(~finite))
            if isinstance(sel, slice) and not self._static:
                self._state[in_name][:, sel] = new
            else:
                self._state[in_name][:, ids] = new_rows
        logits = out[LOGITS][rows] if not isinstance(rows, slice) else out[LOGITS]  # (n, K)
        for s in sorted(set(bad)):
            log.warning("stream %d: the LSTM state became non-finite (bad input or an overflowing model); "
                        "state reset", s)
            self.reset(s)
        self._bad = set(bad)
        return logits, enc_ns, step_ns

    def _postprocess(self, ids: list[int], logits: np.ndarray) -> list[Prediction]:
        """Softmax, smoothing and top-k for the whole batch at once; one Prediction per stream."""
        raw = np.array(logits, dtype=np.float32)  # (n, K): our copy (the runner may reuse its output buffer)
        bad = self._bad
        if not bad and np.isfinite(raw.sum()):  # the common case: one check for the whole batch
            ok = _all_ok(len(ids))
            probs = softmax(raw.copy())  # (n, K)
        else:
            ok = np.isfinite(raw).all(axis=1) & np.array([s not in bad for s in ids])
            probs = softmax(np.where(ok[:, None], raw, 0.0).astype(np.float32, copy=False))
        if self._smoother.cfg.active:
            shown_probs, shown = probs.copy(), probs.argmax(axis=1)
            if ok.any():
                rows = np.flatnonzero(ok)
                shown_probs[rows], shown[rows] = self._smoother.update_batch(np.asarray(ids)[rows], probs[rows])
        else:
            shown_probs, shown = probs, probs.argmax(axis=1)
        order = np.argsort(-shown_probs, axis=1, kind="stable")[:, : self._k]  # (n, k), best first
        order_l, probs_l, shown_l = order.tolist(), shown_probs.tolist(), shown.tolist()
        labels, zero, preds = self.labels, _PENDING, []
        for i, s in enumerate(ids):
            if not ok[i]:
                preds.append(Prediction(s, -1, "", 0.0, np.zeros_like(probs[i]), raw[i], (), zero,
                                        reset="non-finite state" if s in bad else "non-finite logits"))
                continue
            j, row = shown_l[i], probs_l[i]
            preds.append(Prediction(s, j, labels[j], row[j], shown_probs[i], raw[i],
                                    tuple((c, row[c]) for c in order_l[i]), zero))
        return preds


_OK: dict[int, np.ndarray] = {}


def _all_ok(n: int) -> np.ndarray:
    """A read-only all-True (n,) mask, made once per batch size."""
    if n not in _OK:
        _OK[n] = np.ones(n, bool)
        _OK[n].flags.writeable = False
    return _OK[n]


_PENDING = Timings(0.0, 0.0, 0.0, 0.0, 0.0)  # replaced by the batch's timings before step_batch returns


def check_frame(frame: Any) -> None:
    """Raise :class:`FrameError` unless ``frame`` is a uint8 (H, W, 3) image."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"a frame of type {type(frame).__name__}", expected="a numpy uint8 array (H, W, 3), BGR",
                         fix="pass the array cv2.VideoCapture.read() returns")
    if frame.ndim != 3 or frame.shape[2] != 3:
        fix = ("convert it with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)" if frame.ndim == 2 or
               (frame.ndim == 3 and frame.shape[2] == 1) else
               "drop the alpha channel with cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)" if frame.ndim == 3 and
               frame.shape[2] == 4 else "pass one frame (H, W, 3) at a time, channels last")
        raise FrameError(f"a frame of shape {list(frame.shape)}", expected="(H, W, 3): one colour image, channels last",
                         fix=fix)
    if min(frame.shape[:2]) < 1:
        raise FrameError(f"an empty frame of shape {list(frame.shape)}", expected="at least 1x1 pixels",
                         fix="check the source delivers images")
    if frame.dtype != np.uint8:
        what = f"a {frame.dtype} frame"
        if frame.dtype.kind == "f" and not np.isfinite(frame).all():
            what += " with NaN/Inf values"
        raise FrameError(what, expected="uint8 pixels 0..255 (the graph normalises them itself)",
                         fix="pass the camera's uint8 frame; for float images use "
                             "np.clip(np.nan_to_num(img), 0, 255).astype(np.uint8)")


def check_features(x: Any, size: int) -> np.ndarray:
    """A (F,) float feature vector as float32, or :class:`FrameError`."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise FrameError(f"features of type {type(x).__name__}{'' if not isinstance(x, np.ndarray) else ' ' + str(x.dtype)}",
                         expected=f"a float32 vector of {size} features", fix="pass np.asarray(features, np.float32)")
    if x.shape != (size,):
        raise FrameError(f"features of shape {list(x.shape)}", expected=f"({size},): one frame's feature vector",
                         fix="pass one time step at a time, with the feature size the model was trained on")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise FrameError(f"features with {int((~np.isfinite(x)).sum())} NaN/Inf value(s)",
                         expected="finite numbers", fix="fix the feature extractor, or skip this frame")
    return x.astype(np.float32, copy=False)

"""The streaming graphs: open an artefact on its backend, and step them (the one streaming loop).

``BACKENDS`` maps each :class:`~edgelstm.spec.Backend` to its runner; :func:`open_model` is the one
place that dispatches on it, and every runner checks the model's real inputs and outputs against the
manifest before the first frame. Adding a backend is one runner class and one entry.

The loop "zero state -> encoder -> step -> feed h_out/c_out back" is written once:
:class:`Chain` holds the streaming graphs of one backend and precision (encoder + step, the fused
graph, or the step graph of a feature model) and :meth:`Chain.step` advances a batch of streams by one
time step under the manifest's state contract. Everything that runs a bundle over time calls it: the
:class:`~edgelstm.runtime.engine.Engine` (every decision on a device), export's parity check, the INT8
calibration feed, the self-test and the latency measurements.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgelstm import spec
from edgelstm.errors import BundleError, DeviceError, unknown_choice
from edgelstm.runtime.binding import BoundInputs, OutputBuffers
from edgelstm.runtime.bundle import Bundle
from edgelstm.spec import BATCH, Artifact, Backend, Manifest, ModelKind, Precision, Role, TensorSpec

log = logging.getLogger(__name__)

# onnxruntime device name -> execution provider
ORT_PROVIDERS = {
    "CPU": "CPUExecutionProvider",
    "CUDA": "CUDAExecutionProvider",
    "TensorRT": "TensorrtExecutionProvider",
    "OpenVINO": "OpenVINOExecutionProvider",
}
OV_DEVICES = ("CPU", "GPU", "NPU", "AUTO")


@dataclass(frozen=True)
class BackendOptions:
    device: str = "CPU"              # onnxruntime: CPU, CUDA, TensorRT, OpenVINO; OpenVINO: CPU, GPU, NPU, AUTO
    threads: int = 0                 # 0: the backend's default
    performance_hint: str = "LATENCY"  # OpenVINO: LATENCY or THROUGHPUT
    inference_precision: str = ""    # OpenVINO: f32, bf16, f16; "": through Engine, the artefact's verified one
    static_batch: int = 0            # OpenVINO: compile with this fixed batch (NPU needs static shapes); 0: dynamic


class ModelRunner(Protocol):
    """A loaded model: ``run`` takes and returns arrays keyed by the spec's tensor names.

    The returned arrays are the caller's, unless ``views=True``: then they may be views of the
    runner's own output buffers, valid until its next ``run`` (the encoder -> step hand-off in
    :meth:`Chain.step`, which consumes them at once). A runner keeps its inputs bound between calls
    and rebinds only the ones whose memory changed, so it is for one thread at a time.
    """

    backend: Backend
    info: dict[str, str]  # what actually runs: device, provider, inference precision

    def run(self, feeds: dict[str, np.ndarray], *, views: bool = False) -> dict[str, np.ndarray]: ...


def _dtype_of_ort(t: str) -> str:
    return {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int64)": "int64",
            "tensor(float16)": "float16", "tensor(int8)": "int8"}.get(t, t)


def check_io(model_file: Path, kind: str, declared: tuple[TensorSpec, ...],
             actual: list[tuple[str, tuple[int | str | None, ...], str]]) -> None:
    """Raise a clear error when a model's real inputs/outputs disagree with the manifest."""
    by_name = {name: (shape, dtype) for name, shape, dtype in actual}
    for t in declared:
        if t.name not in by_name:
            raise BundleError(f"the model has no {kind} '{t.name}' (it has {', '.join(by_name) or 'none'})",
                              expected=f"the {kind}s the manifest lists", path=model_file,
                              fix="the model and manifest.json come from different exports; re-export the bundle")
        shape, dtype = by_name[t.name]
        if not t.matches(shape, dtype):
            raise BundleError(f"{kind} '{t.name}' is {list(shape)} {dtype}", path=model_file,
                              expected=f"{list(t.shape)} {t.dtype} as the manifest says",
                              fix="re-export the bundle so model and manifest agree")


# --- onnxruntime ------------------------------------------------------------------------
class OrtRunner:
    backend = Backend.ONNXRUNTIME

    def __init__(self, path: Path, art: Artifact, opts: BackendOptions) -> None:
        import onnxruntime as ort

        if opts.device not in ORT_PROVIDERS:
            raise unknown_choice("onnxruntime device", opts.device, ORT_PROVIDERS, error=DeviceError)
        provider = ORT_PROVIDERS[opts.device]
        available = ort.get_available_providers()
        if provider not in available:
            raise DeviceError(f"onnxruntime's {provider} is not available here (installed: {', '.join(available)})",
                              fix=_provider_fix(opts.device))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if opts.threads:
            so.intra_op_num_threads = opts.threads
        so.log_severity_level = 3
        providers: list[Any] = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BundleError(f"onnxruntime cannot load the model ({type(e).__name__}: {_ort_reason(e, path)})",
                              path=path, fix="re-export the bundle with `edgelstm export`") from None
        check_io(path, "input", art.inputs,
                 [(i.name, tuple(i.shape), _dtype_of_ort(i.type)) for i in self.session.get_inputs()])
        check_io(path, "output", art.outputs,
                 [(o.name, tuple(o.shape), _dtype_of_ort(o.type)) for o in self.session.get_outputs()])
        self.output_names = [t.name for t in art.outputs]
        self.info = {"backend": "onnxruntime", "device": opts.device,
                     "provider": self.session.get_providers()[0], "inference_precision": str(art.precision)}
        # IOBinding (see runtime.binding): CPU binds share the array's memory; other providers copy at bind
        # time, so there every call rebinds.
        self._io = self.session.io_binding()
        dtypes = {t.name: np.dtype(t.dtype) for t in art.inputs}
        self._inputs = BoundInputs(dtypes, self._io.bind_cpu_input, keep=provider == "CPUExecutionProvider")
        self._buffers = OutputBuffers(art.inputs, art.outputs)
        self._outs: list[np.ndarray] | None = None  # the arrays the outputs are bound to (None: onnxruntime's)

    def run(self, feeds: dict[str, np.ndarray], *, views: bool = False) -> dict[str, np.ndarray]:
        if self._inputs.update(feeds):  # new input shapes: outputs of the matching size
            self._bind_outputs(feeds)
        self.session.run_with_iobinding(self._io)
        outs = self._outs
        if outs is None:
            return dict(zip(self.output_names, self._io.copy_outputs_to_cpu()))
        return dict(zip(self.output_names, outs if views else [o.copy() for o in outs]))

    def _bind_outputs(self, feeds: dict[str, np.ndarray]) -> None:
        io = self._io
        io.clear_binding_outputs()
        self._outs = self._buffers.get(feeds)
        for i, name in enumerate(self.output_names):
            if self._outs is None:
                io.bind_output(name, "cpu")  # an output size no input sets: onnxruntime allocates it
            else:
                a = self._outs[i]
                io.bind_output(name, "cpu", 0, a.dtype, list(a.shape), a.ctypes.data)


def _ort_reason(e: Exception, path: Path) -> str:
    """onnxruntime's reason without its status prefix and the path the message already names."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(e))
    return text.replace(f"Load model from {path} failed:", "").strip()[:200]


def _provider_fix(device: str) -> str:
    return {
        "CUDA": "install onnxruntime-gpu matching your CUDA version, or use --device cpu",
        "TensorRT": "install onnxruntime-gpu with TensorRT libraries, or use --device cpu",
        "OpenVINO": "install onnxruntime-openvino, or use the openvino backend (pip install openvino)",
    }.get(device, "use --device cpu")


# --- OpenVINO ---------------------------------------------------------------------------
class OvRunner:
    backend = Backend.OPENVINO

    def __init__(self, path: Path, art: Artifact, opts: BackendOptions) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise DeviceError("the OpenVINO backend needs the openvino package, which is not installed",
                              fix="pip install 'edgelstm[openvino]', or use --backend onnxruntime") from None
        core = ov.Core()
        if opts.device not in OV_DEVICES:
            raise unknown_choice("OpenVINO device", opts.device, OV_DEVICES, error=DeviceError)
        if opts.device != "AUTO" and not any(d.split(".")[0] == opts.device for d in core.available_devices):
            raise DeviceError(f"OpenVINO sees no {opts.device} device here (it sees {', '.join(core.available_devices)})",
                              fix="choose a device OpenVINO lists (`edgelstm devices`), or install its driver")
        try:
            model = core.read_model(str(path))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with long messages
            raise BundleError(f"OpenVINO cannot read the model ({str(e)[:200]})", path=path,
                              fix="re-export the bundle with `--format openvino`") from None
        check_io(path, "input", art.inputs, _ov_ports(model.inputs))
        check_io(path, "output", art.outputs, _ov_ports(model.outputs))
        if opts.static_batch:
            model.reshape({t.name: [opts.static_batch if d == BATCH else d for d in t.shape] for t in art.inputs})
        config: dict[str, str] = {"PERFORMANCE_HINT": opts.performance_hint}
        if opts.threads:
            config["INFERENCE_NUM_THREADS"] = str(opts.threads)
        if opts.inference_precision and opts.device in ("CPU", "GPU"):
            config["INFERENCE_PRECISION_HINT"] = opts.inference_precision
        self.compiled = core.compile_model(model, opts.device, config)
        self.request = self.compiled.create_infer_request()
        self.output_names = [t.name for t in art.outputs]
        # a port can carry several names (an Identity folded away): index it by all of them
        ports = {n: p for p in self.compiled.outputs for n in p.get_names()}
        self._out_ports = [ports[n] for n in self.output_names]
        # Inputs and outputs as shared-memory tensors set once per buffer (see runtime.binding): infer(dict)
        # copies every input into the request and every output out of it.
        self._tensor = tensor = ov.Tensor
        request = self.request  # not self: no cycle, so closing an engine frees the request at once
        self._inputs = BoundInputs({t.name: np.dtype(t.dtype) for t in art.inputs},
                                   lambda name, a: request.set_tensor(name, tensor(a, shared_memory=True)))
        self._buffers = OutputBuffers(art.inputs, art.outputs)
        self._outs: list[np.ndarray] | None = None  # the arrays the outputs are bound to (None: the request's)
        try:
            precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        except Exception:  # not every device reports it
            precision = opts.inference_precision or "default"
        self.info = {"backend": "openvino", "device": opts.device, "provider": "openvino",
                     "inference_precision": _short_type(precision),
                     "static_batch": str(opts.static_batch)}

    def run(self, feeds: dict[str, np.ndarray], *, views: bool = False) -> dict[str, np.ndarray]:
        req = self.request
        if self._inputs.update(feeds):  # new input shapes: outputs of the matching size
            self._outs = self._buffers.get(feeds)
            for port, a in zip(self._out_ports, self._outs or ()):
                req.set_tensor(port, self._tensor(a, shared_memory=True))
        req.infer(None, False, True)  # share_outputs: no copies into a result dict we would not use
        outs = self._outs
        if outs is None:  # an output size no input sets: views of the request's own tensors
            outs = [req.get_tensor(p).data for p in self._out_ports]
        return dict(zip(self.output_names, outs if views else [o.copy() for o in outs]))


def _short_type(t: str) -> str:
    """OpenVINO's "<Type: 'bfloat16'>" / "bfloat16" -> "bf16", the spelling the manifest and hints use."""
    t = t.replace("<Type: '", "").replace("'>", "")
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(t, t)


def _ov_ports(ports: Any) -> list[tuple[str, tuple[int | str | None, ...], str]]:
    return [(n, _ov_shape(p), _ov_dtype(p)) for p in ports for n in p.get_names()]


def _ov_shape(port: Any) -> tuple[int | None, ...]:
    return tuple(None if d.is_dynamic else d.get_length() for d in port.get_partial_shape())


def _ov_dtype(port: Any) -> str:
    name = str(port.get_element_type().get_type_name())
    return {"f32": "float32", "u8": "uint8", "i64": "int64", "f16": "float16", "i8": "int8"}.get(name, name)


BACKENDS: dict[Backend, Callable[[Path, Artifact, BackendOptions], ModelRunner]] = {
    Backend.ONNXRUNTIME: OrtRunner,
    Backend.OPENVINO: OvRunner,
}


def open_model(bundle: Bundle, art: Artifact, opts: BackendOptions = BackendOptions()) -> ModelRunner:
    """Load one artefact of a verified bundle on its backend."""
    return BACKENDS[art.backend](bundle.file(art), art, opts)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --- the streaming loop -------------------------------------------------------------------
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
            # views: the features go straight into the step graph (a recorder keeps them: then copies)
            x = self.encoder.run(feeds, views=record is None)[spec.FEATURES]  # (N, F)
            enc_ns = time.perf_counter_ns() - t
        feeds = {self.first_input: x, **state}
        if record is not None:
            record(self.role, feeds)
        t = time.perf_counter_ns()
        out = self.step_runner.run(feeds)
        step_ns = time.perf_counter_ns() - t
        return StepOut(out[spec.LOGITS], {i: out[o] for i, o in self._state_io}, enc_ns, step_ns)

    @functools.cached_property
    def _state_io(self) -> tuple[tuple[str, str], ...]:
        """(input, output) name of each state tensor, e.g. ("h", "h_out")."""
        return tuple((s.input, s.output) for s in self.manifest.state)

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

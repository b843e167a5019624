"""Which backend, precision, options and graph an engine runs: the device profile, the caller's
overrides and the bundle's quantization report, resolved into one :class:`Plan` (with the reasons)."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from edgelstm.devices import DeviceProfile, load_profile
from edgelstm.errors import UsageError, unknown_choice
from edgelstm.runtime.stream import ORT_PROVIDERS, OV_DEVICES, BackendOptions, cpu_count
from edgelstm.spec import Backend, Manifest, ModelKind, Precision, Role

GRAPHS = ("auto", "split", "fused")
log = logging.getLogger(__name__)

SMALL_MODEL_MACS = 10_000_000  # below this per frame, a CPU profile's "auto" threads means one thread


@dataclass
class Plan:
    backend: Backend
    precision: Precision
    options: BackendOptions
    graph: str                           # "split", "fused" or "step" (feature models)
    why: list[str] = field(default_factory=list)


def resolve_profile(device: str | Path | DeviceProfile) -> DeviceProfile:
    return device if isinstance(device, DeviceProfile) else load_profile(device)


def int8_verdict(manifest: Manifest, backend: Backend, streams: int = 1) -> tuple[bool, str]:
    """Whether the bundle's INT8 report says INT8 passed its gate and pays off on ``backend`` for an
    engine stepping ``streams`` streams together (export measures FP32/INT8 per batch)."""
    if manifest.quantization is None:
        return False, "the bundle has no quantization report"
    return manifest.quantization.verdict(str(backend), streams)


def make_plan(manifest: Manifest, profile: DeviceProfile, *, backend: str | None, precision: str | None,
              threads: int | None, graph: str, streams: int, options: BackendOptions | None) -> Plan:
    """The plan for ``manifest`` on ``profile``, with the caller's overrides; ``why`` says what decided it."""
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
    options = _cap_threads(options, why)
    if graph not in GRAPHS:
        raise unknown_choice("graph", graph, GRAPHS, fix="pass --graph auto, split or fused")
    if manifest.model.kind == ModelKind.FEATURES:
        graph = "step"
    elif graph == "auto":
        # Split first: its per-stage timings are what `profile` reports, and encoder batching across
        # streams is explicit. The fused graph is used when the bundle has only that.
        split = all(manifest.artifact(r, be, Precision(prec)) for r in (Role.ENCODER, Role.STEP))
        graph = "split" if split or manifest.artifact(Role.FUSED, be, Precision(prec)) is None else "fused"
    return Plan(be, Precision(prec), options, graph, why)


def _cap_threads(options: BackendOptions, why: list[str]) -> BackendOptions:
    """More threads than cores only adds contention (and a huge pool can exhaust memory): cap with a warning."""
    if isinstance(options.threads, bool) or not isinstance(options.threads, int) or options.threads < 0:
        raise UsageError(f"threads={options.threads!r}", expected="an integer >= 0 (0: the backend's default)",
                         fix="pass --threads 0, or a number up to this machine's cores")
    cores = cpu_count()
    if options.threads > cores:
        log.warning("--threads %d is more than the %d core(s) this process may use; running %d thread(s)",
                    options.threads, cores, cores)
        why.append(f"{cores} threads: capped from {options.threads} (cores available)")
        options = dataclasses.replace(options, threads=cores)
    return options

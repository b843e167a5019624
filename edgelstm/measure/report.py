"""What ``edgelstm profile`` measured: rows, the machine, and three views (rich table, JSON, PNG).

Only the standard library and numpy at module level: rich and matplotlib load inside the methods
that draw (matplotlib with the Agg backend, so it works without a display).
"""
from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

# decode: the source's read in the capture thread (overlapped with the model, so not part of total)
STAGES = ("capture_wait", "decode", "preprocess", "encoder", "step", "postprocess", "total")
STAGE_TITLES = {"capture_wait": "capture wait", "decode": "decode", "preprocess": "preprocess", "encoder": "encoder",
                "step": "LSTM step", "postprocess": "postprocess", "total": "total"}
MODES = {"stream": "streaming", "clip": "clip re-inference", "eager-stream": "PyTorch eager, streaming",
         "eager-clip": "PyTorch eager, clip re-inference"}


@dataclass
class Row:
    """One configuration (backend x precision x device x mode) measured in the live loop."""

    label: str
    mode: str                  # stream, clip, eager-stream, eager-clip
    backend: str
    precision: str
    device: str                # device profile name ("torch" for eager)
    inference_precision: str   # what actually ran (OpenVINO: f32/bf16)
    graph: str                 # split, fused, clip, eager
    threads: int
    window: int                # frames per model call: 1 streaming, T for clip re-inference
    load_s: float
    first_ms: float            # the first inference on a fresh engine (cold), total
    stages: dict[str, dict[str, float]]   # stage -> p50/p90/p99/mean (ms), from the paced (camera-rate) run
    age_ms: dict[str, float]   # frame age at decision, paced run
    bare_ms: dict[str, float]  # the model call alone, back to back (what benchmark_app measures)
    fps: float                 # un-paced throughput of the whole loop, decisions/s
    paced_fps: float           # decisions/s at the camera rate
    frames: int                # decisions measured in the paced run
    dropped: int               # frames the paced run dropped (the loop did not take them in time)
    peak_rss_mb: float
    model_bytes: int
    totals_ms: list[float] = field(default_factory=list)  # per-decision totals of the paced run (the CDF)
    unpaced_ms: dict[str, float] = field(default_factory=dict)  # loop total, un-paced run (decisions back to back)
    accuracy: float | None = None
    agreement: float | None = None   # per-frame argmax agreement with FP32 on the same backend
    note: str = ""

    @property
    def overhead(self) -> float:
        """Loop total over the bare model call, at p50, both back to back (the un-paced run's total: at the
        camera rate every decision starts with cold caches, which the back-to-back model call never sees)."""
        b = self.bare_ms.get("p50", math.nan)
        loop = self.unpaced_ms.get("p50", self.stages["total"]["p50"])
        return loop / b if b and b == b else math.nan

    @property
    def cold_factor(self) -> float:
        """Paced over un-paced loop total, at p50: what waiting for the camera between frames costs."""
        fast = self.unpaced_ms.get("p50", math.nan)
        return self.stages["total"]["p50"] / fast if fast and fast == fast else math.nan


@dataclass
class StreamsRow:
    """N streams on one engine (encoder batched) or on N engines, at the camera rate and un-paced."""

    label: str
    layout: str                # "one engine" or "N engines"
    streams: int
    fps_per_stream: float
    offered_fps: float         # streams x fps
    decided_fps: float         # decisions/s at the camera rate, all streams
    capacity_fps: float        # decisions/s un-paced, all streams
    read: int
    decided: int
    dropped: int
    age_ms: dict[str, float]
    latency_ms: dict[str, float]   # per decision batch (one engine) or per decision (N engines)
    mean_batch: float
    peak_rss_mb: float

    @property
    def all_decided(self) -> bool:
        return self.dropped == 0 and self.decided >= self.read - self.streams  # the last frames may be in flight


@dataclass
class ProfileReport:
    bundle: str
    model: dict[str, Any]
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    streams: list[StreamsRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: str = ""      # a signal stopped the run: what was in progress (its rows are left out)

    def row(self, mode: str, backend: str = "", precision: str = "", device: str = "") -> Row | None:
        for r in self.rows:
            if r.mode == mode and (not backend or r.backend == backend) and \
                    (not precision or r.precision == precision) and (not device or r.device == device):
                return r
        return None

    def to_json(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["overhead_x"] = _num(r.overhead)
            rows.append(_clean(d))
        streams = [{**_clean(asdict(s)), "all_decided": s.all_decided} for s in self.streams]
        return {"bundle": self.bundle, "model": self.model, "machine": self.machine, "settings": self.settings,
                "stages": list(STAGES), "rows": rows, "streams": streams, "notes": self.notes,
                "interrupted": self.interrupted}

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def table(self) -> Any:
        from edgelstm.measure.plot import rows_table

        return rows_table(self)

    def streams_table(self) -> Any:
        from edgelstm.measure.plot import streams_table

        return streams_table(self)

    def plot(self, path: str | Path) -> Path:
        from edgelstm.measure.plot import plot

        return plot(self, Path(path))


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> null (JSON has no NaN)."""
    if isinstance(obj, float):
        return _num(obj)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def machine_info() -> dict[str, Any]:
    """CPU model, cores, ISA features that matter here, and library versions (no heavy imports)."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.processor(), platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    versions = {}
    for pkg in ("edgelstm", "numpy", "opencv-python", "onnxruntime", "openvino", "nncf", "torch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "asimddp")
           if f in flags]
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None  # a busy machine skews every figure
    return {"cpu": model, "cores": cores, "arch": platform.machine(), "isa": isa, "load_avg_1min": load,
            "python": platform.python_version(), "versions": versions}


def machine_line(m: dict[str, Any]) -> str:
    v = m.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "openvino", "torch", "numpy", "opencv-python") if k in v)
    load = f"; load average {m['load_avg_1min']}" if m.get("load_avg_1min") is not None else ""
    return f"{m['cpu']}, {m['cores']} cores ({m['arch']}; {' '.join(m['isa']) or 'no AVX-512'}); {libs}{load}"

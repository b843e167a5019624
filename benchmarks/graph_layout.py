"""One graph or two: the split (encoder + step) and fused layouts side by side, in one run.

    python benchmarks/graph_layout.py CHECKPOINT [--streams 8] [--frames 2000] [--work DIR]

Exports the checkpoint both ways (``export_bundle(graph="split"|"fused")``, FP32 + INT8, onnxruntime
and OpenVINO, the same calibration and gate data), then prints for every backend x precision:

* per-frame latency of the bare model calls at batch 1 (encoder.run + step.run, or fused.run);
* per-frame latency through ``Engine.step`` (one stream) and ``Engine.step_batch`` (``--streams``
  streams, per frame), the path a device runs;
* INT8 quality from each bundle's accuracy gate (accuracy FP32/INT8, per-frame and final-decision
  agreement with FP32, what the gate kept in float).

Latency is timed interleaved (every variant runs ``--round`` calls in turn, repeated), medians, and
reported as fused/split ratios, so the shared machine's noise falls on both layouts alike.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgelstm import spec
from edgelstm.spec import Backend, Precision

LAYOUTS = ("split", "fused")


def export_both(ckpt: Path, work: Path, *, eval_clips: int, calib_clips: int) -> dict[str, Path]:
    """FP32 bundles of both layouts, then INT8 per backend (a backend whose gate fails stays FP32, said so)."""
    from edgelstm.errors import ExportCheckError
    from edgelstm.export import export_bundle, quantize_bundle

    out = {}
    for layout in LAYOUTS:
        t0 = time.perf_counter()
        r = export_bundle(ckpt, work / layout, formats=("onnx", "openvino"), graph=layout, force=True)
        for backends in (("onnxruntime", "openvino"), ("onnxruntime",)):  # each call replaces all INT8
            try:
                quantize_bundle(r.path, backends=backends, calib_clips=calib_clips, eval_clips=eval_clips)
                break
            except ExportCheckError as e:
                print(f"{layout}: INT8 on {', '.join(backends)} failed its gate:\n{str(e).split('; expected')[0]}")
        print(f"exported {layout} in {time.perf_counter() - t0:.0f}s -> {r.path}")
        out[layout] = r.path
    return out


def bare_runner(bundle: Any, backend: Backend, precision: Precision) -> Callable[[], Any]:
    """encoder.run + step.run (or fused.run) at batch 1, the state carried, through the runtime's loader."""
    from edgelstm.runtime.stream import open_chain
    from edgelstm.runtime.stream import BackendOptions

    chain = open_chain(bundle, backend, precision, BackendOptions(threads=1))
    h, w = bundle.manifest.preprocess.size
    x = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)  # (1, H, W, 3)
    state = chain.zero_state(1)

    def once() -> None:
        nonlocal state
        state = chain.step(x, state).state

    return once


def engine_runner(bundle: Any, backend: Backend, precision: Precision, streams: int) -> Callable[[], Any]:
    from edgelstm.runtime.engine import Engine

    eng = Engine.load(bundle, device="cpu", backend=str(backend), precision=str(precision), streams=streams)
    h, w = bundle.manifest.preprocess.size
    frames = list(np.random.default_rng(1).integers(0, 256, (streams, h, w, 3), dtype=np.uint8))
    if streams == 1:
        return lambda: eng.step(frames[0])
    return lambda: eng.step_batch(frames)


def timed(runs: dict[str, Callable[[], Any]], *, frames: int, round_: int = 50) -> dict[str, float]:
    for f in runs.values():
        for _ in range(20):
            f()
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(max(1, frames // round_)):
        for k, f in runs.items():
            for _ in range(round_):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--frames", type=int, default=2000, help="timed calls per variant")
    ap.add_argument("--eval-clips", type=int, default=300)
    ap.add_argument("--calib-clips", type=int, default=64)
    ap.add_argument("--work", default="", help="export here (default: a temporary folder)")
    args = ap.parse_args()
    from edgelstm.runtime.bundle import load_bundle

    work = Path(args.work or tempfile.mkdtemp(prefix="graph_layout_"))
    paths = export_both(Path(args.checkpoint), work, eval_clips=args.eval_clips, calib_clips=args.calib_clips)
    bundles = {lay: load_bundle(p) for lay, p in paths.items()}
    m = bundles["split"].manifest
    print(f"model {m.model.name}, {m.preprocess.size[0]}x{m.preprocess.size[1]}, "  # type: ignore[union-attr]
          f"{m.model.macs_per_frame / 1e6:.2f} MMAC/frame; streams={args.streams}")

    print("\n## INT8 quality (each bundle's accuracy gate, the trial that shipped)")
    print(f"{'backend':<12} {'layout':<6} {'kept float':<18} {'acc fp32':>8} {'acc int8':>8} {'frame agr':>9} "
          f"{'final agr':>9}")
    for b in Backend:
        for lay in LAYOUTS:
            q = bundles[lay].manifest.quantization or {}
            if str(b) not in q.get("backends", {}):
                print(f"{b!s:<12} {lay:<6} (no INT8: gate failed)")
                continue
            c = q["backends"][str(b)]["chosen"]
            print(f"{b!s:<12} {lay:<6} {', '.join(c['kept_float']) or 'none':<18} {100 * c['accuracy_fp32']:7.1f}% "
                  f"{100 * c['accuracy_int8']:7.1f}% {100 * c['frame_agreement']:8.1f}% "
                  f"{100 * c['final_agreement']:8.1f}%")

    print(f"\n## Latency, ms per frame (median of {args.frames} interleaved calls per variant)")
    print(f"{'backend':<12} {'prec':<5} {'path':<18} {'split':>8} {'fused':>8} {'fused/split':>11}")
    for b in Backend:
        for p in (Precision.FP32, Precision.INT8):
            if any(bundles[lay].manifest.artifact(spec.Role.STEP if lay == "split" else spec.Role.FUSED, b, p)
                   is None for lay in LAYOUTS):
                continue
            runs: dict[str, Callable[[], Any]] = {}
            for lay in LAYOUTS:
                runs[f"bare b1|{lay}"] = bare_runner(bundles[lay], b, p)
                runs[f"Engine.step|{lay}"] = engine_runner(bundles[lay], b, p, 1)
                runs[f"Engine x{args.streams}|{lay}"] = engine_runner(bundles[lay], b, p, args.streams)
            t = timed(runs, frames=args.frames)
            for path in ("bare b1", "Engine.step", f"Engine x{args.streams}"):
                div = args.streams if path.startswith("Engine x") else 1
                s, f = t[f"{path}|split"] / div, t[f"{path}|fused"] / div
                print(f"{b!s:<12} {p!s:<5} {path:<18} {s:8.4f} {f:8.4f} {f / s:10.2f}x")


if __name__ == "__main__":
    main()

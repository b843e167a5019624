"""Host overhead per decision: per-stage p50 of the engine and the live loop against the bare model call.

    python benchmarks/host_overhead.py [--bundle B] [--rounds 7] [--n 300] [--streams 1]

One process, interleaved rounds (bare model call, ``Engine.step_batch`` on 640x480 frames, the un-paced
live loop), medians over rounds of each round's p50. Without --bundle it uses runs/bench-quick/bench_bundle
when present, else exports a tiny default student (untrained: speed does not depend on the weights).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("preprocess", "encoder", "step", "postprocess", "total")


def _bundle(arg: Path | None, work: Path) -> Path:
    if arg is not None:
        return arg
    quick = Path("runs/bench-quick/bench_bundle")
    if (quick / "manifest.json").exists():
        return quick
    from tests.bundles import make_bundle, make_checkpoint

    return make_bundle(work, checkpoint=make_checkpoint(work, model="student", size=(32, 32), num_classes=10,
                                                        steps=5))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=300, help="Decisions per round and path.")
    ap.add_argument("--streams", type=int, default=1, help="Frames per step_batch call (one per stream).")
    args = ap.parse_args()
    from edgelstm.runtime.engine import Engine
    from edgelstm.measure.harness import ReplaySource, render_frames
    from edgelstm.measure.report import machine_info, machine_line
    from edgelstm.measure.profiler import engine_call, run_measured

    with tempfile.TemporaryDirectory() as tmp:
        bundle = _bundle(args.bundle, Path(tmp))
        eng = Engine.load(bundle, precision="fp32", streams=args.streams)
        bare = engine_call(eng)
        cam = render_frames(16)
        k = args.streams
        for i in range(30):
            bare()
            eng.step_batch(cam[i % 16: i % 16 + k] if i % 16 + k <= 16 else [cam[0]] * k)
        rounds: dict[str, list[float]] = {f"{p} {s}": [] for p in ("engine", "loop") for s in STAGES}
        rounds["bare model call"] = []
        for _ in range(args.rounds):
            t = []
            for _ in range(args.n):
                t0 = time.perf_counter_ns()
                bare()
                t.append((time.perf_counter_ns() - t0) / 1e6)
            rounds["bare model call"].append(float(np.median(t)))
            per: dict[str, list[float]] = {s: [] for s in STAGES}
            for i in range(args.n):
                frames = [cam[(i + j) % 16] for j in range(k)]
                tm = eng.step_batch(frames)[0].timings
                for s in STAGES:
                    per[s].append(getattr(tm, s))
            for s in STAGES:
                rounds[f"engine {s}"].append(float(np.median(per[s])))
            srcs = [ReplaySource(cam, fps=30.0, live=False, offset=7 * j) for j in range(k)]
            st, _ = run_measured(eng, srcs, max_frames=args.n * k)
            for s in STAGES:
                rounds[f"loop {s}"].append(float(np.percentile(np.asarray(st.stages_ms[s]), 50)))
    med = {name: float(np.median(v)) for name, v in rounds.items()}
    print(f"machine: {machine_line(machine_info())}")
    print(f"bundle: {bundle}; {eng.info['backend']} {eng.info['precision']} {eng.info['graph']} graph, "
          f"{eng.info['threads']} thread(s); {k} stream(s) per call; 640x480 frames -> "
          f"{eng.size[1]}x{eng.size[0]}; medians of {args.rounds} rounds x {args.n} decisions (ms, p50)")
    for name, v in med.items():
        print(f"  {name:<22} {v:8.4f}")
    bare_ms = med["bare model call"]
    print(f"engine total / bare model call: {med['engine total'] / bare_ms:.2f}x")
    print(f"loop total / bare model call:   {med['loop total'] / bare_ms:.2f}x  (target <= 1.15x)")
    print(f"host overhead per decision (loop total - bare): {(med['loop total'] - bare_ms) * 1e3:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())

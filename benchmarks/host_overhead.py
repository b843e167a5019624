"""Host overhead per decision, backend by backend: from the bare graph calls up to the full live loop.

    python benchmarks/host_overhead.py [--bundle B] [--rounds 5] [--n 300] [--backends onnxruntime,openvino]

For each backend (FP32, the engine's own options and thread count), in one process and interleaved
rounds, the p50 and p90 per frame of:

* bare, plain API: the graphs alone through the backend's everyday call (``session.run`` /
  ``InferRequest.infer(dict)``), state fed back, on a ready model-size uint8 frame;
* bare, I/O bound: the same with inputs and outputs bound once (onnxruntime IOBinding to
  preallocated arrays; OpenVINO shared-memory input tensors), the floor for the backend's Python API;
* ``Chain.step``: the runtime's one streaming loop on the same ready frame, its returned state fed back
  as it is (``Chain.run``, parity, the INT8 gate) or copied into fixed buffers (what the engine does);
* ``Engine.step`` on a model-size frame (no resize: validation, state, postprocess, timers), and on
  640x480 camera frames (with the resize), with its own per-stage timings;
* the live loop (``run_loop``, un-paced replayed 640x480 frames): its recorded total, and the wall
  time from one decision to the next (capture hand-off, temporal gate, bookkeeping included);
* the bound bare call and ``Engine.step`` once per 33 ms, asleep in between as a live loop is: the
  caches go cold between frames, which no back-to-back figure shows (``--paced`` calls per round).

The medians over rounds of each round's p50/p90 are printed, and ratios to the bound bare call.
Without --bundle it uses runs/qs/bundle (``make quickstart``'s) when present, else exports a tiny
student (untrained: speed does not depend on the weights).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgelstm.spec import FEATURES, FRAMES

STAGES = ("preprocess", "encoder", "step", "postprocess")  # the engine's, inside its total
LEVELS = ("bare, plain API", "bare, I/O bound", "Chain.step, state as returned", "Chain.step, state in buffers",
          "Engine.step, model-size frame",
          "Engine.step, 640x480 frame", *(f"  {s}" for s in STAGES), "loop: recorded total",
          "loop: decision to decision", "bare, I/O bound, at 30 fps", "Engine.step, 640x480 frame, at 30 fps")
Call = Callable[[], object]


def _bundle(arg: Path | None, work: Path) -> Path:
    if arg is not None:
        return arg
    for quick in (Path("runs/qs/bundle"), Path("runs/quickstart/bundle")):
        if (quick / "manifest.json").exists():
            return quick
    from tests.bundles import make_bundle, make_checkpoint

    return make_bundle(work, formats=("onnx", "openvino"),
                       checkpoint=make_checkpoint(work, model="student", size=(32, 32), num_classes=10, steps=5))


# --- the bare calls: the graphs alone, state fed back --------------------------------------
def _graphs(eng: Any) -> list[Any]:
    """Fresh runners for the engine's graphs (encoder, step) or (fused), opened with its options."""
    from edgelstm.runtime.stream import open_model
    from edgelstm.spec import Role

    roles = {"split": (Role.ENCODER, Role.STEP), "fused": (Role.FUSED,)}[eng.plan.graph]
    b, p = eng.bundle, eng.plan
    return [open_model(b, b.find(r, p.backend, p.precision), p.options) for r in roles]


def _frame(eng: Any) -> np.ndarray:
    h, w = eng.size
    return np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)  # (1, H, W, 3)


def bare_plain(eng: Any) -> Call:
    """The backend's everyday call per graph: session.run(names, feeds) / request.infer(feeds)."""
    m, runners = eng.manifest, _graphs(eng)
    x, state = _frame(eng), {s.input: np.zeros([1 if isinstance(d, str) else d for d in s.shape], np.float32)
                             for s in m.state}
    first = [r.output_names for r in runners]

    def call_graph(r: Any, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if hasattr(r, "session"):
            return dict(zip(names, r.session.run(names, feeds)))
        res = r.request.infer(feeds)
        return {n: res[n] for n in names}

    def call() -> None:
        feeds: dict[str, np.ndarray] = {FRAMES: x}
        if len(runners) == 2:
            feeds = {FEATURES: call_graph(runners[0], first[0], feeds)[FEATURES]}
        out = call_graph(runners[-1], first[-1], {**feeds, **state})
        for s in m.state:
            state[s.input] = out[s.output]
    return call


def bare_bound(eng: Any) -> Call:
    """The same graphs with every input and output bound once; per frame only the runs and a state copy."""
    m, runners = eng.manifest, _graphs(eng)
    bufs: dict[str, np.ndarray] = {FRAMES: _frame(eng)}
    for s in m.state:
        shape = [1 if isinstance(d, str) else d for d in s.shape]
        bufs[s.input], bufs[s.output] = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    runs = [_bind(r, bufs) for r in runners]
    pairs = [(bufs[s.output], bufs[s.input]) for s in m.state]

    def call() -> None:
        for run in runs:
            run()
        for src, dst in pairs:  # the state fed back
            np.copyto(dst, src)
    call.bufs = bufs  # type: ignore[attr-defined]  # alive with the call: the backends hold raw pointers into them
    return call


def _bind(runner: Any, bufs: dict[str, np.ndarray]) -> Call:
    """One graph's run with its inputs/outputs bound to ``bufs`` (outputs allocated there on first sight)."""
    if hasattr(runner, "session"):
        sess = runner.session
        io = sess.io_binding()
        for i in sess.get_inputs():
            io.bind_cpu_input(i.name, bufs[i.name])
        for o in sess.get_outputs():
            if o.name not in bufs:
                bufs[o.name] = np.zeros([1 if not isinstance(d, int) else d for d in o.shape], np.float32)
            a = bufs[o.name]
            io.bind_output(o.name, "cpu", 0, a.dtype, list(a.shape), a.ctypes.data)
        return lambda: sess.run_with_iobinding(io)
    import openvino as ov

    req = runner.compiled.create_infer_request()
    for port in runner.compiled.inputs:
        req.set_tensor(port, ov.Tensor(bufs[port.get_any_name()], shared_memory=True))
    req.infer()
    for port in runner.compiled.outputs:
        if port.get_any_name() not in bufs:
            bufs[port.get_any_name()] = np.zeros(req.get_tensor(port).shape, np.float32)
        req.set_tensor(port, ov.Tensor(bufs[port.get_any_name()], shared_memory=True))
    return req.infer


# --- the runtime's levels ---------------------------------------------------------------------
def chain_step(eng: Any) -> Call:
    """Chain.step with the returned state fed back as it is (Chain.run, parity, the INT8 gate)."""
    chain, x = eng._chain, _frame(eng)
    box = [chain.zero_state(1)]

    def call() -> None:
        box[0] = chain.step(x, box[0]).state
    return call


def chain_step_buffers(eng: Any) -> Call:
    """Chain.step with the state kept in fixed buffers, the new state copied in (as the Engine does)."""
    chain, x = eng._chain, _frame(eng)
    state = chain.zero_state(1)

    def call() -> None:
        for name, new in chain.step(x, state).state.items():
            np.copyto(state[name], new)
    return call


def timed(call: Call, n: int) -> np.ndarray:
    t = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        call()
        t[i] = time.perf_counter_ns() - t0
    return t / 1e6  # ms


def timed_paced(call: Call, n: int, fps: float = 30.0) -> np.ndarray:
    """One call per camera frame interval, the rest of it asleep: what a live loop does between frames."""
    t, period = np.empty(n), 1.0 / fps
    for i in range(n):
        time.sleep(period)
        t0 = time.perf_counter_ns()
        call()
        t[i] = time.perf_counter_ns() - t0
    return t / 1e6


def engine_camera(eng: Any, cam: list[np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Engine.step on 640x480 frames: its own stage timings per frame."""
    per: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
    for i in range(n):
        tm = eng.step(cam[i % len(cam)]).timings
        for s, v in per.items():
            v.append(getattr(tm, s))
    return {s: np.asarray(v) for s, v in per.items()}


def loop_run(eng: Any, cam: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """run_loop un-paced over replayed frames: recorded totals and decision-to-decision wall times (ms)."""
    from edgelstm.measure.harness import ReplaySource
    from edgelstm.runtime.loop import Rate, run_loop

    marks: list[int] = []
    st = run_loop(eng, ReplaySource(cam, fps=30.0, live=False), max_frames=n, rate=Rate.ALL,
                  on_decision=lambda d: marks.append(time.perf_counter_ns()))
    return np.asarray(st.stages_ms["total"]), np.diff(np.asarray(marks)) / 1e6


def one_round(eng: Any, calls: dict[str, Call], cam: list[np.ndarray], n: int, paced: int) -> dict[str, np.ndarray]:
    small = np.ascontiguousarray(_frame(eng)[0])  # (H, W, 3): no resize
    got = {name: timed(c, n) for name, c in calls.items()}
    got["Engine.step, model-size frame"] = timed(lambda: eng.step(small), n)
    stages = engine_camera(eng, cam, n)
    got["Engine.step, 640x480 frame"] = stages.pop("total")
    got.update({f"  {s}": v for s, v in stages.items()})
    got["loop: recorded total"], got["loop: decision to decision"] = loop_run(eng, cam, n)
    got["bare, I/O bound, at 30 fps"] = timed_paced(calls["bare, I/O bound"], paced)
    got["Engine.step, 640x480 frame, at 30 fps"] = timed_paced(lambda: eng.step(cam[0]), paced)
    return got


# --- the run ----------------------------------------------------------------------------------
def setup(bundle: Path, backend: str, cam: list[np.ndarray]) -> tuple[Any, dict[str, Call]]:
    """The engine (FP32, its device profile's options) and the bare and Chain calls, warmed."""
    from edgelstm.runtime.engine import Engine

    eng = Engine.load(bundle, backend=backend, precision="fp32")
    calls = {"bare, plain API": bare_plain(eng), "bare, I/O bound": bare_bound(eng),
             "Chain.step, state as returned": chain_step(eng), "Chain.step, state in buffers": chain_step_buffers(eng)}
    for c in calls.values():
        timed(c, 50)
    for i in range(50):
        eng.step(cam[i % len(cam)])
    return eng, calls


def measure(setups: dict[str, tuple[Any, dict[str, Call]]], cam: list[np.ndarray], rounds: int,
            n: int, paced: int) -> dict[str, dict[str, dict[str, float]]]:
    """Median over rounds of each round's p50/p90, per backend and level; backends interleaved round by round
    (drift on a shared machine hits all of them alike)."""
    per: dict[str, dict[str, list[tuple[float, float]]]] = {be: {} for be in setups}
    for _ in range(rounds):
        for be, (eng, calls) in setups.items():
            for name, v in one_round(eng, calls, cam, n, paced).items():
                per[be].setdefault(name, []).append((float(np.percentile(v, 50)), float(np.percentile(v, 90))))
    return {be: {name: {"p50": float(np.median([a for a, _ in v])), "p90": float(np.median([b for _, b in v]))}
                 for name, v in levels.items()} for be, levels in per.items()}


def report(results: dict[str, dict[str, dict[str, float]]], engines: dict[str, Any]) -> None:
    bes = list(results)
    print(f"{'ms per frame (median of rounds)':<34}" + "".join(f"{be + ' p50':>18}{'p90':>9}" for be in bes))
    for level in LEVELS:
        cells = "".join(f"{results[be][level]['p50']:18.4f}{results[be][level]['p90']:9.4f}" for be in bes)
        print(f"{level:<34}{cells}")
    print("ratios at p50, to 'bare, I/O bound' / to 'bare, plain API':")
    for level in LEVELS[2:6] + LEVELS[10:12]:  # Chain.step .. Engine.step 640x480, the loop
        cells = "".join(f"{_ratio(results[be], level, 'bare, I/O bound'):>13}{_ratio(results[be], level, 'bare, plain API'):>14}"
                        for be in bes)
        print(f"  {level:<32}{cells}")
    cold = "".join(f"{_ratio(results[be], 'bare, I/O bound, at 30 fps', 'bare, I/O bound'):>13}"
                   f"{_ratio(results[be], 'Engine.step, 640x480 frame, at 30 fps', 'Engine.step, 640x480 frame'):>14}"
                   for be in bes)
    print(f"  {'at 30 fps / back to back':<32}{cold}   (bare / Engine.step: caches cold between frames)")
    for be in bes:
        e = engines[be]
        print(f"{be}: {e.info['graph']} graph, {e.info['threads']} thread(s), inference precision "
              f"{e.inference_precision}; host overhead per decision (loop decision to decision - bound bare): "
              f"{(results[be]['loop: decision to decision']['p50'] - results[be]['bare, I/O bound']['p50']) * 1e3:.0f} us")


def _ratio(res: dict[str, dict[str, float]], level: str, base: str) -> str:
    return f"{res[level]['p50'] / res[base]['p50']:.2f}x"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=300, help="Frames per level and round.")
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--paced", type=int, default=30, help="Calls per round at 30 fps (the cold-cache rows).")
    args = ap.parse_args()
    from edgelstm.measure.harness import render_frames
    from edgelstm.measure.report import machine_info, machine_line

    with tempfile.TemporaryDirectory() as tmp:
        bundle = _bundle(args.bundle, Path(tmp))
        cam = render_frames(16)
        setups = {be: setup(bundle, be, cam) for be in args.backends.split(",")}
        med = measure(setups, cam, args.rounds, args.n, max(args.paced, 1))
    engines = {be: eng for be, (eng, _) in setups.items()}
    print(f"machine: {machine_line(machine_info())}")
    eng = next(iter(engines.values()))
    print(f"bundle: {bundle}; fp32; 640x480 frames -> {eng.size[1]}x{eng.size[0]}; "
          f"medians of {args.rounds} rounds x {args.n} frames")
    report(med, engines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""FP32 vs INT8 per-frame latency of a bundle's streaming graphs, per backend, in one run.

    python benchmarks/int8_speed.py BUNDLE [--frames 500] [--threads 0]

Prints, for each backend the bundle holds INT8 for: median ms/frame at batch 1 (encoder + step, or the
fused graph) for FP32 and INT8, the ratio INT8/FP32, and the precision each actually ran in (OpenVINO's
INFERENCE_PRECISION_HINT as compiled, and the executed precision of its Convolution/LSTM layers).
Runs alternate FP32 and INT8 in rounds so a busy machine slows both alike.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from edgelstm.runtime.stream import BackendOptions
from edgelstm.runtime.bundle import load_bundle
from edgelstm.spec import Backend, Precision, Role


def _chain_runner(bundle, backend, precision, threads):  # type: ignore[no-untyped-def]
    from edgelstm.runtime.stream import open_chain

    chain = open_chain(bundle, backend, precision, BackendOptions(threads=threads))
    m = bundle.manifest
    shape = [1, *m.preprocess.size, 3] if m.preprocess is not None else [1, m.model.feature_size]
    x = (np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8) if len(shape) == 4
         else np.zeros(shape, np.float32))
    state = chain.zero_state(1)

    def once() -> float:
        nonlocal state
        t0 = time.perf_counter()
        state = chain.step(x, state).state
        return time.perf_counter() - t0

    return once, chain


def _ran_as(chain) -> str:  # type: ignore[no-untyped-def]
    info = chain.step_runner.info.get("inference_precision", "")
    if chain.step_runner.backend != Backend.OPENVINO:
        return info
    from edgelstm.export.openvino import exec_precisions

    parts = []
    for runner in (chain.encoder, chain.step_runner):
        if runner is None:
            continue
        ex = exec_precisions(runner.compiled)
        for layer in ("Convolution", "FullyConnected", "LSTMSequence", "RNNSeq", "TensorIterator"):
            if layer in ex:
                parts.append(f"{layer}:{'/'.join(ex[layer])}")
    return f"{info} ({', '.join(parts)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--frames", type=int, default=500, help="timed frames per precision")
    ap.add_argument("--threads", type=int, default=0, help="backend threads (0: its default)")
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    print(f"{'backend':<12} {'fp32 ms':>8} {'int8 ms':>8} {'int8/fp32':>9}  ran as (fp32 | int8)")
    for backend in Backend:
        if bundle.manifest.artifact(Role.STEP, backend, Precision.INT8) is None and \
                bundle.manifest.artifact(Role.FUSED, backend, Precision.INT8) is None:
            continue
        runs = {p: _chain_runner(bundle, backend, p, args.threads) for p in (Precision.FP32, Precision.INT8)}
        times: dict[Precision, list[float]] = {p: [] for p in runs}
        for _ in range(20):
            for p in runs:
                runs[p][0]()
        for _ in range(max(1, args.frames // 50)):  # alternate in rounds
            for p in runs:
                times[p] += [runs[p][0]() for _ in range(50)]
        ms = {p: 1000 * float(np.median(times[p])) for p in runs}
        print(f"{backend!s:<12} {ms[Precision.FP32]:8.3f} {ms[Precision.INT8]:8.3f} "
              f"{ms[Precision.INT8] / ms[Precision.FP32]:9.2f}  "
              f"{_ran_as(runs[Precision.FP32][1])} | {_ran_as(runs[Precision.INT8][1])}")


if __name__ == "__main__":
    main()

"""Where a bundle's model call goes: each onnxruntime graph of a split bundle timed alone, FP32 and INT8.

    python benchmarks/graph_split.py BUNDLE [--calls 100] [--rounds 3] [--threads 1]

Opens every encoder and step file the manifest lists for onnxruntime, feeds each its own inputs (a random uint8
frame at the bundle's size; random features and zero state of the manifest's shapes) at batch 1, and prints the
median over ``--rounds`` of the mean per call over ``--calls`` calls, the graphs taking turns within each round
so a shared machine's noise falls on all of them alike.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

from edgelstm.runtime.bundle import load_bundle
from edgelstm.spec import Backend, Role


def feeds_for(inputs: tuple, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for t in inputs:
        shape = [1 if isinstance(d, str) else int(d) for d in t.shape]
        out[t.name] = (rng.integers(0, 256, shape, dtype=np.uint8) if t.dtype == "uint8"
                       else rng.standard_normal(shape).astype(np.float32))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    rng = np.random.default_rng(0)
    graphs = {a.key: (ort.InferenceSession(str(bundle.file(a)), opts, providers=["CPUExecutionProvider"]),
                      feeds_for(a.inputs, rng))
              for a in bundle.manifest.artifacts if a.backend == Backend.ONNXRUNTIME and a.role in (Role.ENCODER,
                                                                                                      Role.STEP)}
    times: dict[str, list[float]] = {k: [] for k in graphs}
    for _ in range(args.rounds):
        for key, (sess, feeds) in graphs.items():
            for _ in range(10):
                sess.run(None, feeds)
            t0 = time.perf_counter()
            for _ in range(args.calls):
                sess.run(None, feeds)
            times[key].append((time.perf_counter() - t0) / args.calls * 1e3)
    print(f"| graph | ms per call (median of {args.rounds} rounds of {args.calls}, {args.threads} thread(s)) |")
    print("|---|---|")
    for key, ts in times.items():
        print(f"| {key} | {statistics.median(ts):.3f} |")


if __name__ == "__main__":
    main()

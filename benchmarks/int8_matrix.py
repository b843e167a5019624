"""Where INT8 pays: encoder latency INT8/FP32 over quantization settings, sizes, batches and threads.

    python benchmarks/int8_matrix.py CHECKPOINT [--sizes 32,64,128] [--out matrix.json]

One trained student checkpoint is exported (FP32, onnxruntime + OpenVINO) at each frame size; its
encoder is then quantized every way ``OrtInt8Config`` allows (QDQ/QOperator x per-channel on/off x
U8S8/S8S8/U8U8 x all convs / stem+pointwise / stem only / pointwise only) with the same calibration frames, and
timed against FP32 in one process, interleaved in rounds (medians of many calls), so the noisy
shared machine slows every variant alike. Quality of each variant: final-decision agreement with
FP32 on held-out synthetic clips, the FP32 LSTM step fed the variant's features (the gate in
``export --int8`` still decides what ships).

Stage 1 sweeps every config at the first size (threads 1, batch 1 and 8); stage 2 takes FP32, the
current default and the fastest configs across every size x batch x threads; stage 3 does OpenVINO
(f32 hint, bf16 hint, NNCF INT8) at the same cells; stage 4 prints onnxruntime's per-op profile at
the first size, batch 1. Every figure is ms per frame (a batch's time / its size).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgelstm.spec import FRAMES
from edgelstm.export.quantize_ort import ConvScope, OrtInt8Config, QFormat, quantize

TYPES = (("u8", "s8"), ("s8", "s8"), ("u8", "u8"))


def all_configs() -> list[OrtInt8Config]:
    return [OrtInt8Config(format=f, per_channel=pc, activations=a, weights=w, convs=s)
            for f, pc, (a, w), s in itertools.product(QFormat, (True, False), TYPES, ConvScope)]


def frames(size: int, clips: int, split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, T, H, W, 3) uint8 BGR frames of the synthetic set, and labels."""
    from edgelstm.data.synthetic import SyntheticActions, SyntheticConfig

    ds = SyntheticActions(SyntheticConfig(size=(size, size), clip_len=12, seed=seed), split)
    X = np.stack([ds[i][0] for i in range(clips)])[..., ::-1]  # RGB -> BGR, the graph's input order
    return np.ascontiguousarray(X), np.array([ds.label(i) for i in range(clips)])


def ort_session(path: Path, threads: int, profile: str | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = profile
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ov_model(xml: Path, threads: int, hint: str) -> tuple[Any, str]:
    import openvino as ov

    cm = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
                                                    "PERFORMANCE_HINT": "LATENCY"})
    return cm.create_infer_request(), str(cm.get_property("INFERENCE_PRECISION_HINT"))


def timed(runs: dict[str, Callable[[], Any]], *, budget_s: float, rounds: int = 10) -> dict[str, float]:
    """Median seconds per call of each runner, interleaved in ``rounds`` (calls per round sized to budget)."""
    for f in runs.values():
        for _ in range(3):
            f()
    per = {}
    for k, f in runs.items():
        t0 = time.perf_counter()
        f()
        per[k] = max(1, int(budget_s / rounds / len(runs) / max(time.perf_counter() - t0, 1e-6)))
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for k, f in runs.items():
            for _ in range(per[k]):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


class Size:
    """One frame size: FP32 bundle, calibration/eval frames, quantized encoders (made on demand)."""

    def __init__(self, ckpt: Path, size: int, work: Path, calib_clips: int, eval_clips: int) -> None:
        from edgelstm.export import export_bundle

        self.size, self.work = size, work / f"s{size}"
        export_bundle(ckpt, self.work / "bundle", formats=("onnx", "openvino"), size=(size, size), force=True,
                      parity_frames=24)
        self.enc32 = self.work / "bundle" / "encoder-fp32.onnx"
        self.step32 = self.work / "bundle" / "step-fp32.onnx"
        self.xml32 = next((self.work / "bundle").rglob("encoder-fp32.xml"))
        calib, _ = frames(size, calib_clips, "train")
        self.feeds = [{FRAMES: calib[i, t:t + 1]} for i in range(len(calib)) for t in range(0, 12, 3)]
        self.X, self.y = frames(size, eval_clips, "test")
        self.files: dict[str, Path] = {"fp32": self.enc32}

    def encoder(self, cfg: OrtInt8Config) -> Path:
        if cfg.name not in self.files:
            dst = self.work / (cfg.name.replace("/", "_") + ".onnx")
            quantize(self.enc32, dst, (), self.feeds, config=cfg)
            self.files[cfg.name] = dst
        return self.files[cfg.name]

    def ov_int8(self) -> Path:
        from edgelstm.export.quantize_ov import quantize as ov_quantize

        dst = self.work / "encoder-int8.xml"
        if not dst.exists():
            ov_quantize(self.xml32, dst, (), self.feeds)
        return dst

    def quality(self, name: str) -> tuple[float, float]:
        """(final-decision agreement with FP32, accuracy) with the FP32 step fed this encoder's features."""
        def final(enc: Path) -> np.ndarray:
            e, s = ort_session(enc, 2), ort_session(self.step32, 2)
            n, t = self.X.shape[:2]
            f = e.run(None, {FRAMES: self.X.reshape(n * t, *self.X.shape[2:])})[0].reshape(n, t, -1)
            h = np.zeros((1, n, s.get_inputs()[1].shape[2]), np.float32)
            c = h.copy()
            names = [i.name for i in s.get_inputs()]  # features, h, c (the spec's order)
            for i in range(t):
                lg, h, c = s.run(None, dict(zip(names, (f[:, i], h, c))))
            return lg.argmax(-1)

        if not hasattr(self, "_ref"):
            self._ref = final(self.enc32)
        p = final(self.files[name])
        return float((p == self._ref).mean()), float((p == self.y).mean())


def ort_cells(sz: Size, names: list[str], batches: list[int], threads: list[int], budget: float
              ) -> list[dict[str, Any]]:
    rows = []
    for th in threads:
        sess = {n: ort_session(sz.files[n], th) for n in names}
        for b in batches:
            x = np.ascontiguousarray(np.resize(sz.X.reshape(-1, *sz.X.shape[2:]), (b, sz.size, sz.size, 3)))
            runs = {n: (lambda s=s: s.run(None, {FRAMES: x})) for n, s in sess.items()}
            t = timed(runs, budget_s=budget)
            for n in names:
                rows.append({"backend": "onnxruntime", "size": sz.size, "threads": th, "batch": b, "config": n,
                             "ms_per_frame": 1000 * t[n] / b, "ratio": t[n] / t["fp32"]})
    return rows


def ov_cells(sz: Size, batches: list[int], threads: list[int], budget: float) -> list[dict[str, Any]]:
    rows = []
    variants = {"f32": (sz.xml32, "f32"), "bf16": (sz.xml32, "bf16"), "nncf-int8": (sz.ov_int8(), "f32")}
    for th in threads:
        reqs = {}
        ran = {}
        for n, (xml, hint) in variants.items():
            reqs[n], ran[n] = ov_model(xml, th, hint)
        for b in batches:
            x = np.ascontiguousarray(np.resize(sz.X.reshape(-1, *sz.X.shape[2:]), (b, sz.size, sz.size, 3)))
            runs = {n: (lambda r=r: r.infer({0: x})) for n, r in reqs.items()}
            t = timed(runs, budget_s=budget)
            for n in variants:
                rows.append({"backend": "openvino", "size": sz.size, "threads": th, "batch": b, "config": n,
                             "ran_as": ran[n], "ms_per_frame": 1000 * t[n] / b, "ratio": t[n] / t["f32"]})
    return rows


def op_profile(sz: Size, names: list[str], work: Path, calls: int = 2000) -> dict[str, dict[str, float]]:
    """Microseconds per call by op type (onnxruntime's own profiler), batch 1, one thread."""
    out = {}
    x = np.ascontiguousarray(sz.X[0, :1])
    sess = {n: ort_session(sz.files[n], 1, profile=str(work / f"prof_{n.replace('/', '_')}")) for n in names}
    for _ in range(calls // 50):  # interleaved, so machine noise hits every variant alike
        for s in sess.values():
            for _ in range(50):
                s.run(None, {FRAMES: x})
    for n, s in sess.items():
        events = json.loads(Path(s.end_profiling()).read_text())
        per: dict[str, float] = defaultdict(float)
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                per[e["args"]["op_name"]] += e["dur"] / calls
        out[n] = dict(sorted(per.items(), key=lambda kv: -kv[1]))
    return out


def table(rows: list[dict[str, Any]], title: str) -> None:
    print(f"\n## {title}")
    print(f"{'size':>5} {'thr':>3} {'batch':>5}  {'config':<30} {'ms/frame':>9} {'vs fp32':>8}  extra")
    for r in rows:
        extra = " ".join(f"{k}={v}" for k, v in r.items() if k in ("agree", "acc", "ran_as"))
        print(f"{r['size']:>5} {r['threads']:>3} {r['batch']:>5}  {r['config']:<30} {r['ms_per_frame']:9.4f} "
              f"{r['ratio']:7.2f}x  {extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--sizes", default="32,64,128", help="frame sizes; the first is the deployed one")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--budget", type=float, default=1.5, help="seconds of timing per cell (all variants)")
    ap.add_argument("--top", type=int, default=3, help="fastest INT8 configs carried to stage 2")
    ap.add_argument("--out", default="", help="write every row as JSON here")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    work = Path(tempfile.mkdtemp(prefix="int8_matrix_"))
    import onnxruntime
    import openvino

    print(f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, {os.cpu_count()} cpus; "
          f"work in {work}")
    rows: list[dict[str, Any]] = []

    # Stage 1: every config at the deployed size.
    dep = Size(Path(args.checkpoint), sizes[0], work, calib_clips=16, eval_clips=96)
    cfgs = all_configs()
    for c in cfgs:
        dep.encoder(c)
    names = ["fp32"] + [c.name for c in cfgs]
    s1 = ort_cells(dep, names, batches=[1, 8], threads=[1], budget=args.budget * 4)
    for r in s1:
        r["agree"], r["acc"] = (round(x, 3) for x in dep.quality(r["config"]))
    table(s1, f"Stage 1: onnxruntime encoder, every config, {sizes[0]}x{sizes[0]}, 1 thread")
    rows += s1
    score: dict[str, float] = defaultdict(float)
    for r in s1:
        if r["config"] != "fp32" and r["agree"] >= 0.95:
            score[r["config"]] += np.log(r["ratio"])
    top = sorted(score, key=score.__getitem__)[:args.top]
    default = OrtInt8Config().name
    keep = ["fp32"] + list(dict.fromkeys([*top, default, "qdq/pc/u8s8/all"]))
    print(f"\nfastest configs with >= 95% final agreement: {top}; current default {default}")

    # Stage 2 and 3: the short list everywhere, and OpenVINO.
    for size in sizes:
        sz = dep if size == sizes[0] else Size(Path(args.checkpoint), size, work, calib_clips=16, eval_clips=32)
        for n in keep[1:]:
            sz.encoder(next(c for c in cfgs if c.name == n))
        r2 = ort_cells(sz, keep, batches, threads, args.budget)
        table(r2, f"Stage 2: onnxruntime encoder, {size}x{size}")
        r3 = ov_cells(sz, batches, threads, args.budget)
        table(r3, f"Stage 3: OpenVINO encoder, {size}x{size} (ratio vs f32 hint)")
        rows += r2 + r3

    # Stage 4: where the time goes at the deployed size.
    prof = op_profile(dep, keep, work)
    print(f"\n## Stage 4: onnxruntime per-op time, {sizes[0]}x{sizes[0]}, batch 1, 1 thread (us/frame)")
    for n, per in prof.items():
        print(f"{n:<30} total {sum(per.values()):7.1f}  " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "op_profile_us": prof}, indent=1))


if __name__ == "__main__":
    main()

"""Every speed figure the README quotes, measured in one run on one machine (`make bench`).

    python benchmarks/bench_all.py [--run runs/quickstart] [--quick] [--out benchmarks/RESULTS.md] [--json OUT]

Reuses a run (teacher/, student_distilled/ checkpoints and a bundle folder, as the quickstart writes)
or builds one: the embedded-default teacher and distilled student (edgelstm.train.pipeline), then an
FP32 + INT8 bundle for onnxruntime and OpenVINO (edgelstm.export). Prints ratios, each against its
target, with the machine named, and writes them as a markdown table.

The runtime targets are measured twice: on the default (tiny, 32x32) student, where host-side costs
(decoding, resizing a 640x480 frame, Python dispatch) dwarf a ~0.05 ms model call, and on a
realistic-size student (the ``student`` model at 128x128, random init: speed does not depend on the
weights), so a reader sees which misses come from model size and which from the host code.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgelstm.measure.report import machine_info, machine_line  # noqa: E402

CLIP_T = 16  # the clip length re-run per decision in the "common practice" baselines


def gemm_peak_gmacs(n: int = 1024, repeats: int = 10) -> float:
    """FP32 GEMM rate of this CPU with numpy (best of ``repeats``): the compute floor's denominator."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return n ** 3 / best / 1e9


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# --- the models ---------------------------------------------------------------------------
def build_run(run: Path, quick: bool) -> Path:
    from edgelstm.train.pipeline import StageConfig, train_stage

    cfg = StageConfig(teacher_epochs=1, student_epochs=1, pooling_epochs=1, counts=(320, 60, 200), progress=False) \
        if quick else StageConfig(progress=False)
    if not (run / "train_stage.json").exists() and not (run / "train" / "train_stage.json").exists():
        print(f"training the default teacher and student into {run} ({'quick' if quick else 'full'} settings)...")
        train_stage(run, config=cfg)
    return run


def find_bundle(run: Path, student: Path) -> Path:
    for p in sorted(run.glob("*/manifest.json")):
        m = json.loads(p.read_text())
        if any(a["precision"] == "int8" for a in m["artifacts"]):
            return p.parent
    from edgelstm.export import export_bundle

    out = run / "bench_bundle"
    print(f"exporting {student} to {out} (FP32 + INT8, onnxruntime + OpenVINO)...")
    export_bundle(student, out, formats=("onnx", "openvino"), int8=True, force=True)
    return out


def stage_rows(run: Path) -> dict[str, dict[str, Any]]:
    # a run made by this script keeps train_stage.json at its top; the quickstart's keeps it in train/
    path = next(p for p in (run / "train_stage.json", run / "train" / "train_stage.json") if p.exists())
    return {r["name"]: r for r in json.loads(path.read_text())["rows"]}


def eager_clip_ms(ckpt: Path, size: tuple[int, int], t: int, repeats: int = 30) -> float:
    """PyTorch eager forward of one T-frame clip (p50, ms), torch threads as the runtime's: one decision."""
    import torch

    from edgelstm.models.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt).model.eval()
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, t, *size, 3), dtype=np.uint8))
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        return float(np.median([_timed(lambda: model(x)) for _ in range(repeats)]) * 1e3)


# --- measurement ------------------------------------------------------------------------
def measure(run: Path, *, frames: int, streams: int, seconds: float, realistic: bool = True) -> dict[str, Any]:
    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.measure.harness import render_frames
    from edgelstm.measure.soak import write_test_video
    from edgelstm.measure.profiler import ProfileConfig, Settings, measure_streams, profile_bundle
    from edgelstm.spec import Backend, Precision

    rows = stage_rows(run)
    student, teacher = Path(rows["student_distilled"]["checkpoint"]), Path(rows["teacher"]["checkpoint"])
    bundle = find_bundle(run, student)
    b = load_bundle(bundle)
    size = b.manifest.preprocess.size  # type: ignore[union-attr]
    out: dict[str, Any] = {"bundle": str(bundle), "gemm_gmacs": gemm_peak_gmacs(), "stage": rows}
    print("profiling (every configuration through the live loop)...")
    rep = profile_bundle(b, devices=["cpu", "intel-cpu"], frames=frames, fps=30.0, clip_len=CLIP_T,
                         checkpoint=student, progress=print)
    out["profile"] = rep.to_json()
    import torch

    torch.set_num_threads(max(1, rep.rows[0].threads))
    out["eager_clip_student_ms"] = eager_clip_ms(student, size, CLIP_T)
    out["eager_clip_teacher_ms"] = eager_clip_ms(teacher, size, CLIP_T)
    cam = render_frames(32)
    cfg = ProfileConfig("cpu", Backend.ONNXRUNTIME, Precision.FP32)
    print(f"{streams} synthetic streams at 30 fps: one engine vs {streams} engines...")
    s = Settings(frames=frames, warmup=5, fps=30.0, streams=streams)
    out["streams_synthetic"] = [_js(x) for x in measure_streams(b, cfg, streams, s, cam, seconds=seconds)]
    video = write_test_video(run / "bench_640x480.avi", frames=120)
    print(f"{streams} decoded 640x480 files at 30 fps: one engine vs {streams} engines...")
    sf = Settings(frames=frames, warmup=5, fps=30.0, streams=streams, source=str(video))
    out["streams_files"] = [_js(x) for x in measure_streams(b, cfg, streams, sf, [], seconds=seconds)]
    if realistic:
        out["realistic"] = measure_realistic(run, frames=frames, streams=streams, seconds=seconds)
    out["machine"] = machine_info()
    return out


REALISTIC_SIZE = (128, 128)


def measure_realistic(run: Path, *, frames: int, streams: int, seconds: float) -> dict[str, Any]:
    """The runtime targets on the ``student`` model at 128x128 (random init), FP32 + INT8, both backends."""
    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.measure.harness import render_frames
    from edgelstm.measure.profiler import ProfileConfig, Settings, measure_streams, profile_bundle
    from edgelstm.spec import Backend, Precision
    from tests.bundles import make_bundle, make_checkpoint

    work = run / "realistic"
    ckpt = work / "student_128.pt"
    bundle = work / "bundle_128"
    if not (bundle / "manifest.json").exists():
        print(f"exporting a random-init student at {REALISTIC_SIZE[0]}x{REALISTIC_SIZE[1]} to {bundle}...")
        work.mkdir(parents=True, exist_ok=True)
        made = make_checkpoint(work, model="student", size=REALISTIC_SIZE, num_classes=10, trained=False,
                               name="student_128")
        ckpt = made
        make_bundle(work, formats=("onnx", "openvino"), int8=True, checkpoint=made, name="bundle_128")
    else:
        ckpt = next(iter(sorted(work.glob("*.pt"))), ckpt)
    b = load_bundle(bundle)
    print(f"profiling the realistic-size student ({b.manifest.model.macs_per_frame / 1e6:.1f} MMAC/frame)...")
    rep = profile_bundle(b, devices=["cpu", "intel-cpu"], frames=frames, fps=30.0, clip_len=CLIP_T,
                         checkpoint=ckpt if ckpt.exists() else None, progress=print)
    cfg = ProfileConfig("cpu", Backend.ONNXRUNTIME, Precision.FP32)
    print(f"{streams} synthetic streams at 30 fps on the realistic-size student...")
    s = Settings(frames=frames, warmup=5, fps=30.0, streams=streams)
    return {"bundle": str(bundle), "profile": rep.to_json(),
            "streams_synthetic": [_js(x) for x in measure_streams(b, cfg, streams, s, render_frames(32),
                                                                  seconds=seconds)]}


def _js(x: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {**asdict(x), "all_decided": x.all_decided}


# --- ratios against targets ---------------------------------------------------------------
def ratios(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, verdict) rows."""
    out: list[tuple[str, str, str, str]] = []

    def add(what: str, value: float, target: str, ok: bool | None, fmt: str = "{:.2f}×") -> None:
        out.append((what, fmt.format(value), target, "–" if ok is None else "met" if ok else "NOT met"))

    runtime_rows(add, r["profile"], r["gemm_gmacs"], "")
    st = r["stage"]
    for key, what in (("macs_per_frame", "MACs/frame"), ("params", "parameters"), ("test_accuracy", "accuracy")):
        add(f"student/teacher {what}", st["student_distilled"][key] / st["teacher"][key], "", None)
    add(f"student/teacher latency (PyTorch eager, one {CLIP_T}-frame clip)",
        r["eager_clip_student_ms"] / r["eager_clip_teacher_ms"], "", None)
    streams_rows(add, r, "")
    if "realistic" in r:
        re_ = r["realistic"]
        size = "x".join(map(str, re_["profile"]["model"]["size"] or ()))
        tag = f"[student {size}, {re_['profile']['model']['macs_per_frame'] / 1e6:.1f} MMAC] "
        runtime_rows(add, re_["profile"], r["gemm_gmacs"], tag)
        streams_rows(add, re_, tag)
    return out


def runtime_rows(add: Any, profile: dict[str, Any], gemm_gmacs: float, tag: str) -> None:
    """The runtime's targets from one profile report (rows keyed by mode, backend, precision)."""
    rows = {(x["mode"], x["backend"], x["precision"]): x for x in profile["rows"]}
    p50 = lambda k: rows[k]["stages"]["total"]["p50"] if k in rows else float("nan")  # noqa: E731
    bare = lambda k: rows[k]["bare_ms"]["p50"] if k in rows else float("nan")  # noqa: E731
    _add = add
    add = lambda what, *a, **kw: _add(tag + what, *a, **kw)  # noqa: E731
    ort32, ort8 = ("stream", "onnxruntime", "fp32"), ("stream", "onnxruntime", "int8")
    ov32, ov8 = ("stream", "openvino", "fp32"), ("stream", "openvino", "int8")
    for be, a32, a8 in (("onnxruntime", ort32, ort8), ("OpenVINO", ov32, ov8)):
        v = bare(a8) / bare(a32)
        add(f"INT8/FP32 model latency, {be} (p50)", v, "≤0.6×", v <= 0.6)
        add(f"INT8/FP32 loop total, {be} (p50)", p50(a8) / p50(a32), "", None)
    clip = ("clip", "onnxruntime", "fp32")
    v = p50(clip) / p50(ort32)
    add(f"clip re-inference (T={CLIP_T}) / streaming, onnxruntime FP32, per decision", v, "≥12× (16× ideal)", v >= 12)
    best8 = min(p50(ort8), p50(ov8)) if ov8 in rows else p50(ort8)
    v = p50(("eager-clip", "torch", "fp32")) / best8
    add(f"PyTorch eager FP32 clip re-inference (T={CLIP_T}) / streaming INT8 runtime", v, "≥50×", v >= 50)
    v = p50(("eager-stream", "torch", "fp32")) / p50(ort32)
    add("PyTorch eager streaming / runtime streaming (onnxruntime FP32)", v, "", None)
    v = bare(ov32) / bare(ort32)
    add("OpenVINO/onnxruntime model latency, FP32", v, "", None)
    if ov8 in rows:
        add("OpenVINO/onnxruntime model latency, INT8", bare(ov8) / bare(ort8), "", None)
    for k, name in ((ort32, "onnxruntime FP32"), (ort8, "onnxruntime INT8")):
        v = p50(k) / bare(k)
        add(f"loop total / bare model call, {name} (p50)", v, "≤1.15×", v <= 1.15)
    macs = profile["model"]["macs_per_frame"]
    floor_ms = macs / (gemm_gmacs * 1e9) * 1e3
    for k, name in ((ort32, "onnxruntime"), (ov32, "OpenVINO f32")):
        v = bare(k) / floor_ms
        add(f"model latency / compute floor, {name} FP32 ({macs / 1e6:.2f} MMAC at {gemm_gmacs:.0f} GMAC/s "
            f"= {1e3 * floor_ms:.1f} µs)", v, "≤2×", v <= 2)
    for k, name in ((ort32, "onnxruntime FP32"), (ort8, "onnxruntime INT8")):
        if k not in rows:
            continue
        age99, model99 = rows[k]["age_ms"]["p99"], rows[k]["bare_ms"]["p99"]
        bound = 1000 / 30 + model99
        add(f"frame age p99 at 30 fps, {name} (bound: 33.3 ms + model p99 {model99:.2f})", age99, f"≤{bound:.1f} ms",
            age99 <= bound, "{:.2f} ms")


def streams_rows(add: Any, r: dict[str, Any], tag: str) -> None:
    for key, src in (("streams_synthetic", "synthetic"), ("streams_files", "decoded 640x480 files")):
        if key not in r:
            continue
        one, many = r[key]
        n = one["streams"]
        ok = one["all_decided"] and one["age_ms"]["p99"] <= 100
        add(f"{tag}{n} streams at 30 fps, {src}, one engine: decided FPS (every frame decided: "
            f"{'yes' if one['all_decided'] else 'no'}, dropped {one['dropped']}, age p99 {one['age_ms']['p99']:.0f} ms)",
            one["decided_fps"], "all decided, p99 age ≤100 ms", ok if src == "synthetic" else None, "{:.0f} FPS")
        add(f"{tag}{n} streams, {src}: batched one engine / {n} engines, max FPS un-paced",
            one["capacity_fps"] / max(many["capacity_fps"], 1e-9), "", None)
        add(f"{tag}{n} streams, {src}, {n} engines: decided FPS (dropped {many['dropped']}, age p99 "
            f"{many['age_ms']['p99']:.0f} ms)", many["decided_fps"], "", None, "{:.0f} FPS")


def markdown(r: dict[str, Any], table: list[tuple[str, str, str, str]]) -> str:
    lines = [f"# Benchmark results", "", f"Measured in one run of `python benchmarks/bench_all.py` on "
             f"{machine_line(r['machine'])}; FP32 GEMM peak {r['gemm_gmacs']:.1f} GMAC/s (numpy, 1024³).",
             f"Bundle: `{r['bundle']}`; OpenVINO rows use the intel-cpu profile (f32 inference); "
             f"latencies are p50 per decision in the live loop unless named 'model'.", "",
             "| what | measured | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table]
    lines += ["", "Per configuration (live loop at 30 fps; total p50/p99 ms, model-only p50 ms, max FPS):", "",
              "| configuration | runs in | total p50 | total p99 | model p50 | preprocess p50 | frame age p99 | max FPS |",
              "|---|---|---|---|---|---|---|---|"]
    for x in r["profile"]["rows"]:
        lines.append(f"| {x['label']} | {x['inference_precision']} | {x['stages']['total']['p50']:.3f} | "
                     f"{x['stages']['total']['p99']:.3f} | {x['bare_ms']['p50']:.3f} | "
                     f"{x['stages']['preprocess']['p50']:.3f} | {x['age_ms']['p99']:.1f} | {x['fps']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="A run folder to reuse (e.g. runs/quickstart).")
    ap.add_argument("--quick", action="store_true", help="Build with 1 training epoch per model (speed figures only).")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8.0, help="Length of each paced multi-stream run.")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-realistic", action="store_true",
                    help="Skip the realistic-size (128x128 student) rows beside the default tiny student.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run = args.run or build_run(Path("runs/bench-quick" if args.quick else "runs/bench"), args.quick)
    r = measure(run, frames=args.frames, streams=args.streams, seconds=args.seconds, realistic=not args.no_realistic)
    table = ratios(r)
    print(f"\nmachine: {machine_line(r['machine'])}; FP32 GEMM {r['gemm_gmacs']:.1f} GMAC/s")
    w = max(len(a) for a, *_ in table)
    for a, b, c, d in table:
        print(f"{a:<{w}}  {b:>10}  {c:>28}  {d}")
    from edgelstm.fsutil import write_text_atomic

    write_text_atomic(args.out, markdown(r, table))
    if args.json:
        write_text_atomic(args.json, json.dumps(r, indent=2, default=str) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The P1-P8 speed figures (issue 12 §3) for the synthetic quickstart and the footage reference deployment,
measured in one process on one machine (`make bench`), written as one table with a column per run.

    python benchmarks/bench_all.py --run runs/quickstart --footage runs/footage [--out benchmarks/RESULTS.md]
        [--frames 300] [--baseline-frames 60] [--seconds 8] [--tries 3] [--json OUT]

A run folder is what ``edgelstm quickstart`` writes (``RUN/train/...``, ``RUN/bundle``; ``bench_runs``).
Per run: the bundle's every configuration (onnxruntime and OpenVINO, FP32 and INT8) profiled in the live
loop on a real decoded video (``vtest.avi`` when ``make assets`` unpacked it), the clip re-inference and
PyTorch eager baselines, the number of 30-fps streams one engine serves (``bench_streams``), and bundle
load -> first prediction in fresh processes (``bench_load``). Each figure is shown against its target,
and where a target is missed, by how much (``bench_table``, ``bench_report``).
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import load_times
from bench_report import markdown
from bench_runs import Video, find_bundle, gemm_peak_gmacs, pick_video, stage_rows
from bench_streams import max_streams
from bench_table import CLIP_T, figures

WORK = Path("runs/bench-work")  # the re-timed video; nothing is written into the run folders


def profile_run(bundle: Any, student: Path, video: Video, *, frames: int, baseline_frames: int,
                say: Callable[[str], None]) -> dict[str, Any]:
    """Every streaming configuration at ``frames`` decisions, then the clip re-inference and PyTorch eager
    baselines (slow on a large model) at ``baseline_frames``: one profile dict, the baselines' rows added."""
    from edgelstm.measure.profiler import ProfileConfig, profile_bundle
    from edgelstm.spec import Backend, Precision

    frames = min(frames, video.frames - 30)
    rep = profile_bundle(bundle, devices=["cpu", "intel-cpu"], frames=frames, fps=30.0, source=str(video.path),
                         baselines=False, progress=say)
    have = {(str(a.backend), str(a.precision)) for a in bundle.manifest.artifacts}
    cfgs = [ProfileConfig(d, Backend(be), Precision.FP32) for d, be in (("cpu", "onnxruntime"),
                                                                          ("intel-cpu", "openvino"))
            if (be, "fp32") in have]
    _torch_threads_as(rep.rows[0].threads if rep.rows else 0)
    base = profile_bundle(bundle, configs=cfgs, frames=min(baseline_frames, frames), fps=30.0, clip_len=CLIP_T,
                          source=str(video.path), checkpoint=student, progress=say)
    out = rep.to_json()
    b = base.to_json()
    out["rows"] += [x for x in b["rows"] if x["mode"] != "stream"]
    out["notes"] += [n for n in b["notes"] if n not in out["notes"] and not n.startswith("at the camera rate")]
    return out


def _torch_threads_as(threads: int) -> None:
    """PyTorch eager on as many threads as the runtime (0: the backend's default, one per core here); set for
    each run, since torch keeps the last setting for the whole process."""
    import os

    import torch

    torch.set_num_threads(threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def measure_run(run: Path, name: str, video: Video, args: argparse.Namespace,
                say: Callable[[str], None] = print) -> dict[str, Any]:
    """P1-P8 for one run folder: the profile, the stream search, the cold starts, the INT8 gate report."""
    from edgelstm.runtime.bundle import load_bundle

    t0 = time.perf_counter()
    rows = stage_rows(run)
    student = Path(rows["student_distilled"]["checkpoint"])
    path = find_bundle(run)
    b = load_bundle(path)
    manifest = json.loads((path / "manifest.json").read_text())
    say(f"== {name}: {run} (bundle {path}, {b.manifest.model.macs_per_frame / 1e6:.2f} MMAC/frame)")
    say("profiling every configuration in the live loop, then the baselines...")
    profile = profile_run(b, student, video, frames=args.frames, baseline_frames=args.baseline_frames, say=say)
    say(f"P6: 30-fps streams of {video.path.name} on one engine ({args.seconds:g} s per trial)...")
    streams = max_streams(b, str(video.path), device=args.p6_device, seconds=args.seconds, limit=args.max_streams,
                          retries=args.p6_retries, say=say)
    say(f"P8: bundle load -> first prediction, {args.tries} fresh processes per configuration...")
    load = load_times(path.resolve(), manifest, tries=args.tries, say=say)
    say(f"== {name} done in {(time.perf_counter() - t0) / 60:.1f} min")
    return {"name": name, "run": str(run), "bundle": str(path), "checkpoint": str(student), "profile": profile,
            "baseline_frames": min(args.baseline_frames, profile["settings"]["frames"]),
            "quantization": manifest.get("quantization"), "streams": streams, "load": load}


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def print_table(result: dict[str, Any]) -> None:
    from edgelstm.measure.report import machine_line

    runs = result["runs"]
    cols = [figures(r, result["gemm_gmacs"]) for r in runs]
    print(f"\nmachine: {machine_line(result['machine'])}; FP32 GEMM {result['gemm_gmacs']:.1f} GMAC/s")
    print(f"video: {result['video']['path']} ({result['video']['note']})")
    for i, f in enumerate(cols[0]):
        print(f"{f.pid} {f.what[:90]:<90} {f.target:>10}  " + "  |  ".join(c[i].cell for c in cols))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/quickstart"), help="The synthetic quickstart's run folder.")
    ap.add_argument("--footage", type=Path, default=None,
                    help="The footage quickstart's run folder (`edgelstm quickstart --preset footage`).")
    ap.add_argument("--frames", type=int, default=300, help="Decisions timed per streaming configuration.")
    ap.add_argument("--baseline-frames", type=int, default=60,
                    help="Decisions timed for clip re-inference and PyTorch eager (16 frames each).")
    ap.add_argument("--seconds", type=float, default=8.0, help="Length of each P6 trial (N paced streams).")
    ap.add_argument("--max-streams", "--streams", type=int, default=128, help="Where the P6 search stops doubling.")
    ap.add_argument("--p6-device", default="cpu", help="Device profile of the P6 engine (precision: its default).")
    ap.add_argument("--p6-retries", type=int, default=1, help="Tries again of a failed P6 trial before it counts.")
    ap.add_argument("--tries", type=int, default=3, help="Fresh processes per configuration for P8 (median).")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    ap.add_argument("--json", type=Path, default=None, help="Also write everything measured as JSON.")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    from edgelstm.fsutil import write_text_atomic
    from edgelstm.measure.report import machine_info

    machine = machine_info()  # its load average is the one when the bench started
    runs = [(args.run, "synthetic quickstart")] + ([(args.footage, "footage reference")] if args.footage else [])
    for run, _ in runs:
        find_bundle(run), stage_rows(run)  # refuse a missing run before measuring anything
    video = pick_video([r for r, _ in runs], WORK)
    print(f"video for P1/P3/P6: {video.path} ({video.size[1]}x{video.size[0]} {video.codec}, {video.frames} frames; "
          f"{video.note})")
    gemm = gemm_peak_gmacs()
    measured = [measure_run(run, name, video, args) for run, name in runs]
    cmd = "python benchmarks/bench_all.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    machine["load_avg_1min_end"] = machine_info()["load_avg_1min"]
    result = {"command": cmd.strip(), "machine": machine, "gemm_gmacs": gemm, "runs": measured,
              "video": {"path": str(video.path), "original": _shown(video.original), "size": list(video.size),
                        "frames": video.frames, "codec": video.codec, "note": video.note},
              "minutes": (time.perf_counter() - t0) / 60}
    print_table(result)
    write_text_atomic(args.out, markdown(result))
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2, default=str) + "\n")
    print(f"written {args.out} ({result['minutes']:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

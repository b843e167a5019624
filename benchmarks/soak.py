"""Soak benchmark (`make soak`): 100,000+ frames through the runtime, un-paced, two streams.

Streams the synthetic camera (rendered live) and a looping 640x480 MJPEG file through one engine and
reports RSS at start (after the first 1,000 decisions) and end (growth <= 5 MB), the largest |h| and |c|,
latency p50/p99 over the first and last ten minutes' worth of frames (18,000 at 30 fps), resets and drops.

    python benchmarks/soak.py [--bundle B] [--frames 100000] [--json OUT]
Without --bundle it exports a default student (untrained weights: memory and drift do not depend on them).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def default_bundle(work: Path) -> Path:
    from tests.bundles import make_bundle, make_checkpoint

    ckpt = make_checkpoint(work, model="student", size=(32, 32), num_classes=10, steps=30)
    return make_bundle(work, checkpoint=ckpt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from edgelstm.measure.report import machine_info, machine_line
    from edgelstm.measure.soak import soak, write_test_video

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = args.bundle or default_bundle(work)
        video = write_test_video(work / "loop.avi", frames=300)
        r = soak(bundle, frames=args.frames, video=video)
    m = machine_info()
    print(f"machine: {machine_line(m)}")
    print(f"bundle: {bundle}; {r.device}")
    print(f"frames decided: {r.frames} in {r.seconds:.0f} s ({r.frames / r.seconds:.0f}/s); per stream {r.per_stream}; "
          f"file loops {r.file_loops}")
    print(f"RSS: {r.rss_start_mb:.1f} MB after 1,000 decisions -> {r.rss_end_mb:.1f} MB at the end "
          f"(growth {r.rss_growth_mb:+.2f} MB; LoopStats's fixed sample rings hold {r.loop_stats_mb:.2f} MB)")
    print(f"largest |h| {r.max_abs_h:.4f}, |c| {r.max_abs_c:.4f}")
    print(f"latency over the first {r.window} decision batches p50/p99 {r.first['p50']:.3f}/{r.first['p99']:.3f} ms; "
          f"last {r.window}: {r.last['p50']:.3f}/{r.last['p99']:.3f} ms (drift p50 x{r.drift:.2f})")
    print(f"frames dropped (synthetic renderer faster than the loop: newest frame kept) {r.dropped}; resets {r.resets}")
    ok = {"rss growth <= 5 MB": r.rss_growth_mb <= 5.0,
          "|h|, |c| finite and bounded": math.isfinite(r.max_abs_h) and math.isfinite(r.max_abs_c) and r.max_abs_c < 100,
          "no latency drift (last p50 <= 1.25x first)": r.drift <= 1.25,
          "no non-finite resets": not any("non-finite" in k for k in r.resets)}
    for k, v in ok.items():
        print(f"  {'PASS' if v else 'FAIL'}  {k}")
    if args.json:
        from edgelstm.fsutil import write_text_atomic

        write_text_atomic(args.json, json.dumps({"machine": m, **r.to_json(), "checks": ok}, indent=2) + "\n")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

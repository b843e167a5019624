"""Does a pretrained encoder pay? The same distilled Lite0 student, from ImageNet weights and from random ones.

    python benchmarks/pretrained_students.py [--teacher runs/quickstart/train/teacher/best.pt] [--out runs/pretrained]

Every student is distilled from the same teacher (the quickstart's, 32x32; its contract resamples the 64x64 clips
it is fed) with the quickstart's distillation settings, on the embedded synthetic set at 64x64, with
EfficientNet-Lite0's first six blocks as its encoder (stride 8, pooled to 4x4: the whole trunk's 2x2 map of
ImageNet-level features left the students near 37%), ImageNet weights (``--encoder-weights imagenet``) or random
ones, frozen whole (the LSTM trains on cached features) or with its last two blocks training. Prints a markdown table (the
README's "Pretrained encoders" comparison) and writes OUT/pretrained_students.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from edgelstm.fsutil import write_text_atomic
from edgelstm.train.config import DataConfig, DistillConfig, EncoderChoice, TrainConfig
from edgelstm.train.trainer import distill

BLOCKS = 6  # Lite0's stem and first five MBConv blocks: 40 channels at stride 8, an 8x8 map at 64x64, pooled 4x4
# (row name, encoder weights, blocks left training): frozen whole, then partly frozen
STUDENTS = (("imagenet, frozen", "imagenet", 0), ("random, frozen", None, 0),
            ("imagenet, last 2 blocks train", "imagenet", 2), ("random, last 2 blocks train", None, 2))


def run(teacher: Path, out: Path, *, size: tuple[int, int], clip_len: int, counts: tuple[int, int, int],
        epochs: int, seed: int, frozen_only: bool = False) -> list[dict[str, Any]]:
    data = DataConfig(spec="synthetic", size=size, clip_len=clip_len, counts=counts, cache_dir=out / "cache")
    dcfg = DistillConfig(teacher=teacher, alpha=0.5, temperature=2.0, step_weighting="linear", stream_pairs=True)
    rows = []
    for name, weights, unfreeze in STUDENTS[:2] if frozen_only else STUDENTS:
        folder = out / name.replace(", ", "_").replace(" ", "_")
        cfg = TrainConfig(model="student", out=folder, data=data, epochs=epochs, lr=4e-3, seed=seed, threads=2,
                          force=True, stream_pairs=True,
                          encoder=EncoderChoice("efficientnet_lite0", weights, True, unfreeze, grid=4, blocks=BLOCKS))
        t0 = time.perf_counter()
        r = distill(cfg, dcfg)
        m = json.loads((folder / "metrics.json").read_text())
        rows.append({"student": name, "test_accuracy": r.test_accuracy, "val_accuracy": r.val_accuracy,
                     "params": r.params, "macs_per_frame": r.macs_per_frame,
                     "frozen_blocks": m["feature_cache"]["frozen_blocks"],
                     "extract_s": m["feature_cache"]["extract_s"], "wall_s": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"Distilled EfficientNet-Lite0 students, synthetic set at {args.size[0]}x{args.size[1]}, "
             f"{args.clip_len} frames, {args.counts[0]} training clips, {args.epochs} epochs "
             f"(`python benchmarks/pretrained_students.py`; {platform.processor() or platform.machine()}):", "",
             "| encoder weights | frozen blocks | test accuracy | val accuracy | MACs/frame | wall (extraction) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['student']} | {r['frozen_blocks']} of {BLOCKS} | {100 * r['test_accuracy']:.1f}% | "
                     f"{100 * r['val_accuracy']:.1f}% | {r['macs_per_frame'] / 1e6:.1f} M | "
                     f"{r['wall_s']:.0f} s ({r['extract_s']:.0f} s) |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", type=Path, default=Path("runs/quickstart/train/teacher/best.pt"))
    p.add_argument("--out", type=Path, default=Path("runs/pretrained"))
    p.add_argument("--size", type=int, nargs=2, default=(64, 64))
    p.add_argument("--clip-len", type=int, default=12)
    p.add_argument("--counts", type=int, nargs=3, default=(2000, 300, 600))
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frozen-only", action="store_true",
                   help="Only the two students with the whole encoder frozen (about half the time).")
    args = p.parse_args()
    if not args.teacher.is_file():
        raise SystemExit(f"no teacher at {args.teacher}: run `make quickstart` first, or pass --teacher CKPT")
    rows = run(args.teacher, args.out, size=tuple(args.size), clip_len=args.clip_len, counts=tuple(args.counts),
               epochs=args.epochs, seed=args.seed, frozen_only=args.frozen_only)
    table = markdown(rows, args)
    write_text_atomic(args.out / "pretrained_students.json", json.dumps({"rows": rows, "args": vars(args)},
                                                                         indent=2, default=str) + "\n")
    print(table)


if __name__ == "__main__":
    main()

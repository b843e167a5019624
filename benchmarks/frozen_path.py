"""What the frozen-feature training path costs per batch, and what the allocator does to it.

    python benchmarks/frozen_path.py [--batches 5] [--frames 768]

Two measurements on the footage preset's student (``motion_student``, Lite0's first six blocks, 160x160, random
weights: speed only):

1. ``feature_cache.extract`` over ``--frames`` random frames with batches of 256, 64, 16, 8 frames and the default
   (``frames_per_batch``): seconds each.
2. One training step (32 clips of 24 steps of cached 40x20x20 maps: a batch of back-to-back pairs) through the
   motion block, LSTM and AdamW: wall seconds, kernel seconds and minor page faults per step, before and after
   ``torchdata.keep_freed_memory()`` (glibc's mmap and trim thresholds raised).

Run it in a fresh process: the allocator setting cannot be undone, so the "before" rows come first.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from edgelstm.models import create_model
from edgelstm.models.freeze import freeze
from edgelstm.train import feature_cache as fc
from edgelstm.train.torchdata import keep_freed_memory


def extraction(frames: int) -> None:
    torch.manual_seed(0)
    m = create_model("motion_student", num_classes=7, encoder_blocks=6)
    frozen = freeze(m.encoder)
    X = np.random.default_rng(0).integers(0, 256, (frames // 12, 12, 160, 160, 3), dtype=np.uint8)
    for bf in (256, 64, 16, 8, None):
        t = time.perf_counter()
        fc.extract(m, X, frozen, batch_frames=bf, progress=False)
        label = f"default ({fc.frames_per_batch((160, 160))})" if bf is None else str(bf)
        print(f"| extract, {label} frames per batch | {time.perf_counter() - t:.2f} s |", flush=True)


def training(batches: int, label: str) -> None:
    torch.manual_seed(0)
    m = create_model("motion_student", num_classes=7, encoder_blocks=6)
    x = torch.randn(32, 24, 40, 20, 20)
    opt = torch.optim.AdamW(m.parameters(), 1e-3)

    def step() -> None:
        feats = m.encoder.project(x.flatten(0, 1)).view(32, 24, -1)
        loss = m.step_logits_features(feats).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(batches):
        step()
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), (time.perf_counter() - t0) / batches
    print(f"| train step, {label} | {wall:.2f} s wall, {(r1.ru_stime - r0.ru_stime) / batches:.2f} s kernel, "
          f"{(r1.ru_minflt - r0.ru_minflt) / batches:,.0f} page faults |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--frames", type=int, default=768)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print("| measurement | result |\n|---|---|")
    training(args.batches, "glibc defaults")
    extraction(args.frames)
    print(f"| keep_freed_memory() | {keep_freed_memory()} |")
    training(args.batches, "after keep_freed_memory()")
    extraction(args.frames)


if __name__ == "__main__":
    main()

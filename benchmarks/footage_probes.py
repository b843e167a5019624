"""Why the footage students sit near chance: is it the data, the features or the model?

    python benchmarks/footage_probes.py [--train 1400 --val 280 --test 350] [--out runs/footage_probes]

Three measurements on the camera-motion task of ``edgelstm data footage`` (160x160, 12 frames, stride 1, seed 0,
the same source split), clips rendered in memory with the data command's own ``render_clip``:

1. **phase**: OpenCV's phase correlation between consecutive grey frames, summed over the clip, read as
   static / pan left / right / up / down (no zoom class: it has no single shift). No training: if it classifies
   the pans of the test videos, the labels are right and the motion is in the pixels.
2. **probe**: ImageNet Lite0's frozen prefix (the stem and the first N blocks: ``--cuts``), its map pooled to G x G,
   then LayerNorm -> Linear(128) -> ReLU -> dropout -> LSTM(128) -> linear, trained on the cached features
   (AdamW, 30 epochs, the epoch with the best val accuracy reported). ``+diff`` also feeds each step's difference
   to the previous step's features.
3. **motion block**: the same features, but each step first sees its map beside the previous step's through two
   3x3 convolutions (what a step graph carrying the previous map as state could compute) before pooling to 2x2.

Prints a markdown table of train / val / test accuracy and writes OUT/footage_probes.json. Every figure depends
on the seed; the table in the README came from one run on the machine it names.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgelstm.data.footage import FootageConfig, render_clip
from edgelstm.data.footage_sources import assign_sources, decode_source, find_sources
from edgelstm.fsutil import write_text_atomic
from edgelstm.models.efficientnet_lite import convert_state_dict, imagenet_weights_file, lite0_features

SPLITS = ("train", "val", "test")
CFG = FootageConfig(size=(160, 160), clip_len=12, stride=1)
MAP = 10  # every cut's map is pooled to 10x10 once (the stride-16 map of a 160x160 frame); probes pool further


def render(counts: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(clips uint8 (N, T, H, W, 3), labels) per split; class i % 7, sources taking turns as in the data command."""
    sources = assign_sources(find_sources(), CFG.seed)
    out = {}
    for sid, split in enumerate(SPLITS):
        decoded = [decode_source(s, short_side=2 * CFG.size[0], max_frames=600) for s in sources[split]]
        clips = [render_clip(decoded[(i // 7) % len(decoded)], CFG.classes[i % 7],
                             np.random.default_rng([CFG.seed, sid, i]), CFG).frames for i in range(counts[split])]
        out[split] = (np.stack(clips), np.arange(counts[split]) % 7)
    return out


def phase_confusion(clips: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """7x7 confusion of the phase-correlation reading (rows: truth; zoom clips land on static or a pan)."""
    conf = np.zeros((7, 7), int)
    for clip, y in zip(clips, labels):
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in clip]
        dx = dy = 0.0
        for a, b in zip(grey[:-1], grey[1:]):
            (sx, sy), _ = cv2.phaseCorrelate(a, b)
            dx, dy = dx + sx, dy + sy
        if max(abs(dx), abs(dy)) < 8:
            p = 0
        elif abs(dx) > abs(dy):
            p = 1 if dx > 0 else 2   # content drifts right: the window pans left
        else:
            p = 3 if dy > 0 else 4
        conf[y, p] += 1
    return conf


@torch.no_grad()
def lite0_maps(clips: np.ndarray, cuts: list[int]) -> dict[int, np.ndarray]:
    """Per cut: float16 (N, T, C, MAP, MAP) maps of ImageNet Lite0's features[:cut]."""
    net = lite0_features()
    sd = torch.load(imagenet_weights_file(), weights_only=True)
    net.load_state_dict({k[len("features."):]: v for k, v in convert_state_dict(sd).items()
                         if k.startswith("features.")})
    net.eval()
    n, t = clips.shape[:2]
    parts: dict[int, list[np.ndarray]] = {c: [] for c in cuts}
    for b in range(0, n, 16):
        x = (torch.from_numpy(clips[b:b + 16]).float().flatten(0, 1).permute(0, 3, 1, 2) - 127.0) / 128.0
        done = 0
        for c in sorted(cuts):
            x = net[done:c](x)
            done = c
            pooled = F.adaptive_avg_pool2d(x, MAP)
            parts[c].append(pooled.reshape(-1, t, *pooled.shape[1:]).numpy().astype(np.float16))
    return {c: np.concatenate(p) for c, p in parts.items()}


class Probe(nn.Module):
    def __init__(self, channels: int, grid: int, diff: bool) -> None:
        super().__init__()
        fin = channels * grid * grid * (2 if diff else 1)
        self.grid, self.diff = grid, diff
        self.inp = nn.Sequential(nn.LayerNorm(fin), nn.Linear(fin, 128), nn.ReLU(), nn.Dropout(0.2))
        self.lstm, self.head = nn.LSTM(128, 128, batch_first=True), nn.Linear(128, 7)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:  # (N, T, C, MAP, MAP)
        n, t = maps.shape[:2]
        x = F.adaptive_avg_pool2d(maps.flatten(0, 1), self.grid).reshape(n, t, -1)
        if self.diff:
            x = torch.cat([x, torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], 1)], -1)
        return self.head(self.lstm(self.inp(x))[0][:, -1])


class MotionBlock(nn.Module):
    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.conv = nn.Sequential(nn.Conv2d(2 * channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.lstm, self.head = nn.LSTM(width * 4, 128, batch_first=True), nn.Linear(128, 7)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        n, t = maps.shape[:2]
        a = self.norm(maps.flatten(0, 1)).reshape(maps.shape)
        prev = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], 1)
        z = self.conv(torch.cat([a, prev], 2).flatten(0, 1))
        return self.head(self.lstm(F.adaptive_avg_pool2d(z, 2).reshape(n, t, -1))[0][:, -1])


def fit(model: nn.Module, data: dict[str, tuple[torch.Tensor, torch.Tensor]], epochs: int) -> dict[str, Any]:
    """AdamW; the epoch with the best val accuracy, its train/val/test accuracy."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-2)
    best: dict[str, Any] = {"val": -1.0}
    for epoch in range(epochs):
        model.train()
        x, y = data["train"]
        for idx in torch.randperm(len(x)).split(32):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = {s: float((torch.cat([model(c) for c in data[s][0].split(128)]).argmax(-1) == data[s][1])
                            .float().mean()) for s in SPLITS}
        if acc["val"] > best["val"]:
            best = {**acc, "epoch": epoch + 1}
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=1400)
    ap.add_argument("--val", type=int, default=280)
    ap.add_argument("--test", type=int, default=350)
    ap.add_argument("--cuts", default="9,6", help="Lite0 features[:N] (9: 80 ch at stride 16, the footage preset's "
                    "frozen prefix; 6: 40 ch at stride 8)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="runs/footage_probes")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    clips = render({"train": args.train, "val": args.val, "test": args.test})
    rows: list[dict[str, Any]] = []
    for split in ("train", "test"):
        conf = phase_confusion(*clips[split])
        pans = conf[:5, :5].trace() / conf[:5].sum()
        rows.append({"method": f"phase correlation, {split} videos (static + pans only)", split: float(pans)})
        print(f"phase correlation on {split}: static+pans {pans:.3f}\n{conf}", flush=True)
    cuts = [int(c) for c in args.cuts.split(",")]
    maps = {s: lite0_maps(clips[s][0], cuts) for s in SPLITS}
    for cut in cuts:
        data = {s: (torch.from_numpy(maps[s][cut].astype(np.float32)), torch.from_numpy(clips[s][1]).long())
                for s in SPLITS}
        channels = data["train"][0].shape[2]
        for name, model in ((f"LSTM probe, features[:{cut}] pooled 4x4", Probe(channels, 4, False)),
                            (f"LSTM probe, features[:{cut}] pooled 4x4 +diff", Probe(channels, 4, True)),
                            (f"motion block, features[:{cut}] 10x10 beside the previous map", MotionBlock(channels))):
            rows.append({"method": name, **fit(model, data, args.epochs)})
            print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"rows": rows, "counts": [args.train, args.val, args.test], "machine": platform.processor() or
              platform.machine(), "wall_s": round(time.perf_counter() - t0, 1)}
    write_text_atomic(out / "footage_probes.json", json.dumps(result, indent=2) + "\n")
    print("| method | train | val | test |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | " + " | ".join(f"{100 * r[s]:.1f}%" if s in r else "" for s in SPLITS) + " |")


if __name__ == "__main__":
    main()

"""Tracking sequences: the embedded generator (exact per-frame boxes) and the set a tracker trains on.

The generator reuses the synthetic actions' look (textured backgrounds, the same shapes, sensor noise) for a
single target that wanders for a whole sequence: a damped random walk with sudden fast kicks, a slowly drifting
scale, a slow spin, bouncing off the frame's borders; and a distractor that crosses the target's path and, drawn
on top of it, occludes it for a few frames. The true box is the target's own extent (pixels at least half
covered), also while it is occluded, as OTB annotates. Sequences are long enough for a tracker to drift.

Every sequence is a pure function of (seed, split, index). numpy and OpenCV only. User data in the OTB layout is
read by :mod:`edgelstm.data.tracking_otb`; :func:`load_tracking` takes either.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from edgelstm.data.synthetic import SHAPES, SPLITS, background_texture, draw_shape

SYNTHETIC = "synthetic"
_SPLIT_ID = {s: i for i, s in enumerate(SPLITS)}


@dataclass(frozen=True)
class TrackConfig:
    size: tuple[int, int] = (64, 64)  # (H, W) of the frames
    frames: int = 48                  # per sequence
    fps: float = 15.0
    seed: int = 0
    train: int = 200                  # sequences per split
    val: int = 20
    test: int = 40
    noise: float = 6.0                # std of per-pixel sensor noise, 0..255 levels
    occlusion: float = 0.5            # share of sequences whose distractor crosses the target
    fast_motion: float = 0.04         # chance per frame of a sudden kick

    def count(self, split: str) -> int:
        return {"train": self.train, "val": self.val, "test": self.test}[split]


@dataclass(frozen=True)
class TrackSequence:
    name: str
    frames: np.ndarray  # uint8 (T, H, W, 3), RGB
    boxes: np.ndarray   # float32 (T, 4): x, y, w, h of the target in each frame

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class TrackSet:
    """Tracking sequences by split (``ds["train"]``), from the generator or a folder."""

    splits: dict[str, list[TrackSequence]]
    source: str            # "synthetic" or the folder
    fps: float = 15.0
    seed: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, split: str) -> list[TrackSequence]:
        return self.splits.get(split, [])

    def counts(self) -> tuple[int, int, int]:
        return len(self["train"]), len(self["val"]), len(self["test"])


def _box_of(shape: str, cx: float, cy: float, r: float, theta: float, hw: tuple[int, int],
            mask: np.ndarray) -> np.ndarray:
    """The drawn shape's extent: the pixels it covers at least half (the same polygon as the frame's)."""
    mask[:] = 0
    draw_shape(mask, shape, cx, cy, r, theta, np.array([255.0]), 1.0)
    ys, xs = np.nonzero(mask >= 128)
    if not len(xs):  # smaller than half a pixel: its centre, one pixel
        return np.array([cx, cy, 1.0, 1.0], np.float32)
    return np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], np.float32)


def _walk(rng: np.random.Generator, n: int, h: int, w: int, fast: float) -> dict[str, np.ndarray]:
    """The target's centre, radius and angle per frame."""
    m = min(h, w)
    r0 = rng.uniform(0.08, 0.15) * m
    pos = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
    vel = rng.normal(0, 0.02 * m, 2)
    theta, omega = rng.uniform(0, 2 * math.pi), rng.normal(0, 0.03)
    log_s, d_log_s = 0.0, 0.0
    out = {k: np.empty(n) for k in ("cx", "cy", "r", "theta")}
    for i in range(n):
        if i:
            vel = 0.9 * vel + rng.normal(0, 0.008 * m, 2)
            if rng.uniform() < fast:
                vel = vel + rng.normal(0, 0.06 * m, 2)  # a sudden fast motion
            d_log_s = 0.9 * d_log_s + rng.normal(0, 0.012)
            log_s = float(np.clip(log_s + d_log_s, math.log(0.5), math.log(2.0)))
            theta += omega
        r = r0 * math.exp(log_s)
        pos = pos + vel if i else pos
        for k, side in ((0, w), (1, h)):  # bounce off the borders: the target stays inside the frame
            lo, hi = r, side - r
            if pos[k] < lo or pos[k] > hi:
                pos[k] = float(np.clip(pos[k], lo, hi))
                vel[k] = -vel[k]
        out["cx"][i], out["cy"][i], out["r"][i], out["theta"][i] = pos[0], pos[1], r, theta
    return out


def _distractor(rng: np.random.Generator, walk: dict[str, np.ndarray], n: int, h: int, w: int,
                crosses: bool) -> tuple[np.ndarray, np.ndarray]:
    """The distractor's centre per frame (N, 2) and radius: a straight line through the target's position at a
    random frame when it ``crosses``, else a random walk of its own."""
    m = min(h, w)
    r = rng.uniform(0.7, 1.2) * float(walk["r"][0])
    if crosses:
        t0 = int(rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4)))
        speed = rng.uniform(0.02, 0.05) * m
        angle = rng.uniform(0, 2 * math.pi)
        t = np.arange(n) - t0
        at = np.array([walk["cx"][t0], walk["cy"][t0]])
        return at + np.outer(t, [speed * math.cos(angle), speed * math.sin(angle)]), np.array(r)
    pos, vel, path = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h]), np.zeros(2), []
    for _ in range(n):
        vel = 0.8 * vel + rng.normal(0, 0.015 * m, 2)
        pos = np.clip(pos + vel, [0, 0], [w, h])
        path.append(pos.copy())
    return np.array(path), np.array(r)


def iter_sequence(rng: np.random.Generator, *, size: tuple[int, int] = (64, 64), frames: int = 48,
                  noise: float = 6.0, occlusion: float = 0.5, fast_motion: float = 0.04
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One tracking sequence frame by frame: uint8 (H, W, 3) RGB and its float32 box (4,)."""
    h, w = size
    bg = background_texture(rng, h, w)
    shape, d_shape = SHAPES[rng.integers(len(SHAPES))], SHAPES[rng.integers(len(SHAPES))]
    colour = rng.uniform(0, 255, size=3)
    colour = np.where(np.abs(colour - bg.mean((0, 1))) < 60, 255 - colour, colour)  # keep some contrast
    d_colour, d_theta = rng.uniform(0, 255, size=3), rng.uniform(0, 2 * math.pi)
    walk = _walk(rng, frames, h, w, fast_motion)
    d_path, d_r = _distractor(rng, walk, frames, h, w, bool(rng.uniform() < occlusion))
    mask = np.zeros((h, w), np.uint8)
    for i in range(frames):
        img = bg.copy()
        args = (walk["cx"][i], walk["cy"][i], walk["r"][i], walk["theta"][i])
        draw_shape(img, shape, *args, colour, 1.0)
        box = _box_of(shape, *args, (h, w), mask)
        draw_shape(img, d_shape, d_path[i, 0], d_path[i, 1], float(d_r), d_theta, d_colour, 1.0)  # on top
        if noise > 0:
            img += rng.normal(0, noise, size=img.shape).astype(np.float32)
        yield np.clip(img, 0, 255).astype(np.uint8), box


def render_sequence(rng: np.random.Generator, *, size: tuple[int, int] = (64, 64), frames: int = 48,
                    noise: float = 6.0, occlusion: float = 0.5, fast_motion: float = 0.04
                    ) -> tuple[np.ndarray, np.ndarray]:
    """One tracking sequence: uint8 frames (T, H, W, 3) RGB and float32 boxes (T, 4)."""
    out = np.empty((frames, size[0], size[1], 3), np.uint8)
    boxes = np.empty((frames, 4), np.float32)
    for i, (img, box) in enumerate(iter_sequence(rng, size=size, frames=frames, noise=noise, occlusion=occlusion,
                                                 fast_motion=fast_motion)):
        out[i], boxes[i] = img, box
    return out, boxes


def synthetic_sequence(cfg: TrackConfig, split: str, index: int) -> TrackSequence:
    rng = np.random.default_rng([cfg.seed, _SPLIT_ID[split], index, 7])
    frames, boxes = render_sequence(rng, size=cfg.size, frames=cfg.frames, noise=cfg.noise,
                                    occlusion=cfg.occlusion, fast_motion=cfg.fast_motion)
    return TrackSequence(f"{split}_{index:05d}", frames, boxes)


def synthetic_tracking(cfg: TrackConfig) -> TrackSet:
    splits = {s: [synthetic_sequence(cfg, s, i) for i in range(cfg.count(s))] for s in SPLITS}
    return TrackSet(splits, SYNTHETIC, cfg.fps, cfg.seed, notes={"counts": f"{cfg.train},{cfg.val},{cfg.test}",
                                                                 "size": f"{cfg.size[0]},{cfg.size[1]}"})


def load_tracking(spec: str, *, size: tuple[int, int] = (64, 64), frames: int = 48,
                  counts: tuple[int, int, int] | None = None, seed: int = 0) -> TrackSet:
    """``synthetic`` (generated at ``size``, ``frames`` per sequence, ``counts`` per split) or a folder of
    sequences in the OTB layout (:mod:`edgelstm.data.tracking_otb`; frames at their own size)."""
    if spec == SYNTHETIC:
        train, val, test = counts or (TrackConfig.train, TrackConfig.val, TrackConfig.test)
        return synthetic_tracking(TrackConfig(size=size, frames=frames, seed=seed, train=train, val=val, test=test))
    from edgelstm.data.tracking_otb import read_otb

    return read_otb(spec, seed=seed)


def stream(*, size: tuple[int, int] = (480, 640), seed: int = 0, frames: int = 1800
           ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One long synthetic sequence, frame by frame (the demo's synthetic camera for a tracker): RGB frame, box."""
    rng = np.random.default_rng([seed, 77])
    return iter_sequence(rng, size=size, frames=frames)

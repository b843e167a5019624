"""The embedded untrimmed set: long synthetic videos in which the synthetic actions happen at random times.

Each video runs ``seconds`` at ``fps`` over one textured background with sensor noise, a slow brightness
drift (camera noise) and a distractor wandering the whole time. Background stretches of random length (only
the distractor and the camera noise; with ``idle`` > 0 some also show a still object, so that "something is
there" stops meaning "an action happens") separate actions of random classes and durations, at the clip set's
speeds (about a second each); an action's actor moves along the class's path for exactly the frames labelled
with it (:func:`edgelstm.data.synthetic.trajectory`), so every frame has a label and the two members of each
time-reversed pair still differ only in the order of their frames.

Every video is a pure function of (seed, split, index). ``write_untrimmed`` writes the set as real files:
``OUT/<split>/<name>.avi``, ``OUT/segments.csv`` (``video,label,start_s,end_s``, the format users bring),
``OUT/labels/<split>/<name>.txt`` (one class name per frame) and ``OUT/untrimmed.json``.
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelstm.data.dataset import SPLITS
from edgelstm.data.segments import INFO_NAME, SEGMENTS_NAME
from edgelstm.data.synthetic import CLASSES, SHAPES, background_texture, draw_shape, trajectory
from edgelstm.data.untrimmed import BACKGROUND, BACKGROUND_INDEX, UntrimmedSet, Video, instances
from edgelstm.fsutil import OutputKind, atomic_dir, write_text_atomic

UNTRIMMED_CLASSES: tuple[str, ...] = (BACKGROUND, *CLASSES)


@dataclass(frozen=True)
class UntrimmedConfig:
    size: tuple[int, int] = (32, 32)
    fps: float = 15.0
    seconds: float = 60.0               # length of every video
    seed: int = 0
    train: int = 16                     # videos per split
    val: int = 4
    test: int = 4
    action_s: tuple[float, float] = (0.5, 1.2)   # duration of one action (the clips' motion speed)
    gap_s: tuple[float, float] = (0.4, 2.0)      # background between two actions
    idle: float = 0.0                   # share of background stretches with a still object in view (0: only the
                                        # distractor and camera noise between actions)
    noise: float = 6.0                  # per-pixel sensor noise, 0..255 levels
    distractor: bool = True

    def count(self, split: str) -> int:
        return {"train": self.train, "val": self.val, "test": self.test}[split]


@dataclass(frozen=True)
class Piece:
    label: int    # index into UNTRIMMED_CLASSES (BACKGROUND_INDEX: no action)
    start: int
    end: int


def timeline(rng: np.random.Generator, cfg: UntrimmedConfig) -> list[Piece]:
    """Background and actions back to back over the video's frames, starting with background."""
    n = max(1, round(cfg.seconds * cfg.fps))
    pieces, t, action = [], 0, False
    while t < n:
        lo, hi = cfg.action_s if action else cfg.gap_s
        length = max(2, round(rng.uniform(lo, hi) * cfg.fps))
        end = min(n, t + length)
        label = 1 + int(rng.integers(len(CLASSES))) if action else BACKGROUND_INDEX
        if action and end - t < 4:  # an action cut short by the end of the video stays background
            label = BACKGROUND_INDEX
        pieces.append(Piece(label, t, end))
        t, action = end, not action
    return pieces


def _actor(piece: Piece, rng: np.random.Generator, cfg: UntrimmedConfig,
           bg_mean: np.ndarray) -> dict[str, np.ndarray] | None:
    """Per-frame pose of the piece's object: the action's actor, a still object, or nothing."""
    h, w = cfg.size
    n = piece.end - piece.start
    if piece.label == BACKGROUND_INDEX and rng.uniform() >= cfg.idle:
        return None
    label = piece.label - 1 if piece.label != BACKGROUND_INDEX else int(rng.integers(len(CLASSES)))
    t = np.linspace(0.0, 1.0, n) if piece.label != BACKGROUND_INDEX else np.full(n, rng.uniform(0.3, 0.7))
    pose = trajectory(label, rng, t, h, w)
    colour = rng.uniform(0, 255, size=3)
    pose["colour"] = np.where(np.abs(colour - bg_mean) < 60, 255 - colour, colour)
    pose["shape"] = np.array(int(rng.integers(len(SHAPES))))
    return pose


def render_frames(cfg: UntrimmedConfig, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
    """One video frame by frame: uint8 (H, W, 3) RGB and its label (an index into UNTRIMMED_CLASSES)."""
    h, w = cfg.size
    m = min(h, w)
    bg = background_texture(rng, h, w)
    pieces = timeline(rng, cfg)
    d_shape, d_colour = SHAPES[int(rng.integers(len(SHAPES)))], rng.uniform(0, 255, size=3)
    d_pos, d_vel = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h]), np.zeros(2)
    d_r, d_theta = rng.uniform(0.05, 0.09) * m, rng.uniform(0, 2 * math.pi)
    drift = np.cumsum(rng.normal(0, 0.004, size=pieces[-1].end)).clip(-0.12, 0.12)  # the camera's slow brightness
    for piece in pieces:
        pose = _actor(piece, rng, cfg, bg.mean((0, 1)))
        for i in range(piece.start, piece.end):
            img = bg * (1.0 + drift[i])
            if cfg.distractor:
                d_vel = 0.8 * d_vel + rng.normal(0, 0.015 * m, size=2)
                d_pos = np.clip(d_pos + d_vel, [0, 0], [w, h])
                draw_shape(img, d_shape, d_pos[0], d_pos[1], d_r, d_theta, d_colour, 0.8)
            if pose is not None:
                k = i - piece.start
                draw_shape(img, SHAPES[int(pose["shape"])], pose["cx"][k], pose["cy"][k], pose["r"][k],
                           pose["theta"][k], pose["colour"], float(pose["alpha"][k]))
            if cfg.noise > 0:
                img += rng.normal(0, cfg.noise, size=img.shape).astype(np.float32)
            yield np.clip(img, 0, 255).astype(np.uint8), piece.label


def render_video(cfg: UntrimmedConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One video of a split: uint8 (T, H, W, 3) RGB frames and (T,) int64 labels (into UNTRIMMED_CLASSES)."""
    rng = np.random.default_rng([cfg.seed, 1000 + SPLITS.index(split), index])
    frames, labels = zip(*render_frames(cfg, rng))
    return np.stack(frames), np.array(labels, np.int64)


def render_unlabeled(cfg: UntrimmedConfig, index: int) -> np.ndarray:
    """Frames of one more video of the embedded set, in none of its splits (for distillation without labels)."""
    return np.stack([f for f, _ in render_frames(cfg, np.random.default_rng([cfg.seed, 3000, index]))])


def stream(*, size: tuple[int, int] = (32, 32), fps: float = 15.0, seed: int = 0) -> Iterator[tuple[np.ndarray, int]]:
    """An endless untrimmed camera: videos of the embedded set back to back (none of a split), frame by frame."""
    cfg = UntrimmedConfig(size=size, fps=fps, seed=seed)
    for index in itertools.count():
        yield from render_frames(cfg, np.random.default_rng([seed, 2000, index]))


def video_name(split: str, index: int) -> str:
    return f"{split}_{index:04d}"


def load_synthetic_untrimmed(cfg: UntrimmedConfig) -> UntrimmedSet:
    splits = {}
    for split in SPLITS:
        splits[split] = [Video(video_name(split, i), *render_video(cfg, split, i)) for i in range(cfg.count(split))]
    return UntrimmedSet(classes=UNTRIMMED_CLASSES, splits=splits, source="synthetic", size=cfg.size, fps=cfg.fps,
                        seed=cfg.seed, seconds=cfg.seconds)


def segment_rows(video: str, labels: np.ndarray, fps: float) -> Iterator[str]:
    """The CSV rows of one video's actions: ``video,label,start_s,end_s`` (frame i spans [i/fps, (i+1)/fps))."""
    for g in instances(labels, BACKGROUND_INDEX):
        yield f"{video},{UNTRIMMED_CLASSES[g.label]},{g.start / fps:.4f},{g.end / fps:.4f}"


def write_untrimmed(out: str | Path, cfg: UntrimmedConfig, *, force: bool = False) -> dict[str, int]:
    """Write the set as video files plus ``segments.csv``, per-frame labels and ``untrimmed.json``; the folder
    appears whole or not at all. Returns videos written per split."""
    from edgelstm.data.synthetic_source import VIDEO_EXT, write_video

    counts, rows = {}, ["video,label,start_s,end_s"]
    with atomic_dir(out, kind=OutputKind.DATASET, force=force) as stage:
        for split in SPLITS:
            (stage / split).mkdir()
            (stage / "labels" / split).mkdir(parents=True)
            for i in range(cfg.count(split)):
                frames, labels = render_video(cfg, split, i)
                name = video_name(split, i)
                write_video(stage / split / f"{name}{VIDEO_EXT}", frames, cfg.fps)
                write_text_atomic(stage / "labels" / split / f"{name}.txt",
                                  "".join(f"{UNTRIMMED_CLASSES[k]}\n" for k in labels.tolist()))
                rows += segment_rows(f"{split}/{name}{VIDEO_EXT}", labels, cfg.fps)
            counts[split] = cfg.count(split)
        write_text_atomic(stage / SEGMENTS_NAME, "\n".join(rows) + "\n")
        info = {"kind": "synthetic-untrimmed", "size": list(cfg.size), "fps": cfg.fps, "seconds": cfg.seconds,
                "seed": cfg.seed, "classes": list(UNTRIMMED_CLASSES), "background": BACKGROUND_INDEX,
                "splits": counts, "segments": SEGMENTS_NAME}
        write_text_atomic(stage / INFO_NAME, json.dumps(info, indent=2) + "\n")
    return counts

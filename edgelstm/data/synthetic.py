"""Synthetic actions: a procedural video set whose class lies in temporal order.

Ten classes come in five time-reversed pairs (left/right, up/down, clockwise/counter-clockwise,
grow/shrink, fade in/out). Each pair draws its endpoints from one symmetric distribution, so a
clip of one class played backwards is a likely clip of its partner: no single frame and no
order-free pooling of frames can tell the two apart, only the order can. Random shapes, colours,
positions, speeds, textured backgrounds, sensor noise and a distractor object make the rest hard.

Every clip is a pure function of (seed, split, index): deterministic, and renderable at any
resolution on its own. numpy and OpenCV only (the device-side synthetic camera uses it too).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

CLASSES: tuple[str, ...] = (
    "move_left", "move_right", "move_up", "move_down",
    "rotate_cw", "rotate_ccw", "grow", "shrink", "fade_in", "fade_out",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_ID = {s: i for i, s in enumerate(SPLITS)}
SHAPES = ("triangle", "rectangle", "arrow", "ell", "ellipse")
_SUB = 16  # sub-pixel precision of OpenCV drawing (shift=4)


@dataclass(frozen=True)
class SyntheticConfig:
    size: tuple[int, int] = (64, 64)  # (H, W)
    clip_len: int = 16
    fps: float = 15.0                 # the rate the motions are designed for
    seed: int = 0
    train: int = 2000                 # clips per split
    val: int = 300
    test: int = 500
    noise: float = 6.0                # std of per-pixel sensor noise, in 0..255 levels
    distractor: bool = True

    def count(self, split: str) -> int:
        return {"train": self.train, "val": self.val, "test": self.test}[split]


def background_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random texture with a colour tint and faint stripes (float32, 0..255)."""
    coarse = rng.uniform(0, 1, size=(rng.integers(3, 7), rng.integers(3, 7), 3)).astype(np.float32)
    tex = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    tex = base + (tex - 0.5) * rng.uniform(30, 90)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(0.15, 0.5) * min(h, w)
    stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    tex += stripes[..., None] * rng.uniform(0, 15)
    return np.clip(tex, 0, 255)


def _polygon(shape: str, cx: float, cy: float, r: float, theta: float) -> np.ndarray:
    if shape == "triangle":
        pts = [(1.0, 0.0), (-0.6, 0.75), (-0.6, -0.75)]
    elif shape == "rectangle":
        pts = [(1.0, 0.45), (-1.0, 0.45), (-1.0, -0.45), (1.0, -0.45)]
    elif shape == "arrow":
        pts = [(1.0, 0.0), (0.1, 0.7), (0.1, 0.3), (-1.0, 0.3), (-1.0, -0.3), (0.1, -0.3), (0.1, -0.7)]
    elif shape == "ell":
        pts = [(-0.8, -1.0), (-0.2, -1.0), (-0.2, 0.4), (0.8, 0.4), (0.8, 1.0), (-0.8, 1.0)]
    else:  # ellipse, as a polygon so it rotates visibly
        pts = [(math.cos(a), 0.55 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 20, endpoint=False)]
    c, s = math.cos(theta), math.sin(theta)
    arr = np.array([(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts])
    return np.round(arr * _SUB).astype(np.int32)


def draw_shape(img: np.ndarray, shape: str, cx: float, cy: float, r: float, theta: float,
               colour: np.ndarray, alpha: float) -> None:
    if alpha <= 0.0:
        return
    layer = img.copy() if alpha < 1.0 else img
    cv2.fillPoly(layer, [_polygon(shape, cx, cy, r, theta)], colour.tolist(), lineType=cv2.LINE_AA, shift=4)
    if alpha < 1.0:
        cv2.addWeighted(layer, alpha, img, 1.0 - alpha, 0.0, dst=img)


def trajectory(label: int, rng: np.random.Generator, t: np.ndarray, h: int, w: int) -> dict[str, np.ndarray]:
    """Per-frame centre, radius, angle and opacity of the actor for class ``label``."""
    n = len(t)
    m = min(h, w)
    r0 = rng.uniform(0.12, 0.2) * m
    cx = np.full(n, rng.uniform(0.3, 0.7) * w)
    cy = np.full(n, rng.uniform(0.3, 0.7) * h)
    r = np.full(n, r0)
    theta = np.full(n, rng.uniform(0, 2 * math.pi))
    alpha = np.ones(n)
    pair, forward = divmod(label, 2)
    ramp = t if forward == 0 else 1.0 - t  # the pair's two members run the same path in opposite directions
    if pair == 0:    # left / right: x between two random endpoints
        a, b = sorted(rng.uniform(0.2, 0.8, size=2) * w)
        b = max(b, a + 0.25 * w)
        cx = b + (a - b) * ramp
    elif pair == 1:  # up / down
        a, b = sorted(rng.uniform(0.2, 0.8, size=2) * h)
        b = max(b, a + 0.25 * h)
        cy = b + (a - b) * ramp
    elif pair == 2:  # clockwise / counter-clockwise (image y points down: +theta turns clockwise)
        span = rng.uniform(0.5, 1.0) * math.pi
        theta = theta[0] + span * (t if forward == 0 else -t)
    elif pair == 3:  # grow / shrink
        small, big = rng.uniform(0.07, 0.11) * m, rng.uniform(0.22, 0.3) * m
        r = small + (big - small) * ramp
    else:            # fade in / out
        lo = rng.uniform(0.0, 0.15)
        alpha = lo + (1.0 - lo) * ramp
    jitter = rng.normal(0, 0.004 * m, size=(2, n))
    return {"cx": cx + jitter[0], "cy": cy + jitter[1], "r": r, "theta": theta, "alpha": alpha}


def render_clip(label: int, rng: np.random.Generator, *, size: tuple[int, int] = (64, 64), frames: int = 16,
                noise: float = 6.0, distractor: bool = True) -> np.ndarray:
    """Render one clip of class ``label``: uint8 (frames, H, W, 3), RGB."""
    h, w = size
    bg = background_texture(rng, h, w)
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = rng.uniform(0, 255, size=3)
    colour = np.where(np.abs(colour - bg.mean((0, 1))) < 60, 255 - colour, colour)  # keep some contrast
    # The action may occupy only part of the clip: the actor rests before and after it.
    t_lin = np.linspace(0.0, 1.0, frames)
    start, stop = rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)
    t = np.clip((t_lin - start) / (stop - start), 0.0, 1.0)
    traj = trajectory(label, rng, t, h, w)
    d_shape = SHAPES[rng.integers(len(SHAPES))]
    d_colour = rng.uniform(0, 255, size=3)
    d_pos = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h])
    d_vel = rng.normal(0, 0.02 * min(h, w), size=2)
    d_r, d_theta = rng.uniform(0.05, 0.09) * min(h, w), rng.uniform(0, 2 * math.pi)
    out = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        img = bg.copy()
        if distractor:  # a random walk the label does not depend on
            d_vel = 0.8 * d_vel + rng.normal(0, 0.015 * min(h, w), size=2)
            d_pos = np.clip(d_pos + d_vel, [0, 0], [w, h])
            draw_shape(img, d_shape, d_pos[0], d_pos[1], d_r, d_theta, d_colour, 0.8)
        draw_shape(img, shape, traj["cx"][i], traj["cy"][i], traj["r"][i], traj["theta"][i], colour,
                   float(traj["alpha"][i]))
        if noise > 0:
            img += rng.normal(0, noise, size=img.shape).astype(np.float32)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


class SyntheticActions:
    """One split of the synthetic set: ``ds[i] -> (clip uint8 (T, H, W, 3) RGB, label)``."""

    classes = CLASSES

    def __init__(self, cfg: SyntheticConfig = SyntheticConfig(), split: str = "train") -> None:
        if split not in _SPLIT_ID:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        self.cfg, self.split = cfg, split

    def __len__(self) -> int:
        return self.cfg.count(self.split)

    def label(self, index: int) -> int:
        return index % len(CLASSES)  # balanced classes

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        label = self.label(index)
        rng = np.random.default_rng([self.cfg.seed, _SPLIT_ID[self.split], index])
        clip = render_clip(label, rng, size=self.cfg.size, frames=self.cfg.clip_len, noise=self.cfg.noise,
                           distractor=self.cfg.distractor)
        return clip, label

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole split as (N, T, H, W, 3) uint8 and (N,) int64."""
        clips = np.stack([self[i][0] for i in range(len(self))])
        return clips, np.array([self.label(i) for i in range(len(self))], dtype=np.int64)


def stream(*, size: tuple[int, int] = (64, 64), clip_len: int = 16, seed: int = 0,
           noise: float = 6.0) -> Iterator[tuple[np.ndarray, int]]:
    """An endless camera-like stream: clips of random classes back to back, one RGB frame at a time."""
    rng = np.random.default_rng([seed, 99])
    while True:
        label = int(rng.integers(len(CLASSES)))
        for frame in render_clip(label, rng, size=size, frames=clip_len, noise=noise):
            yield frame, label

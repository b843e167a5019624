"""Real footage, labelled by camera motion: ``edgelstm data footage``.

A clip is ``clip_len`` source frames, ``stride`` apart, seen through a crop window that moves over them
and is resized to ``size``. Task ``motion``: the window stays (``static``), pans (``pan_left`` = the window
moves left over the scene, so the content drifts right; ``pan_right``, ``pan_up``, ``pan_down``) or zooms
(``zoom_in`` = the window shrinks). Task ``direction`` (the arrow of time): a still window over the source
played ``forward`` or ``reversed``.

Classes come in time-reversed pairs, as in :mod:`edgelstm.data.synthetic`: the second member of a pair is
the first one's clip, with the same random draws, played backwards. In ``motion`` the source is played
backwards in half the clips of every class, so the label lies in the window's motion, never in the
content's own; a pair's clips share their frame statistics, so an order-free model (frame pooling) can only
guess between the two. Half the clips of every class show the source mirrored left-right (the window's
motion kept), for twice the scenes from the same few videos.

Train, val and test take their clips from different source videos (:mod:`edgelstm.data.footage_sources`).
Each clip is a pure function of (seed, split, index) and its source's frames: the same command writes the
same bytes.
"""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from edgelstm.data.dataset import SPLITS
from edgelstm.data.footage_sources import Footage, Source, assign_sources, decode_source, find_sources
from edgelstm.data.synthetic_source import VIDEO_EXT, VIDEO_FOURCC, ClipFile, write_clip_folder
from edgelstm.errors import DataError, UsageError
from edgelstm.fsutil import write_text_atomic

log = logging.getLogger(__name__)

INFO_NAME = "footage.json"
CLIPS_NAME = "clips.csv"
MIN_SIZE = 32
CACHE_SCALE = 2.0     # sources are kept with a short side of this times the larger output side (never enlarged)
MAX_FRAMES = 600      # source frames kept per video (vtest.avi has 795)
PAN_SCALE = (0.4, 0.7)    # window height over the largest window that fits, for still and panning windows
PAN_TRAVEL = (0.3, 0.6)   # how far a pan moves over the clip, in window widths (or heights)
ZOOM_START = (0.4, 0.55)  # zoom: the small window's scale, and the big one's over it
ZOOM_RATIO = (1.35, 1.8)
JITTER = 0.004            # hand-held shake, per frame, in window heights


class Task(StrEnum):
    MOTION = "motion"
    DIRECTION = "direction"


# Each class as (the motion drawn, played backwards): the second of a pair is the first one reversed.
_RECIPES: dict[Task, dict[str, tuple[str, bool]]] = {
    Task.MOTION: {"static": ("still", False), "pan_left": ("pan_x", False), "pan_right": ("pan_x", True),
                  "pan_up": ("pan_y", False), "pan_down": ("pan_y", True), "zoom_in": ("zoom", False),
                  "zoom_out": ("zoom", True)},
    Task.DIRECTION: {"forward": ("still", False), "reversed": ("still", True)},
}
PAIRS: dict[Task, tuple[tuple[str, str], ...]] = {
    Task.MOTION: (("pan_left", "pan_right"), ("pan_up", "pan_down"), ("zoom_in", "zoom_out")),
    Task.DIRECTION: (("forward", "reversed"),),
}


@dataclass(frozen=True)
class FootageConfig:
    size: tuple[int, int] = (160, 160)  # (H, W) written
    clip_len: int = 16
    stride: int = 1                      # source frames between two clip frames
    task: Task = Task.MOTION
    seed: int = 0
    train: int = 700                     # clips per split
    val: int = 150
    test: int = 250

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(_RECIPES[self.task])

    @property
    def span(self) -> int:
        """Source frames one clip covers."""
        return (self.clip_len - 1) * self.stride + 1

    def count(self, split: str) -> int:
        return {"train": self.train, "val": self.val, "test": self.test}[split]

    def check(self) -> None:
        if min(self.size) < MIN_SIZE:
            raise UsageError(f"--size {self.size[0]},{self.size[1]}", expected=f"H,W each at least {MIN_SIZE}",
                             fix=f"pass e.g. --size {MIN_SIZE},{MIN_SIZE} (160,160 is the default)")
        if self.clip_len < 2 or self.stride < 1:
            raise UsageError(f"--clip-len {self.clip_len} --stride {self.stride}",
                             expected="--clip-len >= 2 and --stride >= 1", fix="pass e.g. --clip-len 16 --stride 2")
        n = len(self.classes)
        if min(self.train, self.val, self.test) < n:
            raise UsageError(f"--train {self.train} --val {self.val} --test {self.test}",
                             expected=f"at least {n} clips per split (one per class of task '{self.task}')",
                             fix=f"pass each count >= {n}")


@dataclass(frozen=True)
class Window:
    """The crop window per frame, in source pixels: centre (cx, cy) and height h; width is h * W / H."""

    cx: np.ndarray
    cy: np.ndarray
    h: np.ndarray


def window_path(motion: str, rng: np.random.Generator, *, frames: int, frame_hw: tuple[int, int],
                aspect: float) -> Window:
    """The window of a ``motion`` ('still', 'pan_x', 'pan_y', 'zoom'), moving left, up or inwards."""
    fh, fw = frame_hw
    biggest = min(fh, fw / aspect)  # the tallest window of this aspect that fits
    t = np.linspace(0.0, 1.0, frames)
    if motion == "zoom":
        small = rng.uniform(*ZOOM_START) * biggest
        big = min(biggest, small * rng.uniform(*ZOOM_RATIO))
        h = big + (small - big) * t
    else:
        h = np.full(frames, rng.uniform(*PAN_SCALE) * biggest)
    half_h, half_w = h.max() / 2, h.max() * aspect / 2
    cx = np.full(frames, rng.uniform(half_w, fw - half_w))
    cy = np.full(frames, rng.uniform(half_h, fh - half_h))
    if motion in ("pan_x", "pan_y"):
        along, half, length = (cx, half_w, fw) if motion == "pan_x" else (cy, half_h, fh)
        extent = 2 * half
        travel = min(rng.uniform(*PAN_TRAVEL) * extent, length - extent)
        start = rng.uniform(half + travel, length - half)
        along[:] = start - travel * t  # towards smaller x (left) or y (up)
    shake = rng.normal(0.0, JITTER, size=(2, frames)) * h
    half_ws = h * aspect / 2
    cx = np.clip(cx + shake[0], half_ws, fw - half_ws)
    cy = np.clip(cy + shake[1], h / 2, fh - h / 2)
    return Window(cx, cy, h)


def _crop(frame: np.ndarray, cx: float, cy: float, h: float, size: tuple[int, int]) -> np.ndarray:
    out_h, out_w = size
    k = h / out_h  # source pixels per output pixel, the same both ways (the window has the output's aspect)
    # output pixel centre x + 0.5 sits at cx + (x + 0.5 - out_w / 2) * k in the source's continuous coordinates
    m = np.array([[k, 0.0, cx + (0.5 - out_w / 2) * k - 0.5], [0.0, k, cy + (0.5 - out_h / 2) * k - 0.5]])
    return cv2.warpAffine(frame, m, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT101)


@dataclass(frozen=True)
class Rendered:
    frames: np.ndarray   # uint8 (T, H, W, 3) RGB
    source_frames: np.ndarray  # the source frame index shown in each output frame
    window: Window       # per output frame, in the source as shown (mirrored when ``mirrored``)
    mirrored: bool


def render_clip(footage: Footage, cls: str, rng: np.random.Generator, cfg: FootageConfig) -> Rendered:
    """One clip of class ``cls`` from ``footage``. The second class of a pair, with the same ``rng``,
    gives exactly the first one's clip played backwards."""
    motion, backwards = _RECIPES[cfg.task][cls]
    n = len(footage.frames)
    if n < cfg.span:
        raise DataError(f"has {n} frames; --clip-len {cfg.clip_len} with --stride {cfg.stride} needs {cfg.span}",
                        expected="source videos at least as long as one clip", path=footage.source.path,
                        fix="lower --stride or --clip-len (or remove the video from $EDGELSTM_FOOTAGE_DIRS)")
    play_back = cfg.task == Task.MOTION and rng.random() < 0.5  # the content's own direction is not the label
    first = int(rng.integers(0, n - cfg.span + 1))
    index = first + cfg.stride * np.arange(cfg.clip_len)
    index = index[::-1] if play_back else index
    win = window_path(motion, rng, frames=cfg.clip_len, frame_hw=footage.frames[0].shape[:2],
                      aspect=cfg.size[1] / cfg.size[0])
    mirror = rng.random() < 0.5  # a left-right mirrored source: twice the scenes, the same window motion
    fw = footage.frames[0].shape[1]
    cx = fw - win.cx if mirror else win.cx
    out = np.stack([_crop(footage.frames[i], cx[k], win.cy[k], win.h[k], cfg.size) for k, i in enumerate(index)])
    out = out[:, :, ::-1] if mirror else out
    if backwards:
        out, index = out[::-1], index[::-1]
        win = Window(win.cx[::-1], win.cy[::-1], win.h[::-1])
    return Rendered(np.ascontiguousarray(out), index, win, mirror)


def plan(cfg: FootageConfig, split_sources: dict[str, list[Source]]) -> dict[Source, list[tuple[int, str, int]]]:
    """Per source, its clips as (split id, split, index): class ``index % C`` and, within each split, the
    sources taking turns by blocks of C clips, so every source gives every class equally."""
    classes = cfg.classes
    out: dict[Source, list[tuple[int, str, int]]] = {s: [] for src in split_sources.values() for s in src}
    for sid, split in enumerate(SPLITS):
        sources = split_sources[split]
        for i in range(cfg.count(split)):
            out[sources[(i // len(classes)) % len(sources)]].append((sid, split, i))
    return out


def _clip_row(split: str, cls: str, name: str, src: Source, r: Rendered, hw: tuple[int, int]) -> list[object]:
    fh, fw = hw
    w = r.window
    return [f"{split}/{cls}/{name}{VIDEO_EXT}", split, cls, src.name, int(r.source_frames[0]),
            int(r.source_frames[-1]), int(r.mirrored), *(round(float(v), 4) for v in (w.cx[0] / fw, w.cy[0] / fh, w.h[0] / fh,
                                                                       w.cx[-1] / fw, w.cy[-1] / fh, w.h[-1] / fh))]


CLIP_COLUMNS = ["path", "split", "class", "source", "first_frame", "last_frame", "mirrored",
                "x0", "y0", "h0", "x1", "y1", "h1"]  # the window at the first and last frame, over the source's H, W


class _Writer:
    """Renders the clips source by source (one decoded video in memory at a time) and keeps their records."""

    def __init__(self, cfg: FootageConfig, split_sources: dict[str, list[Source]]) -> None:
        self.cfg, self.split_sources = cfg, split_sources
        self.rows: list[list[object]] = []
        self.decoded: dict[str, dict[str, object]] = {}

    def clips(self) -> Iterator[ClipFile]:
        short = max(MIN_SIZE, round(CACHE_SCALE * max(self.cfg.size)))
        for src, jobs in plan(self.cfg, self.split_sources).items():
            yield from self._source_clips(decode_source(src, short_side=short, max_frames=MAX_FRAMES), jobs)

    def _source_clips(self, footage: Footage, jobs: list[tuple[int, str, int]]) -> Iterator[ClipFile]:
        # its own frame, so one source's frames are let go before the next one is decoded
        cfg, classes, src = self.cfg, self.cfg.classes, footage.source
        hw = footage.frames[0].shape[:2]
        self.decoded[src.name] = {"frames": len(footage.frames), "fps": round(footage.fps, 3),
                                  "native": list(footage.native), "kept": list(hw)}
        for sid, split, i in jobs:
            cls = classes[i % len(classes)]
            r = render_clip(footage, cls, np.random.default_rng([cfg.seed, sid, i]), cfg)
            clip_name = f"{split}_{i:05d}"
            self.rows.append(_clip_row(split, cls, clip_name, src, r, hw))
            yield ClipFile(split, i % len(classes), clip_name, r.frames, round(footage.fps / cfg.stride, 3))

    def info(self, counts: dict[str, int]) -> dict[str, object]:
        cfg = self.cfg
        sources = {split: [{"name": s.name, "sha256": s.sha256, **self.decoded.get(s.name, {})} for s in ss]
                   for split, ss in self.split_sources.items()}
        return {"kind": "footage", "task": str(cfg.task), "classes": list(cfg.classes),
                "pairs": [list(p) for p in PAIRS[cfg.task]], "size": list(cfg.size), "clip_len": cfg.clip_len,
                "stride": cfg.stride, "seed": cfg.seed, "splits": counts, "sources": sources,
                "fourcc": VIDEO_FOURCC, "clips": CLIPS_NAME}

    def clips_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CLIP_COLUMNS)
        for row in sorted(self.rows, key=lambda r: str(r[0])):  # by path: the order clips were made in is not kept
            w.writerow(row)
        return buf.getvalue()


def write_footage(out: str | Path, cfg: FootageConfig = FootageConfig(), *, force: bool = False,
                  sources: list[Source] | None = None) -> dict[str, int]:
    """Write the footage task as ``out/{train,val,test}/<class>/<clip>.avi`` (MJPG), plus ``footage.json``
    (task, classes, sources per split with their SHA-256, counts) and ``clips.csv`` (each clip's source,
    frames and window). ``sources`` defaults to :func:`find_sources`. Returns clips written per split."""
    cfg.check()
    split_sources = assign_sources(find_sources() if sources is None else sources, cfg.seed)
    writer = _Writer(cfg, split_sources)
    counts = write_clip_folder(out, writer.clips(), classes=cfg.classes, info_name=INFO_NAME, info=writer.info,
                               extra=lambda: {CLIPS_NAME: writer.clips_csv()}, force=force)
    log.info("footage: %s from %s", counts, {k: [s.name for s in v] for k, v in split_sources.items()})
    return counts

"""The embedded synthetic set as a :class:`~edgelstm.data.dataset.Dataset`, and writing clips as a video folder
(the synthetic set here; :mod:`edgelstm.data.footage` shares the writer)."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgelstm.data.dataset import Dataset, Kind, LoadOptions, Sampling, Split, channel_stats
from edgelstm.data.synthetic import CLASSES, SPLITS, SyntheticActions, SyntheticConfig
from edgelstm.errors import DataError
from edgelstm.fsutil import OutputKind, atomic_dir, write_text_atomic

log = logging.getLogger(__name__)

VIDEO_FOURCC = "MJPG"  # written and read back by the OpenCV wheels we support (tests/data check it)
VIDEO_EXT = ".avi"
INFO_NAME = "synthetic.json"


def synthetic_config(opts: LoadOptions) -> SyntheticConfig:
    base = SyntheticConfig(size=opts.size, clip_len=opts.clip_len, seed=opts.seed)
    if opts.counts is None:
        return base
    train, val, test = opts.counts
    return SyntheticConfig(size=opts.size, clip_len=opts.clip_len, seed=opts.seed, train=train, val=val, test=test)


def load_synthetic(opts: LoadOptions) -> Dataset:
    cfg = synthetic_config(opts)
    splits = {}
    for name in SPLITS:
        X, y = SyntheticActions(cfg, name).arrays()
        splits[name] = Split(X, y, None)
    mean, std = channel_stats(splits["train"].X)
    log.info("synthetic set: %s", {k: len(v) for k, v in splits.items()})
    return Dataset(kind=Kind.FRAMES, classes=CLASSES, splits=splits, source="synthetic", clip_len=cfg.clip_len,
                   size=cfg.size, fps=cfg.fps, stride=1, sampling=Sampling.UNIFORM, mean=mean, std=std,
                   notes={"counts": f"{cfg.train},{cfg.val},{cfg.test}"})


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write uint8 RGB frames (T, H, W, 3) as an MJPG .avi."""
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*VIDEO_FOURCC), fps, (w, h))
    if not writer.isOpened():
        raise DataError(f"OpenCV cannot write {VIDEO_FOURCC} video", expected="an OpenCV build with a video writer",
                        fix="install opencv-python (not the headless-minimal build)", path=path)
    try:
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


@dataclass(frozen=True)
class ClipFile:
    """One clip to write: ``split/<class>/<name>.avi``."""

    split: str
    label: int
    name: str
    frames: np.ndarray  # uint8 (T, H, W, 3) RGB
    fps: float


def write_clip_folder(out: str | Path, clips: Iterable[ClipFile], *, classes: Sequence[str], info_name: str,
                      info: Callable[[dict[str, int]], dict[str, object]],
                      extra: Callable[[], dict[str, str]] | None = None, force: bool = False) -> dict[str, int]:
    """Write ``clips`` as ``out/{train,val,test}/<class>/<name>.avi`` plus ``out/<info_name>``.

    Every split and class folder is made, even one no clip lands in. ``info(counts)`` gives the JSON
    written beside the splits, and ``extra()`` any more text files (name -> text), both once the clips
    are written. The folder appears whole or not at all (``force`` replaces a dataset folder edgelstm
    wrote). Returns clips written per split.
    """
    counts = {split: 0 for split in SPLITS}
    with atomic_dir(out, kind=OutputKind.DATASET, force=force) as stage:
        for split in SPLITS:
            for cls in classes:
                (stage / split / cls).mkdir(parents=True, exist_ok=True)
        for clip in clips:
            write_video(stage / clip.split / classes[clip.label] / f"{clip.name}{VIDEO_EXT}", clip.frames, clip.fps)
            counts[clip.split] += 1
        write_text_atomic(stage / info_name, json.dumps(info(counts), indent=2) + "\n")
        for name, text in (extra() if extra else {}).items():
            write_text_atomic(stage / name, text)
    return counts


def write_synthetic_videos(out: str | Path, cfg: SyntheticConfig, *, force: bool = False) -> dict[str, int]:
    """Write the synthetic set as ``out/{train,val,test}/<class>/<clip>.avi`` plus ``synthetic.json``.

    The folder appears whole or not at all. Returns clips written per split.
    """
    def clips() -> Iterator[ClipFile]:
        for split in SPLITS:
            ds = SyntheticActions(cfg, split)
            for i in range(len(ds)):
                clip, label = ds[i]
                yield ClipFile(split, label, f"{split}_{i:05d}", clip, cfg.fps)

    def info(counts: dict[str, int]) -> dict[str, object]:
        return {"kind": "synthetic-actions", "size": list(cfg.size), "clip_len": cfg.clip_len, "fps": cfg.fps,
                "seed": cfg.seed, "classes": list(CLASSES), "splits": counts, "fourcc": VIDEO_FOURCC}

    return write_clip_folder(out, clips(), classes=CLASSES, info_name=INFO_NAME, info=info, force=force)

"""The embedded synthetic set as a :class:`~edgelstm.data.dataset.Dataset`, and writing it as video files."""
from __future__ import annotations

import json
import logging
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


def write_synthetic_videos(out: str | Path, cfg: SyntheticConfig, *, force: bool = False) -> dict[str, int]:
    """Write the synthetic set as ``out/{train,val,test}/<class>/<clip>.avi`` plus ``synthetic.json``.

    The folder appears whole or not at all. Returns clips written per split.
    """
    counts: dict[str, int] = {}
    with atomic_dir(out, kind=OutputKind.DATASET, force=force) as stage:
        for split in SPLITS:
            ds = SyntheticActions(cfg, split)
            for cls in CLASSES:
                (stage / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(len(ds)):
                clip, label = ds[i]
                write_video(stage / split / CLASSES[label] / f"{split}_{i:05d}{VIDEO_EXT}", clip, cfg.fps)
            counts[split] = len(ds)
        info = {"kind": "synthetic-actions", "size": list(cfg.size), "clip_len": cfg.clip_len, "fps": cfg.fps,
                "seed": cfg.seed, "classes": list(CLASSES), "splits": counts, "fourcc": VIDEO_FOURCC}
        write_text_atomic(stage / INFO_NAME, json.dumps(info, indent=2) + "\n")
    return counts

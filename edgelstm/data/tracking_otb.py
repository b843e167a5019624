"""Tracking sequences as files, in the OTB layout: read the user's, write the embedded set's.

A sequence is a folder holding ``groundtruth_rect.txt``, one ``x,y,w,h`` line per frame (commas, tabs or spaces
between the numbers; the box's top-left corner and size in pixels), and its frames as images, in ``img/`` (OTB)
or beside the text file, in name order. A dataset is a folder of sequence folders: under ``train/``, ``val/``
and ``test/`` when it has them, else split deterministically by ``seed`` (about 70/15/15, at least one sequence
in test and, from three sequences, one in val). OTB's own files count pixels from 1; they are read as they are
(half a pixel is below the annotations' noise).

Every line is checked before anything trains on it: four finite numbers, a positive width and height, and a box
at least partly inside its frame; a file with more or fewer lines than the sequence has frames is refused. The
error names the file and line, what it holds and what was expected.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from edgelstm.data.synthetic import SPLITS
from edgelstm.data.tracking import TrackConfig, TrackSequence, TrackSet, synthetic_sequence
from edgelstm.errors import DataError
from edgelstm.fsutil import OutputKind, atomic_dir, write_text_atomic
from edgelstm.runtime.sources import IMAGE_EXTS
from edgelstm.runtime.track_geometry import box_problem, parse_box

log = logging.getLogger(__name__)

GROUNDTRUTH = "groundtruth_rect.txt"
INFO_NAME = "tracking.json"


def read_boxes(path: Path, frame_hw: tuple[int, int] | None = None) -> np.ndarray:
    """The (T, 4) boxes of a ``groundtruth_rect.txt``, every line checked (against the frame size, when given)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})", path=path,
                        expected="one x,y,w,h line per frame", fix="re-save it as plain UTF-8 text") from None
    lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise DataError("holds no boxes", path=path, expected="one x,y,w,h line per frame",
                        fix="write the target's box in every frame, one line each (e.g. 120,45,30,60)")
    hw = frame_hw or (1 << 30, 1 << 30)
    boxes = np.empty((len(lines), 4), np.float32)
    for i, (n, line) in enumerate(lines):
        box = parse_box(line)
        if box is None:
            raise DataError(f"line {n} is '{line[:60]}'", path=path, expected="four numbers x,y,w,h",
                            fix=f"fix line {n}: the target's top-left corner and size in pixels, e.g. 120,45,30,60")
        why = box_problem(box, hw)
        if why:
            raise DataError(f"line {n} ('{line[:60]}') is {why}", path=path,
                            expected="a box with width and height > 0, at least partly inside the frame",
                            fix=f"fix line {n}, or drop the frames where the target is not in view")
        boxes[i] = box
    return boxes


def _images(folder: Path) -> list[Path]:
    img = folder / "img" if (folder / "img").is_dir() else folder
    return sorted(p for p in img.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def read_sequence(folder: Path) -> TrackSequence:
    """One OTB sequence folder: its frames (RGB) and checked boxes."""
    gt = folder / GROUNDTRUTH
    if not gt.is_file():
        raise DataError(f"no {GROUNDTRUTH} in this sequence folder", path=folder,
                        expected=f"{GROUNDTRUTH} (one x,y,w,h line per frame) beside img/",
                        fix=f"add {GROUNDTRUTH}, or remove the folder from the dataset")
    paths = _images(folder)
    if not paths:
        raise DataError("holds no frames", path=folder, expected=f"images ({', '.join(IMAGE_EXTS[:4])}, ...) in "
                        "img/ or beside the box file", fix="put the sequence's frames in img/")
    frames: list[np.ndarray] = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError("OpenCV cannot read this image", path=p, expected="a readable image",
                            fix="re-save or remove the file")
        if frames and img.shape != frames[0].shape:
            raise DataError(f"is {img.shape[1]}x{img.shape[0]}, the sequence's first frame "
                            f"{frames[0].shape[1]}x{frames[0].shape[0]}", path=p,
                            expected="every frame of a sequence at one size", fix="resize the frames alike")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    boxes = read_boxes(gt, frames[0].shape[:2])
    if len(boxes) != len(frames):
        raise DataError(f"has {len(boxes)} boxes for {len(frames)} frames", path=gt,
                        expected="one box line per frame", fix="add or remove lines (or frames) until they match")
    return TrackSequence(folder.name, np.stack(frames), boxes)


def read_otb(root: str | Path, *, seed: int = 0) -> TrackSet:
    """A folder of OTB-layout sequences (see the module docstring) as a :class:`TrackSet`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("no such folder", path=root, expected="'synthetic' or a folder of tracking sequences",
                        fix="check the path")
    if any((root / s).is_dir() for s in SPLITS):
        splits = {s: [read_sequence(f) for f in _sequence_folders(root / s)] for s in SPLITS}
    else:
        folders = _sequence_folders(root)
        order = np.random.default_rng(seed).permutation(len(folders))
        n_test = max(1, round(0.15 * len(folders)))
        n_val = max(1 if len(folders) >= 3 else 0, round(0.15 * len(folders)))
        picks = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        splits = {s: [read_sequence(folders[i]) for i in sorted(picks[s])] for s in SPLITS}
    if not any(splits.values()):
        raise DataError("holds no sequence folders", path=root, expected=f"folders each with {GROUNDTRUTH} and img/",
                        fix="arrange the sequences one folder each (OTB layout)")
    log.info("%s: %s sequences", root, {k: len(v) for k, v in splits.items()})
    return TrackSet(splits, str(root), fps=_fps(root), seed=seed)


def _sequence_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _fps(root: Path) -> float:
    try:
        return float(json.loads((root / INFO_NAME).read_text(encoding="utf-8")).get("fps", 0.0))
    except (OSError, ValueError, AttributeError):
        return 0.0


def write_tracking(out: str | Path, cfg: TrackConfig, *, force: bool = False) -> dict[str, int]:
    """Write the embedded set as ``out/{train,val,test}/<sequence>/{img/0001.png, groundtruth_rect.txt}`` plus
    ``tracking.json``: lossless frames, so what is read back is what was rendered. The folder appears whole."""
    counts = {}
    with atomic_dir(out, kind=OutputKind.DATASET, force=force) as stage:
        for split in SPLITS:
            counts[split] = cfg.count(split)
            for i in range(cfg.count(split)):
                seq = synthetic_sequence(cfg, split, i)
                img = stage / split / seq.name / "img"
                img.mkdir(parents=True)
                for t, frame in enumerate(seq.frames, 1):
                    cv2.imwrite(str(img / f"{t:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                write_text_atomic(stage / split / seq.name / GROUNDTRUTH,
                                  "".join(",".join(f"{v:g}" for v in b) + "\n" for b in seq.boxes))
        info = {"kind": "synthetic-tracking", "size": list(cfg.size), "frames": cfg.frames, "fps": cfg.fps,
                "seed": cfg.seed, "splits": counts, "box": "x,y,w,h in pixels, 0-based top-left corner"}
        write_text_atomic(stage / INFO_NAME, json.dumps(info, indent=2) + "\n")
    return counts

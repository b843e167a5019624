"""Captioned clips: the embedded synthetic set with generated captions, or your videos with a ``video,caption`` CSV.

A :class:`CaptionSet` holds per split the clips (uint8 (N, T, H, W, 3) RGB), every clip's reference captions
(several per clip) and, where the data knows it, each clip's motion class (the synthetic set's; -1 for user data),
plus the vocabulary built from the training captions. :func:`load_captions` is the one entry:

- ``"synthetic"``: the embedded set (:mod:`edgelstm.data.synthetic`) with :data:`~edgelstm.data.captions.REFERENCES`
  captions per clip from :mod:`edgelstm.data.captions`;
- a ``.csv`` with the header ``video,caption`` (an optional ``split`` column: train, val or test), one row per
  caption, video paths relative to the CSV's folder; several rows may caption one video. Videos are decoded once
  into ``clip_len`` frames; without a split column whole videos are carved into train/val/test by ``seed``.

The reader refuses, naming the file and line, an empty caption, a missing video, a wrong header or split.
numpy and OpenCV only.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelstm.captionspec import SPECIALS, check_caption, words_of
from edgelstm.data.dataset import SPLITS, Sampling, carve, channel_stats
from edgelstm.errors import DataError
from edgelstm.spec import DataFacts, ModelKind, Task

log = logging.getLogger(__name__)

CSV_COLUMNS = ("video", "caption")
MIN_WORD_COUNT = 1  # a training word seen at least this often joins the vocabulary


@dataclass(frozen=True)
class CaptionSplit:
    X: np.ndarray                  # uint8 (N, T, H, W, 3) RGB
    refs: list[list[str]]          # N lists of reference captions
    y: np.ndarray                  # (N,) int64 motion class, -1 when unknown
    names: list[str] = field(default_factory=list)  # the clips' videos (user data)

    def __len__(self) -> int:
        return len(self.refs)


@dataclass(frozen=True)
class CaptionSet:
    classes: tuple[str, ...]       # motion classes of y (the synthetic classes; empty for user data)
    splits: dict[str, CaptionSplit]
    vocab: tuple[str, ...]         # SPECIALS first, then the training words by frequency
    source: str
    size: tuple[int, int]
    clip_len: int
    fps: float
    seed: int = 0
    counts: tuple[int, int, int] | None = None
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __getitem__(self, split: str) -> CaptionSplit:
        return self.splits[split]

    @property
    def max_words(self) -> int:
        return max(len(words_of(c)) for s in self.splits.values() for refs in s.refs for c in refs)

    def facts(self) -> DataFacts:
        return DataFacts(kind=ModelKind.FRAMES, clip_len=self.clip_len, size=self.size, mean=self.mean, std=self.std,
                         fps=self.fps, source=self.source, data_seed=self.seed, synthetic_counts=self.counts,
                         task=Task.CAPTION)


def build_vocab(refs: list[list[str]]) -> tuple[str, ...]:
    """SPECIALS, then every word of ``refs`` seen at least MIN_WORD_COUNT times, most frequent first."""
    counts = Counter(w for clip in refs for c in clip for w in words_of(c))
    words = sorted((w for w, n in counts.items() if n >= MIN_WORD_COUNT), key=lambda w: (-counts[w], w))
    return SPECIALS + tuple(words)


def load_captions(spec: str | Path, *, size: tuple[int, int] = (32, 32), clip_len: int = 12, seed: int = 0,
                  counts: tuple[int, int, int] | None = None, distractor: bool = False) -> CaptionSet:
    """``"synthetic"`` or a ``video,caption`` CSV; see the module docstring. ``distractor``: the synthetic clips
    keep the classification set's distractor, a second shape on a random walk. Off by default: a caption names
    one actor, and a second shape of another colour makes "the red triangle" a question of which shape moves
    as described, which the small models here do not learn in the quickstart's time (the actor's colour stayed at
    the majority word). The captions are the same either way: the distractor's draws come after the actor's."""
    if str(spec) == "synthetic":
        return _synthetic(size, clip_len, seed, counts or (2000, 300, 500), distractor)
    path = Path(spec)
    if not path.is_file() or path.suffix.lower() != ".csv":
        raise DataError("is not a captions CSV", expected="'synthetic' or a .csv with the header video,caption",
                        fix="pass --data synthetic, or a CSV of video,caption rows", path=path)
    return _from_csv(path, size, clip_len, seed)


def _synthetic(size: tuple[int, int], clip_len: int, seed: int, counts: tuple[int, int, int],
               distractor: bool) -> CaptionSet:
    from edgelstm.data.captions import captions_for
    from edgelstm.data.synthetic import CLASSES, SyntheticActions, SyntheticConfig

    cfg = SyntheticConfig(size=size, clip_len=clip_len, seed=seed, train=counts[0], val=counts[1], test=counts[2],
                          distractor=distractor)
    splits = {}
    for name in SPLITS:
        X, y = SyntheticActions(cfg, name).arrays()
        refs = [captions_for(seed, name, i, size=size, frames=clip_len) for i in range(len(y))]
        splits[name] = CaptionSplit(X, refs, y)
    mean, std = channel_stats(splits["train"].X)
    return CaptionSet(CLASSES, splits, build_vocab(splits["train"].refs), "synthetic", size, clip_len, cfg.fps, seed,
                      counts, mean, std)


def read_caption_rows(path: Path) -> dict[str, tuple[list[str], str, int]]:
    """video -> (its captions, its split or "", the first line naming it), every row checked."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise DataError(f"the header is '{','.join(header)}' (no {', '.join(missing)})",
                            expected="the columns video,caption (and optionally split)",
                            fix="start the file with the line: video,caption", path=f"{path}:1")
        col = {c: header.index(c) for c in (*CSV_COLUMNS, "split") if c in header}
        rows: dict[str, tuple[list[str], str, int]] = {}
        for line, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(header):
                raise DataError(f"{len(row)} fields", expected=f"{len(header)} like the header",
                                fix="quote captions that contain commas", path=f"{path}:{line}")
            video, text = row[col["video"]].strip().replace("\\", "/"), row[col["caption"]]
            check_caption(text, where=f"{path}:{line}")
            split = row[col["split"]].strip().lower() if "split" in col else ""
            if split and split not in SPLITS:
                raise DataError(f"split '{split}'", expected="train, val or test", fix="correct the split column",
                                path=f"{path}:{line}")
            caps, was, first = rows.get(video, ([], split, line))
            if split != was:
                raise DataError(f"video '{video}' is in split '{split}' here and '{was}' on line {first}",
                                expected="one split per video", fix="give every row of a video the same split",
                                path=f"{path}:{line}")
            rows[video] = ([*caps, text.strip()], split, first)
    if not rows:
        raise DataError("no captions", expected="at least one video,caption row", fix="add rows", path=path)
    return rows


def _from_csv(path: Path, size: tuple[int, int], clip_len: int, seed: int) -> CaptionSet:
    from edgelstm.data.video import decode_clip

    rows = read_caption_rows(path)
    root = path.parent
    for video, (_, _, line) in rows.items():
        if not (root / video).is_file():
            raise DataError(f"video '{video}' does not exist under {root}", expected="a video file path relative to "
                            "the CSV's folder", fix="correct the path or add the video", path=f"{path}:{line}")
    names = sorted(rows)
    declared = {v: s for v, (_, s, _) in rows.items() if s}
    if declared and len(declared) != len(names):
        raise DataError("some rows have a split and some do not", expected="a split for every row or for none",
                        fix="fill in the split column", path=path)
    parts = {s: [v for v in names if declared[v] == s] for s in SPLITS} if declared else \
        {s: [names[i] for i in idx] for s, idx in carve(np.zeros(len(names), np.int64),
                                                       {"train": 0.7, "val": 0.15, "test": 0.15}, seed=seed).items()}
    if not parts["train"]:
        raise DataError(f"{len(names)} captioned video(s) and none for training", path=path,
                        expected="videos in the train split", fix="caption more videos, or mark some split=train")
    splits, fps_seen = {}, []
    for split, vids in parts.items():
        clips = [decode_clip(root / v, size=size, clip_len=clip_len, sampling=Sampling.UNIFORM) for v in vids]
        fps_seen += [c.fps for c in clips if c.fps > 0]
        X = np.stack([c.frames for c in clips]) if clips else np.zeros((0, clip_len, *size, 3), np.uint8)
        splits[split] = CaptionSplit(X, [rows[v][0] for v in vids], np.full(len(vids), -1, np.int64), vids)
    mean, std = channel_stats(splits["train"].X)
    log.info("captions %s: %s videos", path, {k: len(v) for k, v in splits.items()})
    return CaptionSet((), splits, build_vocab(splits["train"].refs), str(path), size, clip_len,
                      float(np.median(fps_seen)) if fps_seen else 0.0, seed, None, mean, std)

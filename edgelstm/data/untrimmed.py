"""Untrimmed videos for online action detection: long videos with a class for every frame.

An :class:`UntrimmedSet` holds, per split, whole videos (uint8 (T, H, W, 3) RGB frames) and their per-frame
labels; the class list starts with ``background`` (index 0: no action), then the action classes. It comes
from :func:`load_untrimmed`: ``"synthetic"`` renders the embedded untrimmed set
(:mod:`edgelstm.data.untrimmed_synth`); a folder of videos or a segments CSV reads the user's data
(:mod:`edgelstm.data.segments`). numpy and OpenCV only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelstm.data.dataset import SPLITS, Dataset, Kind, Sampling, channel_stats
from edgelstm.errors import DataError
from edgelstm.spec import DataFacts, Task

BACKGROUND = "background"
BACKGROUND_INDEX = 0
UNLABELED = -100   # the label of every frame of an unlabelled video (torch's cross-entropy ignore_index)


@dataclass(frozen=True)
class Instance:
    """One action instance: a run of frames with one non-background label."""

    label: int
    start: int   # first frame
    end: int     # first frame after it


def instances(labels: np.ndarray, background: int = BACKGROUND_INDEX) -> list[Instance]:
    """The runs of one non-background label in a (T,) per-frame label array, in order."""
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = [0, *cuts.tolist()]
    ends = [*cuts.tolist(), len(labels)]
    return [Instance(int(labels[s]), s, e) for s, e in zip(starts, ends) if e > s and int(labels[s]) != background]


@dataclass(frozen=True)
class Video:
    name: str
    frames: np.ndarray   # uint8 (T, H, W, 3) RGB
    labels: np.ndarray   # int64 (T,) class of every frame; BACKGROUND_INDEX outside the actions

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class UntrimmedSet:
    classes: tuple[str, ...]        # BACKGROUND first, then the action classes
    splits: dict[str, list[Video]]
    source: str                     # "synthetic", a folder or a CSV
    size: tuple[int, int]           # (H, W)
    fps: float
    seed: int = 0
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    seconds: float = 0.0            # synthetic: the length of every video

    @property
    def background(self) -> int:
        return BACKGROUND_INDEX

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __getitem__(self, split: str) -> list[Video]:
        if split not in self.splits:
            raise DataError(f"no '{split}' split", expected="one of " + ", ".join(self.splits),
                            fix="pass --split with one of these", path=self.source)
        return self.splits[split]

    def counts(self) -> tuple[int, int, int]:
        return tuple(len(self.splits.get(s, [])) for s in SPLITS)  # type: ignore[return-value]

    def shell(self, window: int) -> Dataset:
        """A clip-less :class:`Dataset` with this set's facts, for what builds models from a dataset."""
        return Dataset(kind=Kind.FRAMES, classes=self.classes, splits={}, source=self.source, clip_len=window,
                       size=self.size, fps=self.fps, stride=1, sampling=Sampling.UNIFORM, mean=self.mean,
                       std=self.std, seed=self.seed)

    def facts(self, window: int) -> DataFacts:
        """The data facts of a detection model trained on windows of ``window`` frames of this set."""
        counts = self.counts() if self.source == "synthetic" else None
        return dataclasses.replace(self.shell(window).facts(), task=Task.DETECT, background=self.background,
                                   synthetic_counts=counts)


def with_stats(ds: UntrimmedSet) -> UntrimmedSet:
    """``ds`` with the per-channel mean and std of its training frames."""
    train = ds.splits.get("train") or []
    if not train:
        return ds
    mean, std = channel_stats(np.concatenate([v.frames[::4] for v in train]))
    return dataclasses.replace(ds, mean=mean, std=std)


def load_untrimmed(spec: str | Path, *, size: tuple[int, int] = (32, 32), seed: int = 0,
                   counts: tuple[int, int, int] | None = None, seconds: float | None = None) -> UntrimmedSet:
    """``"synthetic"`` (the embedded untrimmed set: ``counts`` videos per split of ``seconds`` each), or a
    folder of videos with ``segments.csv``, or the path of such a CSV (videos relative to its folder)."""
    if str(spec) == "synthetic":
        from edgelstm.data.untrimmed_synth import UntrimmedConfig, load_synthetic_untrimmed

        cfg = UntrimmedConfig(size=size, seed=seed)
        if counts is not None:
            cfg = dataclasses.replace(cfg, train=counts[0], val=counts[1], test=counts[2])
        if seconds:
            cfg = dataclasses.replace(cfg, seconds=float(seconds))
        return with_stats(load_synthetic_untrimmed(cfg))
    from edgelstm.data.segments import load_segment_folder

    return with_stats(load_segment_folder(Path(spec).expanduser(), size=size, seed=seed))


def load_unlabeled(spec: str | Path, like: UntrimmedSet) -> list[Video]:
    """Videos without segments, for distillation (the teacher labels them): ``"synthetic:N"`` renders N more
    videos of the embedded untrimmed set (none of its splits), or a folder of video files. Frames at ``like``'s
    size; every label is :data:`UNLABELED`."""
    if str(spec).startswith("synthetic"):
        count = str(spec).partition(":")[2]
        if not count.isdigit() or int(count) < 1 or like.source != "synthetic":
            raise DataError(f"--unlabeled {spec}", expected="synthetic:N (N >= 1 videos) with --data synthetic, or a "
                            "folder of videos", fix="pass e.g. --unlabeled synthetic:192")
        from edgelstm.data.untrimmed_synth import UntrimmedConfig, render_unlabeled

        cfg = UntrimmedConfig(size=like.size, fps=like.fps, seconds=like.seconds or 60.0, seed=like.seed)
        rendered = [render_unlabeled(cfg, i) for i in range(int(count))]
        return [Video(f"unlabeled_{i:04d}", f, np.full(len(f), UNLABELED, np.int64)) for i, f in enumerate(rendered)]
    from edgelstm.data.segments import FPS_TOLERANCE, decode_video, video_files

    root = Path(spec).expanduser()
    names = video_files(root) if root.is_dir() else []
    if not names:
        raise DataError("no video files here", path=root, expected="a folder of videos (.mp4, .avi, ...) without "
                        "labels", fix="point --unlabeled at the folder that holds them")
    out = []
    for name in names:
        frames, fps = decode_video(root / name, like.size)
        if abs(fps - like.fps) > FPS_TOLERANCE * like.fps:  # as within a labelled set
            raise DataError(f"a {fps:g} fps video among {like.fps:g} fps training videos", path=root / name,
                            expected=f"{like.fps:g} fps, as the labelled videos", fix=f"re-encode it (ffmpeg -r "
                            f"{like.fps:g})")
        out.append(Video(name, frames, np.full(len(frames), UNLABELED, np.int64)))
    return out

"""The one torch-free entry to data: :func:`load_dataset` and the :class:`Dataset` it returns.

A dataset is a few numpy arrays per split plus the facts a model and a deployment need
(classes, kind, frame size, clip length, stride, fps, normalisation). Frames are uint8
(N, T, H, W, 3) RGB; features are float32 (N, T, F). ``lengths`` (N,) marks the valid steps of
padded sequences, or is None when every sequence is full length.

numpy and OpenCV only: the torch-free bundle evaluator reuses this module.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from edgelstm.errors import DataError, UsageError, unknown_choice
from edgelstm.spec import DEFAULT_CLIP_LEN, DEFAULT_SIZE, DataFacts, ModelKind, ResizeMode

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")


class Kind(StrEnum):
    FRAMES = "frames"
    FEATURES = "features"


class Sampling(StrEnum):
    UNIFORM = "uniform"  # T frames spread evenly over the whole clip
    STRIDE = "stride"    # T frames, ``stride`` apart, centred in the clip


@dataclass(frozen=True)
class LoadOptions:
    """How to turn a user's data into arrays. Part of the video cache key."""

    size: tuple[int, int] = DEFAULT_SIZE  # (H, W) frames are resized to
    clip_len: int = 16                  # T
    sampling: Sampling = Sampling.UNIFORM
    stride: int = 2                     # frames between two samples with Sampling.STRIDE
    seed: int = 0                       # for carving val/test and for the synthetic set
    val_fraction: float = 0.15          # carved from train when a source gives no val split
    test_fraction: float = 0.15         # carved when a source gives no test split either
    counts: tuple[int, int, int] | None = None  # synthetic only: clips in (train, val, test)
    cache_dir: Path | None = None       # decoded-video cache; None: $EDGELSTM_CACHE or ~/.cache/edgelstm


@dataclass(frozen=True)
class Split:
    """One split: ``X, y, lengths = ds["train"]``."""

    X: np.ndarray               # frames uint8 (N, T, H, W, 3) RGB, or features float32 (N, T, F)
    y: np.ndarray               # (N,) int64 class indices
    lengths: np.ndarray | None  # (N,) int64 valid steps, or None when all are T

    def __len__(self) -> int:
        return len(self.y)

    def __iter__(self):  # noqa: ANN204 - lets `X, y, lengths = split` unpack
        return iter((self.X, self.y, self.lengths))


@dataclass(frozen=True)
class Dataset:
    kind: Kind
    classes: tuple[str, ...]
    splits: dict[str, Split]
    source: str                          # what was loaded: "synthetic", a folder, a .csv or an .npz
    clip_len: int
    size: tuple[int, int] | None = None  # (H, W) for frames
    feature_size: int | None = None      # F for features
    fps: float = 0.0                     # rate of the sampled frames (source fps / stride); 0 when unknown
    stride: int = 1                      # source frames between two sampled frames
    sampling: Sampling = Sampling.UNIFORM
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per RGB channel of train frames, 0..1 scale
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    seed: int = 0                        # seed of the synthetic set, or of carving val/test
    notes: dict[str, str] = field(default_factory=dict)
    feature_mean: tuple[float, ...] | None = None  # features: per feature over the train split's valid steps
    feature_std: tuple[float, ...] | None = None

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise unknown_choice("split", split, self.splits, fix="pass --split with one of these",
                                 error=UsageError)
        return self.splits[split]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def facts(self) -> DataFacts:
        """The data facts a checkpoint stores under ``data`` (see edgelstm.models.checkpoint)."""
        counts = self.notes.get("counts")
        return DataFacts(kind=ModelKind(str(self.kind)), clip_len=self.clip_len, size=self.size,
                         mean=self.mean if self.kind == Kind.FRAMES else None,
                         std=self.std if self.kind == Kind.FRAMES else None, stride=self.stride, fps=self.fps,
                         feature_size=self.feature_size, sampling=str(self.sampling), resize=ResizeMode.AREA,
                         source=self.source, data_seed=self.seed, feature_mean=self.feature_mean,
                         feature_std=self.feature_std,
                         synthetic_counts=tuple(int(c) for c in counts.split(",")) if counts else None)  # type: ignore[arg-type]

    def summary(self) -> dict[str, object]:
        return {"source": self.source, "kind": str(self.kind), "classes": list(self.classes),
                "splits": {k: len(v) for k, v in self.splits.items()}, "clip_len": self.clip_len,
                "size": list(self.size) if self.size else None, "feature_size": self.feature_size,
                "fps": self.fps, "stride": self.stride}


def load_dataset(spec: str | Path, *, size: tuple[int, int] = DEFAULT_SIZE, clip_len: int = DEFAULT_CLIP_LEN,
                 sampling: Sampling | str = Sampling.UNIFORM, stride: int = 2, seed: int = 0,
                 counts: tuple[int, int, int] | None = None, cache_dir: str | Path | None = None,
                 val_fraction: float = 0.15, test_fraction: float = 0.15) -> Dataset:
    """Load ``spec``: ``"synthetic"``, a video folder, a ``.csv`` list of videos, or a features ``.npz``.

    The form is detected from the path: ``ROOT/{train,val,test}/<class>/<clip>``, a folder with
    UCF101-style ``trainlist01.txt``/``testlist01.txt``, a plain ``ROOT/<class>/<clip>`` (val and test
    carved, stratified, from ``seed``), a CSV ``path,label[,start_s,end_s]``, or an ``.npz`` of
    features ``X`` (N, T, F), ``y`` and optional ``lengths``, ``classes``, ``split``. ``size``,
    ``clip_len``, ``sampling`` and ``stride`` apply to videos; decoded clips are cached.
    """
    try:
        sampling = Sampling(sampling)
    except ValueError:
        raise unknown_choice("sampling", str(sampling), [s.value for s in Sampling]) from None
    _check_options(size, clip_len, stride, val_fraction, test_fraction)
    opts = LoadOptions(size=(int(size[0]), int(size[1])), clip_len=int(clip_len), sampling=sampling,
                       stride=int(stride), seed=int(seed), val_fraction=val_fraction,
                       test_fraction=test_fraction, counts=counts,
                       cache_dir=Path(cache_dir) if cache_dir is not None else None)
    text = str(spec)
    ds = _load(text, opts)
    _check_classes(ds)
    return dataclasses.replace(ds, seed=opts.seed)


def _check_classes(ds: Dataset) -> None:
    """A classifier needs two classes to tell apart: refuse a dataset whose labels are all one class."""
    labels = np.unique(np.concatenate([s.y for s in ds.splits.values()])) if ds.splits else np.zeros(0, np.int64)
    if len(ds.classes) < 2 or len(labels) < 2:
        only = ds.classes[int(labels[0])] if len(labels) and int(labels[0]) < len(ds.classes) else "none"
        raise DataError(f"has a single class ('{only}'; {len(ds.classes)} in its class list)",
                        expected="at least two classes with examples",
                        fix="add clips of another class (a class folder, or rows with another label)", path=ds.source)


def _load(text: str, opts: LoadOptions) -> Dataset:
    if text == "synthetic":
        from edgelstm.data.synthetic_source import load_synthetic
        return load_synthetic(opts)
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError("no such file or folder", expected="'synthetic', a video folder, a .csv or a .npz",
                        fix="check the --data path", path=path)
    if path.is_dir():
        from edgelstm.data.folders import load_video_folder
        return load_video_folder(path, opts)
    if path.suffix.lower() == ".npz":
        from edgelstm.data.features import load_features
        return load_features(path, opts)
    if path.suffix.lower() == ".csv":
        from edgelstm.data.folders import load_video_csv
        return load_video_csv(path, opts)
    raise DataError(f"cannot tell what kind of data '{path.suffix}' is",
                    expected="a folder of videos, a .csv list of videos or a .npz of features",
                    fix="pass a folder, a .csv or a .npz to --data (or 'synthetic')", path=path)


def _check_options(size: tuple[int, int], clip_len: int, stride: int, val: float, test: float) -> None:
    if len(size) != 2 or min(size) < 8:
        raise UsageError(f"frame size {tuple(size)}", expected="H,W of at least 8 pixels each",
                         fix="pass e.g. --size 64,64")
    if clip_len < 1:
        raise UsageError(f"clip length {clip_len}", expected="at least 1 frame", fix="pass e.g. --clip-len 16")
    if stride < 1:
        raise UsageError(f"stride {stride}", expected="at least 1", fix="pass e.g. --stride 2")
    if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):
        raise UsageError(f"val/test fractions {val}/{test}", expected="fractions in (0, 1) summing below 1")


def carve(y: np.ndarray, fractions: dict[str, float], *, seed: int) -> dict[str, np.ndarray]:
    """Split indices of ``y`` into named parts, stratified per class and deterministic in ``seed``.

    The first name takes what is left. Each class with at least as many items as parts puts at
    least one item in every part, so small classes still appear in val.
    """
    names = list(fractions)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    rng = np.random.default_rng([seed, 7919])
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        start = 0
        for n in names[1:]:
            k = int(round(fractions[n] * len(idx)))
            if k == 0 and len(idx) >= len(names):
                k = 1
            parts[n].append(idx[start:start + k])
            start += k
        parts[names[0]].append(idx[start:])
    return {n: np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for n, p in parts.items()}


def channel_stats(X: np.ndarray, *, max_frames: int = 4096) -> tuple[tuple[float, float, float],
                                                                   tuple[float, float, float]]:
    """Per RGB channel mean and std of uint8 frames, on the 0..1 scale, from a strided subset."""
    frames = X.reshape(-1, *X.shape[-3:])
    frames = frames[:: max(1, len(frames) // max_frames)]
    f = frames.astype(np.float32) / 255.0
    mean = f.mean(axis=(0, 1, 2))
    std = f.std(axis=(0, 1, 2)).clip(min=1e-3)
    return (tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std))  # type: ignore[return-value]

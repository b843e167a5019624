"""Pre-extracted per-frame features: an .npz with X (N, T, F), y (N,) and optional lengths, classes, split."""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from edgelstm.data.dataset import SPLITS, Dataset, Kind, LoadOptions, Split, carve
from edgelstm.errors import DataError

log = logging.getLogger(__name__)

FPS_KEY = "fps"      # optional scalar: rate of the feature steps
STRIDE_KEY = "stride"
# Without a 'classes' array the class count is max(y) + 1. Labels that skip most of 0..max(y) are more likely
# ids than class indices (a 100001-class model for 3 labels): refuse when max(y) + 1 exceeds this many times
# the number of distinct labels.
SPARSE_LABEL_FACTOR = 4


def load_features(path: Path, opts: LoadOptions) -> Dataset:
    X, y, lengths, classes, split, fps, stride = _read_npz(path)
    X, y, lengths = _validate(path, X, y, lengths)
    classes = _class_names(path, y, classes)
    index = _split_index(path, y, split, opts)
    splits = {}
    for s, idx in index.items():
        ln = lengths[idx] if lengths is not None else None
        splits[s] = Split(X[idx], y[idx], ln)
    mean, std = feature_stats(splits["train"], path)
    return Dataset(kind=Kind.FEATURES, classes=tuple(classes), splits=splits, source=str(path),
                   clip_len=X.shape[1], feature_size=X.shape[2], fps=fps, stride=stride,
                   feature_mean=mean, feature_std=std)


_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str] | None, np.ndarray | None, float, int]


def _read_npz(path: Path) -> _Arrays:
    """The arrays of the .npz, unchecked: X, y, lengths, classes, split (None where absent), fps and stride."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot be read as an .npz ({e})", expected="a file written by numpy.savez",
                        path=path) from None
    with z:
        keys = set(z.files)
        for k in ("X", "y"):
            if k not in keys:
                raise DataError(f"has no array '{k}' (it has {', '.join(sorted(keys)) or 'none'})",
                                expected="arrays X (N, T, F) float32 and y (N,) int", path=path)
        try:
            X, y = z["X"], z["y"]
            lengths = z["lengths"] if "lengths" in keys else None
            classes = [str(c) for c in z["classes"]] if "classes" in keys else None
            split = np.array([str(s) for s in z["split"]]) if "split" in keys else None
            fps = float(z[FPS_KEY]) if FPS_KEY in keys else 0.0
            stride = int(z[STRIDE_KEY]) if STRIDE_KEY in keys else 1
        except ValueError as e:  # object arrays need pickle, which we refuse
            raise DataError(f"holds an array that needs pickle to load ({e})",
                            expected="plain numeric and string arrays",
                            fix="save class names as a str array: np.array(names, dtype=str)", path=path) from None
    return X, y, lengths, classes, split, fps, stride


def _class_names(path: Path, y: np.ndarray, classes: list[str] | None) -> list[str]:
    """The 'classes' array, or 0..max(y) without one (refusing sparse ids); every label must name a class."""
    if classes is None:
        implied, distinct = int(y.max()) + 1, len(np.unique(y))
        if y.min() >= 0 and implied > SPARSE_LABEL_FACTOR * distinct:
            raise DataError(f"y has {distinct} distinct labels but runs up to {implied - 1}, which would make a "
                            f"{implied}-class model, and there is no 'classes' array",
                            expected=f"labels 0..K-1 with K at most {SPARSE_LABEL_FACTOR}x the distinct labels, "
                                     "or a 'classes' array naming every class",
                            fix="renumber y to 0..K-1 (np.unique(y, return_inverse=True)[1]) or save a 'classes' "
                                "array", path=path)
        classes = [str(i) for i in range(implied)]
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        bad = int(y[(y < 0) | (y >= len(classes))][0])
        raise DataError(f"label {bad} is outside the class list (0..{len(classes) - 1})",
                        expected="y in 0..len(classes)-1", fix="fix y or the 'classes' array", path=path)
    return classes


def _split_index(path: Path, y: np.ndarray, split: np.ndarray | None, opts: LoadOptions) -> dict[str, np.ndarray]:
    """Row indices of each split: the 'split' array's, with val (and test) carved where it names none."""
    n = len(y)
    if split is not None:
        if split.shape != (n,):
            raise DataError(f"'split' has shape {split.shape}", expected=f"({n},) like y", path=path)
        unknown = sorted(set(split.tolist()) - set(SPLITS))
        if unknown:
            raise DataError(f"'split' has value '{unknown[0]}'", expected="train, val or test", path=path)
        index = {s: np.flatnonzero(split == s) for s in SPLITS if (split == s).any()}
    else:
        index = {"all": np.arange(n)}
    if "all" in index:
        index = carve(y, {"train": 0.0, "val": opts.val_fraction, "test": opts.test_fraction}, seed=opts.seed)
    elif "val" not in index:
        if "train" not in index:
            raise DataError("'split' has no train rows", expected="some rows marked 'train'", path=path)
        parts = carve(y[index["train"]], {"train": 0.0, "val": opts.val_fraction}, seed=opts.seed)
        tr = index["train"]
        index.update({"train": tr[parts["train"]], "val": tr[parts["val"]]})
    for name in ("train", "val"):
        if not len(index.get(name, ())):
            raise DataError(f"the '{name}' split is empty ({n} sequences: {', '.join(f'{k} {len(v)}' for k, v in index.items())})",
                            expected="at least one sequence in train and in val",
                            fix="mark some rows 'val' in 'split', or add sequences (each class needs a few to carve "
                                "val from)", path=path)
    return index


def feature_stats(train: Split, path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and standard deviation over the train split's valid steps (padding excluded).

    A feature that never varies in training gets std 1 (it is only centred), and that is logged."""
    X = train.X.astype(np.float64, copy=False)  # (N, T, F)
    valid = np.ones(X.shape[:2], bool) if train.lengths is None else \
        np.arange(X.shape[1])[None] < train.lengths[:, None]  # (N, T)
    rows = X[valid]  # (steps, F)
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    flat = std < 1e-6 * np.maximum(1.0, np.abs(mean))
    if flat.any():
        log.info("%s: %d feature(s) never vary in the train split (first: %d); they are centred, not scaled",
                 path, int(flat.sum()), int(np.flatnonzero(flat)[0]))
    std = np.where(flat, 1.0, std)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _validate(path: Path, X: np.ndarray, y: np.ndarray,
              lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if X.ndim != 3:
        raise DataError(f"X has rank {X.ndim} (shape {X.shape})", expected="X of shape (N, T, F)",
                        fix="stack per-frame features as (clips, steps, features)", path=path)
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise DataError(f"X has dtype {X.dtype}", expected="a real (float or integer) array",
                        fix="save real features, e.g. X.astype(np.float32) (for complex values, split real and "
                            "imaginary parts into features)", path=path)
    if 0 in X.shape:
        raise DataError(f"X has shape {X.shape}: no {'sequences' if X.shape[0] == 0 else 'steps' if X.shape[1] == 0 else 'features'}",
                        expected="X of shape (N, T, F) with N, T and F at least 1",
                        fix="check the feature extraction wrote something", path=path)
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        bad = int(np.argwhere(~np.isfinite(X))[0][0])
        raise DataError(f"X holds NaN or infinite values (first in sequence {bad})", expected="finite features",
                        fix="drop or repair those sequences", path=path)
    if y.shape != (X.shape[0],) or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"y has shape {y.shape} and dtype {y.dtype}", expected=f"({X.shape[0]},) integers",
                        path=path)
    y = _labels(path, y)
    if lengths is not None:
        if lengths.shape != y.shape or not np.issubdtype(lengths.dtype, np.integer):
            raise DataError(f"lengths has shape {lengths.shape} and dtype {lengths.dtype}",
                            expected=f"({X.shape[0]},) integers", path=path)
        if len(lengths) and (lengths.min() < 1 or lengths.max() > X.shape[1]):
            raise DataError(f"lengths run from {lengths.min()} to {lengths.max()}",
                            expected=f"1..{X.shape[1]} (T of X)", path=path)
        lengths = lengths.astype(np.int64)
    return X, y, lengths


def _labels(path: Path, y: np.ndarray) -> np.ndarray:
    """y as int64 class indices, refusing values a cast would change (fractions, negatives, > int64)."""
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise DataError(f"y holds {y[bad][0].item()!r} (dtype {y.dtype}), not a whole number",
                            expected="integer class indices 0..K-1", fix="save y as integers", path=path)
    big = np.iinfo(np.int64).max
    out_of_range = (y < 0) | (y > big)
    if out_of_range.any():
        v = y[out_of_range][0]
        raise DataError(f"y holds label {v.item()!r}, which is not a class index", expected="labels 0..K-1",
                        fix="renumber y to 0..K-1 (np.unique(y, return_inverse=True)[1])", path=path)
    return y.astype(np.int64)

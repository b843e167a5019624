"""Pre-extracted features in an .npz."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelstm.data import load_dataset


def write_npz(path: Path, n: int = 40, t: int = 7, f: int = 5, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"X": rng.normal(size=(n, t, f)).astype(np.float32), "y": np.arange(n) % 4}
    arrays.update(extra)
    np.savez(path, **arrays)
    return path


def test_features_carve_val_and_test(tmp_path: Path) -> None:
    ds = load_dataset(write_npz(tmp_path / "f.npz"), seed=1)
    assert ds.kind == "features" and ds.feature_size == 5 and ds.clip_len == 7
    assert ds.classes == ("0", "1", "2", "3")
    sizes = {k: len(v) for k, v in ds.splits.items()}
    assert sizes["val"] >= 4 and sizes["test"] >= 4 and sum(sizes.values()) == 40
    for s in ds.splits.values():
        assert set(s.y.tolist()) == {0, 1, 2, 3} and s.X.dtype == np.float32 and s.lengths is None
    again = load_dataset(tmp_path / "f.npz", seed=1)
    np.testing.assert_array_equal(ds["val"].X, again["val"].X)


def test_features_with_split_names_and_lengths(tmp_path: Path) -> None:
    split = np.array(["train"] * 30 + ["test"] * 10)
    lengths = np.tile([7, 3, 5, 1], 10)
    p = write_npz(tmp_path / "f.npz", split=split, lengths=lengths, classes=np.array(["a", "b", "c", "d"]))
    ds = load_dataset(p)
    assert ds.classes == ("a", "b", "c", "d")
    assert len(ds["test"]) == 10 and len(ds["train"]) + len(ds["val"]) == 30 and len(ds["val"]) > 0
    np.testing.assert_array_equal(ds["test"].lengths, lengths[30:])
    assert set(ds["train"].lengths.tolist()) <= {7, 3, 5, 1}

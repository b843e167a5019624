"""Videos a user brings: every split layout, the CSV form, sampling and the decode cache."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelstm.data import load_dataset
from edgelstm.data.synthetic_source import write_video
from edgelstm.data.video import sample_indices
from edgelstm.data.dataset import Sampling

from datahelpers import FEW, SIZE, T, render, write_class_tree


def _load(path: Path, cache: Path, **kw):  # noqa: ANN202
    return load_dataset(path, size=SIZE, clip_len=T, cache_dir=cache, **kw)


def test_plain_class_folders_carve_val_and_test_stratified(class_tree: Path, tmp_path: Path) -> None:
    ds = _load(class_tree, tmp_path / "c", val_fraction=0.25, test_fraction=0.25)
    assert ds.classes == FEW and ds.kind == "frames" and ds.notes["layout"] == "class-folders"
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 6, "val": 3, "test": 3}
    for split in ds.splits.values():  # every class in every split
        assert sorted(np.bincount(split.y, minlength=3)) == [1, 1, 1] or len(split) == 6
    assert ds["train"].X.shape == (6, T, *SIZE, 3) and ds["train"].X.dtype == np.uint8
    again = _load(class_tree, tmp_path / "c2", val_fraction=0.25, test_fraction=0.25)
    np.testing.assert_array_equal(ds["val"].X, again["val"].X)  # deterministic carving
    other = _load(class_tree, tmp_path / "c3", val_fraction=0.25, test_fraction=0.25, seed=5)
    assert not np.array_equal(ds["val"].X, other["val"].X)


def test_decoded_frames_are_rgb_and_resized(tmp_path: Path) -> None:
    clip = np.zeros((4, 32, 48, 3), np.uint8)
    clip[..., 0] = 220  # pure red in RGB
    (tmp_path / "v" / "red").mkdir(parents=True)
    (tmp_path / "v" / "blue").mkdir(parents=True)
    for i in range(3):
        write_video(tmp_path / "v" / "red" / f"{i}.avi", clip, 15.0)
        write_video(tmp_path / "v" / "blue" / f"{i}.avi", clip[..., ::-1].copy(), 15.0)
    ds = load_dataset(tmp_path / "v", size=(8, 12), clip_len=4, cache_dir=tmp_path / "c")
    X, y, _ = ds["train"]
    assert X.shape[2:] == (8, 12, 3)
    red = X[y == ds.classes.index("red")].reshape(-1, 3).mean(0)
    assert red[0] > 180 and red[2] < 40, red  # OpenCV's BGR was turned into RGB
    assert ds.fps == 15.0


def test_split_folders(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        write_class_tree(tmp_path / "d" / split, per_class=2)
    ds = _load(tmp_path / "d", tmp_path / "c")
    assert ds.notes["layout"] == "split-folders"
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 6, "val": 6, "test": 6}


def test_split_folders_without_val_carve_it_from_train(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "d" / "train", per_class=4)
    write_class_tree(tmp_path / "d" / "test", per_class=1)
    ds = _load(tmp_path / "d", tmp_path / "c", val_fraction=0.25)
    assert {k: len(v) for k, v in ds.splits.items()} == {"test": 3, "train": 9, "val": 3}


def test_ucf_lists(class_tree: Path, tmp_path: Path) -> None:
    clips = sorted(class_tree.glob("*/*.avi"))
    train = [c for c in clips if not c.stem.endswith("_0")]
    test = [c for c in clips if c.stem.endswith("_0")]
    (class_tree / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(FEW)))
    (class_tree / "trainlist01.txt").write_text(
        "".join(f"{c.parent.name}/{c.name} {FEW.index(c.parent.name) + 1}\n" for c in train))
    (class_tree / "testlist01.txt").write_text("".join(f"{c.parent.name}/{c.name}\n" for c in test))
    ds = _load(class_tree, tmp_path / "c", val_fraction=0.34)
    assert ds.notes["layout"] == "ucf-lists" and ds.classes == FEW
    assert len(ds["test"]) == 3 and len(ds["train"]) + len(ds["val"]) == 9 and len(ds["val"]) == 3


def test_csv_with_times_and_variable_lengths(class_tree: Path, tmp_path: Path) -> None:
    long = tmp_path / "long.avi"
    write_video(long, render(0, 9, frames=30), 10.0)  # 3 s at 10 fps
    rows = ["path,label,start_s,end_s"]
    rows += [f"{p.relative_to(tmp_path)},{p.parent.name},," for p in sorted(class_tree.glob("*/*.avi"))]
    rows.append("long.avi,move_left,1.0,2.0")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "list.csv", size=SIZE, clip_len=T, cache_dir=tmp_path / "c",
                      sampling="stride", stride=2)
    assert ds.classes == FEW and sum(len(s) for s in ds.splits.values()) == 13
    assert ds.stride == 2
    # the 1 s window at 10 fps holds 10 frames: stride 2 gives 5 < T=6 valid frames, so lengths appear
    lengths = np.concatenate([s.lengths if s.lengths is not None else np.full(len(s), T) for s in ds.splits.values()])
    assert sorted(lengths.tolist()) == [3] * 12 + [5]  # the 6-frame clips give 3 frames with stride 2


def test_sampling_indices() -> None:
    np.testing.assert_array_equal(sample_indices(10, 5, Sampling.UNIFORM, 1), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(sample_indices(3, 5, Sampling.UNIFORM, 1), [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(sample_indices(20, 4, Sampling.STRIDE, 3), [5, 8, 11, 14])
    np.testing.assert_array_equal(sample_indices(5, 4, Sampling.STRIDE, 2), [0, 2, 4])


def test_second_load_comes_from_the_cache(class_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _load(class_tree, tmp_path / "c")
    assert list((tmp_path / "c").glob("*.npz"))

    def broken(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("decoded again")

    monkeypatch.setattr(cv2, "VideoCapture", broken)
    second = _load(class_tree, tmp_path / "c")
    np.testing.assert_array_equal(first["train"].X, second["train"].X)
    with pytest.raises(AssertionError, match="decoded again"):  # other sampling: another cache entry
        _load(class_tree, tmp_path / "c", sampling="stride")


def test_touching_a_file_invalidates_the_cache(class_tree: Path, tmp_path: Path) -> None:
    _load(class_tree, tmp_path / "c")
    victim = sorted(class_tree.glob("*/*.avi"))[0]
    shutil.copy(sorted(class_tree.glob("*/*.avi"))[-1], victim)  # new content and mtime
    _load(class_tree, tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.npz"))) > 3  # a new entry for the changed split

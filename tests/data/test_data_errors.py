"""Bad data gets a DataError that names the file, never a bare traceback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelstm.data import load_dataset
from edgelstm.errors import DataError

from datahelpers import SIZE, T
from test_data_features import write_npz


def _load(path: Path, tmp_path: Path):  # noqa: ANN202
    return load_dataset(path, size=SIZE, clip_len=T, cache_dir=tmp_path / "cache")


def test_video_that_does_not_open(class_tree: Path, tmp_path: Path) -> None:
    bad = class_tree / "grow" / "broken.avi"
    bad.parent.mkdir()
    bad.write_bytes(b"not a video at all" * 10)
    for i in range(3):
        (class_tree / "grow" / f"ok{i}.avi").write_bytes((class_tree / "move_left" / "move_left_0.avi").read_bytes())
    with pytest.raises(DataError, match="broken.avi"):
        _load(class_tree, tmp_path)


def test_video_without_frames(class_tree: Path, tmp_path: Path) -> None:
    import cv2
    empty = class_tree / "move_left" / "empty.avi"
    w = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 15, (16, 16))
    w.release()  # a valid container with no frames, or a file OpenCV cannot open: both must name it
    with pytest.raises(DataError, match="empty.avi"):
        _load(class_tree, tmp_path)


def test_class_folder_without_clips(class_tree: Path, tmp_path: Path) -> None:
    (class_tree / "lonely").mkdir()
    (class_tree / "lonely" / "notes.txt").write_text("no videos here")
    with pytest.raises(DataError, match="lonely.*no video clips"):
        _load(class_tree, tmp_path)


def test_split_list_naming_a_missing_file(class_tree: Path, tmp_path: Path) -> None:
    (class_tree / "trainlist01.txt").write_text("move_left/move_left_0.avi 1\nmove_left/gone.avi 1\n")
    with pytest.raises(DataError, match=r"trainlist01.txt.*line 2.*gone.avi"):
        _load(class_tree, tmp_path)


def test_split_list_naming_an_unknown_class(class_tree: Path, tmp_path: Path) -> None:
    (class_tree / "classInd.txt").write_text("1 move_left\n2 move_right\n")
    (class_tree / "trainlist01.txt").write_text("move_left/move_left_0.avi 1\nmove_up/move_up_0.avi 3\n")
    with pytest.raises(DataError, match=r"trainlist01.txt.*'move_up'.*not in the class list"):
        _load(class_tree, tmp_path)


def test_csv_naming_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("a.avi,x\n")
    with pytest.raises(DataError, match=r"l.csv.*row 1.*a.avi"):
        _load(tmp_path / "l.csv", tmp_path)


def test_features_labels_outside_class_list(tmp_path: Path) -> None:
    p = write_npz(tmp_path / "f.npz", classes=np.array(["a", "b"]))  # y runs to 3
    with pytest.raises(DataError, match=r"f.npz.*label 2 is outside the class list"):
        _load(p, tmp_path)


def test_features_of_wrong_rank(tmp_path: Path) -> None:
    np.savez(tmp_path / "f.npz", X=np.zeros((4, 5), np.float32), y=np.zeros(4, int))
    with pytest.raises(DataError, match=r"f.npz.*rank 2"):
        _load(tmp_path / "f.npz", tmp_path)


def test_features_with_nan(tmp_path: Path) -> None:
    X = np.zeros((6, 3, 2), np.float32)
    X[4, 1, 0] = np.nan
    np.savez(tmp_path / "f.npz", X=X, y=np.zeros(6, int))
    with pytest.raises(DataError, match=r"f.npz.*NaN.*sequence 4"):
        _load(tmp_path / "f.npz", tmp_path)


def test_features_with_bad_lengths(tmp_path: Path) -> None:
    p = write_npz(tmp_path / "f.npz", lengths=np.full(40, 9))
    with pytest.raises(DataError, match=r"f.npz.*lengths"):
        _load(p, tmp_path)


def test_unknown_path_and_kind(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        _load(tmp_path / "nowhere", tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"x.txt.*cannot tell"):
        _load(tmp_path / "x.txt", tmp_path)

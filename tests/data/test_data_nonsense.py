"""Inputs that are accepted on purpose (a BOM, whole-number float labels, a few corrupt frames), next to the
refusals in tests/bad_inputs: each behaviour asserted, not just "no crash"."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgelstm.data import load_dataset
from edgelstm.data.video import MAX_BAD_FRAMES, decode_clip
from edgelstm.errors import DataError

from datahelpers import SIZE, T
from test_data_features import write_npz


def _load(path: Path, tmp_path: Path):  # noqa: ANN202
    return load_dataset(path, size=SIZE, clip_len=T, cache_dir=tmp_path / "cache")


def test_csv_with_a_utf8_bom_is_read(class_tree: Path, tmp_path: Path) -> None:
    rows = [f"{p.relative_to(class_tree.parent)},{p.parent.name}" for p in sorted(class_tree.rglob("*.avi"))]
    (tmp_path / "list.csv").write_bytes(("path,label\n" + "\n".join(rows) + "\n").encode("utf-8-sig"))
    ds = _load(tmp_path / "list.csv", tmp_path)
    assert sum(len(s) for s in ds.splits.values()) == len(rows)  # the header was recognised despite the BOM
    assert set(ds.classes) == {p.parent.name for p in class_tree.rglob("*.avi")}


@pytest.mark.parametrize("times,needle", [("nan,1.0", "start nans"), ("0.5,inf", "end infs"),
                                          ("2.0,1.0", "start 2.0s and end 1.0s"), ("-1,1", "start -1s")])
def test_csv_with_impossible_times(class_tree: Path, tmp_path: Path, times: str, needle: str) -> None:
    rows = [f"{p.relative_to(class_tree.parent)},{p.parent.name},0,1" for p in sorted(class_tree.rglob("*.avi"))]
    rows[2] = rows[2].rsplit(",", 2)[0] + "," + times
    (tmp_path / "list.csv").write_text("path,label,start_s,end_s\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=needle) as e:
        _load(tmp_path / "list.csv", tmp_path)
    assert "list.csv" in str(e.value) and "row 4" in str(e.value)


def test_whole_number_float_labels_are_accepted(tmp_path: Path) -> None:
    ds = load_dataset(write_npz(tmp_path / "f.npz", y=(np.arange(40) % 4).astype(np.float64)))
    assert ds.classes == ("0", "1", "2", "3") and ds["train"].y.dtype == np.int64


def test_sparse_labels_with_a_class_list_are_accepted(tmp_path: Path) -> None:
    """The sparse-label rule applies only without 'classes': a class list says what the labels mean."""
    y = np.array([0, 9] * 20)
    ds = load_dataset(write_npz(tmp_path / "f.npz", y=y, classes=np.array([f"c{i}" for i in range(10)])))
    assert ds.num_classes == 10


def _corrupt_frames(src: Path, dst: Path, frames: list[int]) -> None:
    """Zero the JPEG data of some frames of an MJPG AVI (its '00dc' chunks), keeping the container intact."""
    data = bytearray(src.read_bytes())
    movi = data.index(b"movi")
    chunks, pos = [], movi
    while (pos := data.find(b"00dc", pos + 4)) >= 0 and (not chunks or pos < data.find(b"idx1", movi)):
        chunks.append(pos)
    for k in frames:
        size = int.from_bytes(data[chunks[k] + 4: chunks[k] + 8], "little")
        data[chunks[k] + 8: chunks[k] + 8 + size] = bytes(size)
    dst.write_bytes(bytes(data))


def _video(path: Path, n: int = 20) -> Path:
    import cv2

    wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 15.0, (16, 16))
    for i in range(n):
        wr.write(np.full((16, 16, 3), i * 8 % 256, np.uint8))
    wr.release()
    return path


def test_video_corrupt_in_the_middle_is_read_past(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = _video(tmp_path / "good.avi")
    _corrupt_frames(good, tmp_path / "bad.avi", [8, 9])
    with caplog.at_level(logging.WARNING, logger="edgelstm.data.video"):
        d = decode_clip(tmp_path / "bad.avi", size=(16, 16), clip_len=4)
    assert (d.source_frames, d.bad_frames) == (18, 2)  # before: stopped at frame 8 and reported 8 frames
    assert "skipped 2 unreadable frame(s) of 20" in caplog.text and "bad.avi" in caplog.text
    clean = decode_clip(good, size=(16, 16), clip_len=4)
    assert (clean.source_frames, clean.bad_frames) == (20, 0)


def test_video_with_a_long_corrupt_stretch_ends_there(tmp_path: Path) -> None:
    """Past MAX_BAD_FRAMES failures in a row the rest is given up on (bounded), as the end of a file would be."""
    good = _video(tmp_path / "good.avi", n=30)
    _corrupt_frames(good, tmp_path / "bad.avi", list(range(5, 5 + MAX_BAD_FRAMES + 2)))
    d = decode_clip(tmp_path / "bad.avi", size=(16, 16), clip_len=4)
    assert (d.source_frames, d.bad_frames) == (5, 0)

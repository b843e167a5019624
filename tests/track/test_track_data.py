"""The tracking data: the generator's exact boxes, the OTB layout written and read back, and the reader's checks
(each bad line named by file and line), plus the crop/box geometry and the OTB metrics they are scored with."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelstm.data.tracking import TrackConfig, load_tracking, render_sequence, stream, synthetic_sequence
from edgelstm.data.tracking_otb import GROUNDTRUTH, read_boxes, read_otb, write_tracking
from edgelstm.errors import DataError
from edgelstm.runtime import track_geometry as g
from edgelstm.track_metrics import SUCCESS_THRESHOLDS, iou, track_report
from edgelstm.trackspec import Tracking

CFG = TrackConfig(size=(32, 32), frames=12, train=3, val=1, test=1)


def test_sequences_are_deterministic_and_boxes_hold_the_target() -> None:
    a, b = synthetic_sequence(CFG, "train", 1), synthetic_sequence(CFG, "train", 1)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.frames.shape == (12, 32, 32, 3) and a.boxes.shape == (12, 4)
    assert (a.boxes[:, 2:] > 0).all()
    assert not np.array_equal(a.frames, synthetic_sequence(CFG, "train", 2).frames)
    frames, boxes = render_sequence(np.random.default_rng(3), size=(48, 64), frames=30, noise=0.0, occlusion=0.0)
    x, y, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= 64).all() and (y + h <= 48).all()  # the target bounces
    moved = np.abs(np.diff(boxes[:, :2], axis=0)).sum()
    assert moved > 5  # it moves


def test_otb_round_trip(tmp_path: Path) -> None:
    counts = write_tracking(tmp_path / "otb", CFG)
    assert counts == {"train": 3, "val": 1, "test": 1}
    seq_dir = tmp_path / "otb" / "test" / "test_00000"
    assert (seq_dir / GROUNDTRUTH).is_file() and len(list((seq_dir / "img").iterdir())) == 12
    ds = load_tracking(str(tmp_path / "otb"))
    assert ds.counts() == (3, 1, 1) and ds.fps == CFG.fps
    seq = ds["test"][0]
    want = synthetic_sequence(CFG, "test", 0)
    np.testing.assert_array_equal(seq.frames, want.frames)  # PNG: lossless
    np.testing.assert_allclose(seq.boxes, want.boxes)


def _seq(root: Path, name: str, lines: list[str], frames: int = 3, size: tuple[int, int] = (20, 30)) -> Path:
    d = root / name
    (d / "img").mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(d / "img" / f"{i + 1:04d}.jpg"), np.full((*size, 3), 100, np.uint8))
    (d / GROUNDTRUTH).write_text("".join(f"{ln}\n" for ln in lines))
    return d


@pytest.mark.parametrize("lines, fragment", [
    (["1,2,3,4", "1,2,3", "1,2,3,4"], "line 2 is '1,2,3'"),
    (["1,2,3,4", "1,2,nan,4", "1,2,3,4"], "line 2 ('1,2,nan,4') is not all finite"),
    (["1,2,3,4", "1,2,0,4", "1,2,3,4"], "width 0 and height 4"),
    (["1,2,3,4", "40,2,3,4", "1,2,3,4"], "outside the 30x20 frame"),
    (["1,2,3,4", "-9,2,3,4", "1,2,3,4"], "outside the 30x20 frame"),
    (["1,2,3,4", "1,2,3,4"], "has 2 boxes for 3 frames"),
    (["1 2 3 4", "1\t2\t3\t4", "1,2,3,4"], None),  # OTB's separators: all fine
])
def test_otb_reader_names_the_bad_line(tmp_path: Path, lines: list[str], fragment: str | None) -> None:
    for i in range(3):
        _seq(tmp_path, f"s{i}", ["1,2,3,4"] * 3)
    _seq(tmp_path, "bad", lines)
    if fragment is None:
        assert len(sum(read_otb(tmp_path).splits.values(), [])) == 4
        return
    with pytest.raises(DataError) as e:
        read_otb(tmp_path)
    assert fragment in str(e.value) and GROUNDTRUTH in str(e.value) and "Fix:" in str(e.value)


def test_otb_reader_refuses_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "lonely").mkdir()
    with pytest.raises(DataError, match="no groundtruth_rect.txt"):
        read_otb(tmp_path)
    empty = tmp_path / "e.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="holds no boxes"):
        read_boxes(empty)
    with pytest.raises(DataError, match="no such folder"):
        read_otb(tmp_path / "nowhere")


def test_geometry_round_trips_and_crops() -> None:
    t = Tracking(crop_size=16, context=2.0)
    rng = np.random.default_rng(0)
    prev = np.array([[10.0, 12.0, 8.0, 6.0]])
    box = np.array([[11.5, 11.0, 9.0, 5.5]])
    np.testing.assert_allclose(g.decode(prev, g.encode(prev, box, t), t, (64, 64)), box, atol=1e-5)
    yy, xx = np.mgrid[0:40, 0:50]
    frame = np.stack([xx * 5, yy * 6, xx + yy], -1).astype(np.uint8)  # smooth: resamplings agree closely
    whole = g.crop(frame, np.array([0.0, 0.0, 50.0, 40.0]), Tracking(crop_size=16, context=1.0))
    np.testing.assert_allclose(whole.astype(float), cv2.resize(frame, (16, 16), interpolation=cv2.INTER_AREA),
                               atol=8)  # the window is the whole frame: a resize of it
    outside = g.crop(frame, np.array([-100.0, -100.0, 10.0, 10.0]), t)
    assert outside.max() == 0  # zeros outside the frame
    pair = g.crop_pair(g.crop(frame, box[0], t), frame, box[0], t)
    assert pair.shape == (16, 32, 3) and np.array_equal(pair[:, :16], pair[:, 16:])
    big = rng.integers(0, 256, (480, 640, 3), np.uint8)  # a window far larger than the crop: area-reduced first
    assert g.crop(big, np.array([100.0, 80.0, 200.0, 160.0]), t).shape == (16, 16, 3)
    clamped = g.decode(prev, np.array([[99.0, 99.0, 99.0, -99.0]]), t, (64, 64))
    assert 0 <= clamped[0, 0] + clamped[0, 2] / 2 <= 64 and clamped[0, 3] >= t.min_side


@pytest.mark.parametrize("box, fragment", [
    ((1, 2, 3), "not four"), ((1, 2, float("inf"), 3), "not all finite"), ((1, 2, -3, 3), "width -3"),
    ((100, 2, 3, 3), "outside the 50x40 frame"), ((1, 2, 3, 3), ""),
])
def test_box_problem(box: tuple[float, ...], fragment: str) -> None:
    why = g.box_problem(box, (40, 50))
    assert (fragment in why) and (bool(why) == bool(fragment))


def test_otb_metrics() -> None:
    a = np.array([0.0, 0.0, 10.0, 10.0])
    assert iou(a, a) == 1.0 and iou(a, a + [5, 0, 0, 0]) == pytest.approx(50 / 150)
    assert iou(a, a + [20, 0, 0, 0]) == 0.0
    truth = np.tile(a, (5, 1))
    perfect = track_report([truth], [truth])
    assert perfect.mean_iou == 1.0 and perfect.precision_20px == 1.0 and perfect.frames == 4
    assert perfect.success_auc == pytest.approx(20 / 21)  # OTB: overlap > t, t up to 1
    far = truth + [30, 0, 0, 0]
    lost = track_report([far], [truth])
    assert lost.mean_iou == 0.0 and lost.precision_20px == 0.0 and lost.mean_centre_error_px == 30.0
    assert len(lost.success_curve) == len(SUCCESS_THRESHOLDS)


def test_stream_is_endless_enough() -> None:
    frames = stream(size=(48, 64), frames=5)
    got = list(frames)
    assert len(got) == 5 and got[0][0].shape == (48, 64, 3) and got[0][1].shape == (4,)

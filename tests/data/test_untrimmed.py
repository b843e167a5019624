"""The untrimmed set: rendered videos with per-frame labels, written as files with a segments CSV, and the
segments reader's refusals (each names the file and line, what it got, what it expected and the fix)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelstm.data.commands import data
from edgelstm.data.synthetic_source import write_video
from edgelstm.data.untrimmed import BACKGROUND_INDEX, instances, load_untrimmed
from edgelstm.data.untrimmed_synth import UNTRIMMED_CLASSES, UntrimmedConfig, render_video
from edgelstm.errors import DataError


def test_videos_are_deterministic_with_actions_between_background() -> None:
    cfg = UntrimmedConfig(seconds=20, seed=1)
    frames, labels = render_video(cfg, "train", 0)
    again, labels2 = render_video(cfg, "train", 0)
    other, _ = render_video(cfg, "val", 0)
    assert frames.shape == (300, 32, 32, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, again)
    np.testing.assert_array_equal(labels, labels2)
    assert not np.array_equal(frames[:50], other[:50])
    found = instances(labels)
    assert len(found) >= 3 and labels[0] == BACKGROUND_INDEX
    lo, hi = (round(s * cfg.fps) for s in cfg.action_s)
    assert all(lo <= g.end - g.start <= hi for g in found[:-1])  # the last one may be cut by the video's end
    assert all(a.end < b.start for a, b in zip(found, found[1:]))  # background between two actions
    assert 0.3 < (labels == BACKGROUND_INDEX).mean() < 0.8


def test_cli_writes_videos_and_segments_that_load_back(tmp_path: Path) -> None:
    out = tmp_path / "ut"
    res = CliRunner().invoke(data, ["synthetic", "--untrimmed", "--out", str(out), "--seconds", "6", "--train", "1",
                                    "--val", "1", "--test", "1", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert (out / "segments.csv").read_text().splitlines()[0] == "video,label,start_s,end_s"
    ds = load_untrimmed(out, size=(32, 32))
    cfg = UntrimmedConfig(seconds=6, seed=2, train=1, val=1, test=1)
    for split in ("train", "val", "test"):
        video = ds[split][0]
        frames, labels = render_video(cfg, split, 0)
        assert [ds.classes[k] for k in video.labels] == [UNTRIMMED_CLASSES[k] for k in labels]
        assert (out / "labels" / split / f"{split}_0000.txt").read_text().split() == \
            [UNTRIMMED_CLASSES[k] for k in labels]
        assert np.abs(video.frames.astype(int) - frames).mean() < 12  # MJPG is lossy, not wrong
    assert ds.fps == 15.0 and ds.classes == UNTRIMMED_CLASSES  # untrimmed.json keeps classes no segment uses
    segments = out / "segments.csv"
    segments.write_text(segments.read_text().replace(",move_", ",walk_", 1))
    with pytest.raises(DataError, match=r"segments.csv:2: label 'walk_\w+' is not one of the classes untrimmed.json"):
        load_untrimmed(out, size=(32, 32))


@pytest.fixture()
def one_video(tmp_path: Path) -> Path:
    """A folder with train/a.avi: 30 frames at 15 fps (2 s)."""
    (tmp_path / "train").mkdir()
    write_video(tmp_path / "train" / "a.avi", np.full((30, 16, 16, 3), 90, np.uint8), 15.0)
    return tmp_path


@pytest.mark.parametrize("rows, line, needle", [
    (["video,label,start", "train/a.avi,jump,0,1"], 1, "no start_s, end_s"),
    (["video,label,start_s,end_s", "train/a.avi,jump,zero,1"], 2, "start_s is 'zero'; expected a finite number"),
    (["video,label,start_s,end_s", "train/a.avi,jump,0.5,1", "train/a.avi,jump,1.2,1.0"], 3,
     "end_s 1 is not after start_s 1.2"),
    (["video,label,start_s,end_s", "train/a.avi,jump,-0.5,1"], 2, "start_s -0.5 is before the video starts"),
    (["video,label,start_s,end_s", "train/a.avi,jump,0.0,1.0", "train/a.avi,wave,0.8,1.5"], 3,
     "overlaps jump 0-1s (line 2)"),
    (["video,label,start_s,end_s", "train/b.avi,jump,0,1"], 2, "video 'train/b.avi' is not under"),
    (["video,label,start_s,end_s", "train/a.avi,jump,1,3.5"], 2, "ends after 'train/a.avi' (2.000s, 30 frames"),
    (["video,label,start_s,end_s", "train/a.avi,background,0,1"], 2, "label 'background'"),
    (["video,label,start_s,end_s", "train/a.avi,jump,0,1,extra"], 2, "5 fields"),
])
def test_segments_reader_refuses_with_file_and_line(one_video: Path, rows: list[str], line: int,
                                                    needle: str) -> None:
    csv = one_video / "segments.csv"
    csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        load_untrimmed(one_video, size=(16, 16))
    msg = str(e.value)
    assert f"segments.csv:{line}:" in msg and needle in msg and "Fix:" in msg, msg


def test_frames_outside_segments_are_background(one_video: Path) -> None:
    (one_video / "segments.csv").write_text("video,label,start_s,end_s\ntrain/a.avi,jump,0.5,1.0\n")
    ds = load_untrimmed(one_video, size=(16, 16))
    labels = ds["train"][0].labels
    # frame i spans [i/15, (i+1)/15): its middle is inside [0.5, 1.0) for i = 7..14
    assert np.flatnonzero(labels).tolist() == list(range(7, 15)) and ds.classes == ("background", "jump")

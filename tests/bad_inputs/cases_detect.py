"""Bad inputs of the detection task: segments CSVs (`edgelstm train --task detect --data`) and a teacher that is
not a detector."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.bad_inputs.harness import Outcome, World, case, run_cli


def _segments(root: Path, rows: str) -> Path:
    """``root/train/a.avi`` (30 frames at 15 fps: 2 s) and ``root/segments.csv`` holding ``rows`` under the header."""
    from edgelstm.data.synthetic_source import write_video

    (root / "train").mkdir(parents=True)
    write_video(root / "train" / "a.avi", np.full((30, 16, 16, 3), 90, np.uint8), 15.0)
    (root / "segments.csv").write_text("video,label,start_s,end_s\n" + rows)
    return root


def _train(data: Path, tmp: Path) -> Outcome:
    out = run_cli("train", "--task", "detect", "--model", "student_tiny", "--data", data, "--size", "16,16",
                  "--clip-len", "4", "--epochs", "1", "--out", tmp / "run")
    assert not (tmp / "run").exists(), "a failed run left its --out folder behind"
    return out


@case("detect-segments-overlap", "data", "two overlapping segments of one video",
      "edgelstm train --task detect --data vids/", 1, "overlaps jump 0-1s (line 2)")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_segments(tmp / "vids", "train/a.avi,jump,0,1\ntrain/a.avi,wave,0.5,1.5\n"), tmp)


@case("detect-segments-past-end", "data", "a segment that ends after its video",
      "edgelstm train --task detect --data vids/", 1, "ends after 'train/a.avi' (2.000s, 30 frames at 15 fps)")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_segments(tmp / "vids", "train/a.avi,jump,1,3.5\n"), tmp)


@case("detect-segments-time", "data", "a segment time that is not a number",
      "edgelstm train --task detect --data vids/", 1, "segments.csv:2: start_s is 'zero'")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_segments(tmp / "vids", "train/a.avi,jump,zero,1\n"), tmp)


@case("detect-teacher-classifier", "options", "a classifier given as a detector's teacher",
      "edgelstm distill --task detect --teacher classifier.pt", 2, "expected a checkpoint trained with --task detect")
def _(w: World, tmp: Path) -> Outcome:
    return run_cli("distill", "--task", "detect", "--teacher", w.ckpt, "--student", "student_tiny", "--data",
                   "synthetic", "--counts", "1,1,1", "--video-seconds", "4", "--epochs", "1", "--out", tmp / "run")


@case("detect-no-val", "data", "untrimmed videos with no validation split",
      "edgelstm train --task detect --data vids/", 1, "the val split has 0 video(s) and no action in them")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_segments(tmp / "vids", "train/a.avi,jump,0.5,1.5\n"), tmp)


@case("detect-unlabeled-empty", "data", "an --unlabeled folder with no video in it",
      "edgelstm distill --task detect --unlabeled footage/", 1, "no video files here")
def _(w: World, tmp: Path) -> Outcome:
    tiny = ("--data", "synthetic", "--counts", "1,1,1", "--video-seconds", "4", "--clip-len", "8", "--size",
            "16,16", "--epochs", "1", "--target-false-alarms", "100000")
    teacher = run_cli("train", "--task", "detect", "--model", "teacher_tiny", *tiny, "--out", tmp / "teacher")
    assert teacher.code == 0, teacher.text
    (tmp / "footage").mkdir()
    (tmp / "footage" / "notes.txt").write_text("camera 3, night shift\n")
    out = run_cli("distill", "--task", "detect", "--teacher", tmp / "teacher" / "best.pt", "--student",
                  "student_tiny", *tiny, "--unlabeled", tmp / "footage", "--out", tmp / "run")
    assert not (tmp / "run").exists(), "a failed run left its --out folder behind"
    return out

"""Bad inputs of the tracking task: OTB box files (`edgelstm train --task track --data`), the start box of a
tracker's demo (`--init-box`), and a model that cannot track."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.bad_inputs.harness import Outcome, World, _demo, case, run_cli


def _sequences(root: Path, bad: list[str]) -> Path:
    """Three good OTB sequences of 3 frames (30x20) and one whose groundtruth_rect.txt holds ``bad``."""
    for name, lines in (("a", ["1,2,3,4"] * 3), ("b", ["1,2,3,4"] * 3), ("c", ["1,2,3,4"] * 3), ("d", bad)):
        (root / name / "img").mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / name / "img" / f"{i + 1:04d}.png"), np.full((20, 30, 3), 90, np.uint8))
        (root / name / "groundtruth_rect.txt").write_text("".join(f"{ln}\n" for ln in lines))
    return root


def _train(data: Path, tmp: Path, *extra: object) -> Outcome:
    return run_cli("train", "--task", "track", "--model", "tracker_tiny", "--data", data, "--clip-len", "3",
                   "--epochs", "1", "--out", tmp / "run", *extra)


def _track_bundle(w: World) -> Path:
    """A tiny tracker's bundle, made once for the catalogue (one epoch on a few sequences)."""
    bundle = w.root / "track-bundle"
    if not bundle.is_dir():
        ckpt = w.root / "track-run"
        assert run_cli("train", "--task", "track", "--model", "tracker_tiny", "--size", "32,32", "--counts", "4,1,1",
                       "--clip-len", "4", "--epochs", "1", "--out", ckpt).code == 0
        assert run_cli("export", ckpt / "best.pt", "--out", bundle).code == 0
    return bundle


@case("track-box-not-four", "data", "a tracking box line that is not four numbers",
      "edgelstm train --task track --data seqs/", 1, "line 2 is '1,2,3'")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_sequences(tmp / "seqs", ["1,2,3,4", "1,2,3", "1,2,3,4"]), tmp)


@case("track-box-outside", "data", "a tracking box outside its frame", "edgelstm train --task track --data seqs/", 1,
      "is outside the 30x20 frame")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_sequences(tmp / "seqs", ["1,2,3,4", "40,25,3,4", "1,2,3,4"]), tmp)


@case("track-box-empty", "data", "a tracking box of zero width", "edgelstm train --task track --data seqs/", 1,
      "width 0 and height 4")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_sequences(tmp / "seqs", ["1,2,3,4", "1,2,0,4", "1,2,3,4"]), tmp)


@case("track-box-count", "data", "fewer tracking boxes than frames", "edgelstm train --task track --data seqs/", 1,
      "has 2 boxes for 3 frames")
def _(w: World, tmp: Path) -> Outcome:
    return _train(_sequences(tmp / "seqs", ["1,2,3,4", "1,2,3,4"]), tmp)


@case("track-not-a-tracker", "options", "a classifier model with --task track",
      "edgelstm train --task track --model student", 2, "model 'student' with --task track")
def _(w: World, tmp: Path) -> Outcome:
    return run_cli("train", "--task", "track", "--model", "student", "--size", "32,32", "--counts", "2,1,1",
                   "--epochs", "1", "--out", tmp / "run")


@case("track-init-box-size", "options", "a tracker's --init-box of zero width", "edgelstm demo B --init-box 10,10,0,5",
      2, "--init-box '10,10,0,5'")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(_track_bundle(w), "--init-box", "10,10,0,5")


@case("track-init-box-outside", "frame", "a tracker's --init-box outside the source's frames",
      "edgelstm demo B --init-box 900,900,20,20", 2, "is outside the 320x240 frame")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(_track_bundle(w), "--init-box", "900,900,20,20", "--jsonl", tmp / "d.jsonl")

"""Bad checkpoints (`edgelstm export CHECKPOINT`) and bad training data (`edgelstm train --data`)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


from tests.bad_inputs.harness import Outcome, World, _export, case, run_cli


# === checkpoints (edgelstm export CHECKPOINT) ===============================================
class _Payload:
    """An object whose unpickling would create a file: proof of whether pickled code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _export(ckpt: Path, out: Path, *extra: object) -> Outcome:
    return run_cli("export", ckpt, "--out", out, *extra)


@case("checkpoint-missing", "checkpoint", "a checkpoint path that does not exist", "edgelstm export nope.pt", 1,
      "nope.pt: no such checkpoint file")
def _(w: World, tmp: Path) -> Outcome:
    out = _export(tmp / "nope.pt", tmp / "out")
    assert not (tmp / "out").exists()
    return out


@case("checkpoint-not-ours", "checkpoint", "a torch file that is not an edgelstm checkpoint (a bare state_dict)",
      "edgelstm export other.pt", 1, "other.pt: is not an edgelstm checkpoint")
def _(w: World, tmp: Path) -> Outcome:
    import torch

    torch.save({"weight": torch.zeros(3)}, tmp / "other.pt")
    out = _export(tmp / "other.pt", tmp / "out")
    assert not (tmp / "out").exists()
    return out


@case("checkpoint-pickle", "checkpoint", "a checkpoint that needs pickle (it holds a Python object)",
      "edgelstm export evil.pt", 1, "this file needs pickle to load")
def _(w: World, tmp: Path) -> Outcome:
    import torch

    marker = tmp / "pickled-code-ran"
    torch.save({"format": "edgelstm-checkpoint", "version": 1, "payload": _Payload(marker)}, tmp / "evil.pt")
    out = _export(tmp / "evil.pt", tmp / "out")
    assert not marker.exists(), "pickled code ran while loading a checkpoint"
    assert not (tmp / "out").exists()
    return out


@case("checkpoint-truncated", "checkpoint", "a truncated checkpoint", "edgelstm export half.pt", 1,
      "half.pt: cannot be read as a torch checkpoint")
def _(w: World, tmp: Path) -> Outcome:
    data = w.ckpt.read_bytes()
    (tmp / "half.pt").write_bytes(data[: len(data) // 2])
    return _export(tmp / "half.pt", tmp / "out")


@case("checkpoint-not-torch", "checkpoint", "a file that is not a checkpoint at all", "edgelstm export notes.pt",
      1, "notes.pt: cannot be read as a torch checkpoint")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "notes.pt").write_text("just some notes\n")
    return _export(tmp / "notes.pt", tmp / "out")


# === data (edgelstm train --data) ===========================================================
def _train(data: object, out: Path) -> Outcome:
    res = run_cli("train", "--data", data, "--out", out, "--epochs", "1", "--size", "16,16", "--clip-len", "4")
    assert not out.exists(), "a failed run left its --out folder behind"
    return res


@case("data-missing", "data", "a --data path that does not exist", "edgelstm train --data nowhere/", 1,
      "nowhere: no such file or folder")
def _(w: World, tmp: Path) -> Outcome:
    return _train(tmp / "nowhere", tmp / "run")


@case("data-no-classes", "data", "a video folder with no class folders", "edgelstm train --data videos/", 1,
      "no class folders here")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "videos").mkdir()
    shutil.copy(w.video, tmp / "videos" / "loose.avi")
    return _train(tmp / "videos", tmp / "run")


@case("data-no-clips", "data", "a class folder with no clips", "edgelstm train --data videos/", 1,
      "videos/walk: class folder has no video clips")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "videos" / "walk").mkdir(parents=True)
    (tmp / "videos" / "run").mkdir()
    shutil.copy(w.video, tmp / "videos" / "run" / "a.avi")
    return _train(tmp / "videos", tmp / "run")


@case("data-not-a-video", "data", "a file that is not a video (in a class folder)", "edgelstm train --data videos/",
      1, "notes.avi: OpenCV cannot open this video")
def _(w: World, tmp: Path) -> Outcome:
    for cls in ("jump", "walk"):
        (tmp / "videos" / cls).mkdir(parents=True)
        for i in range(3):
            shutil.copy(w.video, tmp / "videos" / cls / f"{i}.avi")
    (tmp / "videos" / "walk" / "notes.avi").write_text("not a video\n")
    return _train(tmp / "videos", tmp / "run")


@case("data-video-no-frames", "data", "a video whose header claims frames it does not hold",
      "edgelstm train --data videos/", 1, "hollow.avi: the video yields no frames")
def _(w: World, tmp: Path) -> Outcome:
    for cls in ("jump", "walk"):
        (tmp / "videos" / cls).mkdir(parents=True)
        for i in range(3):
            shutil.copy(w.video, tmp / "videos" / cls / f"{i}.avi")
    data = w.video.read_bytes()
    (tmp / "videos" / "walk" / "hollow.avi").write_bytes(data[: _first_frame_offset(data)])  # header only
    return _train(tmp / "videos", tmp / "run")


def _first_frame_offset(avi: bytes) -> int:
    """Where the first MJPG frame's data starts in an AVI ('00dc' chunk): cutting there keeps only the header."""
    return avi.index(b"00dc", avi.index(b"movi"))


@case("data-unknown-kind", "data", "a --data file of a kind edgelstm does not read", "edgelstm train --data notes.txt",
      1, "cannot tell what kind of data '.txt' is")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "notes.txt").write_text("x\n")
    return _train(tmp / "notes.txt", tmp / "run")

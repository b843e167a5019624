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


# --- features files, lists and one-class sets that used to train absurd models or crash ------------
def _npz(path: Path, X: Any = None, y: Any = None, **extra: Any) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4, 3)).astype(np.float32) if X is None else X
    y = np.arange(len(X)) % 3 if y is None else y
    np.savez(path, X=X, y=y, **extra)
    return path


@case("features-sparse-labels", "data", "a features .npz with labels up to 100000 and no class list",
      "edgelstm train --data ids.npz", 1, "y has 3 distinct labels but runs up to 100000")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "ids.npz", y=np.array([0, 7, 100000] * 4)), tmp / "run")


@case("features-one-class", "data", "a features .npz whose labels are all one class", "edgelstm train --data one.npz",
      1, "has a single class")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "one.npz", y=np.zeros(12, np.int64)), tmp / "run")


@case("features-empty-val", "data", "a features .npz too small to carve a validation split",
      "edgelstm train --data tiny.npz", 1, "the 'val' split is empty")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    X = np.ones((3, 4, 3), np.float32)
    return _train(_npz(tmp / "tiny.npz", X=X, y=np.arange(3), split=np.array(["train"] * 3)), tmp / "run")


@case("features-no-sequences", "data", "a features .npz with N=0 sequences", "edgelstm train --data empty.npz", 1,
      "X has shape (0, 4, 3): no sequences")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "empty.npz", X=np.zeros((0, 4, 3), np.float32), y=np.zeros(0, np.int64)), tmp / "run")


@case("features-no-steps", "data", "a features .npz with T=0 steps", "edgelstm train --data t0.npz", 1,
      "X has shape (12, 0, 3): no steps")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "t0.npz", X=np.zeros((12, 0, 3), np.float32)), tmp / "run")


@case("features-no-features", "data", "a features .npz with F=0 features per step", "edgelstm train --data f0.npz",
      1, "X has shape (12, 4, 0): no features")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "f0.npz", X=np.zeros((12, 4, 0), np.float32)), tmp / "run")


@case("features-complex", "data", "a features .npz with complex X", "edgelstm train --data c.npz", 1,
      "X has dtype complex64")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "c.npz", X=np.ones((12, 4, 3), np.complex64)), tmp / "run")


@case("features-fractional-labels", "data", "a features .npz with fractional float labels (2.5)",
      "edgelstm train --data frac.npz", 1, "y holds 2.5 (dtype float64), not a whole number")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "frac.npz", y=np.array([0.0, 1.0, 2.5] * 4)), tmp / "run")


@case("features-negative-label", "data", "a features .npz with a negative label", "edgelstm train --data neg.npz", 1,
      "y holds label -1, which is not a class index")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "neg.npz", y=np.array([0, 1, -1] * 4)), tmp / "run")


@case("features-label-overflow", "data", "a features .npz with a uint64 label beyond int64 (would wrap negative)",
      "edgelstm train --data big.npz", 1, "y holds label 18446744073709551615")
def _(w: World, tmp: Path) -> Outcome:
    import numpy as np

    return _train(_npz(tmp / "big.npz", y=np.array([0, 1, 2**64 - 1] * 4, np.uint64)), tmp / "run")


def _csv_videos(w: World, tmp: Path) -> list[Path]:
    videos = []
    for i in range(6):
        videos.append(tmp / f"v{i}.avi")
        shutil.copy(w.video, videos[-1])
    return videos


@case("csv-latin1", "data", "a CSV list saved in Latin-1 (not UTF-8)", "edgelstm train --data list.csv", 1,
      "list.csv: is not UTF-8 text (byte 0xe9")
def _(w: World, tmp: Path) -> Outcome:
    rows = [f"{v.name},{'café' if i % 2 else 'walk'}" for i, v in enumerate(_csv_videos(w, tmp))]
    (tmp / "list.csv").write_bytes(("path,label\n" + "\n".join(rows) + "\n").encode("latin-1"))
    return _train(tmp / "list.csv", tmp / "run")


@case("csv-nan-times", "data", "a CSV list with NaN start/end times", "edgelstm train --data list.csv", 1,
      "row 3 has start nans and end 2.0s")
def _(w: World, tmp: Path) -> Outcome:
    rows = [f"{v.name},{'jump' if i % 2 else 'walk'},0.0,2.0" for i, v in enumerate(_csv_videos(w, tmp))]
    rows[1] = rows[1].replace(",0.0,", ",nan,")
    (tmp / "list.csv").write_text("path,label,start_s,end_s\n" + "\n".join(rows) + "\n")
    return _train(tmp / "list.csv", tmp / "run")


@case("data-one-class", "data", "a video folder with a single class folder", "edgelstm train --data videos/", 1,
      "has a single class ('walk'")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "videos" / "walk").mkdir(parents=True)
    for i in range(4):
        shutil.copy(w.video, tmp / "videos" / "walk" / f"{i}.avi")
    return _train(tmp / "videos", tmp / "run")


# === teachers (edgelstm distill --teacher SPEC) ===============================================
def _distill(tmp: Path, teacher: object, *extra: object) -> Outcome:
    out = tmp / "run"
    res = run_cli("distill", "--teacher", teacher, "--data", "synthetic", "--out", out, "--size", "16,16",
                  "--clip-len", "4", "--epochs", "1", "--cache-dir", tmp / "cache", *extra)
    assert not out.exists(), "a refused distillation left its --out folder behind"
    return res


def _user_teacher(tmp: Path, body: str) -> Path:
    """A user's teacher file: ``make()`` returns what ``body`` gives."""
    path = tmp / "teacher.py"
    path.write_text(f"from torch import nn\n\n\ndef make():\n    return {body}\n")
    return path


def _torchvision_imported() -> None:
    """Import torchvision first, so its one-time 'compiled ops' warning is not part of the case's message."""
    from edgelstm.models.tv import import_torchvision

    import_torchvision("the catalogue")


@case("teacher-torchvision-unknown", "checkpoint", "a torchvision teacher name that does not exist",
      "edgelstm distill --teacher torchvision:r3d18", 2,
      "unknown torchvision video model 'r3d18' (did you mean 'r3d_18'?)")
def _(w: World, tmp: Path) -> Outcome:
    return _distill(tmp, "torchvision:r3d18")


@case("teacher-torchvision-no-weights", "checkpoint", "a torchvision teacher without --teacher-weights",
      "edgelstm distill --teacher torchvision:r3d_18", 2, "needs its weights, and edgelstm never downloads")
def _(w: World, tmp: Path) -> Outcome:
    _torchvision_imported()
    return _distill(tmp, "torchvision:r3d_18")


@case("teacher-factory-missing", "checkpoint", "a teacher file.py:factory whose factory does not exist",
      "edgelstm distill --teacher teacher.py:mkae", 2, "no factory 'mkae' in")
def _(w: World, tmp: Path) -> Outcome:
    return _distill(tmp, f"{_user_teacher(tmp, 'nn.Identity()')}:mkae")


@case("teacher-factory-not-module", "checkpoint", "a teacher factory that returns something that is not an nn.Module",
      "edgelstm distill --teacher teacher.py:make", 2, "the factory returned an object of type int")
def _(w: World, tmp: Path) -> Outcome:
    return _distill(tmp, f"{_user_teacher(tmp, '42')}:make")


@case("teacher-classes-unknown", "checkpoint", "a --teacher-classes map naming a class the dataset does not have",
      "edgelstm distill --teacher best.pt --teacher-classes map.json", 2,
      "dataset class 'move_lft' is not in the dataset (did you mean 'move_left'?)")
def _(w: World, tmp: Path) -> Outcome:
    import json

    (tmp / "map.json").write_text(json.dumps({"move_lft": 0}))
    return _distill(tmp, w.ckpt, "--teacher-classes", tmp / "map.json")


@case("teacher-features-not-checkpoint", "checkpoint", "--feature-weight with a teacher that is not a checkpoint",
      "edgelstm distill --teacher teacher.py:make --feature-weight 0.5", 2,
      "--feature-weight > 0 with a python teacher")
def _(w: World, tmp: Path) -> Outcome:
    return _distill(tmp, f"{_user_teacher(tmp, 'nn.Identity()')}:make", "--feature-weight", "0.5")


def _train_model(tmp: Path, *extra: object) -> Outcome:
    out = tmp / "run"
    res = run_cli("train", "--data", "synthetic", "--out", out, "--size", "16,16", "--clip-len", "4", "--epochs", "1",
                  "--counts", "8,4,4", "--cache-dir", tmp / "cache", *extra)
    assert not out.exists(), "a refused training left its --out folder behind"
    return res


@case("init-weights-wrong-architecture", "checkpoint", "--init-weights from another architecture",
      "edgelstm train --model torchvision:r3d_18 --init-weights student.pth", 1,
      "--init-weights: the weights do not fit the model (")
def _(w: World, tmp: Path) -> Outcome:
    import torch

    from edgelstm.models.checkpoint import load_checkpoint

    _torchvision_imported()
    torch.save(load_checkpoint(w.ckpt).model.state_dict(), tmp / "student.pth")
    return _train_model(tmp, "--model", "torchvision:r3d_18", "--init-weights", tmp / "student.pth")


@case("video-transformer-wrong-size", "checkpoint", "a torchvision video transformer at a size its embeddings do not fit",
      "edgelstm train --model torchvision:mvit_v2_s --size 16,16", 2,
      "its positional embeddings fit only 16 frames of 224x224")
def _(w: World, tmp: Path) -> Outcome:
    return _train_model(tmp, "--model", "torchvision:mvit_v2_s")

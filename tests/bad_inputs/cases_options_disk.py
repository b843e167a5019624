"""Bad options, devices and backends (demo, export, quantize, profile), and a disk that fills up mid-export."""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgelstm import spec
from tests.bad_inputs.harness import Outcome, World, _demo, _export, case, run_cli


# === devices, backends and options ==========================================================
@case("device-unknown", "options", "an unknown --device", "edgelstm demo B --device nvidia-gpv", 1,
      "unknown device 'nvidia-gpv' (did you mean 'nvidia-cuda'?)")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle, "--device", "nvidia-gpv")


@case("device-unusable", "options", "a --device this machine cannot run (no CUDA)",
      "edgelstm demo B --device nvidia-cuda", 1, "CUDAExecutionProvider is not available here")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle, "--device", "nvidia-cuda")


@case("device-profile-key", "options", "a device profile file with a misspelt key", "edgelstm demo B --device my.toml",
      1, "unknown profile key 'thread' (did you mean 'threads'?)")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "my.toml").write_text('backend = "onnxruntime"\ndevice = "CPU"\nthread = 2\n')
    return _demo(w.bundle, "--device", tmp / "my.toml")


@case("backend-unknown", "options", "an unknown --backend", "edgelstm demo B --backend tensorrt", 2,
      "Invalid value for '--backend': 'tensorrt' is not one of 'onnxruntime', 'openvino'",
      guidance="Try 'edgelstm demo --help' for help")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle, "--backend", "tensorrt")


@case("backend-not-in-bundle", "options", "a --backend the bundle was not exported for",
      "edgelstm demo B --backend openvino", 1, "the bundle has no step model for openvino fp32")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle, "--backend", "openvino")


@case("backend-device-conflict", "options", "a --backend that cannot drive the --device profile",
      "edgelstm demo B --device intel-npu --backend onnxruntime", 2, "which --backend onnxruntime cannot drive")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle, "--device", "intel-npu", "--backend", "onnxruntime")


@case("precision-int8-missing", "options", "--precision int8 on a bundle without INT8 models",
      "edgelstm demo B --precision int8", 1, "the bundle has no step model for onnxruntime int8")
def _(w: World, tmp: Path) -> Outcome:
    return _demo(w.bundle, "--precision", "int8")


@case("max-frames-zero", "options", "--max-frames 0", "edgelstm demo B --max-frames 0", 2,
      "Invalid value for '--max-frames'", guidance="Try 'edgelstm demo --help' for help")
def _(w: World, tmp: Path) -> Outcome:
    return run_cli("demo", w.bundle, "--headless", "--max-frames", "0")


@case("record-extension", "options", "--record to a file type that is not a video (with --jsonl)",
      "edgelstm demo B --record out.gif --jsonl d.jsonl", 2, "--record")
def _(w: World, tmp: Path) -> Outcome:
    out = run_cli("demo", w.bundle, "--headless", "--max-frames", "3", "--record", tmp / "out.gif",
                  "--jsonl", tmp / "d.jsonl")
    assert sorted(p.name for p in tmp.iterdir()) == [], "a refused demo left files behind"
    return out


@case("jsonl-kept-on-failure", "options", "--jsonl naming an existing log, and a source that fails to open",
      "edgelstm demo B --source notes.mp4 --jsonl old.jsonl", 1, "OpenCV cannot open")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "notes.mp4").write_text("hello\n")
    (tmp / "old.jsonl").write_text('{"decision": 0}\n')
    out = _demo(w.bundle, "--source", tmp / "notes.mp4", "--jsonl", tmp / "old.jsonl")
    assert (tmp / "old.jsonl").read_text() == '{"decision": 0}\n', "a failed demo replaced an existing log"
    assert sorted(p.name for p in tmp.iterdir()) == ["notes.mp4", "old.jsonl"], "a failed demo left files behind"
    return out


@case("int8-no-calibration", "options", "--int8 with no --calib-data and no embedded default",
      "edgelstm export features.pt --int8", 2, "INT8 needs calibration data and none was given")
def _(w: World, tmp: Path) -> Outcome:
    out = _export(w.fckpt, tmp / "out", "--int8")
    assert not (tmp / "out").exists()
    return out


@case("quantize-no-calibration", "options", "quantize with no --calib-data and no embedded default",
      "edgelstm quantize BUNDLE", 2, "INT8 needs calibration data and none was given")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b", features=True)
    before = {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()}
    out = run_cli("quantize", b)
    assert {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp.iterdir()) == ["b"]
    return out


@case("export-out-exists", "options", "export onto an existing bundle without --force",
      "edgelstm export C --out BUNDLE", 2, "already exists")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    before = (b / spec.MANIFEST_NAME).read_bytes()
    out = _export(w.ckpt, b)
    assert (b / spec.MANIFEST_NAME).read_bytes() == before
    return out


@case("export-size", "options", "an --size that is not H,W", "edgelstm export C --size 64", 2,
      "--size '64' is not H,W")
def _(w: World, tmp: Path) -> Outcome:
    out = _export(w.ckpt, tmp / "out", "--size", "64")
    assert not (tmp / "out").exists()
    return out


@case("export-format", "options", "an unknown --format", "edgelstm export C --format tflite", 2,
      "unknown format 'tflite'")
def _(w: World, tmp: Path) -> Outcome:
    out = _export(w.ckpt, tmp / "out", "--format", "tflite")
    assert not (tmp / "out").exists()
    return out


# === edgelstm profile ======================================================================
@case("profile-device-unusable", "options", "a profile --device this machine cannot run",
      "edgelstm profile B --device nvidia-cuda", 1, "device 'nvidia-cuda' cannot run here")
def _(w: World, tmp: Path) -> Outcome:
    return run_cli("profile", w.bundle, "--device", "nvidia-cuda", "--no-baselines", "--frames", "10")


@case("profile-precision-unknown", "options", "an unknown profile --precision", "edgelstm profile B --precision int9",
      2, "unknown precision 'int9' (did you mean 'int8'?)")
def _(w: World, tmp: Path) -> Outcome:
    return run_cli("profile", w.bundle, "--precision", "int9", "--no-baselines", "--frames", "10")


@case("profile-source-missing", "source", "a profile --source that does not exist",
      "edgelstm profile B --source gone.mp4 --json r.json", 1, "no such file or folder")
def _(w: World, tmp: Path) -> Outcome:
    out = run_cli("profile", w.bundle, "--source", tmp / "gone.mp4", "--no-baselines", "--frames", "10",
                  "--json", tmp / "r.json")
    assert not (tmp / "r.json").exists()
    return out


# === the disk fills up while exporting ======================================================
def _no_space(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _assert_old_bundle_intact(b: Path, before: dict[str, bytes], parent: Path) -> None:
    from edgelstm.runtime.bundle import load_bundle

    assert {str(p.relative_to(b)): p.read_bytes() for p in b.rglob("*") if p.is_file()} == before
    load_bundle(b)  # every hash still verifies
    assert sorted(p.name for p in parent.iterdir()) == ["b"], "a partial or old folder was left behind"


def _disk_full_export(w: World, tmp: Path, patch: Callable[[pytest.MonkeyPatch], None]) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    before = {str(p.relative_to(b)): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    with pytest.MonkeyPatch.context() as mp:
        patch(mp)
        out = _export(w.ckpt, b, "--force")
    _assert_old_bundle_intact(b, before, tmp)
    return out


@case("disk-full-model", "disk", "the disk fills up while a model file is written (export --force over a bundle)",
      "edgelstm export C --out BUNDLE --force", 1, "the disk is full; nothing was written")
def _(w: World, tmp: Path) -> Outcome:
    import onnx

    return _disk_full_export(w, tmp, lambda mp: mp.setattr(onnx, "save", _no_space))


@case("disk-full-manifest", "disk", "the disk fills up while manifest.json, the last file, is written",
      "edgelstm export C --out BUNDLE --force", 1, "the disk is full; nothing was written")
def _(w: World, tmp: Path) -> Outcome:
    real = Path.write_text

    def write_text(self: Path, *a: Any, **k: Any) -> int:
        if self.name.startswith(f".{spec.MANIFEST_NAME}."):
            _no_space()
        return real(self, *a, **k)

    return _disk_full_export(w, tmp, lambda mp: mp.setattr(Path, "write_text", write_text))


# === training options (edgelstm train / distill): refused before the run folder exists ==========
def _train_opts(tmp: Path, *extra: object, command: str = "train") -> Outcome:
    out = tmp / "run"
    res = run_cli(command, "--data", "synthetic", "--out", out, "--size", "16,16", "--clip-len", "4", *extra)
    assert not out.exists(), "a refused run left its --out folder behind"
    return res


@case("train-epochs-zero", "options", "--epochs 0", "edgelstm train --epochs 0", 2, "--epochs 0; expected a whole number >= 1")
def _(w: World, tmp: Path) -> Outcome:
    return _train_opts(tmp, "--epochs", "0")


@case("train-batch-zero", "options", "--batch-size 0", "edgelstm train --batch-size 0", 2,
      "--batch-size 0; expected a whole number >= 1")
def _(w: World, tmp: Path) -> Outcome:
    return _train_opts(tmp, "--batch-size", "0")


@case("train-lr-nan", "options", "--lr nan", "edgelstm train --lr nan", 2, "--lr nan; expected a finite number > 0")
def _(w: World, tmp: Path) -> Outcome:
    return _train_opts(tmp, "--lr", "nan")


@case("train-lr-negative", "options", "a negative --lr", "edgelstm train --lr -0.01", 2,
      "--lr -0.01; expected a finite number > 0")
def _(w: World, tmp: Path) -> Outcome:
    return _train_opts(tmp, "--lr", "-0.01")


@case("distill-temperature-zero", "options", "distill --temperature 0", "edgelstm distill --teacher T --temperature 0",
      2, "--temperature 0.0; expected a finite number > 0")
def _(w: World, tmp: Path) -> Outcome:
    return _train_opts(tmp, "--teacher", w.ckpt, "--temperature", "0", command="distill")


def _resumable(w: World, tmp: Path, epochs_done: int) -> Path:
    """A run folder whose last.pt is the world's checkpoint (32x32, clip 8) after ``epochs_done`` epochs."""
    from edgelstm.models.checkpoint import load_checkpoint, save_checkpoint

    run = tmp / "run"
    run.mkdir()
    ckpt = load_checkpoint(w.ckpt, with_extra=True)
    ckpt.extra = {**ckpt.extra, "epoch": epochs_done}
    save_checkpoint(run / "last.pt", ckpt)
    return run


def _resume(w: World, tmp: Path, *extra: object) -> Outcome:
    run = _resumable(w, tmp, epochs_done=3)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    res = run_cli("train", "--data", "synthetic", "--out", run, "--resume", *extra)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "a refused --resume changed the run folder"
    return res


@case("resume-fewer-epochs", "options", "--resume with fewer --epochs than the run already trained",
      "edgelstm train --out RUN --resume --epochs 2", 2, "already trained 3 epochs")
def _(w: World, tmp: Path) -> Outcome:
    return _resume(w, tmp, "--epochs", "2", "--size", "32,32", "--clip-len", "8")


@case("resume-other-size", "options", "--resume with another --size than the run", "edgelstm train --out RUN --resume --size 16,16",
      2, "--size 16,16 with --resume, but the run in")
def _(w: World, tmp: Path) -> Outcome:
    return _resume(w, tmp, "--epochs", "5", "--size", "16,16", "--clip-len", "8")


@case("resume-other-clip-len", "options", "--resume with another --clip-len than the run",
      "edgelstm train --out RUN --resume --clip-len 4", 2, "--clip-len 4 with --resume")
def _(w: World, tmp: Path) -> Outcome:
    return _resume(w, tmp, "--epochs", "5", "--size", "32,32", "--clip-len", "4")

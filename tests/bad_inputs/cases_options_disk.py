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


@case("jsonl-exists", "options", "--jsonl naming an existing file, without --force",
      "edgelstm demo B --jsonl old.jsonl", 2, "old.jsonl' already exists (a file)")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "old.jsonl").write_text('{"decision": 0}\n')
    out = _demo(w.bundle, "--jsonl", tmp / "old.jsonl")
    assert (tmp / "old.jsonl").read_text() == '{"decision": 0}\n', "demo replaced a file without --force"
    return out


@case("jsonl-kept-on-failure", "options", "--jsonl naming an existing log (--force), and a source that fails to open",
      "edgelstm demo B --source notes.mp4 --jsonl old.jsonl --force", 1, "OpenCV cannot open")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "notes.mp4").write_text("hello\n")
    (tmp / "old.jsonl").write_text('{"decision": 0}\n')
    out = _demo(w.bundle, "--source", tmp / "notes.mp4", "--jsonl", tmp / "old.jsonl", "--force")
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


# === outputs never destroy what they should not (issue 10 §2): refused before any work ===========
def _tree(p: Path) -> dict[str, bytes]:
    """Everything under ``p`` (a file or a folder), to show a refused command left it untouched."""
    if p.is_file():
        return {p.name: p.read_bytes()}
    return {str(q.relative_to(p)): q.read_bytes() for q in sorted(p.rglob("*")) if q.is_file()}


def _untouched(victim: Path, run: Callable[[], Outcome]) -> Outcome:
    before = _tree(victim)
    out = run()
    assert _tree(victim) == before, f"a refused command changed {victim}"
    return out


def _foreign(tmp: Path, name: str = "mine") -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "notes.txt").write_text("my own notes\n")
    (folder / "best.pt").write_bytes(b"not edgelstm's")
    return folder


@case("force-foreign-folder", "outputs", "export --force onto a folder edgelstm did not write",
      "edgelstm export C --out my-folder --force", 2, "which edgelstm did not write as a bundle")
def _(w: World, tmp: Path) -> Outcome:
    mine = _foreign(tmp)
    return _untouched(mine, lambda: _export(w.ckpt, mine, "--force"))


@case("force-run-folder", "outputs", "export --force onto the run folder holding the checkpoint",
      "edgelstm export run/best.pt --out run --force", 2, "holds a run folder")
def _(w: World, tmp: Path) -> Outcome:
    run = _resumable(w, tmp, epochs_done=1)
    (run / ".edgelstm").write_text('{"kind": "run", "version": "0.1.0"}\n')
    (run / "best.pt").write_bytes((run / "last.pt").read_bytes())
    return _untouched(run, lambda: _export(run / "best.pt", run, "--force"))


@case("force-bundle-holds-input", "outputs", "export --force onto a bundle folder that holds the checkpoint",
      "edgelstm export B/best.pt --out B --force", 2, "contains the input CHECKPOINT")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    (b / "best.pt").write_bytes(w.ckpt.read_bytes())
    return _untouched(b, lambda: _export(b / "best.pt", b, "--force"))


@case("out-under-a-file", "outputs", "an --out below a file", "edgelstm export C --out notes.txt/bundle", 2,
      "which is a file")
def _(w: World, tmp: Path) -> Outcome:
    notes = tmp / "notes.txt"
    notes.write_text("hello\n")
    out = _untouched(notes, lambda: _export(w.ckpt, notes / "bundle"))
    assert sorted(p.name for p in tmp.iterdir()) == ["notes.txt"]
    return out


@case("data-force-foreign", "outputs", "data synthetic --force onto a folder edgelstm did not write",
      "edgelstm data synthetic --out my-folder --force", 2, "which edgelstm did not write as a dataset")
def _(w: World, tmp: Path) -> Outcome:
    mine = _foreign(tmp)
    return _untouched(mine, lambda: run_cli("data", "synthetic", "--out", mine, "--force"))


@case("train-force-foreign", "outputs", "train --force onto a folder that is not a run",
      "edgelstm train --out my-folder --force", 2, "which edgelstm did not write as a run")
def _(w: World, tmp: Path) -> Outcome:
    mine = _foreign(tmp)
    return _untouched(mine, lambda: run_cli("train", "--data", "synthetic", "--out", mine, "--force",
                                            "--size", "16,16", "--clip-len", "4"))


@case("distill-out-holds-teacher", "outputs", "distill --out onto the folder holding --teacher",
      "edgelstm distill --teacher run/best.pt --out run --force", 2, "contains the input --teacher")
def _(w: World, tmp: Path) -> Outcome:
    run = _resumable(w, tmp, epochs_done=1)
    (run / "best.pt").write_bytes((run / "last.pt").read_bytes())
    return _untouched(run, lambda: run_cli("distill", "--teacher", run / "best.pt", "--data", "synthetic",
                                           "--out", run, "--force", "--size", "16,16", "--clip-len", "4"))


@case("demo-record-is-source", "outputs", "demo --record naming the --source video",
      "edgelstm demo B --source s.avi --record s.avi", 2, "is the same path as the input --source")
def _(w: World, tmp: Path) -> Outcome:
    src = tmp / "s.avi"
    src.write_bytes(w.video.read_bytes())
    return _untouched(src, lambda: _demo(w.bundle, "--source", src, "--record", src))


@case("demo-record-hardlink-source", "outputs", "demo --record naming a hard link to the --source video",
      "edgelstm demo B --source s.avi --record link.avi", 2, "is the same path as the input --source")
def _(w: World, tmp: Path) -> Outcome:
    src = tmp / "s.avi"
    src.write_bytes(w.video.read_bytes())
    os.link(src, tmp / "link.avi")
    return _untouched(src, lambda: _demo(w.bundle, "--source", src, "--record", tmp / "link.avi"))


@case("demo-jsonl-in-bundle", "outputs", "demo --jsonl naming the bundle's manifest (through a symlink)",
      "edgelstm demo B --jsonl log.jsonl (-> B/manifest.json)", 2, "lies inside the input folder BUNDLE")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    (tmp / "log.jsonl").symlink_to(b / spec.MANIFEST_NAME)
    return _untouched(b, lambda: _demo(b, "--jsonl", tmp / "log.jsonl"))


@case("demo-jsonl-is-record", "outputs", "demo --jsonl and --record on the same path",
      "edgelstm demo B --jsonl out.avi --record out.avi", 2, "is the same path as the output --record")
def _(w: World, tmp: Path) -> Outcome:
    out = _demo(w.bundle, "--jsonl", tmp / "out.avi", "--record", tmp / "out.avi")
    assert list(tmp.iterdir()) == [], "a refused demo left files behind"
    return out


@case("demo-jsonl-folder", "outputs", "demo --jsonl naming a folder", "edgelstm demo B --jsonl logs/", 2,
      "is a folder; expected a file name")
def _(w: World, tmp: Path) -> Outcome:
    logs = _foreign(tmp, "logs")
    return _untouched(logs, lambda: _demo(w.bundle, "--jsonl", logs))


@case("profile-json-proc", "outputs", "profile --json under /proc (a virtual filesystem)",
      "edgelstm profile B --json /proc/report.json", 1, "cannot be written: creating a file in '/proc' fails")
def _(w: World, tmp: Path) -> Outcome:
    return run_cli("profile", w.bundle, "--no-baselines", "--frames", "10", "--json", "/proc/report.json")


@case("profile-json-is-plot", "outputs", "profile --json and --plot on the same path",
      "edgelstm profile B --json r.out --plot r.out", 2, "is the same path as the output --plot")
def _(w: World, tmp: Path) -> Outcome:
    (tmp / "r.out").write_text("an earlier report\n")
    return _untouched(tmp / "r.out", lambda: run_cli("profile", w.bundle, "--no-baselines", "--frames", "10",
                                                     "--json", tmp / "r.out", "--plot", tmp / "r.out"))


@case("eval-out-in-bundle", "outputs", "eval --out inside the bundle it evaluates",
      "edgelstm eval B --out B/reports", 2, "lies inside the input folder TARGET")
def _(w: World, tmp: Path) -> Outcome:
    b = w.copy_bundle(tmp / "b")
    out = _untouched(b, lambda: run_cli("eval", b, "--data", "synthetic", "--out", b / "reports"))
    assert not (b / "reports").exists()
    return out


@case("quickstart-foreign-out", "outputs", "quickstart --out onto a folder edgelstm did not write",
      "edgelstm quickstart --out my-folder", 2, "which edgelstm did not write as a quickstart")
def _(w: World, tmp: Path) -> Outcome:
    mine = _foreign(tmp)
    return _untouched(mine, lambda: run_cli("quickstart", "--out", mine))

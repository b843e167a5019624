"""`edgelstm demo` and `edgelstm devices` end to end through click's CliRunner."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner
from fakes import frames, write_video
from toy_bundle import LABELS, Toy

from edgelstm.cli import cli


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_demo_synthetic_headless_jsonl_record(toy: Toy, tmp_path: Path) -> None:
    out, rec = tmp_path / "d.jsonl", tmp_path / "r.mp4"
    code, stdout, stderr = _run("demo", str(toy.path), "--source", "synthetic", "--headless", "--max-frames", "12",
                                "--fps", "30", "--jsonl", str(out), "--record", str(rec))
    assert code == 0, stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 12 and stdout == ""
    first = lines[0]
    assert first["label"] in LABELS and 0 < first["probability"] <= 1 and first["truth"] in LABELS
    assert set(first["latency_ms"]) == {"preprocess", "encoder", "step", "postprocess", "total"}
    assert first["age_ms"] >= 0 and [x["decision"] for x in lines] == list(range(12))
    assert "frames decided" in stderr and "p50" in stderr and "max frames" in stderr
    cap = cv2.VideoCapture(str(rec))
    n = 0
    while cap.read()[0]:
        n += 1
    # annotated at the synthetic camera's size: camera-like, with the model's aspect ratio
    assert n == 12 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) >= 320
    assert not list(tmp_path.glob(".*partial*"))  # temporaries renamed into place


def test_demo_file_to_stdout_without_display(toy: Toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = write_video(tmp_path / "v.avi", frames(20, (32, 32)), fps=15.0)
    code, stdout, stderr = _run("demo", str(toy.path), "--source", str(video), "--ema", "0", "--hysteresis", "0",
                                "--backend", "openvino")
    assert code == 0, stderr
    assert "No window: no display" in stderr and "end of source" in stderr
    lines = [json.loads(x) for x in stdout.splitlines()]
    assert [x["frame"] for x in lines] == list(range(20))
    assert all(x["t_media"] == pytest.approx(x["frame"] / 15, abs=1e-6) for x in lines)


@pytest.mark.parametrize("args, needle, code", [
    (["--device", "nvidia-gpv"], "did you mean 'nvidia-cuda'", 1),
    (["--device", "nvidia-cuda"], "CUDAExecutionProvider is not available", 1),
    (["--source", "/nope.mp4"], "no such file or folder '/nope.mp4'", 1),
    (["--source", "5"], "cannot open camera 5", 1),
])
def test_demo_clear_errors(toy: Toy, args: list[str], needle: str, code: int) -> None:
    got, _, stderr = _run("demo", str(toy.path), "--headless", "--max-frames", "2", *args)
    assert got == code and needle in stderr and "Fix:" in stderr and "Traceback" not in stderr


def test_demo_sigterm_finishes_cleanly(toy: Toy, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "edgelstm", "demo", str(toy.path), "--source", "synthetic",
                          "--headless", "--jsonl", str(out), "--fps", "30"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / ".d.jsonl.partial").exists() or (tmp_path / ".d.jsonl.partial").stat().st_size == 0:
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.1)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=20)
    assert p.returncode == 0, stderr
    assert "stopped" in stderr and "frames decided" in stderr
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(x)["label"] for x in lines)


def test_devices_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my-box.toml").write_text('backend = "onnxruntime"\ndevice = "CPU"\nthreads = 2\n')
    monkeypatch.setenv("EDGELSTM_DEVICES", str(tmp_path))
    code, stdout, _ = _run("devices", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(stdout)}
    assert rows["cpu"]["usable"] and rows["my-box"]["usable"] and rows["my-box"]["threads"] == 2
    assert not rows["nvidia-cuda"]["usable"] and "CUDAExecutionProvider missing" in rows["nvidia-cuda"]["reason"]
    assert not rows["intel-npu"]["usable"] and "no NPU device" in rows["intel-npu"]["reason"]
    code, stdout, _ = _run("devices")
    assert code == 0 and "intel-gpu" in stdout and "my-box" in stdout


def test_demo_user_profile_file(toy: Toy, tmp_path: Path) -> None:
    prof = tmp_path / "mine.toml"
    prof.write_text('backend = "openvino"\ndevice = "CPU"\ninference_precision = "f32"\nthreads = 1\n')
    code, stdout, stderr = _run("demo", str(toy.path), "--device", str(prof), "--headless", "--max-frames", "3",
                                "--fps", "30")
    assert code == 0, stderr
    assert "openvino CPU fp32" in stderr and len(stdout.splitlines()) == 3
    assert os.environ.get("EDGELSTM_DEVICES") is None

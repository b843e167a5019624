"""Device profiles: the built-ins parse, user files and folders work, mistakes get clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgelstm.devices import DeviceProfile, list_profiles, load_profile, parse_profile, usable
from edgelstm.errors import DeviceError
from edgelstm.spec import Backend

TARGETS = {"cpu", "intel-cpu", "intel-gpu", "intel-npu", "intel-auto", "nvidia-cuda", "nvidia-tensorrt",
           "raspberry-pi", "ort-openvino"}


def test_builtins_cover_the_targets() -> None:
    profiles = {p.name: p for p in list_profiles()}
    assert TARGETS <= set(profiles)
    assert profiles["intel-npu"].static_batch and profiles["intel-npu"].backend == Backend.OPENVINO
    assert profiles["nvidia-tensorrt"].device == "TensorRT"
    assert profiles["intel-cpu"].inference_precision == "f32"  # not the plugin's silent bf16
    assert all(isinstance(p, DeviceProfile) and p.description for p in profiles.values())


def test_usable_here() -> None:
    assert usable(load_profile("cpu")) == (True, "onnxruntime CPU")
    ok, why = usable(load_profile("nvidia-cuda"))
    assert not ok and "CUDAExecutionProvider missing" in why
    ok, why = usable(load_profile("intel-gpu"))
    assert not ok and "no GPU device" in why


def test_unknown_name_lists_and_suggests() -> None:
    with pytest.raises(DeviceError) as e:
        load_profile("raspbery-pi")
    msg = str(e.value)
    assert "did you mean 'raspberry-pi'" in msg and "intel-npu" in msg and "edgelstm devices" in msg


def test_user_folder_overrides_and_adds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cpu.toml").write_text('backend = "onnxruntime"\ndevice = "CPU"\nthreads = 3\n')
    (tmp_path / "jetson.toml").write_text('backend = "onnxruntime"\ndevice = "CUDA"\ninput_size = [96, 96]\n')
    monkeypatch.setenv("EDGELSTM_DEVICES", str(tmp_path))
    assert load_profile("cpu").threads == 3
    assert load_profile("jetson").input_size == (96, 96)
    assert load_profile(tmp_path / "jetson.toml").name == "jetson"


@pytest.mark.parametrize("text, needle", [
    ('backend = "onnxruntime"\nthread = 2\n', "unknown profile key 'thread' (did you mean 'threads'?)"),
    ('backend = "tflite"\n', "unknown backend 'tflite'"),
    ('backend = "openvino"\ndevice = "CUDA"\n', "unknown openvino device 'CUDA'"),
    ('backend = "onnxruntime"\nthreads = -1\n', "threads = -1"),
    ('backend = "onnxruntime"\ninput_size = [64]\n', "input_size = [64]"),
    ('backend = "onnxruntime"\nprecision = "fp16"\n', "unknown precision 'fp16'"),
    ('device = "CPU"\n', "missing or non-string 'backend'"),
    ('backend = onnxruntime\n', "not valid TOML"),
])
def test_bad_profile_files(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(DeviceError) as e:
        parse_profile(f)
    assert needle in str(e.value) and "Fix:" in str(e.value)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="no such device profile file"):
        load_profile(tmp_path / "nope.toml")

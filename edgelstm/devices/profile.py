"""Device profiles: one TOML file per deployment target, read with tomllib.

A profile names the backend, device, precision, threads, hints and input size for a target
(``profiles/*.toml`` ship with the package). Users add their own: pass a file
(``--device path/to/my.toml``) or put files in the folders listed in ``$EDGELSTM_DEVICES``
(``os.pathsep``-separated); a user profile with a built-in's name replaces it.

Standard library only, plus lazy imports of onnxruntime/OpenVINO in :func:`usable`.
"""
from __future__ import annotations

import functools
import logging
import os
import platform
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from edgelstm.errors import DeviceError, unknown_choice
from edgelstm.spec import Backend

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).with_name("profiles")
ENV_VAR = "EDGELSTM_DEVICES"
DEFAULT = "cpu"
PRECISIONS = ("auto", "fp32", "int8")
ORT_DEVICES = ("CPU", "CUDA", "TensorRT", "OpenVINO")
OV_DEVICES = ("CPU", "GPU", "NPU", "AUTO")
HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
INFERENCE_PRECISIONS = ("", "f32", "bf16", "f16")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    backend: Backend
    device: str                         # onnxruntime: CPU/CUDA/TensorRT/OpenVINO; OpenVINO: CPU/GPU/NPU/AUTO
    precision: str = "auto"             # auto: INT8 only where the bundle's quantization report says so
    threads: int = 0                    # 0: the backend's default
    performance_hint: str = "LATENCY"   # OpenVINO
    inference_precision: str = ""       # OpenVINO: f32/bf16/f16; "": the artefact's verified precision
    input_size: tuple[int, int] = (64, 64)  # (H, W) export uses for this target
    static_batch: bool = False          # compile with a fixed batch (NPU)
    arch: tuple[str, ...] = ()          # machine types it is tuned for; empty: any
    path: str = ""                      # the file it came from


def _check(cond: bool, path: Path, what: str, expected: str) -> None:
    if not cond:
        raise DeviceError(what, expected=expected, fix="correct the profile file", path=path)


def parse_profile(path: str | Path, *, name: str | None = None) -> DeviceProfile:
    """Read and validate one profile file; unknown or mistyped keys are errors, not ignored."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeviceError("no such device profile file", expected="a .toml profile",
                          fix="check the path, or run `edgelstm devices` for the known names", path=path) from None
    except tomllib.TOMLDecodeError as e:
        raise DeviceError(f"not valid TOML ({e})", fix="correct the profile file", path=path) from None
    known = {f.name for f in fields(DeviceProfile)} - {"name", "path"}
    for key in data:
        if key not in known:
            raise unknown_choice("profile key", key, known, error=DeviceError,
                                 fix=f"correct or remove it in {path}")
    _check(isinstance(data.get("backend"), str), path, "missing or non-string 'backend'",
           "backend = \"onnxruntime\" or \"openvino\"")
    if data["backend"] not in {b.value for b in Backend}:
        raise unknown_choice("backend", data["backend"], [b.value for b in Backend], error=DeviceError,
                             fix=f"correct it in {path}")
    backend = Backend(data["backend"])
    devices = ORT_DEVICES if backend == Backend.ONNXRUNTIME else OV_DEVICES
    device = data.get("device", "CPU")
    if device not in devices:
        raise unknown_choice(f"{backend} device", str(device), devices, error=DeviceError, fix=f"correct it in {path}")
    precision = data.get("precision", "auto")
    if precision not in PRECISIONS:
        raise unknown_choice("precision", str(precision), PRECISIONS, error=DeviceError, fix=f"correct it in {path}")
    hint = data.get("performance_hint", "LATENCY")
    if hint not in HINTS:
        raise unknown_choice("performance_hint", str(hint), HINTS, error=DeviceError, fix=f"correct it in {path}")
    ip = data.get("inference_precision", "")
    if ip not in INFERENCE_PRECISIONS:
        raise unknown_choice("inference_precision", str(ip), [p for p in INFERENCE_PRECISIONS if p],
                             error=DeviceError, fix=f"correct it in {path}")
    threads = data.get("threads", 0)
    _check(isinstance(threads, int) and not isinstance(threads, bool) and threads >= 0, path,
           f"threads = {threads!r}", "an integer >= 0 (0: the backend's default)")
    size = data.get("input_size", [64, 64])
    _check(isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s >= 8 for s in size), path,
           f"input_size = {size!r}", "[H, W], two integers >= 8")
    arch = data.get("arch", [])
    _check(isinstance(arch, list) and all(isinstance(a, str) for a in arch), path, f"arch = {arch!r}",
           "a list of machine types such as [\"x86_64\", \"aarch64\"]")
    static = data.get("static_batch", False)
    _check(isinstance(static, bool), path, f"static_batch = {static!r}", "true or false")
    desc = data.get("description", "")
    _check(isinstance(desc, str), path, f"description = {desc!r}", "a string")
    return DeviceProfile(name=name or path.stem, description=desc, backend=backend, device=device,
                         precision=precision, threads=threads, performance_hint=hint, inference_precision=ip,
                         input_size=(size[0], size[1]), static_batch=static,
                         arch=tuple(a.lower() for a in arch), path=str(path))


def _user_dirs() -> list[Path]:
    raw = os.environ.get(ENV_VAR, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def _profile_files() -> dict[str, Path]:
    """Profile name -> file; user folders (in $EDGELSTM_DEVICES order) override the built-ins."""
    found = {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}
    for folder in reversed(_user_dirs()):
        if not folder.is_dir():
            log.warning("$%s names %s, which is not a folder; ignored", ENV_VAR, folder)
            continue
        for p in sorted(folder.glob("*.toml")):
            found[p.stem] = p
    return found


def list_profiles() -> list[DeviceProfile]:
    """Every known profile, built-in and user, sorted by name."""
    return [parse_profile(p) for _, p in sorted(_profile_files().items())]


def load_profile(name: str | Path) -> DeviceProfile:
    """A profile by name (``cpu``, ``intel-npu``, ...) or by path to a ``.toml`` file."""
    text = str(name)
    if text.endswith(".toml") or os.sep in text or "/" in text:
        return parse_profile(Path(text).expanduser())
    files = _profile_files()
    if text not in files:
        raise unknown_choice("device", text, files, error=DeviceError,
                             fix="run `edgelstm devices` to list them, or pass a .toml profile file")
    return parse_profile(files[text])


@functools.lru_cache(maxsize=1)
def _ort_providers() -> tuple[str, ...] | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return tuple(ort.get_available_providers())


@functools.lru_cache(maxsize=1)
def _ov_devices() -> tuple[str, ...] | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    return tuple(ov.Core().available_devices)


_PROVIDER = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider",
             "TensorRT": "TensorrtExecutionProvider", "OpenVINO": "OpenVINOExecutionProvider"}


def usable(profile: DeviceProfile) -> tuple[bool, str]:
    """Whether ``profile`` can run on this machine, and why (not)."""
    machine = platform.machine().lower()
    if profile.backend == Backend.ONNXRUNTIME:
        providers = _ort_providers()
        if providers is None:
            return False, "onnxruntime is not installed (pip install onnxruntime)"
        provider = _PROVIDER[profile.device]
        if provider not in providers:
            return False, f"{provider} missing (onnxruntime has {', '.join(p.replace('ExecutionProvider', '') for p in providers)})"
        reason = f"onnxruntime {provider.replace('ExecutionProvider', '')}"
    else:
        devices = _ov_devices()
        if devices is None:
            return False, "openvino is not installed (pip install 'edgelstm[openvino]')"
        if profile.device != "AUTO" and not any(d.split(".")[0] == profile.device for d in devices):
            return False, f"no {profile.device} device (OpenVINO sees {', '.join(devices) or 'none'})"
        reason = f"OpenVINO {profile.device}"
    if profile.arch and machine not in profile.arch:
        return True, f"{reason}; tuned for {'/'.join(profile.arch)}, this machine is {machine}"
    return True, reason

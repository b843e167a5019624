"""What ``edgelstm profile`` measures: the configurations (device profile x backend x precision) and
the settings every measurement shares."""
from __future__ import annotations

import platform
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgelstm.devices import list_profiles, load_profile, usable
from edgelstm.errors import DeviceError, UsageError, unknown_choice
from edgelstm.runtime.bundle import Bundle
from edgelstm.spec import Backend, Precision, Role


@dataclass(frozen=True)
class ProfileConfig:
    device: str            # device profile name or .toml path
    backend: Backend
    precision: Precision

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision} ({self.device})"


@dataclass(frozen=True)
class Settings:
    frames: int = 90           # decisions measured per configuration at the camera rate
    warmup: int = 20
    fps: float = 30.0          # camera rate of the paced run
    source: str = "synthetic"  # or a file/camera/URL (open_source)
    streams: int = 1
    clip_len: int = 0          # window of clip re-inference; 0: the manifest's clip length
    threads: int | None = None
    baselines: bool = True     # clip re-inference and PyTorch eager rows
    abort: threading.Event | None = field(default=None, compare=False)  # set: stop now, keep the rows done


class Interrupted(Exception):
    """``Settings.abort`` was set (a signal): the measurement in progress is dropped."""


def default_configs(bundle: Bundle, *, devices: Sequence[str] | None = None, backends: Sequence[str] | None = None,
                    precisions: Sequence[str] | None = None) -> tuple[list[ProfileConfig], list[str]]:
    """Every usable device x precision the bundle has (or the ones asked for), and notes on what was left out."""
    notes: list[str] = []
    for be in backends or ():
        if be not in {b.value for b in Backend}:
            raise unknown_choice("backend", be, [b.value for b in Backend])
    for pr in precisions or ():
        if pr not in {x.value for x in Precision}:
            raise unknown_choice("precision", pr, [x.value for x in Precision])
    if devices:
        profiles = [load_profile(d) for d in devices]  # unknown names: DeviceError with close matches
        for p in profiles:
            ok, why = usable(p)
            if not ok:
                raise DeviceError(f"device '{p.name}' cannot run here: {why}",
                                  fix="choose a usable one (`edgelstm devices`), or drop --device for all usable")
    else:
        profiles = []
        for p in list_profiles():
            ok, why = usable(p)
            if not ok:
                notes.append(f"device {p.name}: not usable here ({why})")
            elif p.arch and platform.machine().lower() not in p.arch:
                notes.append(f"device {p.name}: left out by default (tuned for {'/'.join(p.arch)}; this machine is "
                             f"{platform.machine().lower()})")
            elif p.device == "AUTO":
                notes.append(f"device {p.name}: left out by default (OpenVINO AUTO picks a device measured "
                             f"separately); ask for it with --device {p.name}")
            else:
                profiles.append(p)
    if backends:
        wanted = {Backend(b) for b in backends}
        left = [p for p in profiles if p.backend in wanted]
        if not left:
            raise UsageError(f"no device profile {'given' if devices else 'usable here'} runs on "
                             f"{', '.join(sorted(wanted))}", expected="a --device for that backend",
                             fix="run `edgelstm devices`, and pass a usable --device of that backend")
        profiles = left
    m = bundle.manifest
    configs = []
    for p in profiles:
        for prec in [Precision(x) for x in (precisions or ("fp32", "int8"))]:
            if not _has(m, p.backend, prec):
                notes.append(f"{p.backend} {prec} ({p.name}): the bundle has no such artefact"
                             + (" (quantize it: `edgelstm quantize`)" if prec == Precision.INT8 else ""))
                continue
            configs.append(ProfileConfig(p.name, p.backend, prec))
    return configs, list(dict.fromkeys(notes))


def _has(m: Any, backend: Backend, precision: Precision) -> bool:
    return any(a.backend == backend and a.precision == precision and a.role != Role.CLIP for a in m.artifacts)

"""What ``bench_all`` reads from a run folder, and the video the loop figures (P3, P6) decode.

A run folder is what ``edgelstm quickstart`` writes: ``RUN/train/train_stage.json`` (rows with each model's
checkpoint), ``RUN/train/<name>/best.pt``, ``RUN/bundle/manifest.json`` (FP32 + INT8, onnxruntime + OpenVINO)
and, for ``--preset footage``, ``RUN/data/footage.json`` (source videos per split). A run made by the old
``bench_all`` keeps ``train_stage.json`` and the checkpoints at its top; both layouts are read.
"""
from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PREFERRED_VIDEO = "vtest.avi"   # opencv-doc's 768x576 street scene (`make assets`): long enough for every run here
MIN_SIZE = (480, 640)           # (H, W): the loop figures decode frames at least this large
FPS = 30.0


@dataclass(frozen=True)
class Video:
    """The file the loop figures decode, played at 30 fps, and what it is (for the results)."""

    path: Path        # the file opened (a re-timed copy when the original is not 30 fps)
    original: Path
    size: tuple[int, int]   # (H, W)
    frames: int
    codec: str
    note: str         # how it was chosen and prepared, in words

    @property
    def seconds(self) -> float:
        return self.frames / FPS


# --- the run folder ------------------------------------------------------------------------
def stage_rows(run: Path) -> dict[str, dict[str, Any]]:
    """The training rows by name (teacher, student_distilled, ...), checkpoints resolved to existing paths."""
    found = [p for p in (run / "train" / "train_stage.json", run / "train_stage.json") if p.exists()]
    if not found:
        raise SystemExit(f"{run}: no train/train_stage.json (nor train_stage.json); expected a quickstart run folder "
                         f"(`edgelstm quickstart --out {run}`)")
    rows = {r["name"]: r for r in json.loads(found[0].read_text())["rows"]}
    for name, r in rows.items():
        ckpt = Path(r["checkpoint"])
        if not ckpt.exists():  # the rows name paths relative to where the run was made; the folder may have moved
            moved = [p for p in (found[0].parent / name / "best.pt", run / name / "best.pt") if p.exists()]
            r["checkpoint"] = str(moved[0]) if moved else str(ckpt)
    return rows


def find_bundle(run: Path) -> Path:
    """``RUN/bundle`` (the quickstart's), else the first ``RUN/*/manifest.json`` with an INT8 artefact."""
    candidates = [run / "bundle" / "manifest.json", *sorted(run.glob("*/manifest.json"))]
    for p in candidates:
        if p.is_file() and any(a["precision"] == "int8" for a in json.loads(p.read_text())["artifacts"]):
            return p.parent
    raise SystemExit(f"{run}: no bundle with an INT8 artefact (looked for {run}/bundle/manifest.json); "
                     f"run `edgelstm quickstart --out {run}` first")


# --- the video ----------------------------------------------------------------------------
def pick_video(runs: list[Path], work: Path) -> Video:
    """The real video the loop figures decode: ``vtest.avi`` when found, else the largest test-split source of
    a footage run at least 640x480, else a written 640x480 synthetic MJPEG (said so). Re-timed to 30 fps."""
    import cv2

    from edgelstm.data.footage_sources import find_sources
    from edgelstm.errors import DataError

    try:
        by_name = {s.name: s.path for s in find_sources() if s.path.suffix != ".gz"}
    except DataError as e:  # no footage here: the synthetic fallback below says so
        by_name, why = {}, e.args[0] if e.args else str(e)
    else:
        why = "no real video of 640x480 or more found"
    if PREFERRED_VIDEO in by_name:
        return _prepare(by_name[PREFERRED_VIDEO], work, "opencv-doc's sample (`make assets`); a speed input "
                        "only: which split it was in does not matter here")
    tests = [s["name"] for run in runs if (run / "data" / "footage.json").is_file()
             for s in json.loads((run / "data" / "footage.json").read_text())["sources"].get("test", [])]
    sized = [(p, _size(cv2, p)) for p in (by_name[n] for n in tests if n in by_name)]
    big = [(p, hw) for p, hw in sized if hw[0] >= MIN_SIZE[0] and hw[1] >= MIN_SIZE[1]]
    if big:
        path = max(big, key=lambda x: x[1][0] * x[1][1])[0]
        return _prepare(path, work, "the largest test-split source of the footage run")
    from edgelstm.measure.soak import write_test_video

    path = write_test_video(work / "synthetic_640x480.avi", frames=600, size=MIN_SIZE, fps=FPS)
    return _describe(path, path, "NOT a real video: the synthetic scenes written as 640x480 MJPEG "
                     f"({why}; run `make assets`)")


def _size(cv2: Any, path: Path) -> tuple[int, int]:
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    finally:
        cap.release()


def _prepare(path: Path, work: Path, why: str) -> Video:
    """``path`` played at 30 fps: an AVI gets its header's frame rate rewritten (the same compressed frames,
    decoded as before); anything else is decoded once and written again as MJPEG at 30 fps (said so)."""
    import cv2

    work.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    if abs(fps - FPS) < 0.01:
        return _describe(path, path, why)
    out = work / f"{path.stem}_30fps.avi"
    if path.suffix.lower() == ".avi" and _retime_avi(path, out):
        return _describe(out, path, f"{why}; its {fps:g} fps header re-timed to 30 fps (same compressed frames)")
    _reencode(path, out)
    return _describe(out, path, f"{why}; re-encoded as MJPEG at 30 fps (it is {fps:g} fps)")


def _retime_avi(src: Path, out: Path) -> bool:
    """Copy an AVI with its main header (µs per frame) and video stream header (rate/scale) set to 30 fps."""
    data = bytearray(src.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    if avih < 0 or strh < 0 or data[strh + 8:strh + 12] != b"vids":
        return False
    struct.pack_into("<I", data, avih + 8, round(1e6 / FPS))     # dwMicroSecPerFrame
    struct.pack_into("<II", data, strh + 8 + 20, 1, int(FPS))    # dwScale, dwRate
    if not out.exists() or out.read_bytes() != data:
        out.write_bytes(bytes(data))
    return True


def _reencode(src: Path, out: Path) -> None:
    import cv2

    cap = cv2.VideoCapture(str(src))
    h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    wr = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (w, h))
    ok, img = cap.read()
    while ok:
        wr.write(img)
        ok, img = cap.read()
    wr.release()
    cap.release()


def _describe(path: Path, original: Path, note: str) -> Video:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames, fourcc = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(cv2.CAP_PROP_FOURCC))
    cap.release()
    codec = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ")
    return Video(path, original, _size(cv2, path), frames, codec, note)


# --- the machine --------------------------------------------------------------------------
def gemm_peak_gmacs(n: int = 1024, repeats: int = 10) -> float:
    """FP32 GEMM rate of this CPU with numpy, all cores (best of ``repeats``): the compute floor's denominator."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return n ** 3 / best / 1e9

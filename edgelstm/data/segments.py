"""Your untrimmed videos: a folder of video files and a THUMOS-style segments CSV.

``segments.csv`` (in the folder, or any CSV whose video paths are relative to its own folder) has the header
``video,label,start_s,end_s`` and one row per action instance; every frame outside a segment is background.
Frame ``i`` spans ``[i/fps, (i+1)/fps)`` and takes a segment's label when its middle lies inside
``[start_s, end_s)``. Every video file under the folder is part of the set (one without segments is all
background). Classes: ``background`` and the labels in the CSV, sorted; or the list ``untrimmed.json`` declares.
Splits come from the first folder of each video's path (``train/``, ``val/``, ``test/``), else whole videos are
carved by ``seed``.

The reader refuses, naming the file and line, what would silently mislabel frames: a missing column, a time
that is not a number, a segment that ends before it starts, starts before 0 or ends after its video,
overlapping segments of one video, an unknown video, the reserved label ``background``.
"""
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgelstm.data.dataset import SPLITS, carve
from edgelstm.data.untrimmed import BACKGROUND, BACKGROUND_INDEX, UntrimmedSet, Video
from edgelstm.data.video import VIDEO_EXTS
from edgelstm.errors import DataError

log = logging.getLogger(__name__)

COLUMNS = ("video", "label", "start_s", "end_s")
SEGMENTS_NAME = "segments.csv"
INFO_NAME = "untrimmed.json"  # optional: the class list (background first), as the embedded set writes it
FPS_TOLERANCE = 0.01  # relative: videos of one set share a frame rate


@dataclass(frozen=True)
class Segment:
    video: str       # path relative to the CSV's folder, with / separators
    label: str
    start_s: float
    end_s: float
    line: int        # of the CSV, for error messages


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _time(text: str, column: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{column} is '{text}'", expected="a finite number of seconds",
                        fix=f"write {column} as seconds, e.g. 12.5", path=_where(path, line))
    return value


def read_segments(path: Path) -> list[Segment]:
    """Every row of a segments CSV, checked on its own (columns, numbers, start < end, start >= 0, label)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"the header is '{','.join(header)}' (no {', '.join(missing)})",
                            expected="the columns " + ",".join(COLUMNS),
                            fix="start the file with the line: " + ",".join(COLUMNS), path=_where(path, 1))
        col = {c: header.index(c) for c in COLUMNS}
        out = []
        for line, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(header):
                raise DataError(f"{len(row)} fields", expected=f"{len(header)} like the header",
                                fix="quote file names that contain commas", path=_where(path, line))
            out.append(_segment(row, col, path, line))
    return out


def _segment(row: list[str], col: dict[str, int], path: Path, line: int) -> Segment:
    video, label = row[col["video"]].strip().replace("\\", "/"), row[col["label"]].strip()
    start, end = _time(row[col["start_s"]], "start_s", path, line), _time(row[col["end_s"]], "end_s", path, line)
    if not label or label == BACKGROUND:
        raise DataError(f"label '{label}'", expected=f"an action name ('{BACKGROUND}' is every frame outside a "
                        "segment)", fix="name the action, or drop the row", path=_where(path, line))
    if start < 0:
        raise DataError(f"start_s {start:g} is before the video starts", expected="start_s >= 0",
                        fix="clip the segment to the video", path=_where(path, line))
    if end <= start:
        raise DataError(f"end_s {end:g} is not after start_s {start:g}", expected="start_s < end_s",
                        fix="swap or correct the times", path=_where(path, line))
    return Segment(video, label, start, end, line)


def check_overlaps(segments: list[Segment], path: Path) -> None:
    """Two segments of one video may touch, never overlap: a frame has one label."""
    by_video: dict[str, list[Segment]] = {}
    for s in segments:
        by_video.setdefault(s.video, []).append(s)
    for video, segs in by_video.items():
        segs = sorted(segs, key=lambda s: (s.start_s, s.end_s))
        for a, b in zip(segs, segs[1:]):
            if b.start_s < a.end_s:
                raise DataError(f"segment {b.label} {b.start_s:g}-{b.end_s:g}s of '{video}' overlaps {a.label} "
                                f"{a.start_s:g}-{a.end_s:g}s (line {a.line})", expected="segments that do not "
                                "overlap (one label per frame)", fix="merge them or move one boundary",
                                path=_where(path, b.line))


def frame_labels(segments: list[Segment], n: int, fps: float, classes: tuple[str, ...], *, path: Path) -> np.ndarray:
    """(n,) labels of a video's frames; refuses a segment that ends after the video (more than a frame)."""
    labels = np.full(n, BACKGROUND_INDEX, np.int64)
    mid = (np.arange(n) + 0.5) / fps
    duration = n / fps
    for s in segments:
        if s.end_s > duration + 1.0 / fps:
            raise DataError(f"segment {s.label} {s.start_s:g}-{s.end_s:g}s ends after '{s.video}' "
                            f"({duration:.3f}s, {n} frames at {fps:g} fps)", expected="times within the video",
                            fix="correct the times, or check that the row names the right video",
                            path=_where(path, s.line))
        labels[(mid >= s.start_s) & (mid < s.end_s)] = classes.index(s.label)
    return labels


def decode_video(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Every frame of ``path`` as uint8 (T, H, W, 3) RGB at ``size`` (H, W), and the container's fps."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError("OpenCV cannot open this video", expected="a video file OpenCV can decode",
                        fix="re-encode it (ffmpeg -i IN -c:v mjpeg OUT.avi)", path=path)
    frames = []
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames or not (math.isfinite(fps) and fps > 0):
        raise DataError(f"{len(frames)} frames at {fps:g} fps", expected="a video with frames and a frame rate",
                        fix="re-encode it with a frame rate (ffmpeg -i IN -r 15 OUT.avi)", path=path)
    return np.stack(frames), fps


def video_files(root: Path) -> list[str]:
    """Every video file under ``root``, as paths relative to it, sorted."""
    return sorted(str(p.relative_to(root)).replace("\\", "/") for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in VIDEO_EXTS and not p.name.startswith("."))


def _splits(videos: list[str], seed: int) -> dict[str, list[str]]:
    first = {v.split("/", 1)[0] for v in videos}
    if first <= set(SPLITS) and "train" in first:
        return {s: [v for v in videos if v.split("/", 1)[0] == s] for s in SPLITS}
    parts = carve(np.zeros(len(videos), np.int64), {"train": 0.7, "val": 0.15, "test": 0.15}, seed=seed)
    return {s: [videos[i] for i in parts[s]] for s in SPLITS}


def _classes(root: Path, segments: list[Segment], csv_path: Path) -> tuple[str, ...]:
    """BACKGROUND and the segments' labels, sorted; or the class list of ``untrimmed.json`` (written by
    ``edgelstm data synthetic --untrimmed``), which keeps classes no segment of a small set happens to use."""
    import json

    used = sorted({s.label for s in segments})
    info = root / INFO_NAME
    if not info.is_file():
        return (BACKGROUND, *used)
    declared = json.loads(info.read_text(encoding="utf-8")).get("classes")
    if not isinstance(declared, list) or not declared or declared[0] != BACKGROUND:
        raise DataError(f"'classes' is {str(declared)[:60]}", expected=f"a list of class names starting with "
                        f"'{BACKGROUND}'", fix=f"fix or remove {INFO_NAME}", path=info)
    missing = [c for c in used if c not in declared]
    if missing:
        line = next(s.line for s in segments if s.label == missing[0])
        raise DataError(f"label '{missing[0]}' is not one of the classes {INFO_NAME} declares",
                        expected=", ".join(declared[1:]), fix=f"correct the label, or add it to {INFO_NAME}",
                        path=_where(csv_path, line))
    return tuple(str(c) for c in declared)


def load_segment_folder(spec: Path, *, size: tuple[int, int], seed: int = 0) -> UntrimmedSet:
    """A folder holding ``segments.csv`` (or the CSV's path) and its videos, decoded at ``size``."""
    csv_path = spec / SEGMENTS_NAME if spec.is_dir() else spec
    if not csv_path.is_file():
        raise DataError("no segments file here", expected=f"a folder with {SEGMENTS_NAME} ({','.join(COLUMNS)}) "
                        "or the path of such a CSV", fix="write the segments CSV beside the videos", path=csv_path)
    root = csv_path.parent
    segments = read_segments(csv_path)
    check_overlaps(segments, csv_path)
    videos = video_files(root)
    unknown = next((s for s in segments if s.video not in set(videos)), None)
    if unknown is not None:
        raise DataError(f"video '{unknown.video}' is not under {root}", expected="a video file path relative to "
                        "the CSV's folder", fix="correct the path or add the video", path=_where(csv_path, unknown.line))
    if not segments:
        raise DataError("no segments", expected="at least one action segment", fix="add rows", path=csv_path)
    classes = _classes(root, segments, csv_path)
    fps_all: set[float] = set()
    splits: dict[str, list[Video]] = {}
    for split, names in _splits(videos, seed).items():
        splits[split] = []
        for name in names:
            frames, fps = decode_video(root / name, size)
            fps_all.add(fps)
            labels = frame_labels([s for s in segments if s.video == name], len(frames), fps, classes,
                                  path=csv_path)
            splits[split].append(Video(name, frames, labels))
    if max(fps_all) > min(fps_all) * (1 + FPS_TOLERANCE):
        raise DataError(f"videos at {', '.join(f'{f:g}' for f in sorted(fps_all))} fps", path=root,
                        expected="one frame rate for the whole set", fix="re-encode them at one rate (ffmpeg -r)")
    log.info("untrimmed set %s: %s videos", root, {k: len(v) for k, v in splits.items()})
    return UntrimmedSet(classes=classes, splits=splits, source=str(spec), size=size, fps=min(fps_all), seed=seed)

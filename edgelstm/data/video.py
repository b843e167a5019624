"""Decode one video file into T frames with OpenCV: BGR to RGB, resized, sampled in time."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgelstm.data.dataset import Sampling
from edgelstm.errors import DataError

log = logging.getLogger(__name__)

# A read that fails before the container's frame count is a bad frame, not the end: keep going past up to
# this many in a row (a corrupt stretch longer than that ends the clip there, as the end of the file would).
MAX_BAD_FRAMES = 8

VIDEO_EXTS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".ogv")


@dataclass(frozen=True)
class Decoded:
    frames: np.ndarray  # uint8 (T, H, W, 3) RGB, zero-padded past ``length``
    length: int         # valid frames (< T only when the clip is too short for the sampling)
    fps: float          # the source's frame rate (0 when the container does not say)
    source_frames: int  # frames decoded in the [start, end] window
    bad_frames: int = 0  # unreadable frames skipped inside the video (corrupt data, not its end)


def sample_indices(n: int, clip_len: int, sampling: Sampling, stride: int) -> np.ndarray:
    """Indices of the ``clip_len`` frames to keep out of ``n``; fewer than ``clip_len`` only for
    stride sampling of a short clip (uniform sampling repeats frames instead)."""
    if sampling == Sampling.UNIFORM:
        # centres of clip_len equal segments: deterministic, symmetric, repeats frames when n < clip_len
        return np.minimum(((np.arange(clip_len) + 0.5) * n / clip_len).astype(np.int64), n - 1)
    span = (clip_len - 1) * stride + 1
    if n >= span:
        start = (n - span) // 2
        return start + stride * np.arange(clip_len)
    return np.arange(0, n, stride)[:clip_len]


def decode_clip(path: str | Path, *, size: tuple[int, int], clip_len: int, sampling: Sampling = Sampling.UNIFORM,
                stride: int = 2, start_s: float | None = None, end_s: float | None = None) -> Decoded:
    """Read ``path`` with OpenCV and return ``clip_len`` RGB frames of ``size`` (H, W).

    Every frame in the window is decoded (seeking is unreliable across containers) and resized
    on the fly, so a long video costs time but little memory.
    """
    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError("OpenCV cannot open this video", expected="a video file OpenCV can decode",
                        fix="check the file is a complete video (try playing it), or re-encode it "
                            "(ffmpeg -i IN -c:v mjpeg OUT.avi)", path=path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps < 0:
            fps = 0.0
        first = int(math.floor(start_s * fps)) if start_s is not None and fps > 0 else 0
        last = int(math.ceil(end_s * fps)) if end_s is not None and fps > 0 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)  # the container's claim; 0 when unknown
        frames: list[np.ndarray] = []
        h, w = size
        index = bad = run = 0
        while last is None or index < last:
            ok, frame = cap.read()
            if not ok:
                run += 1
                if count <= 0 or index >= count or run > MAX_BAD_FRAMES:
                    break  # the end of the file (or a corrupt stretch too long to step over)
                index += 1  # the unreadable frame still had its place in time
                continue
            bad, run = bad + run, 0  # failures followed by a good frame were bad frames, not the end
            if index >= first:
                if frame.shape[0] != h or frame.shape[1] != w:
                    frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        cap.release()
    if bad:
        log.warning("%s: skipped %d unreadable frame(s) of %d (corrupt data inside the video); decoded %d",
                    path, bad, count, len(frames))
    if not frames:
        window = f" between {start_s}s and {end_s}s" if start_s is not None or end_s is not None else ""
        raise DataError(f"the video yields no frames{window}", expected="a video with at least one decodable frame",
                        fix="remove or re-encode the file, or fix its start/end times", path=path)
    idx = sample_indices(len(frames), clip_len, sampling, stride)
    out = np.zeros((clip_len, h, w, 3), np.uint8)
    out[: len(idx)] = np.stack([frames[i] for i in idx])
    return Decoded(out, len(idx), fps, len(frames), bad)

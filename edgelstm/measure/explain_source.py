"""The stream ``edgelstm explain`` looks at: frames from the runtime's own sources, fed as the live loop feeds
them, encoded once.

Frames come from :func:`edgelstm.runtime.sources.open_source` (a video file, an image folder, a camera or URL,
or ``synthetic``), read one by one without pacing (explain is offline: nothing is dropped), through the
live loop's :class:`~edgelstm.runtime.loop.TemporalGate` (a file faster than the model's training rate has
its extra frames skipped, and the manifest's reset policy zeroes the state where the loop would). Each fed
frame is resized as the engine resizes it and encoded once; every later computation (the numpy cell, the
occlusions) starts from these cached inputs. A feature model reads a ``.npy`` of (T, F) features instead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelstm.errors import SourceError, UsageError, unknown_choice
from edgelstm.measure.explain_model import CellModel
from edgelstm.spec import ColourOrder, ModelKind

log = logging.getLogger(__name__)

SYNTHETIC_CLIPS = 5     # the endless synthetic camera: clips explained when --max-frames is not given
UNPACED_FPS = 1000.0    # the synthetic camera renders as fast as it can: no real-time pacing offline


@dataclass(frozen=True)
class Stream:
    """What was fed, one row per decision (step)."""

    source: str
    inputs: np.ndarray    # (T, ...) step inputs: the encoder's features, or what the step graph takes
    lstm_x: np.ndarray    # (T, F) the first LSTM layer's input at each step
    mean_x: np.ndarray    # (F,) the LSTM input of the stream's mean frame (mean features for a feature model)
    truth: np.ndarray     # (T,) class index per step, -1 where unknown
    resets: np.ndarray    # (T,) bool: the state was zeroed before this step (reset policy, or the start)
    reset_why: tuple[str, ...]  # (T,) why, "" where none
    times: np.ndarray     # (T,) seconds on the source's clock, NaN where it has none
    frames: np.ndarray    # (T,) the frame's number in the source (skipped frames counted)


def read_stream(model: CellModel, source: str, *, max_frames: int | None = None, label: str | None = None,
                rate: str = "trained") -> Stream:
    """Read ``source`` as the live loop would feed ``model``, up to ``max_frames`` decisions, and encode it."""
    if label is not None and label not in model.labels:
        raise unknown_choice("--label", label, model.labels, fix="pass one of the model's classes to --label")
    if source.endswith(".npy"):
        raw, truth, times, index, why = _read_features(model, source, max_frames)
    elif model.kind == ModelKind.FEATURES:
        raise UsageError(f"--source {source} for a feature model", expected="a .npy of (T, F) features",
                         fix="save one clip's per-frame features with numpy.save(PATH.npy, X) and pass that")
    else:
        raw, truth, times, index, why = _read_frames(model, source, max_frames, rate)
    if len(raw) == 0:
        raise SourceError(f"{source} delivered no frame to explain", expected="at least one frame",
                          fix="check the source plays (ffplay FILE), or try --source synthetic")
    if label is not None:
        truth[:] = model.labels.index(label)
    inputs = model.encode(raw)
    mean_raw = raw.mean(0)
    mean_raw = (np.round(mean_raw).astype(np.uint8) if raw.dtype == np.uint8 else mean_raw.astype(raw.dtype))
    mean_x = model.lstm_input(model.encode(mean_raw[None]))[0]
    resets = np.array([bool(w) for w in why])
    return Stream(source, inputs, model.lstm_input(inputs), mean_x, truth, resets, why, times, index)


def _read_features(model: CellModel, source: str, max_frames: int | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    path = Path(source)
    if model.kind != ModelKind.FEATURES:
        raise UsageError(f"--source {source} is a .npy of features, but {model.name} is a frame model",
                         expected="a video file, an image folder, a camera or 'synthetic'",
                         fix="pass the video the features came from")
    if not path.is_file():
        raise SourceError(f"no such file '{source}'", expected="a .npy of (T, F) features", fix="check the path")
    magic = np.lib.format.MAGIC_PREFIX
    try:
        with path.open("rb") as f:
            head = f.read(len(magic))
        X = np.load(path, allow_pickle=False) if head == magic else None
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read {source} as a .npy array ({type(e).__name__}: {str(e)[:120]})",
                          expected="a (T, F) float array saved with numpy.save",
                          fix="save the features with numpy.save(path, X)") from None
    if X is None:  # numpy.load would read text as a pickle, or a renamed .npz as an archive
        raise SourceError(f"{source} is not a .npy file (it begins {head!r}, not numpy's {magic!r})",
                          expected="a (T, F) float array written by numpy.save (numpy.savetxt writes text, "
                                   "numpy.savez a zip archive)",
                          fix="save the features with numpy.save(path, X)")
    width = model.layers[0].input_size  # a feature model's standardisation keeps the width
    if X.ndim != 2 or X.shape[1] != width or X.dtype.kind not in "fiu" or not np.isfinite(X).all():
        raise SourceError(f"{source} holds a {X.dtype} array of shape {list(X.shape)}",
                          expected=f"(T, {width}) finite features: one row per step, {width} features each",
                          fix="save one clip's per-frame features as a 2-D float array")
    steps = X[:max_frames].astype(np.float32)
    n = len(steps)
    why = ("start",) + ("",) * (n - 1) if n else ()
    return steps, np.full(n, -1), np.full(n, np.nan), np.arange(n), why


def _read_frames(model: CellModel, source: str, max_frames: int | None, rate: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    from edgelstm.data.synthetic import CLASSES
    from edgelstm.runtime.frames import FrameResizer
    from edgelstm.runtime.loop import Rate, TemporalGate
    from edgelstm.runtime.offline_sources import synthetic_camera_size
    from edgelstm.runtime.sources import open_source

    pre = model.preprocess
    if pre is None:
        raise UsageError(f"{model.name} has no frame preprocessing", expected="a frame model",
                         fix="re-export the bundle")
    synthetic = source.strip() == "synthetic"
    limit = max_frames or (SYNTHETIC_CLIPS * model.temporal.clip_len if synthetic else None)
    src = open_source(source, fps=UNPACED_FPS if synthetic else model.temporal.train_fps or None,
                      size=synthetic_camera_size(pre.size), clip_len=model.temporal.clip_len)
    if limit is None and src.live:
        raise UsageError(f"--source {source} is live: it never ends", expected="--max-frames N with a camera or a stream",
                         fix="pass --max-frames, e.g. 300 (20 s at 15 fps)")
    gate, resizer = TemporalGate(model.temporal, Rate(rate)), FrameResizer(pre)
    frames: list[np.ndarray] = []
    truth: list[int] = []
    times: list[float] = []
    index: list[int] = []
    why: list[str] = []
    src.open()
    try:
        read = 0
        while limit is None or len(frames) < limit:
            raw = src.read()
            if raw is None:
                break
            read += 1
            t = raw.t_media if raw.t_media is not None else float("nan")
            feed, reason = gate.admit(t, 0)
            if not feed:
                continue
            buf = np.empty((*pre.size, 3), np.uint8)
            resizer.into(buf, raw.image, ColourOrder.BGR)
            frames.append(buf)
            name = CLASSES[raw.truth] if raw.truth is not None and raw.truth < len(CLASSES) else None
            truth.append(model.labels.index(name) if name in model.labels else -1)
            times.append(t)
            index.append(read - 1)
            why.append(reason or ("start" if not why else ""))
    finally:
        src.close()
    log.info("%s: %d frames read, %d fed", source, read, len(frames))
    shape = (0, *pre.size, 3)
    return (np.stack(frames) if frames else np.zeros(shape, np.uint8), np.array(truth, np.int64), np.array(times),
            np.array(index, np.int64), tuple(why))

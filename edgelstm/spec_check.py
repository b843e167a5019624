"""Semantic bounds of a manifest, checked after its types (``Manifest.check``): values that cannot describe
a runnable model are refused with a :class:`~edgelstm.errors.BundleError` naming the field, never a hang,
a MemoryError or a traceback later. Standard library only."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgelstm.errors import BundleError
from edgelstm.spec import CLIP_LOGITS, LOGITS, Manifest, ModelKind, SelfTest, Task

MAX_FRAME_SIDE = 4096        # pixels per side of a model's input frame
MAX_DIM = 65536              # any other fixed tensor dimension: classes, features, hidden units, layers
MAX_STATE_VALUES = 1 << 24   # num_layers x hidden_size per stream and state tensor (64 MiB of float32)
MAX_SELFTEST_STEPS, MAX_SELFTEST_STREAMS = 64, 8


def _field(where: str, got: Any, expected: str, source: str | Path) -> BundleError:
    return BundleError(f"field 'manifest.{where}' is {got!r}", expected=expected, path=source,
                       fix="re-export the bundle with `edgelstm export` (do not edit manifest.json by hand)")


def _check_norm(where: str, mean: tuple[float, ...], std: tuple[float, ...], size: int, source: str | Path) -> None:
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != size:
            raise _field(f"{where}.{name}", f"{len(values)} values", f"{size} (one per channel or feature)", source)
        for i, v in enumerate(values):
            if not math.isfinite(v) or (name == "std" and v <= 0):
                raise _field(f"{where}.{name}[{i}]", v, "a finite number" + (" > 0" if name == "std" else ""), source)


def check_manifest(m: Manifest, source: str | Path) -> None:
    """Raise a BundleError naming the first field of ``m`` outside its bounds."""

    def within(where: str, value: int, lo: int, hi: int | None = None) -> None:
        if value < lo or (hi is not None and value > hi):
            raise _field(where, value, f">= {lo}" if hi is None else f"{lo}..{hi}", source)

    def positive(where: str, value: float, *, zero: bool = False) -> None:
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise _field(where, value, "a finite number >= 0 (0: unknown)" if zero else "a finite number > 0",
                         source)

    info = m.model
    within("model.num_classes", info.num_classes, 1, MAX_DIM)
    within("model.feature_size", info.feature_size, 1, MAX_DIM)
    within("model.hidden_size", info.hidden_size, 1, MAX_DIM)
    within("model.num_layers", info.num_layers, 1, MAX_DIM)
    if info.num_layers * info.hidden_size > MAX_STATE_VALUES:
        raise _field("model.hidden_size", info.hidden_size, f"num_layers x hidden_size <= {MAX_STATE_VALUES} "
                     f"(it is {info.num_layers} x {info.hidden_size})", source)
    if len(m.labels) != info.num_classes:
        raise _field("labels", f"{len(m.labels)} labels", f"one label per class (model.num_classes is "
                     f"{info.num_classes})", source)
    if info.kind == ModelKind.FRAMES and m.preprocess is None:
        raise _field("preprocess", None, "a preprocess section for a frame model", source)
    if m.preprocess is not None:
        p = m.preprocess
        for i, side in enumerate(p.size):
            within(f"preprocess.size[{i}]", side, 1, MAX_FRAME_SIDE)
        _check_norm("preprocess", p.mean, p.std, 3, source)
    if m.features is not None:
        _check_norm("features", m.features.mean, m.features.std, info.feature_size, source)
    t = m.temporal
    within("temporal.clip_len", t.clip_len, 1)
    within("temporal.frame_stride", t.frame_stride, 1)
    positive("temporal.train_fps", t.train_fps, zero=True)  # 0.1 bundles and unknown-fps data write 0
    positive("temporal.reset.max_gap_s", t.reset.max_gap_s)
    within("temporal.reset.every_frames", t.reset.every_frames, 0)
    for i, st in enumerate(m.state):
        _check_dims(f"state[{i}].shape", st.shape, source)
    for i, a in enumerate(m.artifacts):
        for group, tensors in (("inputs", a.inputs), ("outputs", a.outputs)):
            for j, ts in enumerate(tensors):
                _check_dims(f"artifacts[{i}].{group}[{j}].shape", ts.shape, source)
                if ts.name in (LOGITS, CLIP_LOGITS) and ts.shape and ts.shape[-1] != info.num_classes:
                    raise _field(f"artifacts[{i}].{group}[{j}].shape", list(ts.shape),
                                 f"{ts.name} with model.num_classes ({info.num_classes}) classes", source)
    if m.selftest is not None:
        _check_selftest(m.selftest, info.num_classes, source)
    _check_task(m, source)


def _check_dims(where: str, shape: tuple[int | str, ...], source: str | Path) -> None:
    for k, d in enumerate(shape):
        if isinstance(d, int) and not 1 <= d <= MAX_DIM:
            raise _field(f"{where}[{k}]", d, f"1..{MAX_DIM} (or a named dynamic axis)", source)


def _check_selftest(st: SelfTest, num_classes: int, source: str | Path) -> None:

    if not 1 <= st.steps <= MAX_SELFTEST_STEPS:
        raise _field("selftest.steps", st.steps, f"1..{MAX_SELFTEST_STEPS}", source)
    if not 1 <= st.streams <= MAX_SELFTEST_STREAMS:
        raise _field("selftest.streams", st.streams, f"1..{MAX_SELFTEST_STREAMS}", source)
    if st.seed < 0:
        raise _field("selftest.seed", st.seed, "an integer >= 0", source)
    if len(st.logits) != st.streams or any(len(r) != num_classes for r in st.logits):
        raise _field("selftest.logits", f"{len(st.logits)} rows of {[len(r) for r in st.logits][:3]}",
                     f"{st.streams} rows of {num_classes} (streams x classes)", source)
    if not all(math.isfinite(v) for r in st.logits for v in r):
        raise _field("selftest.logits", "non-finite", "finite numbers", source)
    if not (math.isfinite(st.tolerance) and st.tolerance > 0):
        raise _field("selftest.tolerance", st.tolerance, "a finite number > 0", source)


def _check_task(m: Manifest, source: str | Path) -> None:
    """A detection bundle names its background label and carries usable event thresholds; a caption or track
    bundle carries its own section (and only it)."""
    if m.task not in (Task.CLASSIFY, Task.DETECT, Task.CAPTION, Task.TRACK):
        raise _field("task", str(m.task), "classify, detect, track or caption (the tasks this edgelstm runs)", source)
    _check_tracking(m, source)
    if (m.task == Task.CAPTION) != (m.captioning is not None):
        raise _field("captioning", "absent" if m.captioning is None else "a captioning section",
                     "a captioning section exactly when the task is caption", source)
    if m.captioning is not None:
        from edgelstm.captionspec import check_captioning

        check_captioning(m.captioning, source, lambda where, got, expected: _field(where, got, expected, source))
    d = m.detection
    if m.task in (Task.CAPTION, Task.TRACK):
        if d is not None:
            raise _field("detection", "a detection section", f"none for a {m.task} model", source)
        return
    if m.task == Task.CLASSIFY:
        if d is not None:
            raise _field("detection", "a detection section", "none for a classify model (or task 'detect')", source)
        return
    if d is None:
        raise _field("detection", None, "the background label and event thresholds of a detect model", source)
    if not 0 <= d.background < len(m.labels):
        raise _field("detection.background", d.background, f"an index into labels (0..{len(m.labels) - 1})", source)
    e = d.events
    if not (math.isfinite(e.on) and 0 < e.on <= 1):
        raise _field("detection.events.on", e.on, "a probability in (0, 1]", source)
    if not (math.isfinite(e.off) and 0 < e.off <= e.on):
        raise _field("detection.events.off", e.off, f"a probability in (0, on={e.on:g}]", source)


def _check_tracking(m: Manifest, source: str | Path) -> None:
    """A track bundle carries its crop geometry (and only a track bundle), within bounds, and four outputs."""
    t = m.tracking
    if (m.task == Task.TRACK) != (t is not None):
        raise _field("tracking", "absent" if t is None else "a tracking section",
                     "a tracking section exactly when the task is track", source)
    if t is None:
        return
    bad = t.check()
    if bad is not None:
        raise _field(f"tracking.{bad[0]}", bad[1], bad[2], source)
    if m.model.num_classes != 4:
        raise _field("model.num_classes", m.model.num_classes, "4 (a tracker's box outputs)", source)
    if m.preprocess is not None and tuple(m.preprocess.size) != (t.crop_size, 2 * t.crop_size):
        raise _field("preprocess.size", list(m.preprocess.size),
                     f"[{t.crop_size}, {2 * t.crop_size}]: a pair of tracking.crop_size crops side by side", source)

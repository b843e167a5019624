"""``edgelstm eval --task detect`` as a library: a detection checkpoint or bundle on the videos of a split.

Both paths produce per-frame probabilities of every whole video and hand them to one
:func:`~edgelstm.detect_metrics.detection_report` (frame mAP, stage accuracy, events with the model's own
thresholds: delay, false alarms per hour of background, missed actions). A bundle's come from the
:class:`~edgelstm.runtime.engine.Engine` frame by frame, every video from a zero state with the state carried
to its end, as on a device; a checkpoint's from PyTorch (:func:`edgelstm.train.tbptt.video_logits`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.data.untrimmed import UntrimmedSet, Video, load_untrimmed
from edgelstm.detect_metrics import DetectionReport, detection_report
from edgelstm.detectspec import Detection, detection_of
from edgelstm.errors import DataError, UsageError
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.frames import softmax
from edgelstm.spec import ColourOrder, Manifest, Task


@dataclass(frozen=True)
class DetectEvalResult:
    artifact: str               # "onnxruntime:fp32", or "torch" for a checkpoint
    split: str
    videos: int
    report: DetectionReport
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"task": str(Task.DETECT), "artifact": self.artifact, "split": self.split, "videos": self.videos,
                "seconds": round(self.seconds, 3), **self.report.to_json()}

    def summary(self) -> str:
        r = self.report
        p50, p90 = r.delay_p50_s, r.delay_p90_s
        delay = "n/a" if p50 is None or p90 is None else f"p50 {p50:.2f}s, p90 {p90:.2f}s"
        return (f"{self.split}: frame mAP {r.frame_map:.4f}; delay {delay}; {r.false_alarms_per_hour:.1f} false "
                f"alarms per hour of background; {r.missed} of {r.instances} actions missed "
                f"({self.videos} videos, {r.frames} frames; events on {r.thresholds.on:g} / off {r.thresholds.off:g})")


def _videos(ds: UntrimmedSet, split: str, classes: tuple[str, ...], where: str) -> list[Video]:
    if tuple(ds.classes) != tuple(classes):
        raise DataError(f"the data's classes ({', '.join(ds.classes[:5])}, ...) differ from the model's "
                        f"({', '.join(classes[:5])}, ...)", expected="the classes the model was trained on",
                        fix="evaluate on the data the model was trained on", path=where)
    videos = ds[split]
    if not videos:
        raise DataError(f"the {split} split has no videos", expected="at least one", fix="choose another --split")
    return videos


def _report(ds: UntrimmedSet, videos: list[Video], probs: list[np.ndarray], detection: Detection) -> DetectionReport:
    return detection_report(probs, [v.labels for v in videos], classes=ds.classes, background=detection.background,
                            fps=ds.fps, thresholds=detection.events)


def evaluate_detect_checkpoint(path: str | Path, data: str | UntrimmedSet | None = None, *,
                               split: str = "test") -> DetectEvalResult:
    """A detection checkpoint (``edgelstm train --task detect``) on ``data``: the set it was trained on by
    default (the embedded one rendered again from its recorded seed, counts and video length)."""
    from edgelstm.models.checkpoint import load_checkpoint
    from edgelstm.train.detect import split_probs

    ckpt = load_checkpoint(path)
    facts = ckpt.data
    detection = detection_of(facts.background, ckpt.metrics, source=path)
    if facts.task != Task.DETECT or detection is None:
        raise UsageError(f"--task detect on a checkpoint trained for '{facts.task}'", path=path,
                         expected="a checkpoint written by `edgelstm train --task detect` (or distill)",
                         fix="evaluate it without --task detect")
    if not isinstance(data, UntrimmedSet):
        counts = facts.synthetic_counts if (data or facts.source) == "synthetic" else None
        data = load_untrimmed(data or facts.source, size=facts.size or (32, 32), seed=facts.data_seed,
                              counts=counts, seconds=ckpt.metrics.get("video_seconds") or None)
    videos = _videos(data, split, tuple(ckpt.classes), str(path))
    t0 = time.perf_counter()
    probs = split_probs(ckpt.model, videos, window=facts.clip_len)
    return DetectEvalResult("torch", split, len(videos), _report(data, videos, probs, detection),
                            time.perf_counter() - t0)


def stream_videos(engine: Engine, videos: list[Video]) -> list[np.ndarray]:
    """Per-frame probabilities (T_i, K) of whole videos through ``engine``, up to ``engine.streams`` side by
    side, each from a zero state with its state carried to its end (no reset on the way)."""
    out: list[np.ndarray] = []
    for start in range(0, len(videos), engine.streams):
        chunk = videos[start:start + engine.streams]
        engine.reset()
        logits = [np.empty((len(v), len(engine.labels)), np.float32) for v in chunk]
        for t in range(max(len(v) for v in chunk)):
            ids = [i for i, v in enumerate(chunk) if t < len(v)]
            preds = engine.step_batch([chunk[i].frames[t] for i in ids], ids, colour=ColourOrder.RGB)
            for i, p in zip(ids, preds):
                logits[i][t] = p.logits
        out += [softmax(lg) for lg in logits]
    return out


def bundle_untrimmed(m: Manifest, data: str | None) -> UntrimmedSet:
    """The untrimmed data at the bundle's frame size: ``data``, or the embedded set (its default videos)."""
    size = m.preprocess.size if m.preprocess is not None else (32, 32)
    return load_untrimmed(data or m.data_source or "synthetic", size=size)


def evaluate_detect_bundle(bundle: str | Path | Bundle, data: str | UntrimmedSet | None = None, *,
                           split: str = "test", artifact: str = "onnxruntime:fp32", device: str = "cpu",
                           threads: int | None = None) -> DetectEvalResult:
    """A detection bundle's artefact on the videos of ``split``, streamed frame by frame through the Engine."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    m = b.manifest
    if m.task != Task.DETECT or m.detection is None:
        raise UsageError(f"--task detect on a bundle of task '{m.task}'", path=b.path,
                         expected="a bundle exported from a detection checkpoint", fix="evaluate it without --task")
    ds = data if isinstance(data, UntrimmedSet) else bundle_untrimmed(m, data)
    videos = _videos(ds, split, tuple(m.labels), str(b.path))
    backend, _, precision = artifact.partition(":")
    eng = Engine.load(b, device=device, backend=backend, precision=precision or "fp32", threads=threads,
                      streams=max(1, min(16, len(videos))))
    t0 = time.perf_counter()
    probs = stream_videos(eng, videos)
    return DetectEvalResult(f"{eng.info['backend']}:{eng.info['precision']}", split, len(videos),
                            _report(ds, videos, probs, m.detection), time.perf_counter() - t0)

"""``edgelstm eval --task track`` as a library: a tracker checkpoint or bundle on the sequences of a split.

Each sequence is tracked from its first true box to its end in a closed loop and scored with the OTB metrics
(:mod:`edgelstm.track_metrics`: mean IoU, success AUC, precision at 20 px). A bundle runs through the
:class:`~edgelstm.runtime.track.TrackEngine` frame by frame, one stream, as on a device, and the result adds its
frames per second and mean milliseconds per stage (crop = preprocess, encoder, LSTM step, decode = postprocess);
a checkpoint runs in PyTorch through the same closed loop (:func:`edgelstm.runtime.track.track_offline`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgelstm.data.tracking import SYNTHETIC, TrackConfig, TrackSequence, load_tracking, synthetic_sequence
from edgelstm.errors import DataError, UsageError
from edgelstm.spec import Task
from edgelstm.track_metrics import TrackReport, track_report
from edgelstm.trackspec import Tracking

EVAL_FRAMES = 48  # frames per synthetic sequence
SPLIT_SIZES = {"train": 200, "val": 20, "test": 40}  # synthetic sequences per split (the embedded set's)


@dataclass(frozen=True)
class TrackEvalResult:
    artifact: str               # "onnxruntime:fp32", or "torch" for a checkpoint
    split: str
    report: TrackReport
    seconds: float
    stages_ms: dict[str, float] = field(default_factory=dict)  # bundles: mean ms per frame of each stage
    fps: float = 0.0            # bundles: frames tracked per second through the engine (one stream)
    inference_precision: str = ""  # bundles: what the engine's step graph ran in (OpenVINO: f32 or bf16)

    def to_json(self) -> dict[str, Any]:
        return {"task": str(Task.TRACK), "artifact": self.artifact, "inference_precision": self.inference_precision,
                "split": self.split,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 1),
                "stages_ms": {k: round(v, 4) for k, v in self.stages_ms.items()}, **self.report.to_json()}

    def summary(self) -> str:
        speed = f"; {self.fps:.0f} frames/s through the engine" if self.fps else ""
        return f"{self.split} ({self.artifact}): {self.report.summary()}{speed}"


def split_sequences(data: str | None, split: str, t: Tracking, *, seed: int = 0) -> tuple[str, list[TrackSequence]]:
    """The sequences of ``split``: 'synthetic' (the default) renders them at the frame size the model was trained
    on; a folder is read in the OTB layout."""
    source = data or SYNTHETIC
    if source == SYNTHETIC:
        if split not in SPLIT_SIZES:
            raise UsageError(f"--split {split}", expected="train, val or test", fix="pass --split test")
        size = t.frame_size if min(t.frame_size) > 0 else (64, 64)
        cfg = TrackConfig(size=size, frames=EVAL_FRAMES, seed=seed)
        return source, [synthetic_sequence(cfg, split, i) for i in range(SPLIT_SIZES[split])]
    seqs = load_tracking(source, seed=seed)[split]
    if not seqs:
        raise DataError(f"the {split} split has no sequences", path=source, expected="at least one",
                        fix="choose another --split")
    return source, seqs


def evaluate_track_checkpoint(path: str | Path, data: str | None, *, split: str = "test") -> TrackEvalResult:
    from edgelstm.models.checkpoint import load_checkpoint
    from edgelstm.train.track import track_split
    from edgelstm.trackspec import tracking_of

    ckpt = load_checkpoint(path)
    t = tracking_of(ckpt.metrics, source=path)
    if t is None or ckpt.data.task != Task.TRACK:
        raise UsageError(f"--task track on a {ckpt.data.task} checkpoint", path=path,
                         expected="a checkpoint trained with --task track", fix="drop --task, or pass a tracker")
    _, seqs = split_sequences(data, split, t, seed=ckpt.data.data_seed)
    t0 = time.perf_counter()
    boxes = track_split(ckpt.model, seqs, t)
    return TrackEvalResult("torch", split, track_report(boxes, [s.boxes for s in seqs]), time.perf_counter() - t0)


def evaluate_track_bundle(path: str | Path, data: str | None, *, split: str = "test",
                          artifact: str = "onnxruntime:fp32") -> TrackEvalResult:
    """Track the split's sequences through the bundle's engine, one stream, frame by frame (BGR, as a camera)."""
    from edgelstm.runtime.engine import Engine
    from edgelstm.runtime.track import TrackEngine

    backend, _, precision = artifact.partition(":")
    eng = Engine.load(path, backend=backend or None, precision=precision or None, threads=1)
    if not isinstance(eng, TrackEngine):
        raise UsageError(f"--task track on a {eng.manifest.task} bundle", path=path,
                         expected="a bundle exported from a tracker", fix="drop --task, or pass a track bundle")
    _, seqs = split_sequences(data, split, eng.tracking)
    stages = ("preprocess", "encoder", "step", "postprocess", "total")
    sums, frames, boxes = dict.fromkeys(stages, 0.0), 0, []
    t0 = time.perf_counter()
    with eng:
        for seq in seqs:
            eng.init(seq.boxes[0])
            out = []
            for k, frame in enumerate(seq.frames):
                p = eng.step(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                out.append(p.box)
                if k:  # the first frame only starts the track
                    frames += 1
                    for s, v in p.timings.as_dict().items():
                        sums[s] += v
            boxes.append(np.array(out))
    seconds = time.perf_counter() - t0
    mean = {s: v / max(frames, 1) for s, v in sums.items()}
    return TrackEvalResult(artifact, split, track_report(boxes, [s.boxes for s in seqs]), seconds, mean,
                           fps=1000.0 / mean["total"] if mean["total"] > 0 else 0.0,
                           inference_precision=eng.inference_precision)

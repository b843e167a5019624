"""What export does differently for a detection model (``Manifest.task == detect``).

- The manifest names the task, the background label and the event thresholds training chose on val
  (:func:`task_fields`).
- The INT8 gate judges what a detector is for: frame mAP over the action classes and the median detection
  delay, on held-out videos streamed through the runtime (FP32 and INT8 alike), not clip accuracy
  (:func:`load_detect_gate_data`, :func:`judge_detect`).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgelstm.detect_metrics import count_events, frame_map
from edgelstm.detectspec import detection_of
from edgelstm.errors import ExportCheckError
from edgelstm.export.calib import GateData
from edgelstm.quantreport import GateSettings, Trial
from edgelstm.spec import Backend, Manifest, Task

log = logging.getLogger(__name__)

GATE_CHUNK_S = 20.0        # held-out videos are streamed in chunks of this length, each from a zero state
MAX_DELAY_INCREASE = 0.25  # the INT8 median delay may grow by at most this share of FP32's (and one frame)
NO_DETECTION = -1.0        # the delay recorded when no action was detected at all (never within the gate)


def task_fields(ckpt: Any) -> dict[str, Any]:
    """The manifest's ``task`` and ``detection`` for a checkpoint (a classifier: none; a tracker: its geometry)."""
    if ckpt.data.task == Task.TRACK:
        from edgelstm.export.track import track_fields

        return track_fields(ckpt)
    if ckpt.data.task != Task.DETECT:
        return {}
    detection = detection_of(ckpt.data.background, ckpt.metrics, source=ckpt.path or "checkpoint")
    if detection is None:
        raise ExportCheckError("a detection checkpoint without event thresholds", path=ckpt.path,
                               expected="best.pt of a finished `edgelstm train --task detect` run (training "
                                        "chooses them on val when it ends)", fix="export the run's best.pt")
    return {"task": Task.DETECT, "detection": detection}


def load_detect_gate_data(calib_data: str, manifest: Manifest, *, calib_clips: int, eval_clips: int) -> GateData:
    """Calibration windows from the train videos and held-out chunks (test, else val), in the GateData layout:
    ``X`` (N, L, H, W, 3), ``y`` (N, L) per-frame labels."""
    from edgelstm.data.untrimmed import load_untrimmed

    size = manifest.preprocess.size if manifest.preprocess is not None else (32, 32)
    ds = load_untrimmed(calib_data, size=size)
    fps = ds.fps
    split = "test" if ds.splits.get("test") else "val"
    chunk = max(manifest.temporal.clip_len, int(round(GATE_CHUNK_S * fps)))
    X, y = _chunks(ds[split], chunk)
    window = manifest.temporal.clip_len
    calib, _ = _chunks(ds["train"], window)
    n = max(1, -(-eval_clips * manifest.temporal.clip_len // chunk))  # about as many frames as eval_clips clips
    log.info("detect gate data: %d calibration windows, %d held-out chunks of %d frames from %s", min(calib_clips,
             len(calib)), min(n, len(X)), chunk, calib_data)
    return GateData(calib[:calib_clips], X[:n], y[:n], None, calib_data, split)


def _chunks(videos: list[Any], length: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for v in videos:
        for s in range(0, len(v) - length + 1, length):
            xs.append(v.frames[s:s + length])
            ys.append(v.labels[s:s + length])
    return np.stack(xs), np.stack(ys)


def _softmax(lg: np.ndarray) -> np.ndarray:
    e = np.exp(lg - lg.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)  # type: ignore[no-any-return]


def judge_detect(manifest: Manifest) -> Any:
    """The INT8 gate's judge for a detection model: frame mAP may drop by at most ``max_drop`` points and the
    median detection delay (with the manifest's thresholds) may grow by at most a quarter (and one frame); an INT8
    model that detects no action where FP32 did is too late.
    ``Trial.accuracy_*`` hold the frame mAPs; ``frame_agreement`` the per-frame argmax agreement."""
    d = manifest.detection
    assert d is not None  # checked by the manifest for task detect

    def judge(backend: Backend, kept: tuple[str, ...], fp32: np.ndarray, int8: np.ndarray, y: np.ndarray,
              settings: GateSettings) -> Trial:
        p32, p8 = _softmax(fp32), _softmax(int8)
        map32 = frame_map(p32.reshape(-1, p32.shape[-1]), y.reshape(-1), d.background)[0]
        map8 = frame_map(p8.reshape(-1, p8.shape[-1]), y.reshape(-1), d.background)[0]
        delay32, delay8 = (count_events(list(p), list(y), background=d.background, on=d.events.on,
                                        off=d.events.off).delay(50) for p in (p32, p8))
        drop = 100.0 * (map32 - map8)
        frame = float((fp32.argmax(-1) == int8.argmax(-1)).mean())
        late = delay32 is not None and (delay8 is None or delay8 > delay32 * (1 + MAX_DELAY_INCREASE) + 1)
        ok = drop <= settings.max_drop_points and not late
        delay32, delay8 = (NO_DETECTION if v is None else v for v in (delay32, delay8))
        return Trial(str(backend), kept, round(map32, 5), round(map8, 5), frame, frame, 0.0, 0.0, ok,
                     drop_points=round(drop, 3), clips=int(len(y)), metric="frame_map",
                     delay_p50_frames=(round(delay32, 2), round(delay8, 2)))
    return judge

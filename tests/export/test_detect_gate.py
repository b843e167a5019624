"""The INT8 gate of a detection model judges frame mAP and detection delay (planted FP32 / INT8 logits)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from edgelstm.detectspec import Detection, EventThresholds
from edgelstm.export.detect import judge_detect
from edgelstm.quantreport import GateSettings
from edgelstm.spec import Backend


def _planted() -> tuple[np.ndarray, np.ndarray]:
    """Two chunks of 60 frames: background, then action 1 (frames 20-39), then background; logits that see
    the action from its first frame."""
    y = np.zeros((2, 60), np.int64)
    y[:, 20:40] = 1
    logits = np.zeros((2, 60, 3), np.float32)
    logits[..., 0] = 3.0
    logits[:, 20:40, 1] = 6.0
    return logits, y


def _judge(fp32: np.ndarray, int8: np.ndarray, y: np.ndarray) -> Any:
    manifest: Any = SimpleNamespace(detection=Detection(0, EventThresholds(0.6, 0.3, 60.0, 0.0)))
    return judge_detect(manifest)(Backend.ONNXRUNTIME, (), fp32, int8, y, GateSettings(1.0))


def test_the_same_scores_pass_with_frame_map_as_the_metric() -> None:
    logits, y = _planted()
    t = _judge(logits, logits + 0.01, y)
    assert t.passed and t.metric == "frame_map" and t.accuracy_fp32 == 1.0 and t.drop_points == 0.0
    assert t.delay_p50_frames == (0.0, 0.0) and t.frame_agreement == 1.0


def test_a_frame_map_drop_fails() -> None:
    logits, y = _planted()
    worse = logits.copy()
    worse[:, 5:15, 1] = 6.5  # confident action scores in the background
    t = _judge(logits, worse, y)
    assert not t.passed and t.drop_points > 1.0


def test_a_later_detection_fails_even_when_frame_map_holds() -> None:
    logits, y = _planted()
    late = logits.copy()
    late[:, 20:26, 1] = 3.2  # the action ranks above every background frame, but its event starts 6 frames late
    t = _judge(logits, late, y)
    assert t.drop_points == 0.0 and t.delay_p50_frames == (0.0, 6.0) and not t.passed


def test_an_int8_model_that_detects_nothing_fails() -> None:
    logits, y = _planted()
    blind = logits.copy()
    blind[..., 1] = 2.7 * (y == 1) + 0.5  # ranks the action first (frame mAP holds) but never reaches `on`
    t = _judge(logits, blind, y)
    assert t.drop_points == 0.0 and t.delay_p50_frames == (0.0, -1.0) and not t.passed

"""Online action detection metrics from per-frame probabilities, the one implementation for checkpoints and
bundles (numpy; scikit-learn's ``average_precision_score`` when it is installed): what ``edgelstm eval --task
detect`` reports, what training keeps its best checkpoint by and chooses event thresholds with, and what the
INT8 gate of a detection model judges.

- **frame mAP** (the THUMOS'14 online protocol of TRN and LSTR): per action class, the average precision of
  every frame's score for that class against "the frame belongs to this class"; background excluded, classes
  with no positive frame skipped, the mean over the rest.
- **stage accuracy** (LSTR's analysis by action stage): each action instance cut into deciles; per decile, the
  share of its frames whose argmax (background included) is the instance's class.
- **events** (:mod:`edgelstm.runtime.events`, the runtime's own code) matched to the ground-truth instances: an
  instance is *detected* by an event of its class that overlaps it; its **delay** is from the instance's first
  frame to the first such event's start (0 when the event started earlier). An event that overlaps no instance
  of its class is a **false alarm**, counted per hour of background. An instance with no event is **missed**.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgelstm.data.untrimmed import Instance, instances
from edgelstm.detectspec import EventThresholds
from edgelstm.runtime.events import Event, events_from_probs

log = logging.getLogger(__name__)

STAGES = 10  # deciles of each action instance
ON_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.30 .. 0.95
OFF_RATIOS = (0.5, 0.8)  # off = on * ratio


# --- average precision ----------------------------------------------------------------------------------
def average_precision_reference(y_true: np.ndarray, scores: np.ndarray) -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds, highest first (no interpolation): the
    definition scikit-learn's ``average_precision_score`` implements; used when scikit-learn is absent."""
    y = np.asarray(y_true, bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    s, y = np.asarray(scores, np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each distinct score
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    try:
        from sklearn.metrics import average_precision_score
    except ImportError:
        return average_precision_reference(y_true, scores)
    if not np.asarray(y_true, bool).any():
        return float("nan")
    return float(average_precision_score(np.asarray(y_true, bool), np.asarray(scores, np.float64)))


def frame_map(probs: np.ndarray, labels: np.ndarray, background: int) -> tuple[float, dict[int, float]]:
    """Mean over action classes with a positive frame of per-frame AP; ``probs`` (N, K), ``labels`` (N,)."""
    per_class = {}
    for c in range(probs.shape[1]):
        if c != background and (labels == c).any():
            per_class[c] = average_precision(labels == c, probs[:, c])
    return (float(np.mean(list(per_class.values()))) if per_class else float("nan")), per_class


def stage_accuracy(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], background: int) -> list[float | None]:
    """Per decile of the action instances, the share of frames whose argmax is the instance's class."""
    right, total = np.zeros(STAGES), np.zeros(STAGES)
    for p, y in zip(probs, labels):
        pred = p.argmax(-1)
        for g in instances(y, background):
            idx = np.arange(g.start, g.end)
            stage = np.minimum(STAGES - 1, (STAGES * (idx - g.start)) // (g.end - g.start))
            np.add.at(total, stage, 1)
            np.add.at(right, stage, (pred[idx] == g.label).astype(float))
    return [float(r / t) if t else None for r, t in zip(right, total)]


# --- events against the ground truth ---------------------------------------------------------------------
@dataclass(frozen=True)
class EventCounts:
    delays: tuple[int, ...]      # frames, one per detected instance
    instances: int
    missed: int
    false_alarms: int
    events: int
    background_frames: int
    frames: int

    def false_alarms_per_hour(self, fps: float) -> float:
        hours = self.background_frames / fps / 3600.0 if fps > 0 else 0.0
        return self.false_alarms / hours if hours > 0 else float("nan")

    def delay(self, q: float) -> float | None:
        return float(np.percentile(self.delays, q)) if self.delays else None

    def within(self, frames: float) -> float:
        """The share of all instances detected within ``frames`` of their start (a missed one never is)."""
        return sum(d <= frames for d in self.delays) / self.instances if self.instances else float("nan")


def match_events(events: Sequence[Event], truth: Sequence[Instance]) -> tuple[list[int], int, int]:
    """(delay in frames of each detected instance, missed instances, false alarms) of one stream."""
    delays, missed = [], 0
    used = [False] * len(events)
    for g in truth:
        hits = [i for i, e in enumerate(events)
                if e.label == g.label and e.start < g.end and (e.end is None or e.end > g.start)]
        for i in hits:
            used[i] = True
        if hits:
            delays.append(max(0, min(events[i].start for i in hits) - g.start))
        else:
            missed += 1
    return delays, missed, used.count(False)


def count_events(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, background: int, on: float,
                 off: float) -> EventCounts:
    delays: list[int] = []
    missed = fa = n_events = n_inst = bg = frames = 0
    for p, y in zip(probs, labels):
        events = events_from_probs(p, background=background, on=on, off=off)
        truth = instances(y, background)
        d, m, f = match_events(events, truth)
        delays += d
        missed, fa, n_events, n_inst = missed + m, fa + f, n_events + len(events), n_inst + len(truth)
        bg, frames = bg + int((y == background).sum()), frames + len(y)
    return EventCounts(tuple(delays), n_inst, missed, fa, n_events, bg, frames)


# --- the report ------------------------------------------------------------------------------------------
# Earliness over every action: the share detected within these many seconds of its start. Unlike the delay
# percentiles, which count only the actions a model detects at all, a missed action counts here as never detected,
# so a model cannot look early by missing the hard ones.
WITHIN_S = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class DetectionReport:
    frame_map: float
    per_class_ap: dict[str, float]
    stage_accuracy: list[float | None]
    delay_p50_frames: float | None
    delay_p90_frames: float | None
    delay_p50_s: float | None
    delay_p90_s: float | None
    false_alarms_per_hour: float
    missed: int
    instances: int
    events: int
    false_alarms: int
    frames: int
    background_frames: int
    fps: float
    thresholds: EventThresholds
    detected_within: dict[str, float] = field(default_factory=dict)  # "0.5s" -> share of all actions (see WITHIN_S)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else round(float(v), 5)

        out: dict[str, Any] = {k: num(getattr(self, k)) for k in ("frame_map", "delay_p50_s", "delay_p90_s", "delay_p50_frames",
                                                   "delay_p90_frames", "false_alarms_per_hour")}
        out.update(missed=self.missed, instances=self.instances, events=self.events, false_alarms=self.false_alarms,
                   frames=self.frames, background_frames=self.background_frames, fps=self.fps,
                   per_class_ap={k: num(v) for k, v in self.per_class_ap.items()},
                   stage_accuracy=[num(v) for v in self.stage_accuracy],
                   detected_within={k: num(v) for k, v in self.detected_within.items()},
                   thresholds={"on": self.thresholds.on, "off": self.thresholds.off,
                               "chosen_on": self.thresholds.split}, **self.extra)
        return out


def detection_report(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, classes: Sequence[str],
                     background: int, fps: float, thresholds: EventThresholds) -> DetectionReport:
    """Every figure of one split: ``probs[i]`` (T_i, K) per-frame probabilities of video ``i``, ``labels[i]`` its
    (T_i,) per-frame classes."""
    fmap, per_class = frame_map(np.concatenate(probs), np.concatenate(labels), background)
    c = count_events(probs, labels, background=background, on=thresholds.on, off=thresholds.off)
    p50, p90 = c.delay(50), c.delay(90)
    return DetectionReport(
        frame_map=fmap, per_class_ap={classes[k]: v for k, v in per_class.items()},
        stage_accuracy=stage_accuracy(probs, labels, background), delay_p50_frames=p50, delay_p90_frames=p90,
        delay_p50_s=None if p50 is None else p50 / fps, delay_p90_s=None if p90 is None else p90 / fps,
        false_alarms_per_hour=c.false_alarms_per_hour(fps), missed=c.missed, instances=c.instances,
        events=c.events, false_alarms=c.false_alarms, frames=c.frames, background_frames=c.background_frames,
        fps=fps, thresholds=thresholds, detected_within={f"{w:g}s": c.within(w * fps) for w in WITHIN_S})


def earliness_at_false_alarms(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, background: int,
                              fps: float, budgets: Sequence[float] = (60.0, 120.0, 300.0),
                              within_s: Sequence[float] = (0.5, 1.0)) -> dict[str, dict[str, float | None]]:
    """How early a model detects at a matched false-alarm rate, threshold-free: for each budget (false alarms per
    hour of background), the largest share of all actions detected within each of ``within_s`` seconds by any
    (on, off) pair of the threshold grid that stays within it (None: no pair does). Two models compared at the
    thresholds each chose on val run at different false-alarm rates on test; this compares them at the same one
    (an AMOC-style operating curve; the thresholds are the split's own, so it is an analysis, not a deployment)."""
    counts = [count_events(probs, labels, background=background, on=on, off=round(on * r, 3))
              for on in ON_GRID for r in OFF_RATIOS]
    out: dict[str, dict[str, float | None]] = {}
    for b in budgets:
        ok = [c for c in counts if (0.0 if math.isnan(fa := c.false_alarms_per_hour(fps)) else fa) <= b]
        out[f"{b:g}"] = {f"{w:g}s": max(c.within(w * fps) for c in ok) if ok else None for w in within_s}
    return out


def choose_thresholds(probs: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, background: int, fps: float,
                      target_false_alarms_per_hour: float, split: str = "val") -> EventThresholds:
    """The most useful (on, off) of a small grid on one split: among the pairs whose false alarms per hour of
    background stay within the target, the fewest missed instances, then the shortest median delay, then the
    highest ``on``; when no pair meets the target, the fewest false alarms (and a warning)."""
    scored = []
    for on in ON_GRID:
        for ratio in OFF_RATIOS:
            off = round(on * ratio, 3)
            c = count_events(probs, labels, background=background, on=on, off=off)
            fa = c.false_alarms_per_hour(fps)
            fa = 0.0 if math.isnan(fa) else fa
            scored.append((fa, c.missed, c.delay(50) or 0.0, -on, on, off))
    ok = [s for s in scored if s[0] <= target_false_alarms_per_hour]
    if ok:
        best = min(ok, key=lambda s: (s[1], s[2], s[3]))
    else:
        best = min(scored, key=lambda s: (s[0], s[1], s[2]))
        log.warning("no event thresholds keep false alarms within %.1f per hour on %s; the fewest: %.1f per hour "
                    "(on %.2f, off %.2f)", target_false_alarms_per_hour, split, best[0], best[4], best[5])
    return EventThresholds(on=best[4], off=best[5], target_false_alarms_per_hour=float(target_false_alarms_per_hour),
                           false_alarms_per_hour=round(best[0], 3), split=split)

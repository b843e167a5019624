"""A detection model's facts in the manifest (``Manifest.detection``): which label is the background and the
hysteresis thresholds that turn its per-frame probabilities into events (``edgelstm.runtime.events``).

Export writes it from the checkpoint (the thresholds are chosen on the validation split when training ends);
the runtime and ``edgelstm eval --task detect`` read it. Standard library only, strict like the manifest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EventThresholds:
    """An event of action ``a`` starts when ``p(a)`` reaches ``on`` and ends when it falls below ``off``
    (``off <= on``). Chosen on ``split`` as the most sensitive pair whose false alarms per hour of background
    stayed within the target (``false_alarms_per_hour`` is what that split measured with them)."""

    on: float
    off: float
    target_false_alarms_per_hour: float
    false_alarms_per_hour: float
    split: str = "val"


@dataclass(frozen=True)
class Detection:
    background: int                # index of the background class in ``Manifest.labels``
    events: EventThresholds


THRESHOLDS_KEY = "event_thresholds"  # where a detection checkpoint's metrics keep its EventThresholds


def detection_of(background: int, metrics: dict[str, Any], *, source: str | Path) -> Detection | None:
    """A detection checkpoint's :class:`Detection`: its background index (``DataFacts.background``) and the
    thresholds training chose (``metrics[THRESHOLDS_KEY]``); None when training did not get to choose them."""
    from edgelstm.jsonspec import from_jsonable

    raw = metrics.get(THRESHOLDS_KEY)
    if raw is None or background < 0:
        return None
    events = from_jsonable(EventThresholds, raw, where=THRESHOLDS_KEY, source=source)
    return Detection(background=background, events=events)

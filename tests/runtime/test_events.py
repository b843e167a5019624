"""Events from per-frame probabilities: hysteresis on a planted series, a switch of action, resets."""
from __future__ import annotations

import numpy as np
import pytest

from edgelstm.errors import UsageError
from edgelstm.runtime.events import Change, Event, EventTracker, events_from_probs


def _series(p1: list[float], p2: list[float] | None = None) -> np.ndarray:
    """(T, 3) probabilities: background, action 1, action 2 (background takes what is left)."""
    a = np.array(p1)
    b = np.zeros_like(a) if p2 is None else np.array(p2)
    return np.stack([1.0 - a - b, a, b], 1)


P1 = [0.1, 0.5, 0.65, 0.5, 0.35, 0.25, 0.62, 0.9, 0.2, 0.1]


def test_hysteresis_keeps_an_event_between_off_and_on() -> None:
    events = events_from_probs(_series(P1), background=0, on=0.6, off=0.3)
    assert events == [Event(1, 2, 5, 0.65), Event(1, 6, 8, 0.9)]


def test_without_hysteresis_the_same_series_flickers() -> None:
    events = events_from_probs(_series(P1), background=0, on=0.6, off=0.6)
    assert [(e.start, e.end) for e in events] == [(2, 3), (6, 8)]


def test_a_stronger_action_ends_the_open_event_and_starts_its_own() -> None:
    probs = _series([0.7, 0.35, 0.1], [0.1, 0.62, 0.8])
    tracker = EventTracker(1, background=0, on=0.6, off=0.3)
    assert [c.change for c in tracker.update(0, probs[0])] == [Change.START]
    changes = tracker.update(0, probs[1])
    assert [(c.change, c.event.label) for c in changes] == [(Change.END, 1), (Change.START, 2)]
    assert changes[0].event.end == 1 and tracker.active(0) == Event(2, 1, None, 0.62)
    assert tracker.update(0, probs[2]) == () and tracker.active(0).confidence == pytest.approx(0.8)


def test_background_never_starts_an_event_and_an_open_one_closes_at_the_end() -> None:
    probs = np.array([[0.99, 0.005, 0.005], [0.2, 0.7, 0.1], [0.2, 0.7, 0.1]])
    assert events_from_probs(probs, background=0, on=0.5, off=0.3) == [Event(1, 1, 3, 0.7)]


def test_streams_are_independent_and_reset_forgets() -> None:
    tracker = EventTracker(2, background=0, on=0.6, off=0.3)
    up, down = _series([0.9])[0], _series([0.0])[0]
    tracker.update(0, up)
    tracker.update(1, down)
    assert tracker.active(0) is not None and tracker.active(1) is None
    tracker.reset(0)
    assert tracker.active(0) is None
    assert tracker.update(0, up)[0].event.start == 0  # frames counted from the reset


def test_refuses_off_above_on() -> None:
    with pytest.raises(UsageError, match="0 < off <= on <= 1"):
        EventTracker(1, background=0, on=0.4, off=0.5)


def test_outputs_write_event_lines_and_show_the_open_event() -> None:
    from edgelstm.runtime.engine import Prediction, Timings
    from edgelstm.runtime.events import EventChange
    from edgelstm.runtime.loop import Decision
    from edgelstm.runtime.outputs import decision_record, draw_overlay, event_records
    from edgelstm.runtime.sources import Frame

    labels = ("background", "wave", "jump")
    ended, started = Event(1, 3, 9, 0.8), Event(2, 9, None, 0.7)
    changes = (EventChange(Change.END, ended), EventChange(Change.START, started))
    pred = Prediction(0, 2, "jump", 0.7, np.array([0.1, 0.2, 0.7]), np.zeros(3), ((2, 0.7),),
                      Timings(0, 0, 0, 0, 0), events=changes, event=started)
    frame = Frame(np.zeros((120, 160, 3), np.uint8), index=42, t_capture=0.0, t_media=2.8, epoch=0)
    d = Decision(7, 0, frame, pred, 1.0, "")
    assert decision_record(d, labels, detect=True)["event"] == "jump"
    assert "event" not in decision_record(d, labels)  # a classifier's lines are as before
    assert event_records(d, labels) == [
        {"event": "end", "stream": 0, "label": "wave", "frame": 42, "t_media": 2.8, "confidence": 0.8, "decisions": 6},
        {"event": "start", "stream": 0, "label": "jump", "frame": 42, "t_media": 2.8, "confidence": 0.7}]
    img = draw_overlay(frame.image, d, labels, fps=15.0)
    banner = img[102:108, 140:158]  # rows 100-108 at this size, right of its text: the banner colour, BGR red
    assert (banner[..., 2] == 200).all() and (banner[..., :2] == 0).all()

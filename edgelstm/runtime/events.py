"""Events from per-frame probabilities: the one implementation that ``edgelstm eval --task detect``, the
threshold choice at the end of training and the runtime (``Engine``, ``edgelstm demo``) all run.

A detection model outputs, every frame, probabilities over its action classes and a background class. An
event of action ``a`` *starts* on the first frame where ``p(a)`` reaches ``on`` (``a`` being the most likely
action) and *ends* on the first frame where ``p(a)`` falls below ``off``; ``off <= on`` is the hysteresis
that keeps a score hovering near one threshold from flickering events on and off. While an event is open,
another action that reaches ``on`` and beats ``a`` ends it and starts its own. numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from edgelstm.errors import UsageError


class Change(StrEnum):
    START = "start"
    END = "end"


@dataclass(frozen=True)
class Event:
    label: int               # the action's class index
    start: int               # frame (counted from the stream's last reset) the event started on
    end: int | None          # the first frame after it; None while it is open
    confidence: float        # the highest p(label) while it lasted (so far)


@dataclass(frozen=True)
class EventChange:
    change: Change
    event: Event             # for END: the closed event, ``end`` set


class EventTracker:
    """Events of ``streams`` streams, one frame at a time: ``update(stream, probs)`` returns what started or
    ended on that frame."""

    def __init__(self, streams: int, *, background: int, on: float, off: float) -> None:
        if not (0 < off <= on <= 1):
            raise UsageError(f"event thresholds on={on} off={off}", expected="0 < off <= on <= 1",
                             fix="choose thresholds with off at most on (the manifest's detection.events)")
        self.background, self.on, self.off = background, float(on), float(off)
        self._open: list[Event | None] = [None] * streams
        self._frame = [0] * streams

    def reset(self, stream: int | None = None) -> None:
        """Forget the open event and restart frame counting (a stream whose LSTM state was reset)."""
        for s in range(len(self._open)) if stream is None else (stream,):
            self._open[s], self._frame[s] = None, 0

    def active(self, stream: int) -> Event | None:
        return self._open[stream]

    def update(self, stream: int, probs: np.ndarray) -> tuple[EventChange, ...]:
        """``probs``: this frame's (K,) probabilities of ``stream``."""
        frame = self._frame[stream]
        self._frame[stream] = frame + 1
        best, p_best = self._best_action(probs)
        cur = self._open[stream]
        changes: list[EventChange] = []
        if cur is not None:
            p_cur = float(probs[cur.label])
            if p_cur >= self.off and not (best != cur.label and p_best >= self.on and p_best > p_cur):
                if p_cur > cur.confidence:
                    self._open[stream] = Event(cur.label, cur.start, None, p_cur)
                return ()
            closed = Event(cur.label, cur.start, frame, cur.confidence)
            changes.append(EventChange(Change.END, closed))
            self._open[stream] = None
        if p_best >= self.on:
            new = Event(best, frame, None, p_best)
            self._open[stream] = new
            changes.append(EventChange(Change.START, new))
        return tuple(changes)

    def _best_action(self, probs: np.ndarray) -> tuple[int, float]:
        p = np.array(probs, dtype=np.float64, copy=True)
        p[self.background] = -1.0
        best = int(p.argmax())
        return best, float(p[best])


def events_from_probs(probs: np.ndarray, *, background: int, on: float, off: float) -> list[Event]:
    """Every event of one stream's (T, K) probabilities, in order; one still open at the end is closed at T."""
    tracker = EventTracker(1, background=background, on=on, off=off)
    out: list[Event] = []
    for row in probs:
        out.extend(c.event for c in tracker.update(0, row) if c.change == Change.END)
    last = tracker.active(0)
    if last is not None:
        out.append(Event(last.label, last.start, len(probs), last.confidence))
    return out

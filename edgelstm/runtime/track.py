"""Tracking on the device: :class:`TrackEngine` follows one target per stream from a given box.

The engine of a track bundle (``Engine.load`` returns one when ``Manifest.task`` is ``track``). Per stream it
keeps the LSTM state, the target's box and the previous frame's crop of that box's window. For each frame it
cuts the current frame's crop of the same window (:mod:`edgelstm.runtime.track_geometry`, numpy and OpenCV: the
crops are the preprocess stage), runs the encoder and step graphs on the pair through the usual
:class:`~edgelstm.runtime.stream.Chain`, decodes the new box (postprocess) and crops the frame again around it
for the next step. ``step`` returns a :class:`TrackPrediction` with the box and per-stage timings.

``init(box, stream)`` (re)starts a stream's track: the stream's next frame only takes the first crop and
returns the box as given. Without a box a stream starts from a centred box a quarter of the frame's side.
``reset`` (a gap or reconnect in the live loop) zeroes the LSTM state and restarts from the current box. Every
``Tracking.reinit_every`` steps the LSTM state is zeroed and the box kept, as in training (Re3).

:func:`track_offline` runs the same procedure over whole recorded sequences with any step function (a PyTorch
model in training and evaluation, the bundle's graphs through an engine here), so both agree step for step.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgelstm.errors import BundleError, UsageError
from edgelstm.runtime.engine import Engine, Prediction, Timings
from edgelstm.runtime.frames import check_frame
from edgelstm.runtime.stream import Chain
from edgelstm.runtime.track_geometry import box_problem, crop, crop_pair, decode
from edgelstm.spec import ColourOrder, Task
from edgelstm.trackspec import Tracking

StepFn = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]  # crop pairs (N, S, 2S, 3), state -> (N, 4), state


@dataclass(frozen=True)
class TrackPrediction(Prediction):
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x, y, w, h in the frame's pixels
    started: bool = False  # this frame (re)started the track: the box is the one given, no model ran


def default_box(frame_hw: tuple[int, int]) -> np.ndarray:
    """A centred box a quarter of the frame's sides: where a stream starts without ``init``."""
    h, w = frame_hw
    return np.array([3 * w / 8, 3 * h / 8, w / 4, h / 4])


class TrackEngine(Engine):
    """An :class:`Engine` whose streams each follow a target's box (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t = self.manifest.tracking
        if self.manifest.task != Task.TRACK or t is None:
            raise BundleError(f"a {self.manifest.task} bundle has no tracking section", path=self.bundle.path,
                              expected="a bundle exported from a tracker (task track)",
                              fix="load it with Engine.load, which picks the engine for its task")
        self.tracking = t
        s, n = t.crop_size, self.streams
        self._box = np.full((n, 4), np.nan)           # the current box of each stream (nan: none yet)
        self._prev = np.zeros((n, s, s, 3), np.uint8)  # the previous frame's crop, in the graph's colour order
        self._ready = np.zeros(n, bool)               # a previous crop is there: the next frame is tracked
        self._since = np.zeros(n, np.int64)           # steps since the LSTM state was last zeroed
        self._pending: dict[int, np.ndarray] = {}     # boxes from init(), applied at the stream's next frame

    def init(self, box: Sequence[float] | np.ndarray, stream: int = 0) -> None:
        """Start (or restart) ``stream``'s track at ``box`` (x, y, w, h in pixels of its next frame)."""
        self._check_stream(stream)
        why = box_problem(box, (1 << 30, 1 << 30))
        if why:
            raise UsageError(f"init box {list(np.asarray(box).reshape(-1))[:6]} is {why}",
                             expected="x,y,w,h: the target's top-left corner and size in pixels, w and h > 0",
                             fix="pass e.g. --init-box 120,80,40,60")
        self._pending[int(stream)] = np.asarray(box, np.float64).reshape(4)

    def box(self, stream: int = 0) -> tuple[float, float, float, float] | None:
        """The stream's current box, or None before its first frame."""
        self._check_stream(stream)
        b = self._box[stream]
        return None if np.isnan(b).any() else (float(b[0]), float(b[1]), float(b[2]), float(b[3]))

    def reset(self, stream: int | None = None) -> None:
        """Zero the LSTM state; the track restarts from its current box at the stream's next frame."""
        super().reset(stream)
        sel = slice(None) if stream is None else stream
        self._ready[sel] = False
        self._since[sel] = 0

    def step(self, frame: np.ndarray, stream: int = 0) -> TrackPrediction:
        return self.step_batch([frame], streams=[stream])[0]

    def step_batch(  # type: ignore[override]  # the same call, a TrackPrediction per stream
            self, frames: Sequence[np.ndarray] | np.ndarray, streams: Sequence[int] | None = None, *,
            colour: ColourOrder = ColourOrder.BGR) -> list[TrackPrediction]:
        t0 = time.perf_counter_ns()
        self._check_open()
        ids = self._ids(len(frames), streams)
        for frame in frames:
            check_frame(frame)
        swap = colour != self.colour
        tracked = [j for j, s in enumerate(ids) if self._start_or_keep(s, frames[j].shape[:2])]
        slots = [ids[j] for j in tracked] if self._static else range(len(tracked))
        for slot, j in zip(slots, tracked):
            self._prepare_pair(slot, ids[j], frames[j], swap)
        t1 = time.perf_counter_ns()
        enc_ns = step_ns = 0
        if tracked:
            logits, enc_ns, step_ns = self._infer([ids[j] for j in tracked])
        t3 = time.perf_counter_ns()
        raw = {ids[j]: np.asarray(logits[i], np.float32) for i, j in enumerate(tracked)} if tracked else {}
        preds = [self._finish(s, frames[j], raw.get(s), swap) for j, s in enumerate(ids)]
        t4 = time.perf_counter_ns()
        tm = Timings(preprocess=(t1 - t0) / 1e6, encoder=enc_ns / 1e6, step=step_ns / 1e6,
                     postprocess=(t4 - t3) / 1e6, total=(t4 - t0) / 1e6)
        for p in preds:
            object.__setattr__(p, "timings", tm)
        return preds

    def _start_or_keep(self, s: int, hw: tuple[int, int]) -> bool:
        """Apply a pending init (or the default box); True when this frame is tracked, False when it starts."""
        box = self._pending.pop(s, None)
        if box is not None:
            why = box_problem(box, hw)
            if why:
                raise UsageError(f"init box {[round(float(v), 2) for v in box]} is {why}",
                                 expected=f"a box at least partly inside the {hw[1]}x{hw[0]} frame",
                                 fix="give a box in the frame's pixels (x,y of its top-left corner, then w,h)")
            self.reset(s)
            self._box[s] = box
        elif np.isnan(self._box[s]).any():
            self._box[s] = default_box(hw)
        return bool(self._ready[s])

    def _prepare_pair(self, slot: int, s: int, frame: np.ndarray, swap: bool) -> None:
        t = self.tracking
        if t.reinit_every and self._since[s] >= t.reinit_every:
            for arr in self._state.values():  # Re3: zero the LSTM state now and then, keep the box
                arr[:, s] = 0.0
            self._since[s] = 0
        dst = self._buf[slot]  # (S, 2S, 3)
        crop_pair(self._prev[s], frame, self._box[s], t, dst)
        if swap:
            cv2.cvtColor(dst[:, t.crop_size:], cv2.COLOR_BGR2RGB, dst=dst[:, t.crop_size:])

    def _finish(self, s: int, frame: np.ndarray, out: np.ndarray | None, swap: bool) -> TrackPrediction:
        """Decode the new box (a started or non-finite stream keeps its box) and crop the frame around it."""
        t, hw = self.tracking, frame.shape[:2]
        reset = ""
        if out is not None:
            if np.isfinite(out).all() and s not in self._bad:
                self._box[s] = decode(self._box[s], out, t, hw)
                self._since[s] += 1
            else:
                reset = "non-finite state" if s in self._bad else "non-finite outputs"
        crop(frame, self._box[s], t, self._prev[s])
        if swap:
            cv2.cvtColor(self._prev[s], cv2.COLOR_BGR2RGB, dst=self._prev[s])
        started = out is None
        self._ready[s] = not reset
        b = self._box[s]
        return TrackPrediction(s, 0, "target", 1.0, _ONE, out if out is not None else _NO_OUT, (), _ZERO,
                               reset=reset, box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                               started=started)


_ONE = np.ones(1, np.float32)
_NO_OUT = np.full(4, np.nan, np.float32)
_ZERO = Timings(0.0, 0.0, 0.0, 0.0, 0.0)


def track_offline(step: StepFn, zero_state: Callable[[int], Any], sequences: Sequence[np.ndarray],
                  init: Sequence[np.ndarray], t: Tracking, *,
                  follow: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Track each sequence (T, H, W, 3) uint8, in the colour order ``step`` takes, from its ``init`` box; the
    boxes (T, 4) of every frame (the first is ``init``). Sequences of one length and frame size run as a batch.

    ``follow`` (boxes (T, 4) per sequence): cut the next crops around these boxes instead of the tracker's own,
    so each returned box is one step of the loop from the same crops another tracker saw (step parity)."""
    out: list[np.ndarray] = [np.empty((len(f), 4)) for f in sequences]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, f in enumerate(sequences):
        groups.setdefault(tuple(f.shape), []).append(i)
    for members in groups.values():
        forced = None if follow is None else np.stack([np.asarray(follow[i], np.float64) for i in members])
        boxes = _track_group(step, zero_state, [sequences[i] for i in members],
                             np.stack([np.asarray(init[i], np.float64) for i in members]), t, forced)
        for k, i in enumerate(members):
            out[i] = boxes[k]
    return out


def _track_group(step: StepFn, zero_state: Callable[[int], Any], seqs: list[np.ndarray], init: np.ndarray,
                 t: Tracking, forced: np.ndarray | None = None) -> np.ndarray:
    n, length, hw = len(seqs), len(seqs[0]), seqs[0].shape[1:3]
    s = t.crop_size
    boxes = np.empty((n, length, 4))
    boxes[:, 0] = box = init
    prev = np.stack([crop(f[0], b, t) for f, b in zip(seqs, box)])
    x = np.empty((n, s, 2 * s, 3), np.uint8)
    state, since = zero_state(n), 0
    for k in range(1, length):
        if t.reinit_every and since >= t.reinit_every:
            state, since = zero_state(n), 0
        for i in range(n):
            crop_pair(prev[i], seqs[i][k], box[i], t, x[i])
        outputs, state = step(x, state)
        boxes[:, k] = box = decode(box, outputs, t, hw)
        if forced is not None:
            box = forced[:, k]
        since += 1
        for i in range(n):
            crop(seqs[i][k], box[i], t, prev[i])
    return boxes


def chain_step(chain: Chain) -> tuple[StepFn, Callable[[int], Any]]:
    """A bundle's streaming graphs as a :data:`StepFn` over crop pairs in the graph's colour order, and its zero
    state: :func:`track_offline` on the device's own loop (``edgelstm.runtime.stream.open_chain``)."""

    def step(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        res = chain.step(np.ascontiguousarray(x), state)
        return res.logits, res.state
    return step, chain.zero_state

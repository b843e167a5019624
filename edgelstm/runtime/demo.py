"""The demo as a library: open a bundle and its sources, run the live loop, write decisions and a recording.

:func:`run_demo` is what ``edgelstm demo``, ``edgelstm quickstart`` and the tests call; the click
command only parses options and prints. Decisions go out as JSON lines (headless), the annotated
stream 0 to a window and/or a video file.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    """Everything ``edgelstm demo`` takes besides the bundle and the sources (defaults as on the command line)."""
    device: str = "cpu"
    backend: str | None = None
    precision: str | None = None
    threads: int | None = None
    graph: str = "auto"
    show: bool = False
    record: Path | None = None
    jsonl: Path | None = None
    max_frames: int | None = None
    ema: float = 0.5
    hysteresis: float = 0.1
    top_k: int = 5
    realtime: bool = False
    rate: str = "trained"
    fps: float | None = None
    stall_timeout: float = 5.0
    open_timeout: float = 5.0
    reconnect_attempts: int = 5
    force: bool = False      # replace an existing --record / --jsonl file
    init_boxes: tuple[tuple[float, float, float, float], ...] = ()  # trackers: stream i starts at init_boxes[i]
    beam: int | None = None  # captioners: beam width of the word decoder [default: the manifest's]

@dataclass(frozen=True)
class DemoSummary:
    """How a demo run ended. ``summary`` is :meth:`LoopStats.summary` (None when interrupted before it ended);
    ``error`` is the source error that ended it, if any (the caller decides whether to raise)."""
    summary: dict[str, Any] | None
    error: str | None
    decisions: int
    recorded: Path | None = None
    recorded_frames: int = 0
    decisions_file: Path | None = None

    @property
    def interrupted(self) -> bool:
        return self.summary is None


def on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set ``stop`` (the loop ends cleanly); returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda *_: stop.set())

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)
    return restore


def run_demo(bundle: str | Path, sources: Sequence[str] = ("synthetic",), options: DemoOptions = DemoOptions(), *,
             notify: Callable[[str], None] | None = None) -> DemoSummary:
    """Run ``bundle`` live on ``sources`` until they end, ``max_frames`` decisions, or SIGINT/SIGTERM.

    ``notify`` receives the lines a user should see before the loop starts (no window, the engine
    chosen); by default they are logged.
    """
    from edgelstm.errors import UsageError
    from edgelstm.runtime.sources import Reconnect
    from edgelstm.runtime.engine import Engine
    from edgelstm.runtime.loop import run_loop
    from edgelstm.runtime.outputs import display_available
    from edgelstm.runtime.frames import Smoothing
    from edgelstm.runtime.sources import open_source
    from edgelstm.runtime.offline_sources import synthetic_camera_size

    from edgelstm.fsutil import check_outputs

    say = notify or log.info
    o = options
    check_outputs(inputs=[("BUNDLE", bundle), *(("--source", s) for s in sources)],
                  outputs=[("--jsonl", o.jsonl), ("--record", o.record)], force=o.force)  # before any work
    engine = Engine.load(bundle, device=o.device, backend=o.backend, precision=o.precision, threads=o.threads,
                         streams=len(sources), graph=o.graph, smoothing=Smoothing(o.ema, o.hysteresis), top_k=o.top_k)
    m = engine.manifest  # the synthetic camera plays the model's clip length, rate and aspect ratio
    if o.beam is not None:
        if engine.narrator is None:
            raise UsageError(f"--beam {o.beam} for a {m.task} bundle", expected="a captioning bundle (task caption)",
                             fix="drop --beam")
        engine.narrator.width = o.beam
    scene_size = synthetic_camera_size(m.preprocess.size) if m.preprocess else (480, 640)
    srcs = [open_source(s, realtime=o.realtime, timeout_s=o.open_timeout, fps=o.fps or m.temporal.train_fps,
                        size=scene_size, clip_len=m.temporal.clip_len, untrimmed=m.task == "detect")
            for s in sources]
    if m.task == "track":  # a tracker starts from a box: --init-box, or the synthetic camera's own first box
        from edgelstm.runtime.track_demo import start_tracks

        srcs = start_tracks(engine, srcs, o.init_boxes, fps=o.fps or m.temporal.train_fps or 15.0)
    show = o.show
    if show:
        show, why = display_available()
        if not show:
            say(f"No window: {why}. Running headless (JSON lines).")
    say(f"{bundle}: {engine.info['backend']} {engine.info['device']} {engine.info['precision']} "
        f"({engine.info['graph']} graph, {engine.inference_precision}); {engine.info['choice']}; "
        f"source {', '.join(s.name for s in srcs)}")
    sink = DecisionSink(engine, show=show, record=o.record, jsonl=o.jsonl, headless=not show,
                        fps=m.temporal.train_fps if o.rate == "trained" else 0.0)
    stop = threading.Event()
    restore = on_signals(stop)
    keep = False
    try:
        stats = run_loop(engine, srcs, on_decision=sink, stop_event=stop, max_frames=o.max_frames, rate=o.rate,
                         reconnect=Reconnect(attempts=o.reconnect_attempts), stall_timeout_s=o.stall_timeout)
        keep = True
    except KeyboardInterrupt:  # a second Ctrl-C while the handler was not installed
        stats, keep = None, True
    finally:
        restore()
        # A run that failed before its first decision (a source that never opened) leaves no files and
        # replaces none; one that made decisions keeps them, even when it ended on an error.
        sink.close(keep=keep or sink.decisions > 0)
    return DemoSummary(summary=None if stats is None else stats.summary(), error=None if stats is None else stats.error,
                       decisions=sink.decisions, recorded=sink.rec.dest if sink.rec is not None else None,
                       recorded_frames=sink.rec.frames if sink.rec is not None else 0,
                       decisions_file=sink.json.dest if sink.json is not None else None)


class DecisionSink:
    """on_decision for the demo: JSON lines, overlay window, recorder."""

    def __init__(self, engine: Any, *, show: bool, record: Path | None, jsonl: Path | None, headless: bool,
                 fps: float) -> None:
        from edgelstm.runtime.outputs import JsonlWriter, Recorder

        self.labels = engine.labels
        self.detect = getattr(getattr(engine, "manifest", None), "task", "") == "detect"  # also write event lines
        self.captions = None  # captioning bundles: a JSON line per caption, the latest one on the frame
        if getattr(getattr(engine, "manifest", None), "task", "") == "caption":
            from edgelstm.runtime.caption_output import CaptionOverlay

            self.captions = CaptionOverlay()
        self.track = None  # trackers: the box as a JSON line and on the frame (a box dragged in the window restarts)
        if getattr(getattr(engine, "manifest", None), "task", "") == "track":
            from edgelstm.runtime.track_demo import TrackOutputs

            self.track = TrackOutputs(engine, show=show)
        self.show = show
        self.rec = Recorder(record, fps) if record is not None else None  # checks the name: nothing opened yet
        self.json = JsonlWriter(jsonl) if headless or jsonl is not None else None
        self.decisions = 0
        self.fps = 0.0
        self._last = 0.0

    def __call__(self, d: Any) -> None:
        from edgelstm.runtime.outputs import decision_record, draw_overlay, event_records

        now = time.monotonic()
        if self._last:
            inst = 1.0 / max(now - self._last, 1e-6)
            self.fps = inst if not self.fps else 0.9 * self.fps + 0.1 * inst
        self._last = now
        self.decisions += 1
        if self.json is not None:
            self.json.write(self.track.record(d) if self.track else decision_record(d, self.labels, detect=self.detect))
            for rec in event_records(d, self.labels) if self.detect else ():
                self.json.write(rec)
            if self.captions is not None and d.prediction.caption is not None:
                from edgelstm.runtime.caption_output import caption_record

                self.json.write(caption_record(d))  # type: ignore[arg-type]
        if (self.show or self.rec is not None) and d.stream == 0:
            img = self.track.draw(d, fps=self.fps) if self.track else draw_overlay(d.frame.image, d, self.labels,
                                                                                    fps=self.fps)
            if self.captions is not None:
                img = self.captions.draw(img, d)
            if self.rec is not None:
                self.rec.write(img)
            if self.show:
                import cv2

                cv2.imshow("edgelstm", img)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    raise KeyboardInterrupt

    def close(self, *, keep: bool = True) -> None:
        """Finalise the outputs (renamed into place), or with ``keep=False`` discard them."""
        if self.json is not None:
            self.json.close(keep=keep)
        if self.rec is not None:
            self.rec.close(keep=keep)
        if self.show:
            import cv2

            cv2.destroyAllWindows()

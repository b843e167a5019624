"""``edgelstm devices`` and ``edgelstm demo``: thin click commands over the runtime library.

Only click is imported at module level, so ``edgelstm demo --help`` is instant; numpy, OpenCV and
the backends load inside the command bodies. Decisions go to stdout as JSON lines (headless);
logs, the start line and the summary go to stderr.
"""
from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as JSON instead of a table.")
def devices(as_json: bool) -> None:
    """List device profiles (built-in, and $EDGELSTM_DEVICES folders) and whether each runs here."""
    import json

    from rich.console import Console
    from rich.table import Table

    from edgelstm.devices import list_profiles, usable

    rows = [(p, *usable(p)) for p in list_profiles()]
    if as_json:
        click.echo(json.dumps([{"name": p.name, "backend": str(p.backend), "device": p.device,
                                "precision": p.precision, "threads": p.threads, "input_size": list(p.input_size),
                                "usable": ok, "reason": why, "path": p.path} for p, ok, why in rows], indent=2))
        return
    table = Table(title="Device profiles (use with --device NAME, or --device path/to/profile.toml)")
    for col in ("name", "backend", "device", "precision", "threads", "input", "usable here", "why"):
        table.add_column(col)
    for p, ok, why in rows:
        table.add_row(p.name, str(p.backend), p.device, p.precision + (f" / {p.inference_precision}"
                      if p.inference_precision else ""), str(p.threads or "auto"),
                      f"{p.input_size[0]}x{p.input_size[1]}", "[green]yes[/]" if ok else "[red]no[/]", why)
    Console(width=shutil.get_terminal_size((160, 24)).columns).print(table)


@click.command("demo")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--source", "sources", multiple=True, default=("synthetic",), show_default=True,
              help="Camera index (0), video file, image folder, rtsp:// or http(s):// URL, or 'synthetic'. "
                   "Repeat for several streams served by one engine.")
@click.option("--device", default="cpu", show_default=True, help="Device profile name or .toml file "
              "(`edgelstm devices`).")
@click.option("--backend", type=click.Choice(["onnxruntime", "openvino"]), default=None,
              help="Override the profile's backend.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8"]), default=None,
              help="Override the profile's precision (auto: INT8 only if it passed its gate and paid off).")
@click.option("--threads", type=click.IntRange(min=0), default=None, help="Inference threads (0: backend default).")
@click.option("--graph", type=click.Choice(["auto", "split", "fused"]), default="auto", show_default=True,
              help="split: encoder + step (per-stage timings); fused: one graph.")
@click.option("--show/--headless", default=True, show_default=True,
              help="Window with an overlay, or JSON lines only. Without a display, falls back to headless.")
@click.option("--record", type=click.Path(path_type=Path), default=None, help="Write the annotated video (stream 0).")
@click.option("--jsonl", type=click.Path(path_type=Path), default=None, help="Write decisions here instead of stdout.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N decisions.")
@click.option("--ema", type=click.FloatRange(0.0, 0.99), default=0.5, show_default=True,
              help="Probability smoothing: weight of the past (0: off).")
@click.option("--hysteresis", type=click.FloatRange(0.0, 0.99), default=0.1, show_default=True,
              help="A new label must beat the shown one by this probability margin (0: off).")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--realtime/--every-frame", default=False, show_default=True,
              help="Files: play at the file's fps, dropping frames the model cannot keep up with (like a camera), "
                   "or decode every frame (reproducible; the default).")
@click.option("--rate", type=click.Choice(["trained", "all"]), default="trained", show_default=True,
              help="trained: feed the model at the manifest's train_fps, skipping extra frames; all: every frame.")
@click.option("--fps", type=click.FloatRange(min=0.1), default=None,
              help="Frame rate of the synthetic source and of image folders (default 15).")
@click.option("--stall-timeout", type=click.FloatRange(min=0.01), default=5.0, show_default=True,
              help="Seconds without a frame before a live source counts as stalled and is reopened.")
@click.option("--open-timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds to wait for a stream URL to open or deliver a frame before it counts as failed.")
@click.option("--reconnect-attempts", type=click.IntRange(min=0), default=5, show_default=True,
              help="Reopen tries (exponential back-off from 0.5 s to 8 s) before giving up on a live source.")
def demo(bundle: Path, sources: tuple[str, ...], device: str, backend: str | None, precision: str | None,
         threads: int | None, graph: str, show: bool, record: Path | None, jsonl: Path | None,
         max_frames: int | None, ema: float, hysteresis: float, top_k: int, realtime: bool, rate: str,
         fps: float | None, stall_timeout: float, open_timeout: float, reconnect_attempts: int) -> None:
    """Run BUNDLE live on a camera, file, URL, image folder or the synthetic source."""
    from edgelstm.runtime.capture import Reconnect
    from edgelstm.runtime.engine import Engine
    from edgelstm.runtime.loop import run_loop
    from edgelstm.runtime.outputs import display_available
    from edgelstm.runtime.postprocess import Smoothing
    from edgelstm.runtime.sources import open_source, synthetic_camera_size

    engine = Engine.load(bundle, device=device, backend=backend, precision=precision, threads=threads,
                         streams=len(sources), graph=graph, smoothing=Smoothing(ema, hysteresis), top_k=top_k)
    m = engine.manifest  # the synthetic camera plays the model's clip length, rate and aspect ratio
    scene_size = synthetic_camera_size(m.preprocess.size) if m.preprocess else (480, 640)
    srcs = [open_source(s, realtime=realtime, timeout_s=open_timeout, fps=fps or m.temporal.train_fps,
                        size=scene_size, clip_len=m.temporal.clip_len) for s in sources]
    if show:
        show, why = display_available()
        if not show:
            click.echo(f"No window: {why}. Running headless (JSON lines).", err=True)
    click.echo(f"{bundle}: {engine.info['backend']} {engine.info['device']} {engine.info['precision']} "
               f"({engine.info['graph']} graph, {engine.inference_precision}); {engine.info['choice']}; "
               f"source {', '.join(s.name for s in srcs)}", err=True)
    sink = _Sink(engine, show=show, record=record, jsonl=jsonl, headless=not show,
                 fps=engine.manifest.temporal.train_fps if rate == "trained" else 0.0)
    stop = threading.Event()
    restore = _on_signals(stop)
    keep = False
    try:
        stats = run_loop(engine, srcs, on_decision=sink, stop_event=stop, max_frames=max_frames, rate=rate,
                         reconnect=Reconnect(attempts=reconnect_attempts), stall_timeout_s=stall_timeout)
        keep = True
    except KeyboardInterrupt:  # a second Ctrl-C while the handler was not installed
        stats, keep = None, True
    finally:
        restore()
        # A run that failed before its first decision (a source that never opened) leaves no files and
        # replaces none; one that made decisions keeps them, even when it ended on an error.
        sink.close(keep=keep or sink.decisions > 0)
    if stats is None:
        click.echo("Interrupted.", err=True)
        return
    _print_summary(stats.summary(), sink)
    if stats.error:
        from edgelstm.errors import SourceError

        raise SourceError(stats.error)


class _Sink:
    """on_decision for the demo: JSON lines, overlay window, recorder."""

    def __init__(self, engine: Any, *, show: bool, record: Path | None, jsonl: Path | None, headless: bool,
                 fps: float) -> None:
        from edgelstm.runtime.outputs import JsonlWriter, Recorder

        self.labels = engine.labels
        self.show = show
        self.rec = Recorder(record, fps) if record is not None else None  # checks the name: nothing opened yet
        self.json = JsonlWriter(jsonl) if headless or jsonl is not None else None
        self.decisions = 0
        self.fps = 0.0
        self._last = 0.0
        self.stop: threading.Event | None = None

    def __call__(self, d: Any) -> None:
        from edgelstm.runtime.outputs import decision_record, draw_overlay

        now = time.monotonic()
        if self._last:
            inst = 1.0 / max(now - self._last, 1e-6)
            self.fps = inst if not self.fps else 0.9 * self.fps + 0.1 * inst
        self._last = now
        self.decisions += 1
        if self.json is not None:
            self.json.write(decision_record(d, self.labels))
        if (self.show or self.rec is not None) and d.stream == 0:
            img = draw_overlay(d.frame.image, d, self.labels, fps=self.fps)
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


def _on_signals(stop: threading.Event) -> Any:
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


def _print_summary(s: dict[str, Any], sink: _Sink) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"demo summary ({s['ended']})", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in (("frames read", s["frames_read"]), ("frames decided", s["frames_decided"]),
                         ("frames dropped (stale)", s["frames_dropped"]),
                         ("frames skipped (above train fps)", s["frames_skipped"]),
                         ("state resets", ", ".join(f"{k} {v}" for k, v in s["resets"].items()) or "0"),
                         ("reconnects / stalls", f"{s['reconnects']} / {s['stalls']}"),
                         ("latency p50 / p99", f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f} ms"),
                         ("frame age p50 / p99", f"{s['age_ms']['p50']:.1f} / {s['age_ms']['p99']:.1f} ms"),
                         ("mean FPS", f"{s['mean_fps']:.1f}")):
        table.add_row(label, str(value))
    if sink.rec is not None:
        table.add_row("recorded", f"{sink.rec.dest} ({sink.rec.frames} frames)")
    if sink.json is not None and sink.json.dest is not None:
        table.add_row("decisions", str(sink.json.dest))
    Console(stderr=True).print(table)

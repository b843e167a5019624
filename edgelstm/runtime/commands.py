"""``edgelstm devices`` and ``edgelstm demo``: thin click commands over the runtime library.

Only click is imported at module level, so ``edgelstm demo --help`` is instant; numpy, OpenCV and
the backends load inside the command bodies. Decisions go to stdout as JSON lines (headless);
logs, the start line and the summary go to stderr.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from edgelstm.runtime.demo import DemoSummary


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
@click.option("--force", is_flag=True, help="Replace an existing --record or --jsonl file.")
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
@click.option("--init-box", "init_boxes", multiple=True, metavar="X,Y,W,H",
              help="Trackers: the target's box in the first frame, in pixels (top-left corner, size); repeat for "
                   "streams 1, 2, ... [default: the synthetic camera's own box, else a centred box]. With a window, "
                   "drag a rectangle to restart the track.")
@click.option("--beam", type=click.IntRange(1, 16), default=None,
              help="Captioners: the word decoder's beam width (1: greedy) [default: the manifest's].")
def demo(bundle: Path, sources: tuple[str, ...], device: str, backend: str | None, precision: str | None,
         threads: int | None, graph: str, show: bool, record: Path | None, jsonl: Path | None, force: bool,
         max_frames: int | None, ema: float, hysteresis: float, top_k: int, realtime: bool, rate: str,
         fps: float | None, stall_timeout: float, open_timeout: float, reconnect_attempts: int,
         init_boxes: tuple[str, ...], beam: int | None) -> None:
    """Run BUNDLE live on a camera, file, URL, image folder or the synthetic source."""
    from edgelstm.runtime.demo import DemoOptions, run_demo
    from edgelstm.runtime.track_demo import parse_init_box

    options = DemoOptions(device=device, backend=backend, precision=precision, threads=threads, graph=graph,
                          show=show, record=record, jsonl=jsonl, max_frames=max_frames, ema=ema,
                          hysteresis=hysteresis, top_k=top_k, realtime=realtime, rate=rate, fps=fps,
                          stall_timeout=stall_timeout, open_timeout=open_timeout,
                          reconnect_attempts=reconnect_attempts, force=force,
                          init_boxes=tuple(parse_init_box(b) for b in init_boxes), beam=beam)
    result = run_demo(bundle, sources, options, notify=lambda line: click.echo(line, err=True))
    if result.summary is None:
        click.echo("Interrupted.", err=True)
        return
    print_summary(result)
    if result.error:
        from edgelstm.errors import SourceError

        raise SourceError(result.error)


def print_summary(result: DemoSummary) -> None:
    """The demo's end-of-run table, on stderr."""
    from rich.console import Console
    from rich.table import Table

    s = result.summary or {}
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
    if result.recorded is not None:
        table.add_row("recorded", f"{result.recorded} ({result.recorded_frames} frames)")
    if result.decisions_file is not None:
        table.add_row("decisions", str(result.decisions_file))
    Console(stderr=True).print(table)

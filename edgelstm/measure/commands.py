"""``edgelstm profile``, ``edgelstm eval`` and ``edgelstm explain``: thin click commands over
:func:`edgelstm.measure.profiler.profile_bundle`, :mod:`edgelstm.measure.evaluate` and :mod:`edgelstm.measure.explain`.

Only click at module level (``edgelstm profile --help`` is instant and imports no torch); the table
goes to stdout, progress to stderr; ``--json`` and ``--plot`` are written atomically.

SIGINT (Ctrl-C) and SIGTERM stop it cleanly, as they stop ``demo``: the measurement in progress is
dropped, the rows completed so far are printed and written (``"interrupted"`` in the JSON says where it
stopped), and it exits 0. Stopped before any row completed, it writes nothing and keeps an existing
``--json``/``--plot`` as it was.
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import click


def _split(values: tuple[str, ...]) -> list[str] | None:
    out = [v.strip() for text in values for v in text.split(",") if v.strip()]
    return out or None


@click.command("profile")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--device", "devices", multiple=True,
              help="Device profile(s) (`edgelstm devices`); repeat or comma-separate. Default: all usable here.")
@click.option("--precision", "precisions", multiple=True, help="fp32, int8 or fp32,int8 (default: both, where the "
              "bundle has them).")
@click.option("--backend", "backends", multiple=True, help="onnxruntime, openvino (default: every usable device's).")
@click.option("--frames", type=click.IntRange(min=5), default=90, show_default=True,
              help="Decisions measured per configuration at the camera rate (after the warm-up).")
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--fps", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Camera rate.")
@click.option("--source", default="synthetic", show_default=True,
              help="'synthetic' (640x480 frames, replayed), a video file, a camera index or a URL.")
@click.option("--streams", type=click.IntRange(min=1), default=1, show_default=True,
              help="Also measure N streams on one engine against N engines.")
@click.option("--threads", type=click.IntRange(min=0), default=None, help="Inference threads (default: the profile's).")
@click.option("--clip-len", type=click.IntRange(min=0), default=0,
              help="Window of clip re-inference (default: the clip length the model was trained on).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="The PyTorch checkpoint for the eager baseline (default: found beside the bundle by SHA-256).")
@click.option("--no-baselines", is_flag=True, help="Skip clip re-inference and PyTorch eager.")
@click.option("--accuracy", "accuracy", default=None, metavar="DATA",
              help="Add accuracy and argmax agreement with FP32 on DATA ('synthetic', a folder, .csv, .npz).")
@click.option("--split", default="test", show_default=True, help="Split of --accuracy data.")
@click.option("--clips", type=click.IntRange(min=1), default=200, show_default=True, help="Clips for --accuracy.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the report as JSON.")
@click.option("--force", is_flag=True, help="Replace an existing --json or --plot file.")
@click.option("--plot", "plot_out", type=click.Path(path_type=Path), default=None,
              help="Write a PNG: latency CDF per configuration and per-stage bars.")
def profile(bundle: Path, devices: tuple[str, ...], precisions: tuple[str, ...], backends: tuple[str, ...],
            frames: int, warmup: int, fps: float, source: str, streams: int, threads: int | None, clip_len: int,
            checkpoint: Path | None, no_baselines: bool, accuracy: str | None, split: str, clips: int,
            json_out: Path | None, force: bool, plot_out: Path | None) -> None:
    """Profile BUNDLE in the live loop: per-stage p50/p90/p99/mean, frame age, FPS, drops, memory, size.

    Every configuration (device x backend x precision) runs the real loop (capture thread,
    preprocessing, model, postprocessing) at the camera rate, then un-paced; beside them, clip
    re-inference and PyTorch eager run through the same loop for comparison.
    """
    from rich.console import Console

    from edgelstm.fsutil import check_outputs, write_text_atomic
    from edgelstm.measure.profiler import profile_bundle
    from edgelstm.runtime.demo import on_signals

    check_outputs(inputs=[("BUNDLE", bundle), ("--source", source), ("--checkpoint", checkpoint),
                          ("--accuracy", accuracy)],
                  outputs=[("--json", json_out), ("--plot", plot_out)], force=force)  # before any work
    err = Console(stderr=True)
    stop = threading.Event()
    restore = on_signals(stop)
    try:
        report = profile_bundle(bundle, devices=_split(devices), backends=_split(backends),
                                precisions=_split(precisions), frames=frames, warmup=warmup, fps=fps, source=source,
                                streams=streams, threads=threads, clip_len=clip_len, checkpoint=checkpoint,
                                accuracy=accuracy, split=split, accuracy_clips=clips, baselines=not no_baselines,
                                progress=lambda msg: err.print(f"[dim]{msg}[/]"), stop=stop)
    finally:
        restore()
    if report.interrupted:
        err.print(f"[yellow]Interrupted:[/] {report.interrupted}; the partial report follows")
        if not report.rows and not report.streams:
            err.print("nothing measured yet: no report written" + (f" ({json_out} left as it was)" if json_out else ""))
            return
    out = Console(width=max(240, shutil.get_terminal_size((240, 24)).columns))
    out.print(report.table())
    if report.streams:
        out.print(report.streams_table())
    for note in report.notes:
        err.print(f"[yellow]note:[/] {note}")
    if json_out is not None:
        write_text_atomic(json_out, report.json_text())
        err.print(f"JSON written to {json_out}")
    if plot_out is not None:
        report.plot(plot_out)
        err.print(f"plot written to {plot_out}")


@click.command("eval")
@click.argument("target", type=click.Path(exists=True))
@click.option("--data", default=None, help="Dataset [default: the one recorded in the checkpoint].")
@click.option("--split", default="test", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Write eval_<split>.json and confusion_<split>.png here.")
@click.option("--artifact", default=None, help="Bundle only: which artefact, e.g. onnxruntime:int8.")
@click.option("--checkpoint", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Bundle only: the PyTorch checkpoint it came from; adds per-frame argmax agreement with it.")
@click.option("--reference", default=None,
              help="Bundle only: another artefact to compare with, e.g. onnxruntime:fp32 (agreement per frame).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False))
@click.option("--task", type=click.Choice(["classify", "detect", "track", "caption"]), default=None,
              help="detect: frame mAP, per-stage accuracy, detection delay, false alarms per hour and missed actions "
                   "on the split's untrimmed videos; track: mean IoU, success AUC and precision@20px of each "
                   "sequence tracked from its first box (bundles: frames/s through the engine); caption: BLEU-4, "
                   "CIDEr-D and motion-word accuracy of greedy captions [default: the task the model was trained for].")
def eval_cmd(target: str, data: str | None, split: str, as_json: bool, out: str | None, artifact: str | None,
             checkpoint: str | None, reference: str | None, cache_dir: str | None, task: str | None) -> None:
    """Evaluate a CHECKPOINT (.pt) or a BUNDLE folder on a dataset split."""
    import json

    from edgelstm.fsutil import check_outputs
    from edgelstm.measure import evaluate as ev

    path = Path(target)
    check_outputs(inputs=[("TARGET", path), ("--data", data), ("--checkpoint", checkpoint)],
                  outputs=[("--out", out)], folders=["--out"])  # before any work
    task = task or _trained_task(path)
    if task == "detect":
        _eval_detect(path, data, split, as_json=as_json, out=out, artifact=artifact)
        return
    if task == "track":
        _eval_track(path, data, split, as_json=as_json, out=out, artifact=artifact)
        return
    if task == "caption":  # BLEU-4, CIDEr-D and motion-word accuracy of greedy captions (edgelstm.measure.caption)
        _eval_caption(path, data, split, as_json=as_json, out=out, artifact=artifact)
        return
    if path.is_dir():
        result = ev.evaluate_bundle(path, _bundle_dataset(path, data, cache_dir), split=split,
                                    artifact=artifact or ev.DEFAULT_ARTIFACT,
                                    checkpoint=ev.checkpoint_reference(checkpoint) if checkpoint else None,
                                    reference=reference)
    else:
        result = ev.evaluate_checkpoint(path, data or _recorded_source(path), split=split, cache_dir=cache_dir)
    if out:
        ev.save_result(result, out, confusion_png=not path.is_dir(),
                       title=f"{path.name} on {split}: accuracy {result.accuracy:.3f}")
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    click.echo(f"{split} accuracy: {result.accuracy:.4f} (n={result.clips})")
    click.echo("accuracy after seeing " + ", ".join(f"{k}: {v:.3f}" for k, v in result.accuracy_at_fraction.items()))
    known = [(k, v) for k, v in result.per_class.items() if v is not None]
    click.echo("weakest classes: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(known, key=lambda kv: kv[1])[:3]))
    if result.agreement is not None:
        a = result.agreement
        click.echo(f"agreement with {a.reference}: frame_argmax_agreement {a.frame_argmax_agreement:.3f}, "
                   f"max_abs_diff {a.max_abs_diff:.3f}")
    if out:
        click.echo(f"wrote {out}/eval_{split}.json" + ("" if path.is_dir() else f" and confusion_{split}.png"))


def _trained_task(path: Path) -> str:
    """The task a bundle's manifest or a checkpoint's data facts name."""
    if path.is_dir():
        from edgelstm.spec import Manifest

        return str(Manifest.read(path / "manifest.json").task)
    from edgelstm.models.checkpoint import load_checkpoint

    return str(load_checkpoint(path).data.task)


def _eval_detect(path: Path, data: str | None, split: str, *, as_json: bool, out: str | None,
                 artifact: str | None) -> None:
    import json

    from edgelstm.fsutil import write_text_atomic
    from edgelstm.measure import detect

    if path.is_dir():
        result = detect.evaluate_detect_bundle(path, data, split=split, artifact=artifact or "onnxruntime:fp32")
    else:
        result = detect.evaluate_detect_checkpoint(path, data, split=split)
    if out:
        write_text_atomic(Path(out) / f"eval_{split}.json", json.dumps(result.to_json(), indent=2) + "\n")
    click.echo(json.dumps(result.to_json()) if as_json else result.summary())


def _eval_track(path: Path, data: str | None, split: str, *, as_json: bool, out: str | None,
                artifact: str | None) -> None:
    import json

    from edgelstm.fsutil import write_text_atomic
    from edgelstm.measure import track

    if path.is_dir():
        result = track.evaluate_track_bundle(path, data, split=split, artifact=artifact or "onnxruntime:fp32")
    else:
        result = track.evaluate_track_checkpoint(path, data, split=split)
    if out:
        write_text_atomic(Path(out) / f"eval_{split}.json", json.dumps(result.to_json(), indent=2) + "\n")
    click.echo(json.dumps(result.to_json()) if as_json else result.summary())


def _eval_caption(path: Path, data: str | None, split: str, *, as_json: bool, out: str | None,
                  artifact: str | None) -> None:
    import json

    from edgelstm.fsutil import write_text_atomic
    from edgelstm.measure import caption

    if path.is_dir():
        result = caption.evaluate_caption_bundle(path, data, split=split, artifact=artifact or "onnxruntime:fp32")
    else:
        result = caption.evaluate_caption_checkpoint(path, data, split=split)
    if out:
        write_text_atomic(Path(out) / f"eval_{split}.json", json.dumps(result.to_json(), indent=2) + "\n")
    click.echo(json.dumps(result.to_json()) if as_json else result.summary())


def _recorded_source(path: Path) -> str:
    from edgelstm.models.checkpoint import load_checkpoint

    return load_checkpoint(path).data.source or "synthetic"


def _bundle_dataset(path: Path, data: str | None, cache_dir: str | None) -> Any:
    """The dataset at the bundle's frame size, clip length and stride (torch-free)."""
    from edgelstm.data import load_dataset
    from edgelstm.spec import Manifest

    manifest = Manifest.read(path / "manifest.json")
    return load_dataset(data or "synthetic", **manifest.data_options(), stride=manifest.temporal.frame_stride,
                        cache_dir=cache_dir)


@click.command("explain")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--source", required=True,
              help="Video file, image folder, camera index, URL or 'synthetic' (clips back to back, with their "
                   "truth); a feature model takes a .npy of (T, F) features.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("explain"), show_default=True,
              help="Folder for explain.png, explain.json and gates.npz.")
@click.option("--window", type=int, default=None,
              help="Decisions after an occluded frame that are re-run [default: twice the clip length].")
@click.option("--occlude", type=click.Choice(["previous", "mean"]), default="previous", show_default=True,
              help="What replaces an occluded frame: the frame before it, or the stream's mean frame.")
@click.option("--max-frames", type=int, default=None,
              help="Explain the first N decisions [default: the whole source; synthetic: 5 clips].")
@click.option("--label", default=None, help="The clip's true class, when known (synthetic knows its own).")
@click.option("--rate", type=click.Choice(["trained", "all"]), default="trained", show_default=True,
              help="trained: feed at the manifest's train_fps, skipping extra frames (as demo does); all: every frame.")
@click.option("--force", is_flag=True, help="Replace explain.png, explain.json and gates.npz in --out.")
def explain(target: Path, source: str, out: Path, window: int | None, occlude: str, max_frames: int | None,
            label: str | None, rate: str, force: bool) -> None:
    """Show what TARGET (a bundle folder or a .pt checkpoint) decided over a stream, and why: probabilities,
    LSTM gates and cell state, and which frames each decision depends on (occlusion saliency)."""
    from edgelstm.measure.explain import ExplainConfig, Occlusion
    from edgelstm.measure.explain import explain as run_explain

    config = ExplainConfig(window=window, occlude=Occlusion(occlude), max_frames=max_frames, label=label, rate=rate)
    expl, paths = run_explain(target, source, out, config, force=force)
    decided = expl.decided
    click.echo(f"{len(decided)} decisions; last: {expl.model.labels[decided[-1]]} "
               f"(p={expl.probs[-1, decided[-1]]:.2f}); numpy cell vs model, max |diff| of logits "
               f"{expl.parity['logits']:.2g}")
    click.echo("wrote " + ", ".join(str(p) for p in paths))

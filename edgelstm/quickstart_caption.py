"""``edgelstm quickstart --task caption``: the captioning pipeline end to end on the embedded synthetic clips.

captioned clips (five generated captions per clip) -> captioning teacher -> distilled streaming student (+ the same
student from the captions alone) -> streaming bundle of the distilled student (encoder + step graphs as any
streaming model, plus the decoder step graph; ONNX + OpenVINO IR, parity of both) -> INT8 behind the caption gate
(BLEU-4, CIDEr-D, motion words) -> FP32 vs INT8 on the test clips through the runtime -> demo on the synthetic
camera (headless: a caption per window in the JSON lines and on the recording) -> latency profile per stage, with
the decoder per token. The run folder is laid out as the classify quickstart's (train/, bundle/, demo.mp4,
demo.jsonl, profile.json, profile.png) plus caption_report.json with every figure of the tables.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edgelstm.train.pipeline_caption import CaptionStageConfig


def run_caption_quickstart(out: Path, *, force: bool = True, demo_frames: int = 150, profile_frames: int = 150,
                           config: CaptionStageConfig = CaptionStageConfig()) -> dict[str, Any]:
    """Run every stage into ``out`` (already checked by the quickstart command); returns caption_report.json."""
    from rich.console import Console

    from edgelstm.errors import ExportCheckError
    from edgelstm.export import export_bundle
    from edgelstm.export.quantize import quantize_bundle
    from edgelstm.export.report import quant_table
    from edgelstm.fsutil import write_text_atomic
    from edgelstm.measure.profiler import profile_bundle
    from edgelstm.train.pipeline_caption import caption_train_stage

    console = Console(width=140)
    t0 = time.perf_counter()
    times: dict[str, float] = {}

    def stage(name: str) -> float:
        console.rule(f"[bold]{name}[/]  (t = {time.perf_counter() - t0:.0f} s)")
        return time.perf_counter()

    t = stage("1/5 train: captioning teacher, distilled streaming student, student from the captions alone")
    rows = caption_train_stage(out / "train", config=config)
    times["train"] = time.perf_counter() - t
    console.print(train_table(rows, config))
    ckpt = Path(next(r for r in rows if r["name"] == "student_distilled")["checkpoint"])

    t = stage("2/5 export the distilled student: encoder, step and decoder graphs (ONNX + OpenVINO), parity, INT8")
    bundle = out / "bundle"
    console.print(export_bundle(ckpt, bundle, formats=("onnx", "openvino"), force=force).table())
    for backend in ("onnxruntime", "openvino"):  # one at a time: a backend the gate refuses leaves the other's INT8
        try:
            int8 = quantize_bundle(bundle, calib_data="synthetic", backends=(backend,), eval_clips=config.counts[2])
            console.print(quant_table(int8))
        except ExportCheckError as e:  # the gate refused INT8 and wrote nothing: this backend stays FP32; say why
            console.print(f"[yellow]INT8 on {backend} refused by the caption gate; it stays FP32.[/]\n{e.what}")
    times["export"] = time.perf_counter() - t

    t = stage("3/5 FP32 vs INT8: the test clips captioned through the runtime")
    evals = _evaluate(bundle, config)
    console.print(eval_table(evals))
    times["eval"] = time.perf_counter() - t

    t = stage("4/5 demo on the synthetic camera (headless): a caption per window, recorded")
    video, jsonl = out / "demo.mp4", out / "demo.jsonl"
    _demo(bundle, video, jsonl, demo_frames)
    times["demo"] = time.perf_counter() - t

    t = stage("5/5 profile the bundle in the live loop (every configuration usable here), the decoder per token")
    prof = profile_bundle(bundle, frames=profile_frames, checkpoint=ckpt, source="synthetic")
    times["profile"] = time.perf_counter() - t
    console.print(prof.table(), *(f"[yellow]note:[/] {note}" for note in prof.notes), sep="\n")
    write_text_atomic(out / "profile.json", prof.json_text())
    prof.plot(out / "profile.png")

    report = {"rows": rows, "engine": evals, "profile_notes": prof.notes,
              "stage_seconds": {k: round(v, 1) for k, v in times.items()},
              "total_seconds": round(time.perf_counter() - t0, 1)}
    write_text_atomic(out / "caption_report.json", json.dumps(report, indent=2) + "\n")
    _done(console, out, report)
    return report


def _done(console: Any, out: Path, report: dict[str, Any]) -> None:
    """Where everything lies, and how long each stage took."""
    from edgelstm.quickstart import print_done

    print_done(console, out, report["stage_seconds"], total=report["total_seconds"],
               decisions_note="  (a line with \"caption\" per caption)",
               extra=(("Report", out / "caption_report.json"),))


def _evaluate(bundle: Path, config: CaptionStageConfig) -> list[dict[str, Any]]:
    """Every backend and precision the bundle holds, on the test clips, through the runtime."""
    from edgelstm.measure.caption import decoder_latency, evaluate_caption_bundle
    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.spec import Role

    b = load_bundle(bundle)
    out = []
    for a in b.manifest.artifacts:
        if a.role == Role.DECODER:
            key = f"{a.backend}:{a.precision}"
            r = evaluate_caption_bundle(bundle, None, split="test", artifact=key, counts=config.counts).to_json()
            r["decoder_ms_per_token"] = decoder_latency(b, a.backend, a.precision)
            out.append(r)
    return out


def _demo(bundle: Path, video: Path, jsonl: Path, frames: int) -> None:
    import click

    from edgelstm.errors import SourceError
    from edgelstm.runtime.commands import print_summary
    from edgelstm.runtime.demo import DemoOptions, run_demo

    options = DemoOptions(show=False, record=video, jsonl=jsonl, max_frames=frames, force=True)
    shown = run_demo(bundle, ("synthetic",), options, notify=lambda line: click.echo(line, err=True))
    if shown.summary is not None:
        print_summary(shown)
    if shown.error:
        raise SourceError(shown.error)


def _num(x: float | None, scale: float = 1.0, unit: str = "") -> str:
    return "-" if x is None else f"{scale * x:.1f}{unit}"


def train_table(rows: list[dict[str, Any]], config: CaptionStageConfig) -> object:
    from rich.table import Table

    teacher = rows[0]
    table = Table(title=f"Captioning, test split ({config.counts[2]} clips of {config.clip_len} frames at "
                        f"{config.size[0]}x{config.size[1]}, 5 references each; greedy captions)")
    for col in ("model", "BLEU-4", "CIDEr-D (x100)", "motion words", "motion head", "params", "MACs / frame",
                "MACs vs teacher", "train s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r["name"], _num(r["bleu4"]), _num(r["cider_d"], 100), _num(r["motion_accuracy"], 100, "%"),
                      _num(r["motion_head_accuracy"], 100, "%"), f"{r['params']:,}", f"{r['macs_per_frame']:,}",
                      f"{teacher['macs_per_frame'] / max(r['macs_per_frame'], 1):.1f}x fewer" if r is not teacher
                      else "-", f"{r['seconds']:.0f}")
    return table


def eval_table(evals: list[dict[str, Any]]) -> object:
    from rich.table import Table

    table = Table(title="The distilled student's bundle on the test clips, through the runtime (greedy, batch 1 "
                        "decoder timing)")
    for col in ("artefact", "BLEU-4", "CIDEr-D (x100)", "motion words", "words / caption", "decoder ms / token p50",
                "ms / caption"):
        table.add_column(col, justify="left" if col == "artefact" else "right")
    for e in evals:
        lat = e["decoder_ms_per_token"]
        table.add_row(e["artifact"], _num(e["bleu4"]), _num(e["cider_d"], 100), _num(e["motion_accuracy"], 100, "%"),
                      f"{e['mean_words']:.1f}", f"{lat['p50']:.3f}", f"{lat['ms_per_caption']:.2f}")
    return table

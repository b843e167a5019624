"""``edgelstm quickstart --task track``: the tracking pipeline end to end on the embedded tracking set.

tracking sequences -> teacher -> distilled student (+ the same student from the true boxes alone) -> streaming
bundle of the distilled student (ONNX + OpenVINO IR, streaming parity, and the whole tracker's closed loop
against PyTorch) -> INT8 behind the closed-loop IoU/AUC gate -> FP32 vs INT8 on the test sequences through the
engine -> demo on the synthetic tracking camera (headless, annotated recording) -> latency profile per stage.
The run folder is laid out as the classify quickstart's (train/, bundle/, demo.mp4, demo.jsonl, profile.json,
profile.png) plus track_report.json with every figure of the tables.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgelstm.train.pipeline_track import TrackStageConfig

if TYPE_CHECKING:
    from edgelstm.export.track import LoopParity


def run_track_quickstart(out: Path, *, force: bool = True, demo_frames: int = 150, profile_frames: int = 150,
                         config: TrackStageConfig = TrackStageConfig()) -> dict[str, Any]:
    """Run every stage into ``out`` (already checked by the quickstart command); returns track_report.json."""
    from rich.console import Console

    from edgelstm.export import export_bundle
    from edgelstm.export.track import STEP_TOL_PX
    from edgelstm.fsutil import write_text_atomic
    from edgelstm.measure.profiler import profile_bundle
    from edgelstm.train.pipeline_track import track_stage

    console = Console(width=140)
    t0 = time.perf_counter()
    times: dict[str, float] = {}

    def stage(name: str) -> float:
        console.rule(f"[bold]{name}[/]  (t = {time.perf_counter() - t0:.0f} s)")
        return time.perf_counter()

    t = stage("1/5 train: tracker teacher, distilled student, student from the true boxes alone")
    rows = track_stage(out / "train", config=config)
    times["train"] = time.perf_counter() - t
    console.print(_train_table(rows, config))
    ckpt = Path(next(r for r in rows if r["name"] == "student_distilled")["checkpoint"])

    t = stage("2/5 export the distilled student: ONNX + OpenVINO, parity (streaming and closed loop), INT8 gate")
    bundle = out / "bundle"
    console.print(export_bundle(ckpt, bundle, formats=("onnx", "openvino"), force=force).table())
    closed = _closed_loop(bundle, ckpt, config)
    verdict = "[green]pass[/]" if closed.passed else "[red]FAIL[/]"
    console.print(f"closed loop, runtime (crops + graphs + decoding) against PyTorch, the test sequences: each step "
                  f"from the same crops {closed.step_px:.2g} px (<= {STEP_TOL_PX:g}: {verdict}); each left to its "
                  f"own boxes p50 {closed.free_p50_px:.2g} px, max {closed.free_max_px:.2g} px, mean IoU "
                  f"{closed.iou_runtime:.4f} vs {closed.iou_pytorch:.4f} (uint8 crops round a 1e-7 px difference now "
                  "and then; the loop carries it on)")
    _int8(console, bundle)
    times["export"] = time.perf_counter() - t

    t = stage("3/5 FP32 vs INT8: the test sequences tracked through the engine, one stream")
    evals = _evaluate(bundle)
    console.print(_eval_table(evals))
    times["eval"] = time.perf_counter() - t

    t = stage("4/5 demo on the synthetic tracking camera (headless), recording an annotated clip")
    _demo(bundle, out / "demo.mp4", out / "demo.jsonl", demo_frames)
    times["demo"] = time.perf_counter() - t

    t = stage("5/5 profile the bundle in the live loop (every configuration usable here)")
    prof = profile_bundle(bundle, frames=profile_frames, checkpoint=ckpt, source="synthetic")
    times["profile"] = time.perf_counter() - t
    console.print(prof.table())
    write_text_atomic(out / "profile.json", prof.json_text())
    prof.plot(out / "profile.png")

    report = {"rows": rows, "closed_loop": closed.to_json(), "engine": evals,
              "stage_seconds": {k: round(v, 1) for k, v in times.items()},
              "total_seconds": round(time.perf_counter() - t0, 1)}
    _done(console, out, report)
    return report


def _done(console: Any, out: Path, report: dict[str, Any]) -> None:
    """track_report.json, and where everything lies."""
    from edgelstm.fsutil import write_text_atomic

    from edgelstm.quickstart import print_done

    write_text_atomic(out / "track_report.json", json.dumps(report, indent=2) + "\n")
    print_done(console, out, report["stage_seconds"], total=report["total_seconds"], demo_args=" --init-box X,Y,W,H",
               extra=(("Report", out / "track_report.json"),))


def _int8(console: Any, bundle: Path) -> None:
    """INT8 behind the closed-loop gate; a refusal leaves the bundle FP32 and says why."""
    from edgelstm.errors import ExportCheckError
    from edgelstm.export.quantize import quantize_bundle
    from edgelstm.export.report import quant_table

    try:
        console.print(quant_table(quantize_bundle(bundle, calib_data="synthetic")))
    except ExportCheckError as e:  # the gate refused INT8 and wrote nothing: the bundle stays FP32; say why
        console.print(f"[yellow]INT8 refused by the accuracy gate; the bundle is FP32 only.[/]\n{e.what}")


def _closed_loop(bundle: Path, ckpt: Path, config: TrackStageConfig) -> LoopParity:
    from edgelstm.data.tracking import TrackConfig, synthetic_sequence
    from edgelstm.export.track import closed_loop_parity
    from edgelstm.models.checkpoint import load_checkpoint
    from edgelstm.runtime.bundle import load_bundle

    cfg = TrackConfig(size=config.size, frames=config.frames, seed=config.seed)
    seqs = [synthetic_sequence(cfg, "test", i) for i in range(config.counts[2])]  # every test sequence
    return closed_loop_parity(load_bundle(bundle), load_checkpoint(ckpt).model, seqs)


def _evaluate(bundle: Path) -> list[dict[str, Any]]:
    """Every backend and precision the bundle holds, on the test split, through the engine."""
    from edgelstm.measure.track import evaluate_track_bundle
    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.spec import Role

    m = load_bundle(bundle).manifest
    keys = dict.fromkeys(f"{a.backend}:{a.precision}" for a in m.artifacts if a.role == Role.STEP)
    return [evaluate_track_bundle(bundle, None, split="test", artifact=k).to_json() for k in keys]


def _demo(bundle: Path, video: Path, jsonl: Path, frames: int) -> None:
    from edgelstm.errors import SourceError
    from edgelstm.runtime.commands import print_summary
    from edgelstm.runtime.demo import DemoOptions, run_demo

    options = DemoOptions(show=False, record=video, jsonl=jsonl, max_frames=frames, force=True)
    shown = run_demo(bundle, ("synthetic",), options, notify=lambda line: click.echo(line, err=True))
    if shown.summary is not None:
        print_summary(shown)
    if shown.error:
        raise SourceError(shown.error)


def _train_table(rows: list[dict[str, Any]], config: TrackStageConfig) -> object:
    from rich.table import Table

    teacher = rows[0]
    table = Table(title=f"Tracking, test split ({config.counts[2]} sequences of {config.frames} frames at "
                        f"{config.size[0]}x{config.size[1]}, each tracked from its first box; OTB metrics)")
    for col in ("model", "mean IoU", "success AUC", "precision@20px", "centre error", "params", "MACs / frame",
                "MACs vs teacher", "train s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        t = r["test"] or {}
        table.add_row(r["name"], f"{t.get('mean_iou', 0):.3f}", f"{t.get('success_auc', 0):.3f}",
                      f"{100 * t.get('precision_20px', 0):.1f}%", f"{t.get('mean_centre_error_px', 0):.1f} px",
                      f"{r['params']:,}", f"{r['macs_per_frame']:,}",
                      f"{teacher['macs_per_frame'] / max(r['macs_per_frame'], 1):.1f}x fewer" if r is not teacher
                      else "-", f"{r['seconds']:.0f}")
    return table


def _eval_table(evals: list[dict[str, Any]]) -> object:
    from rich.table import Table

    table = Table(title="The distilled student's bundle on the test sequences, through the engine (one stream)")
    for col in ("artefact", "mean IoU", "success AUC", "precision@20px", "crop ms", "encoder ms", "step ms",
                "decode+crop ms", "total ms", "frames/s"):
        table.add_column(col, justify="left" if col == "artefact" else "right")
    for e in evals:
        s = e["stages_ms"]
        table.add_row(f"{e['artifact']} ({e['inference_precision']})", f"{e['mean_iou']:.3f}",
                      f"{e['success_auc']:.3f}", f"{100 * e['precision_20px']:.1f}%", f"{s['preprocess']:.3f}",
                      f"{s['encoder']:.3f}", f"{s['step']:.3f}", f"{s['postprocess']:.3f}", f"{s['total']:.3f}",
                      f"{e['fps']:.0f}")
    return table

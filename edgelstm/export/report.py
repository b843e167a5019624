"""rich tables for export and quantization reports (the CLI and the quickstart print them)."""
from __future__ import annotations

from typing import Any

from edgelstm.quantreport import Int8Report, Trial
from edgelstm.spec import Manifest


def _fmt_bytes(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def artifacts_table(manifest: Manifest) -> Any:
    from rich.table import Table

    t = Table(title="Artefacts", title_justify="left")
    for col in ("role", "backend", "precision", "runs as", "file", "size"):
        t.add_column(col)
    for a in manifest.artifacts:
        t.add_row(str(a.role), str(a.backend), str(a.precision), a.inference_precision or "-", a.files[0].path,
                  _fmt_bytes(sum(f.bytes for f in a.files)))
    return t


def parity_table(manifest: Manifest) -> Any:
    from rich.table import Table

    t = Table(title="Streaming equivalence (exported model vs reference, frame by frame)", title_justify="left")
    for col in ("artefact", "reference", "steps", "max |Δlogit|", "argmax agree", "tolerance", "result"):
        t.add_column(col)
    for r in manifest.parity:
        tol = "informational" if r.tolerance < 0 else f"{r.tolerance:g}"
        res = "[green]pass[/]" if r.passed else ("[yellow]note[/]" if r.tolerance < 0 else "[red]FAIL[/]")
        t.add_row(r.artifact, r.reference, str(r.frames), f"{r.max_abs_diff:.2e}",
                  f"{100 * r.argmax_agreement:.2f}%", tol, res)
    return t


def export_table(report: Any) -> Any:
    from rich.console import Group

    parts = [artifacts_table(report.manifest), parity_table(report.manifest)]
    if report.quantization is not None:
        parts.append(quant_table(report.quantization))
    return Group(*parts)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def trials_text(trials: list[Trial]) -> str:
    if trials and all(t.captions is not None for t in trials):  # a captioner: its three metrics, FP32 -> INT8
        lines = ["backend       float kept                         BLEU-4        CIDEr-D (x100)  motion words    "
                 "same caption  same motion"]
        for t in trials:
            (b32, b8), (c32, c8), (m32, m8) = t.captions or ((0.0, 0.0),) * 3
            lines.append(f"{t.backend:<13} {', '.join(t.kept_float) or 'none':<34} {b32:5.1f} -> {b8:<5.1f} "
                         f"{100 * c32:6.1f} -> {100 * c8:<6.1f} {_pct(m32):>6} -> {_pct(m8):<6} "
                         f"{_pct(t.frame_agreement):>12}  {_pct(t.final_agreement):>11}")
        return "\n".join(lines)
    lines = ["backend       float kept               acc fp32  acc int8  drop   frame agr  final agr  clips  "
             "flips/100"]
    for t in trials:
        lines.append(f"{t.backend:<13} {', '.join(t.kept_float) or 'none':<24} {_pct(t.accuracy_fp32):>8}  "
                     f"{_pct(t.accuracy_int8):>8}  {t.drop_points:5.2f}  {_pct(t.frame_agreement):>9}  "
                     f"{_pct(t.final_agreement):>9}  {t.clips:>5}  {t.flips_fp32:.1f}->{t.flips_int8:.1f}")
    return "\n".join(lines)


def quant_table(report: Int8Report) -> Any:
    from rich.console import Group
    from rich.table import Table

    d, g = report.data, report.gate
    if any(tr.delay_p50_frames is not None for tr in report.trials):
        return Group(_detect_gate_table(report), _speed_table(report))
    if any(tr.mean_iou is not None for tr in report.trials):
        from edgelstm.export.track import track_gate_table

        return Group(track_gate_table(report), _speed_table(report))
    if any(tr.captions is not None for tr in report.trials):
        from edgelstm.export.caption_int8 import caption_gate_table

        return Group(caption_gate_table(report), _speed_table(report))
    t = Table(title=f"INT8 accuracy gate ({d.eval_clips} held-out clips of {d.source}/{d.split}: one clip = "
                    f"{100 / max(1, d.eval_clips):.2f} points; max drop {g.max_drop_points:g} points, final "
                    f"agreement >= {100 * g.min_final_agreement:g}%)", title_justify="left")
    for col in ("backend", "kept in float", "acc FP32", "acc INT8", "drop", "frame agree", "final agree (95% CI)",
                "flips/100 fp32→int8", "result"):
        t.add_column(col)
    for tr in report.trials:
        lo, hi = tr.final_agreement_ci95
        t.add_row(tr.backend, ", ".join(tr.kept_float) or "none", _pct(tr.accuracy_fp32), _pct(tr.accuracy_int8),
                  f"{tr.drop_points:.2f}", _pct(tr.frame_agreement),
                  f"{_pct(tr.final_agreement)} ({_pct(lo)}–{_pct(hi)})",
                  f"{tr.flips_fp32:.1f} → {tr.flips_int8:.1f}", "[green]pass[/]" if tr.passed else "[red]retry[/]")
    return Group(t, _speed_table(report))


def _detect_gate_table(report: Int8Report) -> Any:
    """A detection model's gate: frame mAP and median detection delay, FP32 against INT8."""
    from rich.table import Table

    d, g = report.data, report.gate
    t = Table(title=f"INT8 gate of a detector ({d.eval_clips} held-out chunks of {d.source}/{d.split}: frame mAP "
                    f"drop <= {g.max_drop_points:g} points, median delay at most 25% + 1 frame longer)",
                    title_justify="left")
    for col in ("backend", "kept in float", "frame mAP FP32", "frame mAP INT8", "drop", "frame agree",
                "delay p50 fp32→int8 (frames)", "result"):
        t.add_column(col)
    for tr in report.trials:
        delay = ["none" if v < 0 else f"{v:.1f}" for v in tr.delay_p50_frames or (-1.0, -1.0)]
        t.add_row(tr.backend, ", ".join(tr.kept_float) or "none", _pct(tr.accuracy_fp32), _pct(tr.accuracy_int8),
                  f"{tr.drop_points:.2f}", _pct(tr.frame_agreement), f"{delay[0]} → {delay[1]}",
                  "[green]pass[/]" if tr.passed else "[red]retry[/]")
    return t


def _speed_table(report: Int8Report) -> Any:
    from rich.table import Table

    s = Table(title="FP32 vs INT8 (streaming graphs, batch 1)", title_justify="left")
    for col in ("backend", "size fp32", "size int8", "ms/frame fp32", "ms/frame int8", "ratio", "ops int8"):
        s.add_column(col)
    for b, info in report.backends.items():
        ops = "; ".join(f"{role}: " + ", ".join(f"{k}×{v}" for k, v in g.op_types.items()
                                                 if k not in ("Constant", "Shape", "Gather", "Unsqueeze", "Concat"))
                        for role, g in info.int8.graphs.items())
        verdict = "" if info.int8_pays else " (INT8 does not pay for one stream: keep FP32)"
        from_b = info.int8_pays_from_batch
        verdict += "; by batch " + info.ratios_text() + \
            (f"; pays from batch {from_b}" if from_b else "; pays at no batch measured")
        s.add_row(b, _fmt_bytes(info.fp32.bytes), _fmt_bytes(info.int8.bytes), f"{info.fp32.latency_ms:.3f}",
                  f"{info.int8.latency_ms:.3f}", f"{info.int8_fp32_latency_ratio:.2f}×" + verdict, ops[:200])
    return s

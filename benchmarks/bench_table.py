"""The P1-P8 figures of one measured run, each against its target, and where a target is missed, by how much.

``figures(r)`` turns what ``bench_all.measure_run`` measured into rows (P id, what, target, cell); every
run gives the same rows in the same order, so ``bench_report`` lays the runs side by side as columns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CLIP_T = 16  # the clip length re-run per decision in the "common practice" baselines
BACKENDS = (("onnxruntime", "onnxruntime"), ("openvino", "OpenVINO"))
CONFIG_NAMES = (("onnxruntime", "fp32", "onnxruntime FP32"), ("onnxruntime", "int8", "onnxruntime INT8"),
                ("openvino", "fp32", "OpenVINO FP32"), ("openvino", "int8", "OpenVINO INT8"))


@dataclass(frozen=True)
class Rule:
    """A target: ``value <= limit`` (``le``) or ``value >= limit``; a miss by a factor, or by points."""

    op: str          # "le" or "ge"
    limit: float
    unit: str = "×"  # "×", "s", " points", "%"
    by: str = "x"    # "x": missed by a factor; "pt": missed by a difference in points

    @property
    def text(self) -> str:
        return f"{'≤' if self.op == 'le' else '≥'}{self.limit:g}{self.unit}"


@dataclass(frozen=True)
class Figure:
    pid: str
    what: str
    target: str
    cell: str


def verdict(value: float | None, rule: Rule, fmt: str = "{:.2f}", extra: str = "") -> str:
    """'3.40× — missed by 2.96×' / '0.27 s — met'; 'n/a' for a figure that could not be measured. ``extra``:
    what the figure is for this run (a backend, a thread count), in brackets after the verdict."""
    if value is None or not math.isfinite(value):
        return "n/a" + (f" ({extra})" if extra else "")
    return _verdict(value, rule, fmt) + (f" ({extra})" if extra else "")


def _verdict(value: float, rule: Rule, fmt: str) -> str:
    shown = fmt.format(value) + (" pt" if rule.unit == " points" else rule.unit)
    ok = value <= rule.limit if rule.op == "le" else value >= rule.limit
    if ok:
        return f"{shown} — met"
    if rule.by == "pt":
        return f"{shown} — missed by {abs(value - rule.limit):.1f} points"
    factor = value / rule.limit if rule.op == "le" else (rule.limit / value if value > 0 else math.inf)
    return f"{shown} — missed by {factor:.2f}×"


def _rows(profile: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(x["mode"], x["backend"], x["precision"]): x for x in profile["rows"]}


def _p50(row: dict[str, Any] | None, key: str = "total") -> float | None:
    if row is None:
        return None
    if key == "bare":
        return row["bare_ms"].get("p50")
    if key == "unpaced":
        return row.get("unpaced_ms", {}).get("p50")
    return row["stages"]["total"].get("p50")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b and math.isfinite(b) else None


def threads_text(threads: int) -> str:
    """A row's thread count in words (0: the backend's own default pool)."""
    return "the backend's default threads" if not threads else f"{threads} thread{'s' if threads > 1 else ''}"


def figures(r: dict[str, Any], gemm_gmacs: float) -> list[Figure]:
    """Every P row for one run, in the order the table shows them."""
    rows = _rows(r["profile"])
    out: list[Figure] = []
    out += _p1(rows)
    out += _p2(rows, r.get("quantization"))
    out += _p3(rows)
    out += _p5(rows, r["profile"]["model"]["macs_per_frame"], gemm_gmacs)
    out += _p6(r.get("streams"))
    out += _p8(r.get("load", []))
    return out


def _p1(rows: dict[tuple[str, str, str], dict[str, Any]]) -> list[Figure]:
    out = []
    ge12 = Rule("ge", 12)
    for be, name in BACKENDS:
        v = _ratio(_p50(rows.get(("clip", be, "fp32"))), _p50(rows.get(("stream", be, "fp32"))))
        out.append(Figure("P1", f"clip re-inference (T={CLIP_T}) / streaming, {name} FP32, loop total per decision "
                                f"p50 at 30 fps", ge12.text, verdict(v, ge12)))
    best = [(p, be) for be, _ in BACKENDS if (p := _p50(rows.get(("stream", be, "int8")))) is not None]
    v = _ratio(_p50(rows.get(("eager-clip", "torch", "fp32"))), min(best)[0] if best else None)
    which = f"against {min(best)[1]} INT8" if best else "no INT8 artefact"
    out.append(Figure("P1", f"PyTorch eager clip re-inference (T={CLIP_T}, distilled student checkpoint) / streaming "
                            "INT8 runtime (the faster backend), loop total per decision p50 at 30 fps", "≥50×",
                      verdict(v, Rule("ge", 50), extra=which)))
    return out


def _p2(rows: dict[tuple[str, str, str], dict[str, Any]], quant: dict[str, Any] | None) -> list[Figure]:
    out = []
    for be, name in BACKENDS:
        v = _ratio(_p50(rows.get(("stream", be, "int8")), "bare"), _p50(rows.get(("stream", be, "fp32")), "bare"))
        out.append(Figure("P2", f"INT8 / FP32 model latency, {name}, batch 1 (model call p50, back to back)",
                          "≤0.6×", verdict(v, Rule("le", 0.6))))
    for be, name in BACKENDS:
        trial, how = _gate_trial(quant, be)
        drop = None if trial is None else float(trial["drop_points"])
        agree = None if trial is None else 100.0 * float(trial["final_agreement"])
        out.append(Figure("P2", f"INT8 gate, {name}: accuracy drop, INT8 against FP32 (bundle's gate report)",
                          "≤1 point", verdict(drop, Rule("le", 1.0, " points", "pt"), "{:.1f}", how)))
        out.append(Figure("P2", f"INT8 gate, {name}: final-decision agreement with FP32 (bundle's gate report)",
                          "≥98%", verdict(agree, Rule("ge", 98.0, "%", "pt"), "{:.1f}", how)))
    return out


def _gate_trial(quant: dict[str, Any] | None, backend: str) -> tuple[dict[str, Any] | None, str]:
    """The trial the bundle's INT8 artefacts come from; where the gate refused every one, its best try (said)."""
    if quant is None:
        return None, "the bundle has no quantization report"
    rep = quant.get("backends", {}).get(backend)
    if rep is not None:
        c = rep["chosen"]
        return c, f"{c.get('clips', 0)} {quant['data']['split']} clips"
    tried = [t for t in quant.get("trials", []) if t["backend"] == backend]
    if not tried:
        return None, "not tried"
    best = min(tried, key=lambda t: t["drop_points"])
    return best, f"the gate refused INT8 after {len(tried)} tries: best try shown"


def _p3(rows: dict[tuple[str, str, str], dict[str, Any]]) -> list[Figure]:
    rule = Rule("le", 1.15)
    return [Figure("P3", f"loop total / model call, {name}: un-paced loop p50 / back-to-back model call p50 "
                         f"(frames decoded from the video above)", rule.text,
                   verdict(_ratio(_p50(rows.get(("stream", be, pr)), "unpaced"),
                                  _p50(rows.get(("stream", be, pr)), "bare")), rule))
            for be, pr, name in CONFIG_NAMES]


def _p5(rows: dict[tuple[str, str, str], dict[str, Any]], macs: int, gemm_gmacs: float) -> list[Figure]:
    floor_ms = macs / (gemm_gmacs * 1e9) * 1e3
    out = []
    for be, name in BACKENDS:
        row = rows.get(("stream", be, "fp32"))
        floor = f"{floor_ms * 1e3:.1f} µs" if floor_ms < 1 else f"{floor_ms:.2f} ms"
        extra = f"{_p50(row, 'bare'):.3f} ms on {threads_text(row['threads'])}; floor {floor}" if row else ""
        out.append(Figure("P5", f"FP32 model latency (model call p50, batch 1) / compute floor (MACs ÷ GEMM peak), "
                                f"{name}", "≤2×", verdict(_ratio(_p50(row, "bare"), floor_ms), Rule("le", 2.0),
                                                         extra=extra)))
    return out


def _p6(streams: dict[str, Any] | None) -> list[Figure]:
    what = "30-fps streams of the video above served by one engine (every frame decided, frame age p99 ≤100 ms)"
    if not streams:
        return [Figure("P6", what, "measured", "n/a")]
    n, fail = streams["streams"], streams["first_fail"]
    ok = [t for t in streams["trials"] if t["streams"] == n and t["passed"]]
    bad = [t for t in streams["trials"] if t["streams"] == fail]
    cell = f"{n} stream{'s' if n != 1 else ''}"
    if ok:
        t = ok[-1]
        cell += (f" ({t['backend']} {t['precision']}, {t['decided_fps']:.0f} FPS decided, "
                 f"age p99 {t['age_ms']['p99']:.0f} ms)")
    if bad:
        t = bad[-1]
        cell += (f"; {fail} failed{' twice' if len(bad) > 1 else ''}: missed {t['missed']} of {t['read']}, "
                 f"age p99 {t['age_ms'].get('p99', math.nan):.0f} ms")
    elif fail is None:
        cell += f" (the search stopped at its limit, {streams['limit']})"
    return [Figure("P6", what, "measured (more is better)", cell)]


def _p8(load: list[dict[str, Any]]) -> list[Figure]:
    out = []
    by = {(x["backend"], x["precision"]): x for x in load}
    tries = max((len(x.get("tries", [])) for x in load), default=0)
    for be, pr, name in CONFIG_NAMES:
        x = by.get((be, pr))
        v = None if x is None or x.get("missing") else x["total_s"]
        out.append(Figure("P8", f"bundle load → first prediction, {name} (fresh process, median of {tries}, "
                                "imports apart)",
                          "≤0.5 s", verdict(v, Rule("le", 0.5, " s"), "{:.3f}")))
    return out

"""Drawing a :class:`~edgelstm.measure.report.ProfileReport` (rich tables and a matplotlib PNG), and an
evaluation's confusion matrix.

Imported only when a table or a plot is asked for; matplotlib loads inside :func:`plot` and
:func:`plot_confusion` with the Agg backend (no display needed) and the PNG is written atomically.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.fsutil import atomic_path
from edgelstm.measure.report import MODES, STAGE_TITLES, STAGES, ProfileReport, machine_line


def _f(x: float | None, digits: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}f}" if abs(x) < 1000 else f"{x:.0f}"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _trio(s: dict[str, float]) -> str:
    return "/".join(_f(s.get(k)) for k in ("p50", "p90", "p99"))


def rows_table(report: ProfileReport) -> Any:
    """Two tables that fit a terminal: the decision as a whole, then where its time goes per stage."""
    from rich.console import Group
    from rich.table import Table

    has_acc = any(r.accuracy is not None for r in report.rows)
    summary = Table(title=f"edgelstm profile: {report.bundle}", caption_justify="left",
                    caption="¹ the loop's total un-paced (decisions back to back) over the model alone, p50; "
                            "total ms is at the camera rate, where each decision starts with cold caches")
    for col, just in (("configuration", "left"), ("runs in", "left"), ("first\nms", "right"),
                      ("total ms\np50/p90/p99", "right"), ("model only\np50 ms", "right"), ("loop /\nmodel ¹", "right"),
                      ("frame age\np50/p99 ms", "right"), ("FPS\n(max)", "right"), ("dropped", "right"),
                      ("peak\nRSS", "right"), ("size", "right")):
        summary.add_column(col, justify=just)  # type: ignore[arg-type]
    if has_acc:
        summary.add_column("accuracy", justify="right")
        summary.add_column("agrees\nw/ FP32", justify="right")
    stages = Table(title="per stage, ms p50/p90/p99 (mean in --json)", caption=machine_line(report.machine) + "; " +
                   f"{report.settings['frames']} decisions per row at {report.settings['fps']:g} fps from "
                   f"{report.settings['source']}; decode is the source's read, in the capture thread beside the "
                   "model (not part of total)", caption_justify="left")
    stages.add_column("configuration")
    for st in STAGES:
        stages.add_column(STAGE_TITLES[st], justify="right", no_wrap=True)
    for r in report.rows:
        style = "dim" if r.mode != "stream" else None
        cells = [r.label, f"{r.inference_precision or r.precision}, {r.threads or 'auto'} thr", _f(r.first_ms),
                 _trio(r.stages["total"]), _f(r.bare_ms.get("p50"), 3), _f(r.overhead) + "×",
                 f"{_f(r.age_ms.get('p50'), 1)}/{_f(r.age_ms.get('p99'), 1)}", _f(r.fps, 0), str(r.dropped),
                 f"{r.peak_rss_mb:.0f} MB", _size(r.model_bytes) if r.model_bytes else "–"]
        if has_acc:
            cells += [_pct(r.accuracy), _pct(r.agreement)]
        summary.add_row(*cells, style=style)
        stages.add_row(r.label, *[_trio(r.stages[st]) if not (st == "encoder" and r.graph != "split") else "–"
                                  for st in STAGES], style=style)
    return Group(summary, stages)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def streams_table(report: ProfileReport) -> Any:
    from rich.table import Table

    t = Table(title="streams: one engine (encoder batched across streams) against one engine per stream")
    for c in ("configuration", "layout", "streams", "offered FPS", "decided FPS", "max FPS (un-paced)",
              "every frame decided", "dropped", "frame age p50/p99 ms", "latency p50/p99 ms", "mean batch",
              "peak RSS"):
        t.add_column(c, justify="left" if c in ("configuration", "layout") else "right")
    for s in report.streams:
        t.add_row(s.label, s.layout, str(s.streams), _f(s.offered_fps, 0), _f(s.decided_fps, 0),
                  _f(s.capacity_fps, 0), "yes" if s.all_decided else "no", str(s.dropped),
                  f"{_f(s.age_ms.get('p50'), 1)}/{_f(s.age_ms.get('p99'), 1)}",
                  f"{_f(s.latency_ms.get('p50'))}/{_f(s.latency_ms.get('p99'))}", _f(s.mean_batch, 1),
                  f"{s.peak_rss_mb:.0f} MB")
    return t


def plot(report: ProfileReport, path: Path) -> Path:
    """Latency CDF per configuration and per-stage stacked bars (p50), side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if r.totals_ms]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, max(4.5, 0.45 * len(rows) + 2)))
    for r in rows:
        x = np.sort(np.asarray(r.totals_ms))
        ax1.plot(x, np.arange(1, len(x) + 1) / len(x), label=r.label, linestyle="-" if r.mode == "stream" else "--")
    ax1.set_xscale("log")
    ax1.set_xlabel("per-decision latency in the loop (ms, log scale)")
    ax1.set_ylabel("fraction of decisions")
    ax1.set_title("latency CDF")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7, loc="lower right")
    parts = ("decode", "preprocess", "encoder", "step", "postprocess")  # capture wait is idle time: not drawn
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for s in parts:
        vals = np.array([r.stages[s]["p50"] if r.stages[s]["p50"] == r.stages[s]["p50"] else 0.0 for r in rows])
        ax2.barh(y, vals, left=left, label=STAGE_TITLES[s])
        left += vals
    ax2.set_yticks(y, [r.label for r in rows], fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xscale("symlog", linthresh=0.1)
    ax2.set_xlabel("p50 per stage (ms, symlog scale)")
    ax2.set_title("where the processing time goes (p50 per stage)")
    ax2.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report.bundle}\n{machine_line(report.machine)}", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


__all__ = ["MODES", "plot", "rows_table", "streams_table"]


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | Path, *, title: str) -> None:
    """Write a confusion matrix as a PNG (row-normalised colours, counts in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.array(confusion, dtype=np.float64)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if conf[i, j]:
                ax.text(j, i, str(int(conf[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

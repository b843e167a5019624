"""RESULTS.md: the machine, the GEMM peak, the video, one P1-P8 table with a column per run, and below it each
run's per-configuration profile, stream search and cold-start rows."""
from __future__ import annotations

import math
from typing import Any

from bench_table import CLIP_T, figures

HOW = f"""How each figure is measured (all in the one process that wrote this file, except P8's children):

- **P1**: loop total per decision, p50, at the camera rate (30 fps, frames decoded from the video above), of
  re-running the bundle's clip graph on the last {CLIP_T} frames, against the streaming graph in the same runtime;
  and of PyTorch eager running the distilled student checkpoint on a {CLIP_T}-frame clip (same thread count as
  the runtime) against the faster INT8 streaming runtime.
- **P2**: the model call alone at batch 1, back to back, INT8 over FP32, per backend; the accuracy drop and the
  final-decision agreement are the bundle's INT8 gate report (`Manifest.quantization`), measured at export on
  the held-out split named.
- **P3**: the loop's total per decision un-paced (decisions back to back: read, preprocess, encoder, LSTM step,
  postprocess; the decode runs in the capture thread beside it) over the model call alone, back to back, at p50.
  At the camera rate a decision is slower again because caches cool between frames (the profile's own note and
  the 'total p50 at 30 fps' column below show how much).
- **P5**: the FP32 model call (p50, batch 1, back to back) over the compute floor, MACs per frame ÷ the GEMM peak
  above (numpy, all cores; the model runs with the thread count its device profile chose, shown in the row).
- **P6**: N streams of the video above, each decoded by its own capture thread and paced at 30 fps, on one
  engine (frames batched across streams) with the `cpu` device profile's choices (precision 'auto'); N doubles
  from 1 until a trial misses a frame (one overwritten before the loop took it, up to each stream's last
  decision: the loop's own 'dropped' also counts the frame a capture thread delivers after the timer stopped
  the loop) or frame age p99 exceeds 100 ms, then bisects; a failed N is tried once
  more (one stall of a busy machine drops a frame) and counts as failed only if that fails too.
- **P8**: a fresh `python -c` per try: numpy, OpenCV, the edgelstm runtime and the backend's library are imported
  first (their time is shown apart), then `load_bundle` (hashes every artefact) + `Engine.load` (plan, open
  the models, replay the bundle's self-test) + the first `step` on a 640x480 frame are timed. The OS file cache
  is warm after the first try. P4 and P7 are not speed figures and are not measured here."""


def markdown(result: dict[str, Any]) -> str:
    runs, gemm = result["runs"], result["gemm_gmacs"]
    v = result["video"]
    lines = ["# Benchmark results: issue 12 §3, P1–P8", "",
             f"Every figure comes from one run of `{result['command']}` ({result['minutes']:.1f} min), on one machine:",
             "", f"- **Machine**: {_machine(result['machine'])}",
             (f"- **FP32 GEMM peak**: {gemm:.1f} GMAC/s (numpy, 1024³ matmul, best of 10, all cores): the compute "
              "floor's denominator (P5)"),
             (f"- **Video for P1, P3 and P6 (both runs)**: `{v['original']}`, {v['size'][1]}×{v['size'][0]}, "
              f"{v['codec']}, {v['frames']} frames, played at 30 fps ({v['note']})"), ""]
    for r in runs:
        m = r["profile"]["model"]
        lines.append(f"- **{r['name']}**: run `{r['run']}`, bundle `{r['bundle']}`: {m['name']} at "
                     f"{'×'.join(map(str, m['size'] or ()))}, {m['macs_per_frame'] / 1e6:.2f} MMAC/frame, "
                     f"{m['params'] / 1e3:.0f} k parameters, {m['labels']} classes")
    lines += ["", _table(runs, gemm), "", HOW, ""]
    for r in runs:
        lines += _details(r)
    return "\n".join(lines) + "\n"


def _machine(m: dict[str, Any]) -> str:
    from edgelstm.measure.report import machine_line

    end = m.get("load_avg_1min_end")
    return machine_line(m).replace("; load average ", "; 1-min load average at the start ") + \
        (f", at the end {end}" if end is not None else "")


def _table(runs: list[dict[str, Any]], gemm: float) -> str:
    cols = [figures(r, gemm) for r in runs]
    head = "| # | figure | target | " + " | ".join(r["name"] for r in runs) + " |"
    lines = [head, "|---|---|---|" + "---|" * len(runs)]
    for i, f in enumerate(cols[0]):
        cells = " | ".join(c[i].cell for c in cols)
        lines.append(f"| {f.pid} | {f.what} | {f.target} | {cells} |")
    return "\n".join(lines)


def _ms(d: dict[str, Any] | None, key: str = "p50", fmt: str = "{:.3f}") -> str:
    x = (d or {}).get(key)
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def _details(r: dict[str, Any]) -> list[str]:
    p = r["profile"]
    lines = [f"## {r['name']}", "", (f"Per configuration (live loop; stream rows {p['settings']['frames']} decisions, "
                                      f"baseline rows {r['baseline_frames']}; ms):"), "",
             ("| configuration | runs in | threads | decode p50 | preprocess p50 | total p50 at 30 fps | total p99 | "
              "un-paced loop p50 | model p50 | loop / model | frame age p99 | max FPS |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in p["rows"]:
        st = x["stages"]
        lines.append(f"| {x['label']} | {x['inference_precision']} | {x['threads'] or 'default'} | "
                     f"{_ms(st.get('decode'))} | "
                     f"{_ms(st.get('preprocess'))} | {_ms(st['total'])} | {_ms(st['total'], 'p99')} | "
                     f"{_ms(x.get('unpaced_ms'))} | {_ms(x['bare_ms'])} | {_ms(x, 'overhead_x', '{:.2f}×')} | "
                     f"{_ms(x['age_ms'], 'p99', '{:.1f}')} | {x['fps']:.0f} |")
    lines += _streams(r.get("streams")) + _load(r.get("load", []))
    if p.get("notes"):
        lines += ["", "Profile notes:", ""] + [f"- {n}" for n in p["notes"]]
    return lines + [""]


def _streams(s: dict[str, Any] | None) -> list[str]:
    if not s:
        return []
    lines = ["", (f"P6 search ({s['seconds']:g} s per trial, device profile `{s['device']}`; a failed N is tried "
                  f"again up to {s.get('retries', 0)} time(s)):"), "",
             ("| streams | try | runs as | read | decided | missed | loop's dropped | decided FPS | mean batch | "
              "age p50 | age p99 | verdict |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in s["trials"]:
        lines.append(f"| {t['streams']} | {t.get('attempt', 1)} | {t['backend']} {t['precision']} | {t['read']} | "
                     f"{t['decided']} | "
                     f"{t['missed']} | {t['dropped']} | {t['decided_fps']:.0f} | {t['mean_batch']:.2f} | "
                     f"{_ms(t['age_ms'], 'p50', '{:.1f}')} | {_ms(t['age_ms'], 'p99', '{:.1f}')} | "
                     f"{'pass' if t['passed'] else 'fail'} |")
    return lines


def _load(load: list[dict[str, Any]]) -> list[str]:
    if not load:
        return []
    lines = ["", "P8 cold start (s, median of the tries; imports not in the total):", "",
             "| backend | precision | imports | load_bundle | Engine.load | first step | total | tries |",
             "|---|---|---|---|---|---|---|---|"]
    for x in load:
        if x.get("missing"):
            lines.append(f"| {x['backend']} | {x['precision']} | the bundle has no such artefact | | | | | |")
            continue
        lines.append(f"| {x['backend']} | {x['precision']} | {x['import_s']:.3f} | {x['bundle_s']:.3f} | "
                     f"{x['engine_s']:.3f} | {x['first_step_s']:.3f} | {x['total_s']:.3f} | "
                     f"{', '.join(f'{t:.3f}' for t in x['tries'])} |")
    return lines

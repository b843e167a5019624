"""Online action detection on the embedded untrimmed set (issue 13): teacher, distilled student, scratch student.

    .venv/bin/python benchmarks/untrimmed.py --out runs/untrimmed

One in-memory copy of the embedded untrimmed set (32x32 frames, 15 fps, videos of 60 s: ``--videos`` train,
``--eval-videos`` val and test) feeds four runs of ``edgelstm train/distill --task detect`` (the library calls
behind them):

- **teacher**: a bidirectional 2-layer LSTM over the student's encoder, trained on windows it sees whole, so
  at every frame it knows what comes next (offline: it is never deployed);
- **student, distilled**: the causal student (MobileNet-like encoder + LSTM 128), windows in order with the
  state carried across (truncated BPTT), per-frame CE + KL to the teacher's per-frame output;
- **student, distilled + unlabelled**: the same, also learning from ``--unlabeled`` more videos of the set that
  have no labels (the teacher's per-frame outputs alone), in ``--unlabeled-epochs`` so it takes as many training
  steps as the others (``distill --task detect --unlabeled synthetic:N``);
- **student, scratch**: the same student and schedule from the labels alone.

Each run keeps its best checkpoint by val frame mAP and chooses its event thresholds on val for the same
false-alarm target; the table is each best checkpoint on the test videos (``edgelstm eval --task detect``).
The distilled student is then exported (ONNX, parity checked) and its bundle scored through the runtime.
Writes OUT/results.json and OUT/results.md and prints the table.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from edgelstm.data.untrimmed import load_untrimmed
from edgelstm.spec import Task
from edgelstm.train.config import DataConfig, DistillConfig, TrainConfig
from edgelstm.train.detect import DetectOptions, distill_detect, train_detect

TEACHER_KW = {"widths": (16, 32, 64, 64), "feature_size": 128, "hidden_size": 128}  # the student's encoder size
ROWS = (("teacher", "teacher (student-size encoder + 2-layer BiLSTM 128, offline)"),
        ("student_distilled", "**student, distilled** (causal, LSTM 128)"),
        ("student_unlabeled", "**student, distilled + unlabelled videos**"),
        ("student_scratch", "student, trained from scratch"))


def _config(name: str, model: str, args: argparse.Namespace, *, epochs: int,
            kwargs: dict[str, object] | None = None) -> TrainConfig:
    return TrainConfig(model=model, out=Path(args.out) / name, data=DataConfig(spec="synthetic", size=(32, 32),
                       clip_len=args.window), model_kwargs=dict(kwargs or {}), epochs=epochs, batch_size=16,
                       lr=args.lr, seed=args.seed, threads=args.threads, force=True, progress=False,
                       task=Task.DETECT)


def _row(label: str, test: dict[str, Any], params: int, macs: int, seconds: float) -> str:
    def s(v: Any) -> str:
        return "–" if v is None else f"{v:.2f} s"

    acc = test["stage_accuracy"]
    first = "–" if not acc or acc[0] is None else f"{100 * acc[0]:.1f}%"
    within = " | ".join(f"{100 * v:.1f}%" for v in test["detected_within"].values())
    return (f"| {label} | {test['frame_map']:.3f} | {s(test['delay_p50_s'])} | {s(test['delay_p90_s'])} | {within} | "
            f"{test['false_alarms_per_hour']:.0f} | {test['missed']} / {test['instances']} | {first} | "
            f"{params:,} | {macs:,} | {seconds:.0f} s |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/untrimmed")
    p.add_argument("--videos", type=int, default=64, help="training videos of 60 s")
    p.add_argument("--eval-videos", type=int, default=24,
                   help="val and test videos each (with 8, about 236 test actions, two seeds disagreed on which "
                        "student detects earlier)")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--window", type=int, default=32, help="TBPTT window (--clip-len)")
    p.add_argument("--teacher-epochs", type=int, default=30,
                   help="(at 10 the teacher was barely ahead of the students, 0.77 frame mAP, and distilling it made "
                        "them later)")
    p.add_argument("--student-epochs", type=int, default=24, help="(at 12 both students were still improving)")
    p.add_argument("--unlabeled", type=int, default=64, help="unlabelled videos for the third student")
    p.add_argument("--unlabeled-epochs", type=int, default=0,
                   help="its epochs [default: as many training steps as the others]")
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--target-false-alarms", type=float, default=300.0,
                   help="per hour of background, on val (the set has an action about every 2 s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=0.5, help="distillation: weight of the labels' CE")
    p.add_argument("--temperature", type=float, default=1.0, help="distillation temperature (1 beat 2 on val)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on 2 shared cores)")
    p.add_argument("--reuse", action="store_true", help="score runs already in --out instead of training them")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    counts = (args.videos, args.eval_videos, args.eval_videos)
    ds = load_untrimmed("synthetic", size=(32, 32), seed=args.seed, counts=counts, seconds=args.seconds)
    stages: dict[str, float] = {"data": time.perf_counter() - t0}
    opts = DetectOptions(video_seconds=args.seconds, target_false_alarms_per_hour=args.target_false_alarms)
    out = Path(args.out)
    teacher = _config("teacher", "teacher", args, epochs=args.teacher_epochs, kwargs=TEACHER_KW)
    student = _config("student_distilled", "student", args, epochs=args.student_epochs)
    scratch = _config("student_scratch", "student", args, epochs=args.student_epochs)
    share = args.videos / (args.videos + args.unlabeled)  # as many training steps as the others
    u_epochs = args.unlabeled_epochs or max(1, round(args.student_epochs * share))
    unlabeled = _config("student_unlabeled", "student", args, epochs=u_epochs)
    dcfg = DistillConfig(teacher=out / "teacher" / "best.pt", alpha=args.alpha, temperature=args.temperature)
    runs = {"teacher": _run(args, stages, "teacher", lambda: train_detect(teacher, opts, data=ds)),
            "student_distilled": _run(args, stages, "student_distilled",
                                      lambda: distill_detect(student, dcfg, opts, data=ds)),
            "student_unlabeled": _run(args, stages, "student_unlabeled", lambda: distill_detect(
                unlabeled, dcfg, opts, data=ds, unlabeled=f"synthetic:{args.unlabeled}")),
            "student_scratch": _run(args, stages, "student_scratch", lambda: train_detect(scratch, opts, data=ds))}
    bundle = _export_and_score(out, runs["student_distilled"].best, ds, stages)
    matched = {split: {key: _earliness(runs[key].best, ds, split) for key, _ in ROWS} for split in ("val", "test")}
    _write(Path(args.out), args, runs, bundle, stages, time.perf_counter() - t0, matched)


def _run(args: argparse.Namespace, stages: dict[str, float], name: str, fit: Callable[[], Any]) -> Any:
    """Train one model, or with --reuse read a finished run of it from OUT/NAME/metrics.json."""
    metrics = Path(args.out) / name / "metrics.json"
    if args.reuse and metrics.is_file():
        m = json.loads(metrics.read_text())
        stages[name] = float(m["wall_s"])
        return SimpleNamespace(best=metrics.parent / "best.pt", test=m["test"], params=m["params"],
                               macs_per_frame=m["macs_per_frame"], thresholds=m["event_thresholds"])
    t = time.perf_counter()
    result = fit()
    stages[name] = time.perf_counter() - t
    return SimpleNamespace(best=result.best, test=result.test, params=result.params,
                           macs_per_frame=result.macs_per_frame, thresholds=asdict(result.thresholds))


def _export_and_score(out: Path, best: Path, ds: Any, stages: dict[str, float]) -> dict[str, Any]:
    from edgelstm.export.exporter import export_bundle
    from edgelstm.measure.detect import evaluate_detect_bundle

    t = time.perf_counter()
    export_bundle(best, out / "bundle", force=True)
    result = evaluate_detect_bundle(out / "bundle", ds, split="test")
    stages["export_and_bundle_eval"] = time.perf_counter() - t
    return result.to_json()


def _earliness(best: Path, ds: Any, split: str) -> dict[str, Any]:
    """The share of the split's actions detected within 0.5 s / 1 s at matched false-alarm rates
    (:func:`edgelstm.detect_metrics.earliness_at_false_alarms`)."""
    from edgelstm.detect_metrics import earliness_at_false_alarms
    from edgelstm.models.checkpoint import load_checkpoint
    from edgelstm.train.detect import split_probs

    ck = load_checkpoint(best)
    probs = split_probs(ck.model.eval(), ds[split], window=ck.data.clip_len)
    return earliness_at_false_alarms(probs, [v.labels for v in ds[split]], background=ds.background, fps=ds.fps)


def _matched_table(matched: dict[str, dict[str, Any]]) -> str:
    budgets = list(next(iter(matched["test"].values())))
    head = "| model | " + " | ".join(f"{s}: ≤ {b} false alarms / h" for s in ("val", "test") for b in budgets)
    lines = [head + " |", "|---" * (1 + 2 * len(budgets)) + "|"]

    def cell(d: dict[str, float | None]) -> str:
        return " / ".join("–" if v is None else f"{100 * v:.1f}%" for v in d.values())

    for key, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(matched[s][key][b]) for s in ("val", "test") for b in budgets)
                     + " |")
    return "\n".join(lines)


def _write(out: Path, args: argparse.Namespace, runs: dict[str, Any], bundle: dict[str, Any],
           stages: dict[str, float], wall: float, matched: dict[str, dict[str, Any]]) -> None:
    head = ("| model | frame mAP | delay p50 | delay p90 | detected within 0.5 s | within 1 s | within 2 s | "
            "false alarms / h | missed | 1st-decile accuracy | params | MACs / frame | train |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for key, label in ROWS:
        r = runs[key]
        lines.append(_row(label, r.test, r.params, r.macs_per_frame, stages[key]))
    lines.append(_row("student, distilled, exported (onnxruntime FP32, through the runtime)", bundle,
                      runs["student_distilled"].params, runs["student_distilled"].macs_per_frame,
                      stages["export_and_bundle_eval"]))
    table = "\n".join(lines)
    results = {"args": vars(args), "wall_s": round(wall, 1), "stages_s": {k: round(v, 1) for k, v in stages.items()},
               "test": {k: r.test for k, r in runs.items()}, "bundle_test": bundle,
               "thresholds": {k: r.thresholds for k, r in runs.items()}, "detected_within_at_false_alarms": matched}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    matched_md = ("Share of all actions detected within 0.5 s / 1 s of their start, at the best event thresholds "
                  "of the grid that keep within each false-alarm rate on that split:\n\n" + _matched_table(matched))
    (out / "results.md").write_text(table + "\n\n" + matched_md + f"\n\nwall time {wall:.0f} s\n")
    print(table, matched_md, sep="\n\n")
    print(f"\nwall time {wall:.0f} s; stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items()))


if __name__ == "__main__":
    main()

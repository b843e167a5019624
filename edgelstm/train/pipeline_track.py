"""The tracking quickstart's training stage: a tracker teacher, the student distilled from it, the same student
from the true boxes alone.

:func:`track_stage` is what ``edgelstm quickstart --task track`` calls (:mod:`edgelstm.quickstart_track` runs the
rest). Its defaults are sized to keep the whole quickstart within 10 minutes on 2 CPU cores: the embedded
tracking set at 64x64 (sequences of 48 frames, windows of 24), 32x32 crops; the teacher is the student's own form
trained twice as long (32 epochs), which the issue allows and which measured best here: ``tracker_teacher`` (the
same form twice as wide, 3.4x the MACs) reached test mean IoU 0.58 in 16 epochs where the student reached 0.63, and
the student after 32 epochs 0.68 (300 training sequences, one run each). The two students, distilled and from the
true boxes alone, train 16 epochs. Measure with ``time python -m edgelstm.train.pipeline_track OUT``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgelstm.data.tracking import TrackSet, load_tracking
from edgelstm.fsutil import write_text_atomic
from edgelstm.trackspec import Tracking
from edgelstm.train.config import DataConfig, DistillConfig, TrainConfig
from edgelstm.train.track import TrackOptions, TrackRunResult, distill_track, train_track

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackStageConfig:
    """Settings of the tracking training stage (the defaults are the measured quickstart settings)."""

    size: tuple[int, int] = (64, 64)     # frames of the embedded tracking set
    frames: int = 48                     # per sequence
    clip_len: int = 24                   # training windows (the LSTM state is zeroed every clip_len - 1 steps)
    counts: tuple[int, int, int] = (200, 20, 40)  # sequences in train, val, test
    crop_size: int = 32
    seed: int = 0
    threads: int = 1                     # one thread: see edgelstm.train.track.fit_track
    batch_size: int = 4                  # windows per step: many small steps learn faster than a few large ones
    teacher: str = "tracker"             # the student's own form trained twice as long (see the module docstring)
    student: str = "tracker"
    teacher_epochs: int = 32
    student_epochs: int = 16
    lr: float = 3e-3
    alpha: float = 0.5                   # distillation: weight of the true boxes
    progress: bool = True
    parallel: bool = True                # the scratch student trains beside the teacher, in a second process


def track_stage(out_dir: str | Path, *, config: TrackStageConfig = TrackStageConfig(),
                data: TrackSet | None = None) -> list[dict[str, Any]]:
    """Train the teacher, then the distilled and the scratch student, into ``out_dir/<run>/``; write
    ``out_dir/train_stage.json``. One row per run: name, model, test and val reports (OTB metrics, closed loop),
    params, MACs per frame, checkpoint, seconds. With ``parallel`` the scratch student trains in a second process
    (one thread each) while the teacher does: it needs no teacher, and two single-threaded runs fill two cores."""
    out, c = Path(out_dir), config
    t0 = time.perf_counter()
    torch.set_num_threads(c.threads)
    scratch_job = None
    if c.parallel and data is None:  # a given set stays in this process: the second one could not see it
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
        scratch_job = pool.submit(_scratch, str(out), c)
    ds = data or _data(c)
    log.info("tracking set ready in %.1fs", time.perf_counter() - t0)
    teacher = train_track(_cfg(out, c, "teacher", c.teacher, c.teacher_epochs), _opts(c), ds)
    distilled = distill_track(_cfg(out, c, "student_distilled", c.student, c.student_epochs),
                              DistillConfig(teacher=teacher.best), _opts(c), ds)
    if scratch_job is not None:
        scratch_row = scratch_job.result()
        pool.shutdown()
    else:
        scratch_row = _row("student_scratch", c.student, train_track(
            _cfg(out, c, "student_scratch", c.student, c.student_epochs), _opts(c), ds))
    rows = [_row("teacher", c.teacher, teacher), _row("student_distilled", c.student, distilled), scratch_row]
    summary = {"rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
               "config": json.loads(json.dumps(dataclasses.asdict(c), default=str))}
    write_text_atomic(out / "train_stage.json", json.dumps(summary, indent=2) + "\n")
    return rows


def _data(c: TrackStageConfig) -> TrackSet:
    return load_tracking("synthetic", size=c.size, frames=c.frames, counts=c.counts, seed=c.seed)


def _opts(c: TrackStageConfig) -> TrackOptions:
    return TrackOptions(tracking=Tracking(crop_size=c.crop_size), frames=c.frames, alpha=c.alpha)


def _cfg(out: Path, c: TrackStageConfig, name: str, model: str, epochs: int, *, progress: bool | None = None
         ) -> TrainConfig:
    data = DataConfig(spec="synthetic", size=c.size, clip_len=c.clip_len, counts=c.counts)
    return TrainConfig(model=model, out=out / name, data=data, epochs=epochs, batch_size=c.batch_size, lr=c.lr,
                       seed=c.seed, threads=c.threads, force=True, progress=c.progress if progress is None else progress)


def _scratch(out: str, c: TrackStageConfig) -> dict[str, Any]:
    """The scratch student, in its own process (the set is rendered again there: the same seed, the same set)."""
    torch.set_num_threads(c.threads)
    cfg = _cfg(Path(out), c, "student_scratch", c.student, c.student_epochs, progress=False)
    return _row("student_scratch", c.student, train_track(cfg, _opts(c), _data(c)))


def _row(name: str, model: str, r: TrackRunResult) -> dict[str, Any]:
    return {"name": name, "model": model, "test": r.test.to_json() if r.test else None, "val": r.val.to_json(),
            "params": r.params, "macs_per_frame": r.macs_per_frame, "checkpoint": str(r.best),
            "seconds": round(r.seconds, 1)}


def format_track_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`track_stage` rows (test split)."""
    lines = [f"{'model':18s} {'mean IoU':>8s} {'AUC':>6s} {'prec@20':>7s} {'err px':>6s} {'params':>10s} "
             f"{'MACs/frame':>11s} {'seconds':>8s}"]
    for r in rows:
        t = r["test"] or {}
        nan = float("nan")
        lines.append(f"{r['name']:18s} {t.get('mean_iou', nan):8.3f} {t.get('success_auc', nan):6.3f} "
                     f"{t.get('precision_20px', nan):7.3f} {t.get('mean_centre_error_px', nan):6.1f} "
                     f"{r['params']:10,d} {r['macs_per_frame']:11,d} {r['seconds']:8.1f}")
    return "\n".join(lines)


def main() -> None:
    """``python -m edgelstm.train.pipeline_track OUT [--seed S] [--epochs E]``: run the stage alone, print its table."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="teacher and student epochs (default: the stage's)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = TrackStageConfig(seed=args.seed, progress=False)
    if args.epochs:
        cfg = dataclasses.replace(cfg, teacher_epochs=args.epochs, student_epochs=args.epochs)
    t0 = time.perf_counter()
    rows = track_stage(args.out, config=cfg)
    print(format_track_table(rows))
    print(f"wall {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()

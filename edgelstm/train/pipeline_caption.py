"""The caption quickstart's training stage: a captioning teacher, the streaming student distilled from it, and the
same student trained from the reference captions alone (scratch).

:func:`caption_train_stage` is what ``edgelstm quickstart --task caption`` calls (:mod:`edgelstm.quickstart_caption`
runs the rest). Its defaults are sized to keep the whole quickstart within 10 minutes on 2 CPU cores: the embedded
synthetic set at 32x32, 8 frames per clip, with five generated captions per clip.
Measure with ``time python -m edgelstm.train.pipeline_caption OUT``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgelstm.data.caption_set import CaptionSet, load_captions
from edgelstm.fsutil import write_text_atomic
from edgelstm.train.caption import CaptionConfig, CaptionRunResult, fit_caption

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionStageConfig:
    size: tuple[int, int] = (32, 32)
    clip_len: int = 8
    counts: tuple[int, int, int] = (1500, 200, 300)  # synthetic clips in train, val, test
    seed: int = 0
    threads: int = 2
    batch_size: int = 16
    teacher: str = "captioner_teacher"
    student: str = "captioner"
    teacher_epochs: int = 16
    student_epochs: int = 16
    teacher_lr: float = 1e-3       # at 3e-3 the teacher's decoder learnt the captions' language and never the video
    student_lr: float = 5e-3
    alpha: float = 0.5
    temperature: float = 2.0
    progress: bool = True


def caption_train_stage(out_dir: str | Path, *, config: CaptionStageConfig = CaptionStageConfig(),
                        dataset: CaptionSet | None = None) -> list[dict[str, Any]]:
    """Train teacher, distilled student and scratch student into ``out_dir/<run>/``; one row per run (its test
    BLEU-4, CIDEr-D, motion-word accuracy, params, MACs per frame, checkpoint, seconds). Writes
    ``out_dir/train_stage.json``."""
    out, c = Path(out_dir), config
    t0 = time.perf_counter()
    if c.threads:
        torch.set_num_threads(c.threads)
    ds = dataset or load_captions("synthetic", size=c.size, clip_len=c.clip_len, seed=c.seed, counts=c.counts)
    log.info("caption set ready in %.1fs (%d words)", time.perf_counter() - t0, len(ds.vocab))

    def run(name: str, model: str, epochs: int, lr: float, teacher: Path | None = None) -> dict[str, Any]:
        cfg = CaptionConfig(model=model, out=out / name, epochs=epochs, batch_size=c.batch_size, lr=lr, seed=c.seed,
                            threads=c.threads, force=True, progress=c.progress, teacher=teacher, alpha=c.alpha,
                            temperature=c.temperature)
        return _row(name, model, fit_caption(cfg, ds))

    rows = [run("teacher", c.teacher, c.teacher_epochs, c.teacher_lr)]
    rows.append(run("student_distilled", c.student, c.student_epochs, c.student_lr, Path(rows[0]["checkpoint"])))
    rows.append(run("student_scratch", c.student, c.student_epochs, c.student_lr))
    summary = {"rows": rows, "vocab_size": len(ds.vocab), "wall_s": round(time.perf_counter() - t0, 1),
               "config": json.loads(json.dumps(dataclasses.asdict(c), default=str))}
    write_text_atomic(out / "train_stage.json", json.dumps(summary, indent=2) + "\n")
    return rows


def _row(name: str, model: str, r: CaptionRunResult) -> dict[str, Any]:
    test = r.test or {}
    return {"name": name, "model": model, "bleu4": test.get("bleu4"), "cider_d": test.get("cider_d"),
            "motion_accuracy": test.get("motion_accuracy"), "motion_head_accuracy": test.get("motion_head_accuracy"),
            "val_cider_d": r.val_cider_d, "params": r.params, "macs_per_frame": r.macs_per_frame,
            "checkpoint": str(r.best), "seconds": round(r.seconds, 1)}


def format_caption_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`caption_train_stage` rows."""
    def num(x: float | None, scale: float = 1.0) -> str:
        return "-" if x is None else f"{scale * x:.1f}"

    lines = [f"{'model':18s} {'BLEU-4':>7s} {'CIDEr-D':>8s} {'motion':>7s} {'params':>10s} {'MACs/frame':>11s} "
             f"{'seconds':>8s}"]
    for r in rows:
        lines.append(f"{r['name']:18s} {num(r['bleu4']):>7s} {num(r['cider_d'], 100):>8s} "
                     f"{num(r['motion_accuracy'], 100):>7s} {r['params']:10,d} {r['macs_per_frame']:11,d} "
                     f"{r['seconds']:8.1f}")
    return "\n".join(lines)


def main() -> None:
    """``python -m edgelstm.train.pipeline_caption OUT [--seed S]``: run the stage alone and print its table."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    rows = caption_train_stage(args.out, config=CaptionStageConfig(seed=args.seed, progress=False))
    print(format_caption_table(rows))
    print(f"wall {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()

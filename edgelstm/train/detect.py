"""Training for online action detection: :func:`train_detect` and :func:`distill_detect`.

The data is an :class:`~edgelstm.data.untrimmed.UntrimmedSet` (long videos, a label per frame, background at
index 0). A causal model learns from windows of ``--clip-len`` frames taken in order, its LSTM state carried
from window to window (:mod:`edgelstm.train.tbptt`), with cross-entropy at every frame; a bidirectional
teacher learns from windows on their own. Distillation adds, at every frame, the KL divergence to the
teacher's per-frame output: the teacher sees the frames after each one, so near an action's start it already
knows what is beginning, and the student learns to say so sooner.

After each epoch the run keeps ``best.pt`` by frame mAP on val. When training ends the event thresholds are
chosen on val for ``target_false_alarms_per_hour`` (:func:`edgelstm.detect_metrics.choose_thresholds`) and
stored in ``best.pt``; the test split is then scored with them (``metrics.json``).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgelstm.data.untrimmed import UNLABELED, UntrimmedSet, Video, load_unlabeled, load_untrimmed
from edgelstm.detect_metrics import DetectionReport, choose_thresholds, detection_report, frame_map
from edgelstm.detectspec import THRESHOLDS_KEY, EventThresholds
from edgelstm.errors import DataError, UsageError
from edgelstm.fsutil import write_text_atomic
from edgelstm.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgelstm.models.macs import count_params, macs_per_frame
from edgelstm.spec import Task
from edgelstm.train.build import build_model
from edgelstm.train.config import DistillConfig, TrainConfig
from edgelstm.train.dist import setup_dist
from edgelstm.train.tbptt import Lanes, Window, carry, is_causal, video_logits, window_logits
from edgelstm.train.trainer import jsonable_config, make_scheduler, prepare_out, progress_bar

log = logging.getLogger(__name__)

DEFAULT_DETECT_SIZE = (32, 32)  # the embedded untrimmed set's frames


@dataclass(frozen=True)
class DetectOptions:
    video_seconds: float | None = None          # synthetic: the length of every video (None: the set's default)
    target_false_alarms_per_hour: float = 60.0  # the event thresholds are chosen on val for this rate

    def __post_init__(self) -> None:
        if self.video_seconds is not None and not self.video_seconds > 0:
            raise UsageError(f"--video-seconds {self.video_seconds}", expected="a positive length",
                             fix="pass e.g. --video-seconds 60")
        if not self.target_false_alarms_per_hour >= 0:
            raise UsageError(f"--target-false-alarms {self.target_false_alarms_per_hour}",
                             expected="false alarms per hour of background, >= 0", fix="pass e.g. 60")


@dataclass(frozen=True)
class DetectRunResult:
    out: Path
    best: Path
    val_frame_map: float
    thresholds: EventThresholds
    test: dict[str, Any] | None     # DetectionReport.to_json() of the best checkpoint on test
    params: int
    macs_per_frame: int
    seconds: float


def load_detect_data(cfg: TrainConfig, opts: DetectOptions, *, size: tuple[int, int] | None = None) -> UntrimmedSet:
    return load_untrimmed(cfg.data.spec, size=cfg.data.size or size or DEFAULT_DETECT_SIZE, seed=cfg.seed,
                          counts=cfg.data.counts, seconds=opts.video_seconds)


def split_probs(model: nn.Module, videos: list[Video], *, window: int) -> list[np.ndarray]:
    """Per-frame softmax (T, K) of each video."""
    out = []
    for v in videos:
        logits = video_logits(model, v.frames, window=window)
        e = np.exp(logits - logits.max(-1, keepdims=True))
        out.append(e / e.sum(-1, keepdims=True))
    return out


def _frame_loss(cfg: TrainConfig, dcfg: DistillConfig | None, logits: torch.Tensor, w: Window) -> torch.Tensor:
    """Cross-entropy at every frame; distilling, alpha * CE + (1 - alpha) * tau^2 * KL(teacher || student)."""
    k = logits.shape[-1]
    y = w.y.reshape(-1)
    if bool((y == UNLABELED).all()):  # windows of unlabelled videos only: the teacher's targets alone
        ce = logits.sum() * 0.0
    else:
        ce = F.cross_entropy(logits.reshape(-1, k), y, label_smoothing=cfg.label_smoothing, ignore_index=UNLABELED)
    if dcfg is None or w.teacher is None:
        return ce
    tau = dcfg.temperature
    p_t = F.softmax(w.teacher.reshape(-1, k) / tau, dim=-1)
    kl = (p_t * (p_t.clamp_min(1e-8).log() - F.log_softmax(logits.reshape(-1, k) / tau, dim=-1))).sum(-1).mean()
    return dcfg.alpha * ce + (1 - dcfg.alpha) * tau * tau * kl


def _epoch(model: nn.Module, lanes: Lanes, opt: torch.optim.Optimizer, sched: Any, cfg: TrainConfig,
           dcfg: DistillConfig | None, *, epoch: int, desc: str) -> float:
    """One pass of TBPTT windows; the mean loss. A causal model's state is carried across windows."""
    torch.manual_seed(cfg.seed * 1000 + epoch)
    model.train()
    causal = is_causal(model)
    state = None
    total, count = 0.0, 0
    with progress_bar(lanes.steps(), desc, cfg.progress) as bar:
        for w in lanes.epoch(epoch):
            logits, new = window_logits(model, w.x, carry(state, w.reset) if causal else None)
            state = new
            loss = _frame_loss(cfg, dcfg, logits, w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + float(loss.detach()), count + 1
            bar.set_postfix(loss=f"{total / count:.3f}")
            bar.update()
    return total / max(count, 1)


@dataclass
class DetectRun:
    model: nn.Module
    name: str
    config: dict[str, Any]
    ds: UntrimmedSet
    window: int
    meta: dict[str, Any] = field(default_factory=dict)
    unlabeled: list[Video] = field(default_factory=list)  # trained on beside the train split (teacher targets only)

    def checkpoint(self, metrics: dict[str, Any]) -> Checkpoint:
        return Checkpoint(model=self.model, name=self.name, config=self.config, classes=list(self.ds.classes),
                          data=self.ds.facts(self.window), metrics={"video_seconds": self.ds.seconds, **metrics})


def _check_val(ds: UntrimmedSet) -> None:
    """The best epoch and the event thresholds are chosen on val: it needs videos with actions in them."""
    val = ds.splits.get("val") or []
    if not any((v.labels != ds.background).any() for v in val):
        raise DataError(f"the val split has {len(val)} video(s) and no action in them", path=ds.source,
                        expected="val videos with action segments (the best epoch and the event thresholds are "
                                 "chosen on them)", fix="add videos under val/ (or more videos, so that some are "
                                                        "carved into val) with segments")


def fit_detect(run: DetectRun, cfg: TrainConfig, opts: DetectOptions, *, dcfg: DistillConfig | None = None,
               targets: list[np.ndarray] | None = None) -> DetectRunResult:
    """Train ``run.model`` on the train videos; keep best-on-val (frame mAP), choose the thresholds, score test."""
    t0 = time.perf_counter()
    d = setup_dist()
    if d.world > 1 or cfg.resume:
        raise UsageError("--task detect under torchrun or with --resume", expected="one process, a new run",
                         fix="run it as a single process without --resume")
    _check_val(run.ds)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    prepare_out(cfg, d)
    out, ds = Path(cfg.out), run.ds
    lanes = Lanes(ds["train"] + run.unlabeled, batch=cfg.batch_size, window=run.window, seed=cfg.seed,
                  targets=targets)
    opt = torch.optim.AdamW(run.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(cfg, opt, cfg.epochs * lanes.steps())
    best, history = -1.0, []
    for epoch in range(cfg.epochs):
        e0 = time.perf_counter()
        loss = _epoch(run.model, lanes, opt, sched, cfg, dcfg, epoch=epoch, desc=f"{run.name} {epoch + 1}/{cfg.epochs}")
        probs = split_probs(run.model, ds["val"], window=run.window)
        val = frame_map(np.concatenate(probs), np.concatenate([v.labels for v in ds["val"]]), ds.background)[0]
        history.append({"epoch": epoch + 1, "train_loss": round(loss, 5), "val_frame_map": round(val, 5),
                        "seconds": round(time.perf_counter() - e0, 2)})
        log.info("%s epoch %d: loss %.4f val frame mAP %.4f", run.name, epoch + 1, loss, val)
        if val > best:
            best = val
            save_checkpoint(out / "best.pt", run.checkpoint({"val_frame_map": val, "epoch": epoch + 1}))
    return _finish(run, cfg, opts, best=best, history=history, t0=t0)


def _finish(run: DetectRun, cfg: TrainConfig, opts: DetectOptions, *, best: float, history: list[dict[str, Any]],
            t0: float) -> DetectRunResult:
    """Thresholds on val, test scored with them, both kept in best.pt and metrics.json."""
    out, ds = Path(cfg.out), run.ds
    ckpt = load_checkpoint(out / "best.pt")
    run.model.load_state_dict(ckpt.model.state_dict())
    val_probs = split_probs(run.model, ds["val"], window=run.window)
    thresholds = choose_thresholds(val_probs, [v.labels for v in ds["val"]], background=ds.background, fps=ds.fps,
                                   target_false_alarms_per_hour=opts.target_false_alarms_per_hour)
    save_checkpoint(out / "best.pt", run.checkpoint({**ckpt.metrics, THRESHOLDS_KEY: asdict(thresholds)}))
    test = None
    if ds.splits.get("test"):
        test = score(run.model, ds, "test", window=run.window, thresholds=thresholds).to_json()
    params = count_params(run.model)
    macs = macs_per_frame(run.model, size=ds.size, frames=run.window)
    metrics = {"model": run.name, "task": str(Task.DETECT), "model_config": run.config,
               "data": run.ds.facts(run.window).to_dict(), "classes": list(ds.classes),
               "videos": dict(zip(("train", "val", "test"), ds.counts())), "video_seconds": ds.seconds,
               "params": params, "macs_per_frame": macs, "val_frame_map": best, THRESHOLDS_KEY: asdict(thresholds),
               "test": test, "history": history, "wall_s": round(time.perf_counter() - t0, 2),
               "config": jsonable_config(cfg), **run.meta}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    return DetectRunResult(out=out, best=out / "best.pt", val_frame_map=best, thresholds=thresholds, test=test,
                           params=params, macs_per_frame=macs, seconds=time.perf_counter() - t0)


def score(model: nn.Module, ds: UntrimmedSet, split: str, *, window: int,
          thresholds: EventThresholds) -> DetectionReport:
    probs = split_probs(model, ds[split], window=window)
    return detection_report(probs, [v.labels for v in ds[split]], classes=ds.classes, background=ds.background,
                            fps=ds.fps, thresholds=thresholds)


def train_detect(cfg: TrainConfig, opts: DetectOptions = DetectOptions(), data: UntrimmedSet | None = None
                 ) -> DetectRunResult:
    """Train ``cfg.model`` for detection on ``cfg.data`` (or an already loaded untrimmed set)."""
    torch.manual_seed(cfg.seed)
    ds = data or load_detect_data(cfg, opts)
    model, mcfg = build_model(cfg.model, ds.shell(cfg.data.clip_len), cfg.model_kwargs, encoder=cfg.encoder,
                              init_weights=cfg.init_weights)
    run = DetectRun(model, cfg.model, mcfg, ds, cfg.data.clip_len, {"objective": "supervised"})
    return fit_detect(run, cfg, opts)


def distill_detect(cfg: TrainConfig, dcfg: DistillConfig, opts: DetectOptions = DetectOptions(),
                   data: UntrimmedSet | None = None, unlabeled: str | list[Video] | None = None) -> DetectRunResult:
    """Distill a detection teacher (a checkpoint trained with --task detect) into ``cfg.model``, frame by frame.

    ``unlabeled`` (``"synthetic:N"``, a folder of videos, or loaded videos): footage without segments, trained on
    beside the train split with the teacher's per-frame targets alone (no cross-entropy): what a deployer has
    plenty of, and what a student trained from the labels alone cannot use."""
    torch.manual_seed(cfg.seed)
    teacher = load_checkpoint(Path(dcfg.teacher)) if Path(str(dcfg.teacher)).is_file() else None
    if teacher is None or teacher.data.task != Task.DETECT:
        raise UsageError(f"--teacher {dcfg.teacher} with --task detect", path=str(dcfg.teacher),
                         expected="a checkpoint trained with --task detect (per-frame outputs with a background)",
                         fix="train the teacher first: edgelstm train --task detect --model teacher ...")
    ds = data or load_detect_data(cfg, opts, size=teacher.data.size)
    if list(teacher.classes) != list(ds.classes):
        raise UsageError(f"the teacher knows {', '.join(teacher.classes[:4])}, ...; the data "
                         f"{', '.join(ds.classes[:4])}, ...", expected="the classes the teacher was trained on",
                         fix="distill on the teacher's data")
    extra = load_unlabeled(unlabeled, ds) if isinstance(unlabeled, (str, Path)) else list(unlabeled or [])
    t0 = time.perf_counter()
    targets = [video_logits(teacher.model, v.frames, window=teacher.data.clip_len) for v in ds["train"] + extra]
    model, mcfg = build_model(cfg.model, ds.shell(cfg.data.clip_len), cfg.model_kwargs, encoder=cfg.encoder,
                              init_weights=cfg.init_weights)
    meta = {"objective": "distill", "distill": jsonable_config(dcfg), "teacher_s": round(time.perf_counter() - t0, 2),
            "unlabeled_videos": len(extra), "unlabeled_frames": sum(len(v) for v in extra)}
    return fit_detect(DetectRun(model, cfg.model, mcfg, ds, cfg.data.clip_len, meta, extra), cfg, opts, dcfg=dcfg,
                      targets=targets)

"""Training trackers: :func:`train_track` and :func:`distill_track` (``train/distill --task track``).

A tracker (:mod:`edgelstm.models.tracker`) learns from windows of ``--clip-len`` frames cut into crop pairs
(:mod:`edgelstm.train.track_data`), with a smooth-L1 loss on its four box outputs at every step. Distillation
adds the same loss towards the teacher's outputs on the same crops (the teacher tracks with the same geometry,
so its outputs are boxes too). After every epoch the run is scored the way it will be used: tracking each
validation sequence from its first box to its end, in a closed loop (:func:`edgelstm.runtime.track.track_offline`,
the device's own procedure), and ``best.pt`` keeps the best success AUC. The test split is scored once at the
end (``metrics.json``: mean IoU, success AUC, precision at 20 px).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgelstm.data.tracking import TrackSet, TrackSequence, load_tracking
from edgelstm.errors import UsageError
from edgelstm.fsutil import write_text_atomic
from edgelstm.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgelstm.models.macs import count_params, macs_per_frame
from edgelstm.models.registry import create_model
from edgelstm.runtime.track import track_offline
from edgelstm.spec import DataFacts, ModelKind, Task
from edgelstm.track_metrics import TrackReport, track_report
from edgelstm.trackspec import OUTPUTS, TRACKING_KEY, Tracking, tracking_of
from edgelstm.train.config import DistillConfig, TrainConfig
from edgelstm.train.track_data import PairBatch, Windows, crop_pairs, frame_stats, jitter, sample_windows
from edgelstm.train.trainer import jsonable_config, make_scheduler, prepare_out, progress_bar

log = logging.getLogger(__name__)

DEFAULT_TRACK_SIZE = (64, 64)  # frames of the embedded tracking set


@dataclass(frozen=True)
class TrackOptions:
    tracking: Tracking = Tracking()   # crop size and context, output scale; reinit_every: set from --clip-len
    frames: int = 48                  # synthetic: frames per sequence
    unroll_share: float = 0.5         # share of windows cut around the model's own boxes, from epoch 2
    alpha: float = 0.5                # distillation: weight of the true boxes (1 - alpha: the teacher's outputs)

    def __post_init__(self) -> None:
        bad = self.tracking.check()
        if bad is not None:
            raise UsageError(f"tracking {bad[0]} {bad[1]!r}", expected=bad[2], fix=f"pass a {bad[0]} within it")
        if self.frames < 2:
            raise UsageError(f"{self.frames} frames per sequence", expected="at least 2", fix="pass more frames")


@dataclass(frozen=True)
class TrackRunResult:
    out: Path
    best: Path
    val: TrackReport
    test: TrackReport | None
    params: int
    macs_per_frame: int
    seconds: float


@dataclass
class _Run:
    model: nn.Module
    name: str
    config: dict[str, Any]
    ds: TrackSet
    tracking: Tracking
    window: int
    teacher: nn.Module | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def facts(self, mean: tuple[float, float, float], std: tuple[float, float, float]) -> DataFacts:
        s = self.tracking.crop_size
        return DataFacts(kind=ModelKind.FRAMES, clip_len=self.window, size=(s, 2 * s), mean=mean, std=std,
                         fps=self.ds.fps, source=self.ds.source, data_seed=self.ds.seed, task=Task.TRACK)

    def checkpoint(self, metrics: dict[str, Any]) -> Checkpoint:
        mean, std = tuple(self.config["mean"]), tuple(self.config["std"])
        return Checkpoint(model=self.model, name=self.name, config=self.config, classes=list(OUTPUTS),
                          data=self.facts(mean, std),  # type: ignore[arg-type]
                          metrics={TRACKING_KEY: dataclasses.asdict(self.tracking), **metrics})


def load_track_data(cfg: TrainConfig, opts: TrackOptions) -> TrackSet:
    return load_tracking(cfg.data.spec, size=cfg.data.size or DEFAULT_TRACK_SIZE, frames=opts.frames,
                         counts=cfg.data.counts, seed=cfg.seed)


def torch_step(model: nn.Module) -> Any:
    """A tracker as :func:`track_offline`'s step function (RGB crop pairs, state None = zeros)."""
    def step(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        with torch.no_grad():
            out, new = model.step(torch.from_numpy(x), state)  # type: ignore[operator]
        return out.numpy(), new
    return step


def track_split(model: nn.Module, seqs: list[TrackSequence], t: Tracking,
                follow: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Closed-loop boxes of every sequence, from its first true box (``follow``: see ``track_offline``)."""
    model.eval()
    return track_offline(torch_step(model), lambda n: None, [s.frames for s in seqs], [s.boxes[0] for s in seqs], t,
                         follow=follow)


def score_split(model: nn.Module, seqs: list[TrackSequence], t: Tracking) -> TrackReport:
    return track_report(track_split(model, seqs, t), [s.boxes for s in seqs])


def _estimates(run: _Run, win: Windows, rng: np.random.Generator, epoch: int, share: float) -> np.ndarray:
    """Jittered true boxes; from epoch 2 a growing share of windows tracked by the model itself (Re3)."""
    hw = [f.shape[1:3] for f in win.frames]
    est = jitter(win.boxes, rng, hw, t=run.tracking)  # type: ignore[arg-type]
    own = share * min(1.0, epoch / 3)
    pick = np.flatnonzero(rng.uniform(size=len(hw)) < own) if epoch else np.zeros(0, int)
    if len(pick):
        tracked = track_split(run.model, [TrackSequence("", win.frames[i], win.boxes[i].astype(np.float32))
                                          for i in pick], run.tracking)
        est[pick] = np.stack(tracked)
    return est


def _loss(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, teacher: torch.Tensor | None,
          alpha: float) -> torch.Tensor:
    m = mask.unsqueeze(-1)
    loss = (F.smooth_l1_loss(out, y, beta=0.1, reduction="none") * m).sum() / m.sum().clamp(min=1) / 4
    if teacher is None:
        return loss
    soft = (F.smooth_l1_loss(out, teacher, beta=0.1, reduction="none") * m).sum() / m.sum().clamp(min=1) / 4
    return alpha * loss + (1 - alpha) * soft


def _epoch(run: _Run, batch: PairBatch, opt: torch.optim.Optimizer, sched: Any, cfg: TrainConfig,
           opts: TrackOptions, desc: str) -> float:
    x, y, mask = torch.from_numpy(batch.x), torch.from_numpy(batch.y), torch.from_numpy(batch.mask)
    soft = None
    if run.teacher is not None:
        with torch.no_grad():
            soft = torch.cat([run.teacher.step_logits(x[i:i + 64])  # type: ignore[operator]
                              for i in range(0, len(x), 64)])
    run.model.train()
    order = torch.randperm(len(x))
    total, count = 0.0, 0
    with progress_bar(-(-len(x) // cfg.batch_size), desc, cfg.progress) as bar:
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            out = run.model.step_logits(x[idx])  # type: ignore[operator]  # (B, L-1, 4)
            loss = _loss(out, y[idx], mask[idx], soft[idx] if soft is not None else None, opts.alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + float(loss.detach()), count + 1
            bar.set_postfix(loss=f"{total / count:.4f}")
            bar.update()
    return total / max(count, 1)


def fit_track(run: _Run, cfg: TrainConfig, opts: TrackOptions) -> TrackRunResult:
    """Train ``run.model``; keep best-on-val (success AUC, closed loop); score test."""
    t0 = time.perf_counter()
    if cfg.resume:
        raise UsageError("--task track with --resume", expected="a new run", fix="run it without --resume")
    # 0: one thread. A tracker's steps are tiny (a few crops): a second OpenMP thread mostly waits on the other,
    # and on a shared machine each epoch ran 10-15x slower with two threads than with one (measured here).
    torch.set_num_threads(cfg.threads or 1)
    from edgelstm.train.dist import setup_dist

    prepare_out(cfg, setup_dist())
    out, ds = Path(cfg.out), run.ds
    steps = -(-len(ds["train"]) // cfg.batch_size)
    opt = torch.optim.AdamW(run.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(cfg, opt, max(8, cfg.epochs * steps))  # OneCycle needs a few steps per phase
    best, history = -1.0, []
    for epoch in range(cfg.epochs):
        e0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        win = sample_windows(ds["train"], run.window, rng)
        batch = crop_pairs(win, _estimates(run, win, rng, epoch, opts.unroll_share), run.tracking)
        loss = _epoch(run, batch, opt, sched, cfg, opts, f"{run.name} {epoch + 1}/{cfg.epochs}")
        val = score_split(run.model, ds["val"], run.tracking)
        history.append({"epoch": epoch + 1, "train_loss": round(loss, 5), "val": val.to_json(),
                        "seconds": round(time.perf_counter() - e0, 2)})
        log.info("%s epoch %d: loss %.4f val %s", run.name, epoch + 1, loss, val.summary())
        if val.success_auc > best:
            best = val.success_auc
            save_checkpoint(out / "best.pt", run.checkpoint({"val": val.to_json(), "epoch": epoch + 1}))
    return _finish(run, cfg, history, t0)


def _finish(run: _Run, cfg: TrainConfig, history: list[dict[str, Any]], t0: float) -> TrackRunResult:
    out, ds = Path(cfg.out), run.ds
    ckpt = load_checkpoint(out / "best.pt")
    run.model.load_state_dict(ckpt.model.state_dict())
    val = score_split(run.model, ds["val"], run.tracking)
    test = score_split(run.model, ds["test"], run.tracking) if ds["test"] else None
    s = run.tracking.crop_size
    params, macs = count_params(run.model), macs_per_frame(run.model, size=(s, 2 * s))
    metrics = {"model": run.name, "task": str(Task.TRACK), "model_config": run.config,
               "data": ckpt.data.to_dict(), TRACKING_KEY: dataclasses.asdict(run.tracking),
               "sequences": dict(zip(("train", "val", "test"), ds.counts())), "params": params,
               "macs_per_frame": macs, "val": val.to_json(), "test": test.to_json() if test else None,
               "history": history, "wall_s": round(time.perf_counter() - t0, 2), "config": jsonable_config(cfg),
               **run.meta}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    return TrackRunResult(out=out, best=out / "best.pt", val=val, test=test, params=params, macs_per_frame=macs,
                          seconds=time.perf_counter() - t0)


def _build(cfg: TrainConfig, ds: TrackSet, t: Tracking) -> tuple[nn.Module, dict[str, Any]]:
    from edgelstm.models.tracker import TRACKERS

    if cfg.model not in TRACKERS:
        raise UsageError(f"model '{cfg.model}' with --task track", expected="a tracker: " + ", ".join(sorted(TRACKERS)),
                         fix="train with --model tracker_teacher or tracker; distill with --student tracker")
    if not ds["train"] or not ds["val"]:
        raise UsageError(f"{ds.source}: {ds.counts()[0]} train and {ds.counts()[1]} val sequences",
                         expected="at least one of each", fix="pass more sequences (--counts) or another --data")
    mean, std = frame_stats(ds["train"])
    config = {**cfg.model_kwargs, "crop_size": t.crop_size, "mean": list(mean), "std": list(std)}
    return create_model(cfg.model, **config), config


def _tracking(opts: TrackOptions, cfg: TrainConfig) -> Tracking:
    """The run's geometry: the LSTM state is zeroed as often as training windows start from zero."""
    size = (cfg.data.size or DEFAULT_TRACK_SIZE) if cfg.data.spec == "synthetic" else (0, 0)
    return dataclasses.replace(opts.tracking, reinit_every=max(1, cfg.data.clip_len - 1),
                               frame_size=(int(size[0]), int(size[1])))


def report_line(r: TrackRunResult) -> str:
    """What ``edgelstm train/distill --task track`` prints."""
    test = f"; test {r.test.summary()}" if r.test is not None else ""
    return (f"val {r.val.summary()}{test}; {r.params:,} params, {r.macs_per_frame:,} MACs/frame, {r.seconds:.1f}s\n"
            f"best checkpoint: {r.best}")


def train_track(cfg: TrainConfig, opts: TrackOptions = TrackOptions(), data: TrackSet | None = None
                ) -> TrackRunResult:
    """Train ``cfg.model`` (a tracker) on ``cfg.data`` (or an already loaded set) from its true boxes."""
    torch.manual_seed(cfg.seed)
    ds = data or load_track_data(cfg, opts)
    t = _tracking(opts, cfg)
    model, config = _build(cfg, ds, t)
    return fit_track(_Run(model, cfg.model, config, ds, t, cfg.data.clip_len, meta={"objective": "supervised"}),
                     cfg, opts)


def distill_track(cfg: TrainConfig, dcfg: DistillConfig, opts: TrackOptions = TrackOptions(),
                  data: TrackSet | None = None) -> TrackRunResult:
    """Distill a track teacher (a checkpoint trained with --task track) into ``cfg.model``, on box outputs."""
    torch.manual_seed(cfg.seed)
    path = Path(str(dcfg.teacher))
    teacher = load_checkpoint(path) if path.is_file() else None
    if teacher is None or teacher.data.task != Task.TRACK:
        raise UsageError(f"--teacher {dcfg.teacher} with --task track", path=str(dcfg.teacher),
                         expected="a checkpoint trained with --task track",
                         fix="train the teacher first: edgelstm train --task track --model tracker_teacher ...")
    tt = tracking_of(teacher.metrics, source=path)
    t = _tracking(opts, cfg)
    if tt is None or (tt.crop_size, tt.context, tt.output_scale) != (t.crop_size, t.context, t.output_scale):
        raise UsageError(f"the teacher crops {tt and tt.crop_size}px at context {tt and tt.context}, the student "
                         f"{t.crop_size}px at {t.context}", expected="the same crop geometry", path=str(path),
                         fix="distill with the teacher's crop size and context")
    ds = data or load_track_data(cfg, opts)
    model, config = _build(cfg, ds, t)
    meta = {"objective": "distill", "distill": {"teacher": str(path), "alpha": opts.alpha}}
    return fit_track(_Run(model, cfg.model, config, ds, t, cfg.data.clip_len, teacher.model.eval(), meta), cfg, opts)

"""Training and distillation: :func:`train` and :func:`distill`, one loop underneath.

Both run unchanged under ``torchrun --nproc_per_node N``: the loop joins the process group
from the environment (gloo on CPU, nccl on GPU), shards batches with a DistributedSampler,
and only rank 0 evaluates and writes. A run folder holds ``best.pt`` (best on val),
``last.pt`` (for ``--resume``) and ``metrics.json``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgelstm.data import Dataset, load_dataset
from edgelstm.errors import CheckpointError, UsageError
from edgelstm.fsutil import write_text_atomic
from edgelstm.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgelstm.models.macs import count_params, macs_per_frame
from edgelstm.spec import DEFAULT_SIZE
from edgelstm.train.build import build_model, step_feature_size
from edgelstm.train.config import DataConfig, DistillConfig, TrainConfig
from edgelstm.train.dist import Dist, barrier, setup_dist
from edgelstm.train.evaluate import accuracy, predict
from edgelstm.train.objectives import LossFn, TrainView, distill_loss, supervised_loss
from edgelstm.train.torchdata import SplitTensors, batches, keep_freed_memory, make_sampler, num_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    out: Path
    best: Path
    val_accuracy: float
    test_accuracy: float | None
    params: int
    macs_per_frame: int
    seconds: float


@dataclass
class _Progress:
    """Where a run stands after its last finished epoch (kept in ``last.pt`` for ``--resume``)."""

    epoch: int = 0
    best_val: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)


# --- plumbing (DDP itself: edgelstm.train.dist) -----------------------------------------------
def resolve_dataset(data: DataConfig, *, seed: int) -> Dataset:
    """The data as the options give it (frames at --size, or the default size)."""
    return load_dataset(data.spec, size=data.size or DEFAULT_SIZE, clip_len=data.clip_len, sampling=data.sampling,
                        stride=data.stride, seed=seed, counts=data.counts, cache_dir=data.cache_dir)


def prepare_out(cfg: TrainConfig, d: Dist) -> None:
    """Every rank checks ``--out`` before any rank writes (a refused --out fails all of them instead of hanging
    the others, and no rank sees another's fresh marker); then the main rank creates it."""
    from edgelstm.fsutil import OutputKind, check_run_folder, folder_kind, write_marker

    out = Path(cfg.out)
    check_run_folder(out, force=cfg.force, resume=cfg.resume, inputs=[("--data", cfg.data.spec)])
    barrier(d)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        if folder_kind(out) is None:
            write_marker(out, OutputKind.RUN)
    barrier(d)


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 2), pct_start=0.25)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise UsageError(f"unknown schedule '{cfg.schedule}'", expected="onecycle, cosine or constant")


def progress_bar(total: int, desc: str, enabled: bool):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=not (enabled and sys.stderr.isatty()))


def jsonable_config(cfg: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


# --- the loop ------------------------------------------------------------------------------
def fit(model: nn.Module, model_name: str, model_cfg: dict[str, Any], ds: Dataset, cfg: TrainConfig,
        loss_fn: LossFn, *, extra_params: list[nn.Parameter] | None = None,
        meta: dict[str, Any] | None = None) -> RunResult:
    """Train ``model`` on ``ds`` with ``loss_fn``; keep best-on-val and last checkpoints in ``cfg.out``. A model
    with a frozen encoder trains on its cached features (:mod:`edgelstm.train.feature_cache`) unless
    ``cfg.feature_cache`` is off; the checkpoints hold the frame model either way."""
    t0 = time.perf_counter()
    d = setup_dist()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    keep_freed_memory()
    out = Path(cfg.out)
    prepare_out(cfg, d)
    model.to(d.device)
    net, seen, meta = _training_view(model, ds, cfg, d, dict(meta or {}))
    train_data = SplitTensors(seen["train"])
    val = seen["val"]
    params = list(model.parameters()) + list(extra_params or [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = num_batches(math.ceil(len(train_data) / d.world), cfg.batch_size)
    sched = make_scheduler(cfg, opt, cfg.epochs * per_epoch)
    facts = dataclasses.replace(ds.facts(), feature_size=step_feature_size(model))
    n_params = count_params(model)
    macs = macs_per_frame(model, size=ds.size, feature_size=ds.feature_size, frames=ds.clip_len)
    state = _Progress()
    if cfg.resume:
        state = _resume(out / "last.pt", model, opt, sched, model_name)
    ddp: nn.Module = TrainView(net)
    if d.world > 1:
        ddp = nn.parallel.DistributedDataParallel(ddp, device_ids=[d.device.index] if d.device.type == "cuda"
                                                  else None)
    for epoch in range(state.epoch, cfg.epochs):
        e0 = time.perf_counter()
        train_loss = _train_epoch(ddp, loss_fn, opt, sched, train_data, cfg, d, epoch=epoch, per_epoch=per_epoch,
                                  desc=f"{model_name} {epoch + 1}/{cfg.epochs}")
        if d.main:
            val_acc = accuracy(predict(net, val, batch_size=cfg.eval_batch_size, device=d.device), val.y)
            state.history.append({"epoch": epoch + 1, "train_loss": round(train_loss, 5),
                                  "val_accuracy": round(val_acc, 5), "lr": sched.get_last_lr()[0],
                                  "seconds": round(time.perf_counter() - e0, 2)})
            log.info("%s epoch %d: loss %.4f val %.4f", model_name, epoch + 1, train_loss, val_acc)
            ckpt = Checkpoint(model=model, name=model_name, config=model_cfg, classes=list(ds.classes), data=facts,
                              metrics={"val_accuracy": val_acc, "epoch": epoch + 1})
            _save_epoch(out, ckpt, state, opt, sched, val_acc=val_acc, epoch=epoch + 1)
        barrier(d)
    test_acc = None
    if d.main:
        scores = _score_best(out / "best.pt", model, net, seen, cfg, d)
        test_acc = scores.get("test_accuracy")
        metrics = {"model": model_name, "model_config": model_cfg, "data": facts.to_dict(), "classes": list(ds.classes),
                   "splits": {k: len(v) for k, v in ds.splits.items()}, "params": n_params, "macs_per_frame": macs,
                   "best_epoch": state.best_epoch, "val_accuracy": state.best_val, **scores,
                   "history": state.history, "world_size": d.world, "wall_s": round(time.perf_counter() - t0, 2),
                   "config": jsonable_config(cfg), **(meta or {})}
        write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    barrier(d)
    return RunResult(out=out, best=out / "best.pt", val_accuracy=state.best_val, test_accuracy=test_acc,
                     params=n_params, macs_per_frame=macs, seconds=time.perf_counter() - t0)


def _training_view(model: nn.Module, ds: Dataset, cfg: TrainConfig, d: Dist,
                   meta: dict[str, Any]) -> tuple[nn.Module, Dataset, dict[str, Any]]:
    """What the loop trains and validates, on what: the model on frames, or its view on cached features."""
    from edgelstm.train.feature_cache import can_cache, cached_training

    if not (cfg.feature_cache and can_cache(model)):
        return model, ds, meta
    cached = cached_training(model, ds, cache_dir=cfg.data.cache_dir, progress=cfg.progress and d.main)
    meta["feature_cache"] = {"frozen_blocks": cached.frozen, "extract_s": round(cached.seconds, 2),
                             "shape": list(cached.data["train"].X.shape[2:])}
    return cached.net.to(d.device), cached.data, meta


def _train_epoch(net: nn.Module, loss_fn: LossFn, opt: torch.optim.Optimizer, sched: Any, data: SplitTensors,
                 cfg: TrainConfig, d: Dist, *, epoch: int, per_epoch: int, desc: str) -> float:
    """One pass over this rank's shard of the train split (seeded by the epoch); the mean training loss."""
    torch.manual_seed(cfg.seed * 1000 + epoch)
    sampler = make_sampler(data, shuffle=True, seed=cfg.seed + epoch, distributed=d.world > 1)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    net.train()
    total, count = 0.0, 0
    with progress_bar(per_epoch, desc, cfg.progress and d.main) as bar:
        for batch in batches(data, sampler, cfg.batch_size, d.device):
            loss = loss_fn(net, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch.y)
            count += len(batch.y)
            bar.set_postfix(loss=f"{total / max(count, 1):.3f}")
            bar.update()
    return total / max(count, 1)


def _save_epoch(out: Path, ckpt: Checkpoint, state: _Progress, opt: torch.optim.Optimizer, sched: Any, *,
                val_acc: float, epoch: int) -> None:
    """After ``epoch``: ``best.pt`` if val improved, and ``last.pt`` with what ``--resume`` needs."""
    if val_acc > state.best_val:
        state.best_val, state.best_epoch = val_acc, epoch
        save_checkpoint(out / "best.pt", ckpt)
    state.epoch = epoch
    ckpt.extra = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                  "best_val": state.best_val, "best_epoch": state.best_epoch,
                  "history": state.history}
    save_checkpoint(out / "last.pt", ckpt)


def _score_best(best_path: Path, model: nn.Module, net: nn.Module, seen: Dataset, cfg: TrainConfig,
                d: Dist) -> dict[str, Any]:
    """The best checkpoint on the test split, if there is one: accuracy, accuracy after part of each clip, and
    across two clips with no reset. Scored through ``net`` (the model, or its view on cached features: the
    same numbers, without re-running a frozen encoder per metric); ``model`` ends holding the best weights."""
    from edgelstm.train.evaluate import early_accuracy, stream_accuracy

    if "test" not in seen.splits or not len(seen["test"]):
        return {"test_accuracy": None}
    model.load_state_dict(load_checkpoint(best_path).model.state_dict())
    test, bs, dev = seen["test"], cfg.eval_batch_size, d.device
    return {"test_accuracy": accuracy(predict(net, test, batch_size=bs, device=dev), test.y),
            "early_accuracy": early_accuracy(net, test, batch_size=bs, device=dev),
            "stream_accuracy": stream_accuracy(net, test, batch_size=bs, device=dev)}


def _resume(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, model_name: str) -> _Progress:
    last = load_checkpoint(path, with_extra=True)
    if last.name != model_name:
        raise CheckpointError(f"--resume: the run trained '{last.name}', not '{model_name}'",
                              fix=f"pass --model {last.name}, or start a new run", path=path)
    model.load_state_dict(last.model.state_dict())
    opt.load_state_dict(last.extra["optimizer"])
    # Replay the schedule rather than load it: --epochs may have grown, which changes its length.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(int(last.extra["scheduler"].get("_step_count", 1)) - 1):
            sched.step()
    log.info("resuming %s after epoch %d", path, last.extra["epoch"])
    return _Progress(epoch=int(last.extra["epoch"]), best_val=float(last.extra["best_val"]),
                     best_epoch=int(last.extra["best_epoch"]), history=list(last.extra["history"]))


def train(cfg: TrainConfig, dataset: Dataset | None = None) -> RunResult:
    """Train ``cfg.model`` on ``cfg.data`` (or an already loaded ``dataset``)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    ds = dataset or resolve_dataset(cfg.data, seed=cfg.seed)
    model, mcfg = build_model(cfg.model, ds, cfg.model_kwargs, standardize=cfg.standardize,
                              encoder=cfg.encoder, init_weights=cfg.init_weights)
    return fit(model, cfg.model, mcfg, ds, cfg, supervised_loss(cfg), meta={"objective": "supervised"})


# --- distillation --------------------------------------------------------------------------
def distill(cfg: TrainConfig, dcfg: DistillConfig, dataset: Dataset | None = None) -> RunResult:
    """Distill the teacher ``dcfg.teacher`` (a checkpoint or any SPEC of :mod:`edgelstm.train.teachers`) into
    ``cfg.model``; a checkpoint teacher's data facts choose the data when --size is unset."""
    from edgelstm.train.teachers import distill_targets

    if not 0.0 <= dcfg.alpha <= 1.0 or dcfg.temperature <= 0:
        raise UsageError(f"alpha {dcfg.alpha}, temperature {dcfg.temperature}",
                         expected="0 <= alpha <= 1 and temperature > 0")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    d = setup_dist()
    options = dataclasses.replace(dcfg.teacher_options, device=str(d.device))
    targets = distill_targets(str(dcfg.teacher), options, cfg.data, seed=cfg.seed, dataset=dataset,
                              features=dcfg.feature_weight > 0, progress=cfg.progress and d.main)
    dataset, t_logits, t_feats = targets.dataset, targets.logits, targets.features
    model, mcfg = build_model(cfg.model, dataset, cfg.model_kwargs, standardize=cfg.standardize,
                              encoder=cfg.encoder, init_weights=cfg.init_weights)
    proj = None
    if dcfg.feature_weight > 0:
        proj = nn.Linear(getattr(model, "hidden_size", step_feature_size(model)), t_feats.shape[1]).to(d.device)
    loss = distill_loss(dcfg, t_logits, t_feats, proj, cfg.label_smoothing)
    meta = {"objective": "distill", "distill": jsonable_config(dcfg), **targets.meta}
    return fit(model, cfg.model, mcfg, dataset, cfg, loss, extra_params=list(proj.parameters()) if proj else None,
               meta=meta)

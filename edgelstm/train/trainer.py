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
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgelstm.data import Dataset, load_dataset
from edgelstm.errors import CheckpointError, UsageError
from edgelstm.fsutil import write_text_atomic
from edgelstm.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgelstm.models.macs import count_params, macs_per_frame
from edgelstm.models.protocols import StepModel
from edgelstm.train.build import build_model, step_feature_size
from edgelstm.train.config import DataConfig, DistillConfig, TrainConfig
from edgelstm.train.evaluate import accuracy, predict
from edgelstm.train.torchdata import Batch, SplitTensors, batches, make_sampler, num_batches

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Batch], torch.Tensor]


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


# --- plumbing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_dist() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return _Dist(device=torch.device("cuda" if cuda else "cpu"))
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cpu")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return _Dist(rank=rank, world=dist.get_world_size(), device=device)


def _barrier(d: _Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def resolve_dataset(data: DataConfig, *, seed: int, default_size: tuple[int, int] = (64, 64)) -> Dataset:
    return load_dataset(data.spec, size=data.size or default_size, clip_len=data.clip_len, sampling=data.sampling,
                        stride=data.stride, seed=seed, counts=data.counts, cache_dir=data.cache_dir)


def _prepare_out(cfg: TrainConfig, d: _Dist) -> None:
    """Every rank checks ``--out`` before any rank writes (a refused --out fails all of them instead of hanging
    the others, and no rank sees another's fresh marker); then the main rank creates it."""
    from edgelstm.fsutil import OutputKind, check_run_folder, folder_kind, write_marker

    out = Path(cfg.out)
    check_run_folder(out, force=cfg.force, resume=cfg.resume, inputs=[("--data", cfg.data.spec)])
    _barrier(d)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        if folder_kind(out) is None:
            write_marker(out, OutputKind.RUN)
    _barrier(d)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 2), pct_start=0.25)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise UsageError(f"unknown schedule '{cfg.schedule}'", expected="onecycle, cosine or constant")


def _progress(total: int, desc: str, enabled: bool):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=not (enabled and sys.stderr.isatty()))


def _jsonable_config(cfg: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


# --- the loop ------------------------------------------------------------------------------
def fit(model: nn.Module, model_name: str, model_cfg: dict[str, Any], ds: Dataset, cfg: TrainConfig,
        loss_fn: LossFn, *, extra_params: list[nn.Parameter] | None = None,
        meta: dict[str, Any] | None = None) -> RunResult:
    """Train ``model`` on ``ds`` with ``loss_fn``; keep best-on-val and last checkpoints in ``cfg.out``."""
    t0 = time.perf_counter()
    d = _setup_dist()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    _prepare_out(cfg, d)
    model.to(d.device)
    train_data = SplitTensors(ds["train"])
    val = ds["val"]
    params = list(model.parameters()) + list(extra_params or [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = num_batches(math.ceil(len(train_data) / d.world), cfg.batch_size)
    sched = _scheduler(cfg, opt, cfg.epochs * per_epoch)
    facts = dataclasses.replace(ds.facts(), feature_size=step_feature_size(model))
    n_params = count_params(model)
    macs = macs_per_frame(model, size=ds.size, feature_size=ds.feature_size)
    state = _Progress()
    if cfg.resume:
        state = _resume(out / "last.pt", model, opt, sched, model_name)
    ddp: nn.Module = TrainView(model)
    if d.world > 1:
        ddp = nn.parallel.DistributedDataParallel(ddp, device_ids=[d.device.index] if d.device.type == "cuda"
                                                  else None)
    for epoch in range(state.epoch, cfg.epochs):
        e0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 1000 + epoch)
        sampler = make_sampler(train_data, shuffle=True, seed=cfg.seed + epoch, distributed=d.world > 1)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        ddp.train()
        total, count = 0.0, 0
        with _progress(per_epoch, f"{model_name} {epoch + 1}/{cfg.epochs}", cfg.progress and d.main) as bar:
            for batch in batches(train_data, sampler, cfg.batch_size, d.device):
                loss = loss_fn(ddp, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(batch.y)
                count += len(batch.y)
                bar.set_postfix(loss=f"{total / max(count, 1):.3f}")
                bar.update()
        if d.main:
            val_acc = accuracy(predict(model, val, batch_size=cfg.eval_batch_size, device=d.device), val.y)
            state.history.append({"epoch": epoch + 1, "train_loss": round(total / max(count, 1), 5),
                                  "val_accuracy": round(val_acc, 5), "lr": sched.get_last_lr()[0],
                                  "seconds": round(time.perf_counter() - e0, 2)})
            log.info("%s epoch %d: loss %.4f val %.4f", model_name, epoch + 1, total / max(count, 1), val_acc)
            ckpt = Checkpoint(model=model, name=model_name, config=model_cfg, classes=list(ds.classes), data=facts,
                              metrics={"val_accuracy": val_acc, "epoch": epoch + 1})
            if val_acc > state.best_val:
                state.best_val, state.best_epoch = val_acc, epoch + 1
                save_checkpoint(out / "best.pt", ckpt)
            state.epoch = epoch + 1
            ckpt.extra = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch + 1,
                          "best_val": state.best_val, "best_epoch": state.best_epoch,
                          "history": state.history}
            save_checkpoint(out / "last.pt", ckpt)
        _barrier(d)
    test_acc = None
    if d.main:
        best = load_checkpoint(out / "best.pt")
        if "test" in ds.splits and len(ds["test"]):
            test_acc = accuracy(predict(best.model.to(d.device), ds["test"], batch_size=cfg.eval_batch_size,
                                        device=d.device), ds["test"].y)
        metrics = {"model": model_name, "model_config": model_cfg, "data": facts.to_dict(), "classes": list(ds.classes),
                   "splits": {k: len(v) for k, v in ds.splits.items()}, "params": n_params, "macs_per_frame": macs,
                   "best_epoch": state.best_epoch, "val_accuracy": state.best_val, "test_accuracy": test_acc,
                   "history": state.history, "world_size": d.world, "wall_s": round(time.perf_counter() - t0, 2),
                   "config": _jsonable_config(cfg), **(meta or {})}
        write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    _barrier(d)
    return RunResult(out=out, best=out / "best.pt", val_accuracy=state.best_val, test_accuracy=test_acc,
                     params=n_params, macs_per_frame=macs, seconds=time.perf_counter() - t0)


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


# --- objectives ------------------------------------------------------------------------------
def _step_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    return (torch.arange(t, device=lengths.device).view(1, -1) < lengths.view(-1, 1)).float()  # (B, T)


class TrainView(nn.Module):
    """What the loop calls (and DDP wraps): clip logits, or per-step logits of a causal model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        if per_step:
            return cast(StepModel, self.model).step_logits(x)  # (B, T, K); per_step only when has_steps
        return self.model(x, lengths)         # (B, K)


def has_steps(net: nn.Module) -> bool:
    inner = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    return hasattr(inner.model, "step_logits")


def last_step(steps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return steps.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, steps.shape[-1])).squeeze(1)


def can_pair(net: nn.Module, b: Batch) -> bool:
    """Back-to-back pairs need a causal model and a batch of full-length clips."""
    return has_steps(net) and len(b.y) > 1 and bool((b.lengths == b.x.shape[1]).all())


def pair_up(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip followed by another of the batch, with no state reset: (B, 2T, ...) and the partner index."""
    other = torch.roll(torch.arange(len(b.y), device=b.x.device), 1)
    return torch.cat([b.x, b.x[other]], 1), other


def supervised_loss(cfg: TrainConfig) -> LossFn:
    """CE on the clip's output; with ``step_loss`` > 0, plus CE at every valid step of a causal model.

    With ``stream_pairs``, half the loss comes from pairs of clips played back to back: the end of
    each segment must name that segment's class, so the model learns to let go of the last action.
    """

    def loss(net: nn.Module, b: Batch) -> torch.Tensor:
        total = _one(net, b)
        if cfg.stream_pairs and can_pair(net, b):
            x2, other = pair_up(b)
            steps = net(x2, b.lengths, per_step=True)  # (B, 2T, K)
            t = b.x.shape[1]
            ends = torch.cat([steps[:, t - 1], steps[:, 2 * t - 1]])  # (2B, K)
            total = 0.5 * (total + F.cross_entropy(ends, torch.cat([b.y, b.y[other]]),
                                                   label_smoothing=cfg.label_smoothing))
        return total

    def _one(net: nn.Module, b: Batch) -> torch.Tensor:
        if cfg.step_loss > 0 and has_steps(net):
            steps = net(b.x, b.lengths, per_step=True)  # (B, T, K)
            last = last_step(steps, b.lengths)
            ce_last = F.cross_entropy(last, b.y, label_smoothing=cfg.label_smoothing)
            per = F.cross_entropy(steps.flatten(0, 1), b.y.repeat_interleave(steps.shape[1]), reduction="none")
            mask = _step_mask(b.lengths, steps.shape[1]).flatten()
            return ce_last + cfg.step_loss * (per * mask).sum() / mask.sum()
        return F.cross_entropy(net(b.x, b.lengths), b.y, label_smoothing=cfg.label_smoothing)

    return loss


def train(cfg: TrainConfig, dataset: Dataset | None = None) -> RunResult:
    """Train ``cfg.model`` on ``cfg.data`` (or an already loaded ``dataset``)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    ds = dataset or resolve_dataset(cfg.data, seed=cfg.seed)
    model, mcfg = build_model(cfg.model, ds, cfg.model_kwargs, standardize=cfg.standardize)
    return fit(model, cfg.model, mcfg, ds, cfg, supervised_loss(cfg), meta={"objective": "supervised"})


# --- distillation --------------------------------------------------------------------------
@torch.no_grad()
def teacher_outputs(teacher: nn.Module, split: Any, *, batch_size: int = 128,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of the teacher over ``split``: clip logits (N, K) and the head's input features (N, D)."""
    feats: list[torch.Tensor] = []
    head = teacher.get_submodule("head")
    hook = head.register_forward_hook(lambda m, i, o: feats.append(i[0].detach().float().cpu()))
    try:
        logits = torch.from_numpy(predict(teacher, split, batch_size=batch_size, device=device))
    finally:
        hook.remove()
    return logits, torch.cat(feats)


def distill_loss(cfg: DistillConfig, teacher_logits: torch.Tensor, teacher_feats: torch.Tensor,
                 proj: nn.Module | None, label_smoothing: float = 0.0) -> LossFn:
    """alpha * CE + (1 - alpha) * tau^2 * KL(teacher || student), at every valid step of a causal student.

    Every step of the student is pulled towards the teacher's clip-level output, so the streaming
    model learns to be right early in a clip, not only at its last frame.
    """
    tau, alpha = cfg.temperature, cfg.alpha

    def loss(net: nn.Module, b: Batch) -> torch.Tensor:
        total = _one(net, b)
        if cfg.stream_pairs and can_pair(net, b):
            total = 0.5 * (total + _pairs(net, b))
        return total

    def _pairs(net: nn.Module, b: Batch) -> torch.Tensor:
        """Each clip followed by another (no state reset): every step learns its own segment's target."""
        x2, other = pair_up(b)
        t = b.x.shape[1]
        s = net(x2, b.lengths, per_step=True)  # (B, 2T, K)
        y = torch.cat([b.y.view(-1, 1).expand(-1, t), b.y[other].view(-1, 1).expand(-1, t)], 1)  # (B, 2T)
        t_all = teacher_logits[b.index].to(b.x.device)
        t_steps = torch.cat([t_all.unsqueeze(1).expand(-1, t, -1), t_all[other].unsqueeze(1).expand(-1, t, -1)], 1)
        pos = torch.cat([torch.arange(1, t + 1)] * 2).to(b.x.device).float().view(1, -1)
        w = pos if cfg.step_weighting == "linear" else torch.ones_like(pos)
        w = w.expand(len(b.y), -1) / w.sum() / len(b.y)
        ce = F.cross_entropy(s.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        p_t = F.softmax(t_steps / tau, dim=-1)
        kl = (p_t * (p_t.clamp_min(1e-8).log() - F.log_softmax(s / tau, dim=-1))).sum(-1)
        return ((alpha * ce + (1 - alpha) * tau * tau * kl) * w).sum()

    def _one(net: nn.Module, b: Batch) -> torch.Tensor:
        t_logits = teacher_logits[b.index].to(b.x.device)
        hidden: list[torch.Tensor] = []
        inner: nn.Module = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
        hook = inner.get_submodule("model.head").register_forward_hook(
            lambda m, i, o: hidden.append(i[0])) if proj else None
        try:
            if has_steps(net):
                s = net(b.x, b.lengths, per_step=True)  # (B, T, K)
                mask = _step_mask(b.lengths, s.shape[1])
            else:
                s = net(b.x, b.lengths).unsqueeze(1)    # (B, 1, K)
                mask = torch.ones(s.shape[:2], device=s.device)
        finally:
            if hook:
                hook.remove()
        if cfg.step_weighting == "linear":
            mask = mask * torch.arange(1, s.shape[1] + 1, device=s.device).float().view(1, -1)
        w = mask / mask.sum()
        b_, t_, k_ = s.shape
        ce = F.cross_entropy(s.reshape(-1, k_), b.y.repeat_interleave(t_), reduction="none",
                             label_smoothing=label_smoothing).view(b_, t_)
        log_p_s = F.log_softmax(s / tau, dim=-1)
        p_t = F.softmax(t_logits / tau, dim=-1).unsqueeze(1)  # (B, 1, K)
        kl = (p_t * (p_t.clamp_min(1e-8).log() - log_p_s)).sum(-1)  # (B, T)
        total = ((alpha * ce + (1 - alpha) * tau * tau * kl) * w).sum()
        if proj is not None and hidden:
            h = hidden[0]
            h_last = last_step(h, b.lengths) if h.dim() == 3 else h
            total = total + cfg.feature_weight * F.mse_loss(proj(h_last), teacher_feats[b.index].to(h.device))
        return total

    return loss


def distill(cfg: TrainConfig, dcfg: DistillConfig, dataset: Dataset | None = None) -> RunResult:
    """Distill the teacher checkpoint ``dcfg.teacher`` into ``cfg.model`` on the teacher's data facts."""
    from edgelstm.train.evaluate import dataset_for_checkpoint

    teacher = load_checkpoint(dcfg.teacher)
    if not 0.0 <= dcfg.alpha <= 1.0 or dcfg.temperature <= 0:
        raise UsageError(f"alpha {dcfg.alpha}, temperature {dcfg.temperature}",
                         expected="0 <= alpha <= 1 and temperature > 0")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if dataset is None:
        dataset = dataset_for_checkpoint(teacher.data, cfg.data.spec, cache_dir=cfg.data.cache_dir,
                                         counts=cfg.data.counts) if cfg.data.size is None else \
            resolve_dataset(cfg.data, seed=cfg.seed)
    if list(teacher.classes) != list(dataset.classes):
        raise UsageError("the teacher was trained on other classes than this dataset's",
                         expected=", ".join(dataset.classes[:5]) + ", ...", fix="distill on the teacher's dataset")
    d = _setup_dist()
    t_logits, t_feats = teacher_outputs(teacher.model.to(d.device), dataset["train"], device=d.device)
    teacher.model.cpu()
    model, mcfg = build_model(cfg.model, dataset, cfg.model_kwargs, standardize=cfg.standardize)
    proj = None
    if dcfg.feature_weight > 0:
        proj = nn.Linear(getattr(model, "hidden_size", step_feature_size(model)), t_feats.shape[1]).to(d.device)
    loss = distill_loss(dcfg, t_logits, t_feats, proj, cfg.label_smoothing)
    teacher_test = teacher.metrics.get("val_accuracy")
    meta = {"objective": "distill", "distill": _jsonable_config(dcfg), "teacher_sha256": teacher.sha256,
            "teacher_val_accuracy": teacher_test}
    return fit(model, cfg.model, mcfg, dataset, cfg, loss, extra_params=list(proj.parameters()) if proj else None,
               meta=meta)

"""What the training loop minimises: the supervised and the distillation objectives, and the view of a
model they call (clip logits, or per-step logits of a causal model; DDP wraps that view).

With ``stream_pairs`` both add clips played back to back with no state reset, so a streaming model
learns to let go of the last action.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from edgelstm.models.protocols import StepModel
from edgelstm.train.config import DistillConfig, TrainConfig
from edgelstm.train.torchdata import Batch

LossFn = Callable[[nn.Module, Batch], torch.Tensor]


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


# --- distillation --------------------------------------------------------------------------
def distill_loss(cfg: DistillConfig, teacher_logits: torch.Tensor, teacher_feats: torch.Tensor,
                 proj: nn.Module | None, label_smoothing: float = 0.0) -> LossFn:
    """alpha * CE + (1 - alpha) * tau^2 * KL(teacher || student), at every valid step of a causal student.

    Every step of the student is pulled towards the teacher's clip-level output, so the streaming
    model learns to be right early in a clip, not only at its last frame.
    """

    def loss(net: nn.Module, b: Batch) -> torch.Tensor:
        total = _distill_clips(cfg, net, b, teacher_logits, teacher_feats, proj, label_smoothing)
        if cfg.stream_pairs and can_pair(net, b):
            total = 0.5 * (total + _distill_pairs(cfg, net, b, teacher_logits))
        return total

    return loss


def _kd_mix(cfg: DistillConfig, ce: torch.Tensor, p_t: torch.Tensor, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum of w * (alpha * CE + (1 - alpha) * tau^2 * KL(p_t || softmax(s / tau))) over the steps."""
    tau, alpha = cfg.temperature, cfg.alpha
    kl = (p_t * (p_t.clamp_min(1e-8).log() - F.log_softmax(s / tau, dim=-1))).sum(-1)  # (B, T)
    return ((alpha * ce + (1 - alpha) * tau * tau * kl) * w).sum()


def _distill_pairs(cfg: DistillConfig, net: nn.Module, b: Batch, teacher_logits: torch.Tensor) -> torch.Tensor:
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
    return _kd_mix(cfg, ce, F.softmax(t_steps / cfg.temperature, dim=-1), s, w)


def _student_steps(net: nn.Module, b: Batch, *, hook_head: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The student's logits at every step (B, T, K) (T = 1 for a clip model), the valid-step mask (B, T),
    and, with ``hook_head``, what its head was given."""
    hidden: list[torch.Tensor] = []
    inner: nn.Module = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    hook = inner.get_submodule("model.head").register_forward_hook(
        lambda m, i, o: hidden.append(i[0])) if hook_head else None
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
    return s, mask, hidden


def _distill_clips(cfg: DistillConfig, net: nn.Module, b: Batch, teacher_logits: torch.Tensor,
                   teacher_feats: torch.Tensor, proj: nn.Module | None, label_smoothing: float) -> torch.Tensor:
    """Each clip on its own: every valid step towards the teacher's clip output, plus feature matching."""
    t_logits = teacher_logits[b.index].to(b.x.device)
    s, mask, hidden = _student_steps(net, b, hook_head=bool(proj))
    if cfg.step_weighting == "linear":
        mask = mask * torch.arange(1, s.shape[1] + 1, device=s.device).float().view(1, -1)
    w = mask / mask.sum()
    b_, t_, k_ = s.shape
    ce = F.cross_entropy(s.reshape(-1, k_), b.y.repeat_interleave(t_), reduction="none",
                         label_smoothing=label_smoothing).view(b_, t_)
    p_t = F.softmax(t_logits / cfg.temperature, dim=-1).unsqueeze(1)  # (B, 1, K)
    total = _kd_mix(cfg, ce, p_t, s, w)
    if proj is not None and hidden:
        h = hidden[0]
        h_last = last_step(h, b.lengths) if h.dim() == 3 else h
        total = total + cfg.feature_weight * F.mse_loss(proj(h_last), teacher_feats[b.index].to(h.device))
    return total

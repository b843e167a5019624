"""Freeze a pretrained encoder for fine-tuning: ``freeze(encoder, unfreeze_last=N)``.

A block is a child of the encoder's body (a MobileNet stage, an MBConv block, a ResNet-like stage), in order
from input to output. Frozen blocks get no gradients and stay in eval mode even under ``model.train()``:
their BatchNorm keeps the pretrained running statistics instead of drifting on small video batches. The
projection to ``feature_size`` always trains.
"""
from __future__ import annotations

from typing import cast

from torch import nn

from edgelstm.errors import UsageError


def encoder_blocks(encoder: nn.Module) -> list[nn.Module]:
    return list(cast(nn.Module, encoder.body).children())


def freeze(encoder: nn.Module, *, unfreeze_last: int = 0) -> int:
    """Freeze every block of ``encoder`` but the last ``unfreeze_last``; returns how many are frozen.
    ``freeze(enc, unfreeze_last=len(encoder_blocks(enc)))`` unfreezes everything again."""
    blocks = encoder_blocks(encoder)
    if not 0 <= unfreeze_last <= len(blocks):
        raise UsageError(f"--unfreeze-last {unfreeze_last}, but encoder '{encoder.name}' has {len(blocks)} blocks",
                         expected=f"0 to {len(blocks)}", fix=f"pass --unfreeze-last between 0 and {len(blocks)}")
    n = len(blocks) - unfreeze_last
    for handle in getattr(encoder, "_freeze_hooks", ()):
        handle.remove()
    hooks = []
    for i, block in enumerate(blocks):
        for p in block.parameters():
            p.requires_grad_(i >= n)
        if i < n:
            block.train(False)
            hooks.append(block.register_forward_pre_hook(_stay_in_eval))
    encoder._freeze_hooks = hooks  # type: ignore[assignment]
    encoder.frozen_blocks = n  # type: ignore[assignment]
    return n


def _stay_in_eval(block: nn.Module, args: object) -> None:
    # model.train() reaches every submodule; a frozen block goes back to eval before it computes anything, so its
    # BatchNorm normalises with (and never updates) the pretrained running statistics
    if block.training:
        block.train(False)

"""Parameters and multiply-accumulates per frame, counted with forward hooks."""
from __future__ import annotations

import math

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_frame(model: nn.Module, *, size: tuple[int, int] | None = None, feature_size: int | None = None,
                   frames: int = 4) -> int:
    """MACs for one frame through encoder, LSTM and head, measured on a ``frames``-long clip (convolutions, 2D
    and 3D, linear layers and LSTMs; attention's matrix products are not counted)."""
    total = 0

    def conv_hook(m: nn.Conv2d | nn.Conv3d, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        k = math.prod(m.kernel_size) * (m.in_channels // m.groups)
        total += out.numel() * k

    def linear_hook(m: nn.Linear, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    def lstm_hook(m: nn.LSTM, inp: tuple[torch.Tensor, ...], out: tuple[torch.Tensor, ...]) -> None:
        nonlocal total
        x = inp[0]
        steps = x.shape[0] * x.shape[1]
        dirs = 2 if m.bidirectional else 1
        for layer in range(m.num_layers):
            fin = m.input_size if layer == 0 else m.hidden_size * dirs
            total += steps * dirs * 4 * m.hidden_size * (fin + m.hidden_size)

    hooks = []
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Conv3d)):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook))
        elif isinstance(mod, nn.LSTM):
            hooks.append(mod.register_forward_hook(lstm_hook))
    try:
        with torch.no_grad():
            if size is not None:
                x = torch.zeros(1, frames, size[0], size[1], 3, dtype=torch.uint8)
            else:
                x = torch.zeros(1, frames, feature_size or 1)
            was_training = model.training
            model.eval()
            model(x)
            model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return total // frames

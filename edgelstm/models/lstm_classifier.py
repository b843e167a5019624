"""The reference model: an LSTM over per-frame features, classifying from the last step."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (num_layers, B, hidden)


def last_valid(steps: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(B, T, K) -> (B, K): the last step, or the last valid step of padded sequences."""
    if lengths is None:
        return steps[:, -1]
    idx = (lengths.to(steps.device).long().clamp(min=1) - 1).view(-1, 1, 1).expand(-1, 1, steps.shape[-1])
    return steps.gather(1, idx).squeeze(1)


class LSTMVideoClassifier(nn.Module):
    """Features (B, T, input_size) -> LSTM -> the last time step's hidden state -> linear -> (B, num_classes).

    Causal and unidirectional, so it also streams: ``step(x_t, state)`` equals running the
    whole sequence one step at a time.
    """

    causal = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, num_classes: int, *,
                 feature_mean: Sequence[float] | None = None, feature_std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)
        self.encoder: nn.Module | None = None  # features come pre-extracted
        self.feature_shift: torch.Tensor  # buffers, registered below when standardised
        self.feature_scale: torch.Tensor
        # Per-feature standardisation from the training split, part of the model (so it is in the checkpoint and
        # in every exported graph): real sequence features come in wildly different scales.
        self.standardized = feature_mean is not None
        if feature_mean is not None:
            mean = torch.tensor(list(feature_mean), dtype=torch.float32)
            std = torch.tensor(list(feature_std or []), dtype=torch.float32)
            if mean.shape != (input_size,) or std.shape != (input_size,) or not bool((std > 0).all()):
                raise ValueError(f"feature_mean/feature_std need {input_size} values each, std > 0")
            self.register_buffer("feature_shift", -mean)
            self.register_buffer("feature_scale", 1.0 / std)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:  # (..., F) -> (..., F)
        if not self.standardized:
            return x
        return (x + self.feature_shift) * self.feature_scale

    def step_logits(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T, K)
        out, _ = self.lstm(self.standardize(x))
        return self.head(out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return last_valid(self.step_logits(x), lengths)

    def step(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One time step: (B, F) features and (h, c) -> (B, K) logits and the new (h, c)."""
        out, state = self.lstm(self.standardize(x).unsqueeze(1), state)
        return self.head(out[:, 0]), state

    def init_state(self, batch: int) -> State:
        z = torch.zeros(self.num_layers, batch, self.hidden_size)
        return z, z.clone()

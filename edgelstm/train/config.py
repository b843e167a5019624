"""Frozen configs for training and distillation. The CLI builds one and calls one function."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DataConfig:
    """Which data, and how clips are sampled (see edgelstm.data.load_dataset)."""

    spec: str = "synthetic"
    size: tuple[int, int] | None = None    # None: the model's default (64, 64) for frames
    clip_len: int = 16
    sampling: str = "uniform"
    stride: int = 2
    counts: tuple[int, int, int] | None = None  # synthetic only: clips per split
    cache_dir: Path | None = None


@dataclass(frozen=True)
class TrainConfig:
    model: str
    out: Path
    data: DataConfig = DataConfig()
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # overrides of the registry defaults
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"     # "onecycle", "cosine" or "constant"
    label_smoothing: float = 0.0
    step_loss: float = 0.0         # weight of CE applied at every step of a causal model (0: last step only)
    stream_pairs: bool = False     # causal models: also train on two clips back to back (no reset), per segment
    seed: int = 0
    threads: int = 0               # torch.set_num_threads; 0 leaves torch's default
    resume: bool = False
    force: bool = False            # allow writing into an existing run folder without --resume
    progress: bool = True
    eval_batch_size: int = 128


@dataclass(frozen=True)
class DistillConfig:
    teacher: Path                  # a teacher checkpoint (RUN/best.pt)
    alpha: float = 0.5             # weight of hard-label CE; 1 - alpha goes to the soft-target KL
    temperature: float = 4.0
    step_weighting: str = "uniform"  # "uniform" or "linear" (later steps count more) over the student's steps
    feature_weight: float = 0.0    # MSE between the student's last hidden state (projected) and the teacher's
    stream_pairs: bool = False     # also train on two clips back to back (no state reset), labelled per segment

"""Frozen configs for training and distillation. The CLI builds one and calls one function.

Each config refuses nonsense when it is built (``__post_init__``), before anything touches the disk: a
:class:`~edgelstm.errors.UsageError` (exit 2) naming the option, the value, what was expected and the fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgelstm.errors import UsageError
from edgelstm.spec import Task
from edgelstm.train.teachers import TeacherOptions


def _at_least(option: str, value: int, low: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{option} {value!r}", expected=f"a whole number >= {low}", fix=fix)


def _finite(option: str, value: float, *, low: float, low_ok: bool, high: float = math.inf, fix: str) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= low if low_ok else value > low) \
        and value <= high
    if not ok:
        bound = f"{'>=' if low_ok else '>'} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise UsageError(f"{option} {value!r}", expected=f"a finite number {bound}", fix=fix)


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

    def __post_init__(self) -> None:
        _at_least("--clip-len", self.clip_len, 1, "pass the frames per clip, e.g. --clip-len 16")
        _at_least("--stride", self.stride, 1, "pass a frame stride of 1 or more, e.g. --stride 2")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise UsageError(f"--size {self.size}", expected="two positive integers H,W", fix="pass e.g. --size 64,64")


@dataclass(frozen=True)
class EncoderChoice:
    """A frame model's per-frame encoder: which one, its starting weights, and what of it trains."""

    name: str | None = None          # None: the model's default (see edgelstm.models.backbones.ENCODERS)
    weights: str | None = None       # a state_dict file, or "imagenet" (EfficientNet-Lite0, installed offline)
    freeze: bool = False             # keep the encoder's blocks fixed (BatchNorm statistics too)
    unfreeze_last: int = 0           # with freeze: train the last N blocks anyway
    grid: int | None = None          # side of the pooled map (None: the encoder's default; 1: global pooling)
    blocks: int | None = None        # ImageNet trunks: keep only the first N blocks (None: all)

    def __post_init__(self) -> None:
        _at_least("--unfreeze-last", self.unfreeze_last, 0, "pass 0 or a number of blocks")
        if self.unfreeze_last and not self.freeze:
            raise UsageError(f"--unfreeze-last {self.unfreeze_last} without --freeze-encoder",
                             expected="--freeze-encoder with --unfreeze-last", fix="add --freeze-encoder")


@dataclass(frozen=True)
class TrainConfig:
    model: str
    out: Path
    data: DataConfig = DataConfig()
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # overrides of the registry defaults
    standardize: bool = True  # features data: per-feature mean/std of the train split, applied in the model
    encoder: EncoderChoice = field(default_factory=lambda: EncoderChoice())  # the student's per-frame encoder
    feature_cache: bool = True     # a frozen encoder runs once; the rest trains on its cached output
    init_weights: Path | None = None  # a state_dict the model starts from (a new classifier if classes differ)
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
    task: Task = Task.CLASSIFY     # detect: per-frame targets on long videos, windows of clip_len (train.detect)

    def __post_init__(self) -> None:
        if self.task not in (Task.CLASSIFY, Task.DETECT, Task.TRACK, Task.CAPTION):
            raise UsageError(f"--task {self.task}", expected="classify, detect, track or caption",
                             fix="pass --task classify, detect, track or caption")
        _at_least("--epochs", self.epochs, 1, "train for at least one epoch, e.g. --epochs 10")
        _at_least("--batch-size", self.batch_size, 1, "pass a positive batch size, e.g. --batch-size 32")
        _at_least("eval_batch_size", self.eval_batch_size, 1, "pass a positive evaluation batch size")
        _at_least("--threads", self.threads, 0, "pass 0 (torch's default) or a number of threads")
        _finite("--lr", self.lr, low=0.0, low_ok=False, high=10.0, fix="pass a small positive rate, e.g. --lr 3e-3")
        _finite("weight_decay", self.weight_decay, low=0.0, low_ok=True, fix="pass 0 or a small positive decay")
        _finite("label_smoothing", self.label_smoothing, low=0.0, low_ok=True, high=0.99,
                fix="pass a value in [0, 1), e.g. 0.1")
        _finite("--step-loss", self.step_loss, low=0.0, low_ok=True, fix="pass 0 (off) or a positive weight")


@dataclass(frozen=True)
class DistillConfig:
    teacher: Path | str            # a checkpoint (RUN/best.pt) or any SPEC of edgelstm.train.teachers
    alpha: float = 0.5             # weight of hard-label CE; 1 - alpha goes to the soft-target KL
    temperature: float = 4.0
    step_weighting: str = "uniform"  # "uniform" or "linear" (later steps count more) over the student's steps
    feature_weight: float = 0.0    # MSE between the student's last hidden state (projected) and the teacher's
    stream_pairs: bool = False     # also train on two clips back to back (no state reset), labelled per segment
    teacher_options: TeacherOptions = TeacherOptions()  # --teacher-weights, --teacher-classes, its input contract

    def __post_init__(self) -> None:
        _finite("--alpha", self.alpha, low=0.0, low_ok=True, high=1.0, fix="pass a weight in [0, 1], e.g. --alpha 0.5")
        _finite("--temperature", self.temperature, low=0.0, low_ok=False, fix="pass e.g. --temperature 4")
        _finite("--feature-weight", self.feature_weight, low=0.0, low_ok=True, fix="pass 0 (off) or a positive weight")

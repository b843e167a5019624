"""Teachers from anywhere: ``edgelstm distill --teacher SPEC``.

A :class:`Teacher` gives clip logits (N, K) for a batch of the *dataset's* clips (uint8 RGB (N, T, H, W, 3)),
resampled to the teacher's own input contract (:class:`TeacherInput`): a 16x112x112 teacher teaches a
12-frame 160x160 student. ``SPEC`` is one of (see :data:`LOADERS`, the one table, and :func:`load_teacher`,
the one place that dispatches on it):

- a run checkpoint (``RUN/best.pt``): the only kind with features (``--feature-weight``);
- ``torchvision:NAME``: a torchvision video classifier built with ``weights=None`` and ``--teacher-weights FILE``;
- ``path/to/file.py:factory`` or ``package.module:factory``: **user code, run because the user asked for it**;
- a TorchScript file (``torch.jit.load``) or an exported program (``.pt2``, ``torch.export.load``): code the
  user trusts, like the above;
- an ``.onnx`` model run with onnxruntime (a TensorFlow/Keras teacher converted to ONNX, for example).

Teacher outputs are computed once per clip and cached (:mod:`edgelstm.train.teacher_cache`), keyed by the
teacher's files, its input contract and the exact training clips, so epochs never re-run the teacher.
The loaders live in :mod:`edgelstm.train.teacher_loaders`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgelstm.errors import UsageError, closest
from edgelstm.spec import ColourOrder

if TYPE_CHECKING:
    import torch

    from edgelstm.data import Dataset
    from edgelstm.train.config import DataConfig

log = logging.getLogger(__name__)


class Layout(StrEnum):
    NCTHW = "NCTHW"   # torchvision's video models, most 3D CNNs
    NTCHW = "NTCHW"
    NTHWC = "NTHWC"   # edgelstm's own models: the dataset's clips as they are


class InputDtype(StrEnum):
    FLOAT32 = "float32"  # (x / 255 - mean) / std
    UINT8 = "uint8"      # raw 0..255, the model normalises itself


class TeacherKind(StrEnum):
    CHECKPOINT = "checkpoint"
    TORCHVISION = "torchvision"
    PYTHON = "python"
    TORCHSCRIPT = "torchscript"
    EXPORTED = "exported"
    ONNX = "onnx"


@dataclass(frozen=True)
class TeacherInput:
    """The teacher's input contract, declared once: what one batch fed to it looks like."""

    size: tuple[int, int]                        # (H, W)
    clip_len: int                                # frames per clip, taken by index from each clip's valid frames
    layout: Layout = Layout.NCTHW
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # per channel, 0..1 scale, in the teacher's channel order
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    colour_order: ColourOrder = ColourOrder.RGB
    dtype: InputDtype = InputDtype.FLOAT32

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1 or self.clip_len < 1:
            raise UsageError(f"teacher input {self.size[0]}x{self.size[1]}, {self.clip_len} frames",
                             expected="a positive size H,W and clip length",
                             fix="pass e.g. --teacher-size 112,112 --teacher-clip-len 16")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise UsageError(f"teacher mean {self.mean}, std {self.std}", expected="three means and three std > 0",
                             fix="pass e.g. --teacher-mean 0.43,0.39,0.38 --teacher-std 0.23,0.22,0.22")

    def describe(self) -> str:
        norm = "raw uint8" if self.dtype == InputDtype.UINT8 else f"mean {self.mean} std {self.std}"
        return (f"{self.clip_len}x{self.size[0]}x{self.size[1]} {self.layout} {self.colour_order.upper()} "
                f"{self.dtype}, {norm}")

    def prepare(self, clips: np.ndarray, lengths: np.ndarray | None = None, *,
                keep_lengths: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 RGB (N, T, H, W, 3) clips -> this contract's batch (temporal resampling by index, bilinear
        resize), and the valid lengths left (only with ``keep_lengths``, for a teacher that reads them, when the
        clips already have the contract's length: then frames are kept as they are, padding included)."""
        import torch
        import torch.nn.functional as F

        n, t = clips.shape[:2]
        if keep_lengths and t == self.clip_len:
            idx = np.tile(np.arange(t), (n, 1))
        else:
            lens = np.full(n, t) if lengths is None else np.clip(lengths, 1, t)
            idx = np.stack([np.round(np.linspace(0, ln - 1, self.clip_len)).astype(np.int64) for ln in lens])
            lengths = None  # (N, T') every frame valid
        x = torch.from_numpy(np.ascontiguousarray(clips[np.arange(n)[:, None], idx]))  # (N, T', H, W, 3)
        if self.colour_order == ColourOrder.BGR:
            x = x.flip(-1)
        x = x.permute(0, 1, 4, 2, 3).reshape(n * self.clip_len, 3, *clips.shape[2:4]).float()  # (N*T', 3, H, W)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        if self.dtype == InputDtype.UINT8:
            x = x.round().clamp(0, 255).to(torch.uint8)
        else:
            mean = torch.tensor(self.mean).view(1, 3, 1, 1)
            std = torch.tensor(self.std).view(1, 3, 1, 1)
            x = (x / 255.0 - mean) / std
        x = x.reshape(n, self.clip_len, 3, *self.size)  # (N, T', C, H, W)
        if self.layout == Layout.NCTHW:
            x = x.permute(0, 2, 1, 3, 4)
        elif self.layout == Layout.NTHWC:
            x = x.permute(0, 1, 3, 4, 2)
        return x.contiguous().numpy(), lengths


@dataclass(frozen=True)
class ContractOptions:
    """``--teacher-size``, ``--teacher-clip-len``, ... : each, when given, overrides the teacher's own contract."""

    size: tuple[int, int] | None = None
    clip_len: int | None = None
    layout: Layout | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    bgr: bool | None = None

    def apply(self, base: TeacherInput) -> TeacherInput:
        from dataclasses import replace

        changes: dict[str, Any] = {k: v for k, v in (("size", self.size), ("clip_len", self.clip_len),
                                                     ("layout", self.layout), ("mean", self.mean),
                                                     ("std", self.std)) if v is not None}
        if self.bgr is not None:
            changes["colour_order"] = ColourOrder.BGR if self.bgr else ColourOrder.RGB
        return replace(base, **changes)


@dataclass(frozen=True)
class TeacherOptions:
    weights: str | None = None          # --teacher-weights FILE, or "random" (tests and smoke runs only)
    contract: ContractOptions = ContractOptions()
    class_map: Path | None = None       # --teacher-classes map.json
    device: str = "cpu"                 # where torch teachers run


Run = Callable[[np.ndarray, "np.ndarray | None"], "tuple[np.ndarray, np.ndarray | None]"]


@dataclass
class Teacher:
    """A loaded teacher: ``run(batch, lengths)`` maps one prepared batch to logits (N, K_teacher) or per-step
    logits (N, T, K_teacher), and the head's input features (N, D) when it has them (checkpoints)."""

    spec: str
    kind: TeacherKind
    contract: TeacherInput
    run: Run
    identity: dict[str, Any]                 # what the teacher is, for the cache key (file digests, names)
    classes: list[str] | None = None         # the teacher's class names, when it has them
    has_features: bool = False               # checkpoints only
    uses_lengths: bool = False               # reads the clips' valid lengths (edgelstm checkpoints)
    calls: int = 0                           # batches run (a second, cached distillation runs none)
    info: dict[str, Any] = field(default_factory=dict)  # what a run's metrics.json records about it


# --- the table and the one dispatch ---------------------------------------------------------------------
Loader = Callable[[str, TeacherOptions, TeacherInput], Teacher]


def _loaders() -> dict[TeacherKind, Loader]:
    from edgelstm.train import teacher_loaders as tl

    return {TeacherKind.CHECKPOINT: tl.load_checkpoint_teacher, TeacherKind.TORCHVISION: tl.load_torchvision,
            TeacherKind.PYTHON: tl.load_python, TeacherKind.TORCHSCRIPT: tl.load_torchscript,
            TeacherKind.EXPORTED: tl.load_exported, TeacherKind.ONNX: tl.load_onnx}


def kind_of(spec: str) -> TeacherKind:
    """Which loader reads ``spec``: by prefix, by suffix, then by what the file holds."""
    if spec.startswith("torchvision:"):
        return TeacherKind.TORCHVISION
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return TeacherKind.ONNX
    if suffix == ".pt2":
        return TeacherKind.EXPORTED
    if not path.exists() and ":" in spec:
        return TeacherKind.PYTHON
    if path.is_file() and _is_torchscript(path):
        return TeacherKind.TORCHSCRIPT
    return TeacherKind.CHECKPOINT


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zips holding a ``code/`` folder; checkpoints written by torch.save hold none."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_teacher(spec: str, options: TeacherOptions, default: TeacherInput) -> Teacher:
    """Load the teacher ``spec`` names; ``default`` is the contract of a teacher that declares none (the data's)."""
    kind = kind_of(spec)
    if options.weights is not None and kind in (TeacherKind.CHECKPOINT, TeacherKind.TORCHSCRIPT,
                                                 TeacherKind.EXPORTED, TeacherKind.ONNX):
        raise UsageError(f"--teacher-weights with a {kind} teacher ({spec})",
                         expected="--teacher-weights only with torchvision:NAME or a Python factory",
                         fix="drop --teacher-weights: this teacher file holds its weights")
    teacher = _loaders()[kind](spec, options, default)
    log.info("teacher %s (%s): input %s", spec, kind, teacher.contract.describe())
    return teacher


# --- labels ---------------------------------------------------------------------------------------------
def class_columns(teacher: Teacher, dataset_classes: list[str], num_outputs: int,
                  class_map: Path | None) -> np.ndarray | None:
    """Which teacher logit stands for each dataset class (None: all of them, in order)."""
    if class_map is None:
        if num_outputs != len(dataset_classes):
            raise UsageError(f"the teacher {teacher.spec} has {num_outputs} classes, the dataset "
                             f"{len(dataset_classes)}", expected="as many teacher classes as dataset classes",
                             fix="pass --teacher-classes map.json, mapping each dataset class to a teacher class "
                                 "index or name, e.g. {\"" + dataset_classes[0] + "\": 12}")
        if teacher.classes and list(teacher.classes) != list(dataset_classes):
            raise UsageError("the teacher was trained on other classes than this dataset's",
                             expected=", ".join(dataset_classes[:5]) + ", ...",
                             fix="distill on the teacher's dataset, or pass --teacher-classes map.json")
        return None
    try:
        mapping = json.loads(Path(class_map).read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"--teacher-classes {class_map}: cannot be read as JSON ({e})",
                         expected="a JSON object: dataset class name -> teacher class index or name",
                         fix="write e.g. {\"jump\": 172, \"run\": \"running on treadmill\"}") from None
    if not isinstance(mapping, dict):
        raise UsageError(f"--teacher-classes {class_map}: holds a {type(mapping).__name__}",
                         expected="a JSON object: dataset class name -> teacher class index or name",
                         fix="write e.g. {\"jump\": 172}")
    unknown = [k for k in mapping if k not in dataset_classes]
    if unknown:
        raise UsageError(f"--teacher-classes {class_map}: dataset class '{unknown[0]}' is not in the dataset"
                         + closest(unknown[0], dataset_classes), expected=", ".join(dataset_classes[:8]),
                         fix="map each of the dataset's classes by its exact name")
    missing = [c for c in dataset_classes if c not in mapping]
    if missing:
        raise UsageError(f"--teacher-classes {class_map}: no teacher class for dataset class '{missing[0]}'",
                         expected="every dataset class mapped", fix=f"add \"{missing[0]}\": INDEX_OR_NAME")
    return np.array([_teacher_index(teacher, mapping[c], num_outputs, class_map) for c in dataset_classes])


def _teacher_index(teacher: Teacher, value: Any, num_outputs: int, class_map: Path) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < num_outputs:
            return value
        raise UsageError(f"--teacher-classes {class_map}: teacher class index {value}",
                         expected=f"an index in 0..{num_outputs - 1}", fix="use the teacher's class index")
    names = list(teacher.classes or [])
    if isinstance(value, str) and value in names:
        return names.index(value)
    hint = closest(str(value), names) if names else " (this teacher has no class names: use indices)"
    raise UsageError(f"--teacher-classes {class_map}: unknown teacher class {value!r}{hint}",
                     expected="a teacher class index or one of its class names",
                     fix="check the teacher's class list (torchvision: the weights' meta['categories'])")


# --- what distillation needs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class DistillTargets:
    dataset: Dataset                    # the data the student trains on
    logits: torch.Tensor                # (N_train, K) teacher clip logits over the dataset's classes
    features: torch.Tensor              # (N_train, D), or (N_train, 0) when not asked for
    meta: dict[str, Any]                # what metrics.json records about the teacher


def distill_targets(spec: str, options: TeacherOptions, data: DataConfig, *, seed: int,
                    dataset: Dataset | None = None, features: bool = False, progress: bool = True) -> DistillTargets:
    """Load the teacher ``spec``, the data (a checkpoint teacher's own data facts when ``data.size`` is unset) and
    the teacher's outputs on the training split (computed once, cached: :mod:`edgelstm.train.teacher_cache`)."""
    import torch

    from edgelstm.spec import DEFAULT_SIZE
    from edgelstm.train.teacher_cache import teacher_outputs

    teacher = load_teacher(spec, options, TeacherInput(size=data.size or DEFAULT_SIZE, clip_len=data.clip_len))
    if dataset is None:
        dataset = _dataset_for(teacher, data, seed)
    train = dataset["train"]
    if train.X.dtype != np.uint8 or train.X.ndim != 5:
        if teacher.kind != TeacherKind.CHECKPOINT:
            raise UsageError(f"--teacher {spec} with features data ({dataset.source})",
                             expected="video frames: only an edgelstm checkpoint teaches on features",
                             fix="distill from a run checkpoint, or use frames data")
        return _features_targets(teacher, dataset)  # a features checkpoint: as before, no resampling
    out = teacher_outputs(teacher, train.X, train.lengths, list(dataset.classes), class_map=options.class_map,
                          features=features, cache_dir=data.cache_dir, progress=progress)
    feats = out.features if out.features is not None else np.zeros((len(out.logits), 0), np.float32)
    meta = {"teacher": spec, "teacher_kind": str(teacher.kind), "teacher_input": asdict(teacher.contract),
            "teacher_cached": out.from_cache,
            **{k: v for k, v in teacher.info.items() if k != "data"}}
    return DistillTargets(dataset, torch.from_numpy(out.logits), torch.from_numpy(feats), meta)


def _dataset_for(teacher: Teacher, data: DataConfig, seed: int) -> Dataset:
    """A checkpoint teacher's own data facts when --size is unset; else the data as the options give it."""
    from edgelstm.train.evaluate import dataset_for_checkpoint
    from edgelstm.train.trainer import resolve_dataset  # trainer imports this module only inside distill()

    facts = teacher.info.get("data")
    if facts is not None and data.size is None:
        return dataset_for_checkpoint(facts, data.spec, cache_dir=data.cache_dir, counts=data.counts)
    return resolve_dataset(data, seed=seed)


def _features_targets(teacher: Teacher, dataset: Dataset) -> DistillTargets:
    """A checkpoint teacher on features data: its logits and head features, no resampling, no cache."""
    import torch

    train = dataset["train"]
    class_columns(teacher, list(dataset.classes), len(teacher.classes or dataset.classes), None)
    logits: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    for i in range(0, len(train), 128):
        lens = None if train.lengths is None else train.lengths[i:i + 128]
        out, f = teacher.run(np.ascontiguousarray(train.X[i:i + 128]), lens)
        logits.append(out)
        if f is not None:  # a checkpoint teacher returns its head's input with every batch
            feats.append(f)
    all_logits = np.concatenate(logits)
    all_feats = np.concatenate(feats) if feats else np.zeros((len(all_logits), 0), np.float32)
    meta = {"teacher": teacher.spec, "teacher_kind": str(teacher.kind),
            **{k: v for k, v in teacher.info.items() if k != "data"}}
    return DistillTargets(dataset, torch.from_numpy(all_logits), torch.from_numpy(all_feats), meta)

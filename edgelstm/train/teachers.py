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

Teacher outputs are computed once per clip and cached (:func:`teacher_outputs`), keyed by the teacher's
files, its input contract, the class map and the exact training clips, so epochs never re-run the teacher.
The loaders live in :mod:`edgelstm.train.teacher_loaders`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import UsageError, closest
from edgelstm.spec import ColourOrder

log = logging.getLogger(__name__)

CACHE_VERSION = 1


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


# --- outputs, computed once and cached ----------------------------------------------------------------
@dataclass(frozen=True)
class TeacherOutputs:
    logits: np.ndarray                 # (N, K) over the dataset's classes
    features: np.ndarray | None        # (N, D), checkpoint teachers only
    from_cache: bool
    clips_per_s: float


def cache_root(cache_dir: Path | None) -> Path:
    from edgelstm.data.folders import default_cache_dir

    return Path(cache_dir or default_cache_dir()) / "teachers"


def cache_key(teacher: Teacher, X: np.ndarray, lengths: np.ndarray | None, *, features: bool) -> str:
    """The teacher (file digests), its contract and every byte of the clips it sees."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, teacher.kind, teacher.identity, asdict(teacher.contract),
                         features, list(X.shape), str(X.dtype)],
                        sort_keys=True, default=str).encode())
    for i in range(0, len(X), 256):
        h.update(np.ascontiguousarray(X[i:i + 256]).data)
    if lengths is not None:
        h.update(np.ascontiguousarray(lengths, dtype=np.int64).data)
    return h.hexdigest()[:32]


def teacher_outputs(teacher: Teacher, X: np.ndarray, lengths: np.ndarray | None, dataset_classes: list[str], *,
                    class_map: Path | None = None, features: bool = False, cache_dir: Path | None = None,
                    batch_size: int = 32, progress: bool = True) -> TeacherOutputs:
    """Clip logits (N, K) of the dataset's classes, and features when asked: from the cache, or one pass."""
    if features and not teacher.has_features:
        raise UsageError(f"--feature-weight > 0 with a {teacher.kind} teacher ({teacher.spec})",
                         expected="--feature-weight 0: only edgelstm checkpoints expose their features",
                         fix="drop --feature-weight, or distill from a run checkpoint")
    if not len(X):
        raise UsageError("the training split is empty", expected="clips to run the teacher on",
                         fix="check --data and --counts")
    path = cache_root(cache_dir) / f"{cache_key(teacher, X, lengths, features=features)}.npz"
    if path.is_file():
        with np.load(path) as z:
            log.info("teacher outputs from the cache %s (%d clips)", path, len(z["logits"]))
            raw, f = z["logits"], z["features"]
        return _select(teacher, raw, f if features else None, dataset_classes, class_map, True, 0.0)
    t0 = time.perf_counter()
    logits, feats = [], []
    from tqdm import tqdm

    with tqdm(total=len(X), desc=f"teacher {teacher.spec}", unit="clip", file=sys.stderr, leave=False,
              disable=not (progress and sys.stderr.isatty())) as bar:
        for i in range(0, len(X), batch_size):
            xb, lb = X[i:i + batch_size], None if lengths is None else lengths[i:i + batch_size]
            out, f = _run(teacher, xb, lb)
            logits.append(out)
            if features and f is not None:
                feats.append(f)
            bar.update(len(xb))
    rate = len(X) / max(time.perf_counter() - t0, 1e-9)
    log.info("teacher pass: %d clips at %.1f clips/s", len(X), rate)
    raw = np.concatenate(logits).astype(np.float32)
    f = np.concatenate(feats).astype(np.float32) if feats else np.zeros((len(raw), 0), np.float32)
    out = _select(teacher, raw, f if features else None, dataset_classes, class_map, False, rate)
    _save(path, raw, f)  # all the teacher's logits: another class map reuses them
    return out


def _select(teacher: Teacher, raw: np.ndarray, feats: np.ndarray | None, dataset_classes: list[str],
            class_map: Path | None, cached: bool, rate: float) -> TeacherOutputs:
    columns = class_columns(teacher, dataset_classes, raw.shape[-1], class_map)
    return TeacherOutputs(raw if columns is None else raw[:, columns], feats, cached, rate)


def _run(teacher: Teacher, clips: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    teacher.calls += 1
    out, feats = teacher.run(*teacher.contract.prepare(clips, lengths, keep_lengths=teacher.uses_lengths))
    out = np.asarray(out, dtype=np.float32)
    if out.ndim == 3:  # per-step logits (N, T, K): the clip's output is its last step
        out = out[:, -1]
    if out.ndim != 2 or out.shape[0] != len(clips) or not np.isfinite(out).all():
        raise UsageError(f"the teacher {teacher.spec} returned {out.shape} "
                         f"{'non-finite ' if not np.isfinite(out).all() else ''}outputs for {len(clips)} clips",
                         expected=f"finite clip logits ({len(clips)}, K)",
                         fix="check the teacher's input contract (--teacher-size, --teacher-clip-len, "
                             "--teacher-layout) and that it returns logits")
    return out, None if feats is None else np.asarray(feats, dtype=np.float32)


def _save(path: Path, logits: np.ndarray, features: np.ndarray) -> None:
    from edgelstm.fsutil import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, logits=logits, features=features)
    except OSError as e:  # a read-only cache costs a re-run next time, not this run
        log.warning("could not cache the teacher's outputs in %s (%s)", path, e)


def file_digest(path: str | Path) -> str:
    from edgelstm.fsutil import sha256_file

    return sha256_file(path)


# --- what distillation needs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class DistillTargets:
    dataset: Any                        # edgelstm.data.Dataset the student trains on
    logits: Any                         # torch (N_train, K) teacher clip logits over the dataset's classes
    features: Any                       # torch (N_train, D), or (N_train, 0) when not asked for
    meta: dict[str, Any]                # what metrics.json records about the teacher


def distill_targets(spec: str, options: TeacherOptions, data: Any, *, seed: int, dataset: Any = None,
                    features: bool = False, progress: bool = True) -> DistillTargets:
    """Load the teacher ``spec``, the data (a checkpoint teacher's own data facts when ``data.size`` is unset) and
    the teacher's outputs on the training split (cached)."""
    import torch

    from edgelstm.data import load_dataset
    from edgelstm.spec import DEFAULT_SIZE

    probe = TeacherInput(size=data.size or DEFAULT_SIZE, clip_len=data.clip_len)
    teacher = load_teacher(spec, options, probe)
    if dataset is None:
        facts = teacher.info.get("data")
        if facts is not None and data.size is None:
            from edgelstm.train.evaluate import dataset_for_checkpoint

            dataset = dataset_for_checkpoint(facts, data.spec, cache_dir=data.cache_dir, counts=data.counts)
        else:
            dataset = load_dataset(data.spec, size=data.size or DEFAULT_SIZE, clip_len=data.clip_len,
                                   sampling=data.sampling, stride=data.stride, seed=seed, counts=data.counts,
                                   cache_dir=data.cache_dir)
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


def _features_targets(teacher: Teacher, dataset: Any) -> DistillTargets:
    import torch

    train = dataset["train"]
    class_columns(teacher, list(dataset.classes), len(teacher.classes or dataset.classes), None)
    logits, feats = [], []
    for i in range(0, len(train), 128):
        lens = None if train.lengths is None else train.lengths[i:i + 128]
        out, f = teacher.run(np.ascontiguousarray(train.X[i:i + 128]), lens)
        logits.append(out)
        feats.append(f)
    meta = {"teacher": teacher.spec, "teacher_kind": str(teacher.kind),
            **{k: v for k, v in teacher.info.items() if k != "data"}}
    return DistillTargets(dataset, torch.from_numpy(np.concatenate(logits)),
                          torch.from_numpy(np.concatenate(feats)), meta)

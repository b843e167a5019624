"""A teacher's outputs on the training clips, computed once and cached (``edgelstm distill --teacher SPEC``).

:func:`teacher_outputs` runs the teacher (:class:`~edgelstm.train.teachers.Teacher`) over the clips in batches
(tqdm + clips/s), or reads its earlier pass from ``<cache>/teachers/<key>.npz``: the key covers the teacher's
files (digests), its input contract and every byte of the clips it sees, so epochs and reruns never re-run it.
All the teacher's logits are cached; the class map (:func:`~edgelstm.train.teachers.class_columns`) picks the
dataset's columns after, so another map reuses the same pass.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edgelstm.errors import UsageError
from edgelstm.train.teachers import Teacher, class_columns

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class TeacherOutputs:
    logits: np.ndarray                 # (N, K) over the dataset's classes
    features: np.ndarray | None        # (N, D), checkpoint teachers only
    from_cache: bool
    clips_per_s: float


def cache_root(cache_dir: Path | None, kind: str = "teachers") -> Path:
    """``<cache>/<kind>``: teacher outputs, or a frozen encoder's features (:mod:`edgelstm.train.feature_cache`)."""
    from edgelstm.data.folders import default_cache_dir

    return Path(cache_dir or default_cache_dir()) / kind


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
            raw, feats = z["logits"], z["features"]
        return _select(teacher, raw, feats if features else None, dataset_classes, class_map, True, 0.0)
    t0 = time.perf_counter()
    raw, feats = _teacher_pass(teacher, X, lengths, features=features, batch_size=batch_size, progress=progress)
    rate = len(X) / max(time.perf_counter() - t0, 1e-9)
    log.info("teacher pass: %d clips at %.1f clips/s", len(X), rate)
    selected = _select(teacher, raw, feats if features else None, dataset_classes, class_map, False, rate)
    _save(path, raw, feats)  # all the teacher's logits: another class map reuses them
    return selected


def _teacher_pass(teacher: Teacher, X: np.ndarray, lengths: np.ndarray | None, *, features: bool,
                  batch_size: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """All the teacher's logits (N, K_teacher) and, when asked, features (N, D) (else (N, 0)), in batches."""
    from tqdm import tqdm

    logits: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    with tqdm(total=len(X), desc=f"teacher {teacher.spec}", unit="clip", file=sys.stderr, leave=False,
              disable=not (progress and sys.stderr.isatty())) as bar:
        for i in range(0, len(X), batch_size):
            xb, lb = X[i:i + batch_size], None if lengths is None else lengths[i:i + batch_size]
            out, f = _run(teacher, xb, lb)
            logits.append(out)
            if features and f is not None:
                feats.append(f)
            bar.update(len(xb))
    raw = np.concatenate(logits).astype(np.float32)
    return raw, np.concatenate(feats).astype(np.float32) if feats else np.zeros((len(raw), 0), np.float32)


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
    _write_cache(path, lambda fh: np.savez(fh, logits=logits, features=features))


def save_array(path: Path, array: np.ndarray) -> None:
    """One array as ``path`` (.npy), atomically; a cache that cannot be written only costs a rerun."""
    _write_cache(path, lambda fh: np.save(fh, array))


def _write_cache(path: Path, write: Callable[[BinaryIO], None]) -> None:
    from edgelstm.fsutil import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            write(fh)
    except OSError as e:  # a read-only or full cache costs a re-run next time, not this run
        log.warning("could not write the cache file %s (%s)", path, e)

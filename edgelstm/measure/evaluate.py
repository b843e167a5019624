"""``edgelstm eval`` as a library: accuracy of a PyTorch checkpoint or of a bundle's artefact on a dataset split.

Both paths produce per-step logits ``(N, T, K)`` and hand them to one
:func:`~edgelstm.metrics.accuracy_report`: a bundle's through
:func:`~edgelstm.runtime.stream.stream_logits` (frame by frame through the
:class:`~edgelstm.runtime.engine.Engine`, as on a device: the same preprocessing, state handling and
graphs as ``edgelstm demo``); a checkpoint's through PyTorch (imported only on that path). The
result is one :class:`EvalResult`. A bundle can also be compared frame by frame with a reference:
another artefact, or any callable such as :func:`checkpoint_reference`.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.devices import DeviceProfile
from edgelstm.errors import DataError, UsageError
from edgelstm.metrics import FRACTIONS, Agreement, accuracy_report, agreement
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.clips import stream_logits
from edgelstm.runtime.engine import Engine
from edgelstm.spec import Backend, Precision

__all__ = ["FRACTIONS", "EvalResult", "Reference", "accuracy_report", "agreement", "checkpoint_reference",
           "evaluate_bundle", "evaluate_checkpoint", "save_result"]

log = logging.getLogger(__name__)

DEFAULT_ARTIFACT = "onnxruntime:fp32"
# (X, lengths) -> (N, T, K) per-step logits; e.g. checkpoint_reference(path)
Reference = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


@dataclass(frozen=True)
class EvalResult:
    """One evaluation. ``artifact`` is what ran: "onnxruntime:int8", or "torch" for a checkpoint."""
    artifact: str
    split: str
    clips: int
    frames: int
    accuracy: float
    per_class: dict[str, float | None]
    accuracy_at_fraction: dict[str, float]   # "10%" -> accuracy after seeing 10% of each clip
    confusion: list[list[int]]               # rows: true class, columns: predicted
    classes: tuple[str, ...]
    seconds: float
    device: str = "cpu"
    inference_precision: str | None = None   # what the backend really ran (bundles only)
    agreement: Agreement | None = None       # per-frame agreement with a reference (bundles only)
    reference_accuracy: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"artifact": self.artifact, "device": self.device}
        if self.inference_precision is not None:
            out["inference_precision"] = self.inference_precision
        out.update(split=self.split, clips=self.clips, frames=self.frames, seconds=self.seconds,
                   accuracy=self.accuracy, per_class=self.per_class, accuracy_at_fraction=self.accuracy_at_fraction,
                   classes=list(self.classes), confusion=self.confusion)
        if self.agreement is not None:
            out["agreement"] = self.agreement.to_json()
            out["reference_accuracy"] = self.reference_accuracy
        return out


def _resolve_artifact(artifact: str | tuple[str, str]) -> tuple[Backend, Precision]:
    be, _, prec = artifact.partition(":") if isinstance(artifact, str) else (artifact[0], ":", artifact[1])
    try:
        return Backend(be), Precision(prec or "fp32")
    except ValueError:
        raise UsageError(f"artefact '{artifact}'", expected="BACKEND:PRECISION such as onnxruntime:fp32, "
                         "openvino:fp32, onnxruntime:int8", fix="pass one of the bundle's artefacts") from None


def _split_arrays(ds: Any, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if split not in ds.splits:
        raise UsageError(f"split '{split}'", expected="one of " + ", ".join(ds.splits), fix="pass --split test")
    s = ds.splits[split]
    X, y, lengths = s.X, s.y, s.lengths
    if limit is not None:
        X, y = X[:limit], y[:limit]
        lengths = None if lengths is None else lengths[:limit]
    if not len(y):
        raise DataError("the split is empty", expected="at least one clip", fix="choose another split")
    return X, y, lengths


def _result(artifact: str, split: str, X: np.ndarray, y: np.ndarray, lengths: np.ndarray | None,
            logits: np.ndarray, labels: tuple[str, ...], seconds: float, **extra: Any) -> EvalResult:
    rep = accuracy_report(logits, y, lengths, labels)
    result = EvalResult(artifact=artifact, split=split, clips=int(len(y)), frames=int(X.shape[0] * X.shape[1]),
                        accuracy=rep.accuracy, per_class=rep.per_class, accuracy_at_fraction=rep.accuracy_at_fraction,
                        confusion=rep.confusion, classes=tuple(labels), seconds=round(seconds, 3), **extra)
    if not math.isfinite(result.accuracy):
        raise DataError("the split is empty", expected="at least one clip", fix="choose another split")
    return result


def evaluate_bundle(bundle_path: str | Path | Bundle, dataset_or_spec: Any, *, split: str = "test",
                    artifact: str | tuple[str, str] = DEFAULT_ARTIFACT, device: str | DeviceProfile = "cpu",
                    threads: int | None = None, reference: str | tuple[str, str] | Reference | None = None,
                    checkpoint: Reference | None = None, limit: int | None = None) -> EvalResult:
    """Accuracy of one artefact on a dataset split, run frame by frame as on a device.

    ``dataset_or_spec``: a loaded :class:`edgelstm.data.dataset.Dataset`, or what
    :func:`edgelstm.data.load_dataset` takes ("synthetic", a folder, a .csv, a .npz); it is loaded at
    the bundle's size and clip length. ``reference``: another artefact ("openvino:fp32") or a
    callable ``(X, lengths) -> (N, T, K)`` logits; ``checkpoint`` is the same as a callable reference,
    labelled "torch" (e.g. :func:`checkpoint_reference`; this path imports no torch itself).
    """
    b = bundle_path if isinstance(bundle_path, Bundle) else load_bundle(bundle_path)
    m = b.manifest
    ds = dataset_or_spec
    if not hasattr(ds, "splits"):
        from edgelstm.data.dataset import load_dataset

        ds = load_dataset(str(ds), **m.data_options())
    X, y, lengths = _split_arrays(ds, split, limit)
    if tuple(ds.classes) != tuple(m.labels):
        log.warning("dataset classes %s differ from the bundle's labels %s", ds.classes[:5], m.labels[:5])
    be, prec = _resolve_artifact(artifact)
    # the device profile gives device, threads and hints; the artefact picks backend and precision
    eng = Engine.load(b, device=device, backend=str(be), precision=str(prec), threads=threads,
                      streams=max(1, min(32, len(y))))
    t0 = time.perf_counter()
    logits = stream_logits(b, X, lengths=lengths, engine=eng)
    seconds = time.perf_counter() - t0
    agree, ref_acc = None, None
    ref_fn, ref_name = (checkpoint, "torch") if checkpoint is not None else (reference, "")
    if ref_fn is not None:
        if callable(ref_fn):
            ref_logits = np.asarray(ref_fn(X, lengths), np.float32)
            ref_name = ref_name or getattr(ref_fn, "__name__", "callable")
        else:
            rbe, rprec = _resolve_artifact(ref_fn)
            ref_logits = stream_logits(b, X, backend=rbe, precision=rprec, lengths=lengths)
            ref_name = f"{rbe}:{rprec}"
        agree = agreement(logits, ref_logits, lengths, reference=ref_name)
        ref_acc = accuracy_report(ref_logits, y, lengths, m.labels).accuracy
    return _result(f"{be}:{prec}", split, X, y, lengths, logits, tuple(m.labels), seconds,
                   device=str(eng.info["device"]), inference_precision=str(eng.inference_precision),
                   agreement=agree, reference_accuracy=ref_acc)


def evaluate_checkpoint(path: str | Path, data: Any, *, split: str = "test",
                        cache_dir: str | Path | None = None) -> EvalResult:
    """Accuracy of a PyTorch checkpoint on ``data`` (a Dataset, or a spec loaded the way the model was trained).

    A causal model is read off its per-step logits; a non-causal one runs on each truncated clip.
    """
    from edgelstm.data import Dataset
    from edgelstm.models.checkpoint import load_checkpoint
    from edgelstm.train.evaluate import dataset_for_checkpoint, fraction_logits

    ckpt = load_checkpoint(path)
    ds = data if isinstance(data, Dataset) else dataset_for_checkpoint(ckpt.data, data, cache_dir=cache_dir)
    if list(ckpt.classes) != list(ds.classes):
        raise DataError(f"the dataset's classes ({', '.join(ds.classes[:5])}, ...) differ from the checkpoint's "
                        f"({', '.join(ckpt.classes[:5])}, ...)", expected="the classes the model was trained on",
                        fix="evaluate on the dataset the model was trained on", path=path)
    X, y, lengths = _split_arrays(ds, split, None)
    t0 = time.perf_counter()
    logits = fraction_logits(ckpt.model, X, lengths)
    return _result("torch", split, X, y, lengths, logits, tuple(ds.classes), time.perf_counter() - t0)


def save_result(result: EvalResult, out: str | Path, *, confusion_png: bool = False, title: str = "") -> list[Path]:
    """Write ``eval_<split>.json`` (and with ``confusion_png``, ``confusion_<split>.png``) into ``out``."""
    from edgelstm.fsutil import write_text_atomic

    out = Path(out)
    written = [out / f"eval_{result.split}.json"]
    write_text_atomic(written[0], json.dumps(result.to_json(), indent=2) + "\n")
    if confusion_png:
        from edgelstm.measure.plot import plot_confusion

        written.append(out / f"confusion_{result.split}.png")
        plot_confusion(result.confusion, list(result.classes), written[1],
                       title=title or f"{result.split}: accuracy {result.accuracy:.3f} (n={result.clips})")
    return written


def checkpoint_reference(path: str | Path, *, batch_size: int = 64) -> Reference:
    """A PyTorch checkpoint as a per-step logits function ``(X, lengths) -> (N, T, K)``, for comparing a
    bundle's artefacts with the model they came from (``edgelstm eval BUNDLE --checkpoint CKPT``)."""
    from edgelstm.models.checkpoint import load_checkpoint
    from edgelstm.train.evaluate import per_step_logits

    model = load_checkpoint(path).model.eval()
    if not (getattr(model, "causal", False) and hasattr(model, "step_logits")):
        raise UsageError(f"checkpoint '{path}' holds a non-causal model", path=path,
                         expected="the causal model the bundle was exported from",
                         fix="pass the student checkpoint the bundle came from")

    def torch_checkpoint(X: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        return per_step_logits(model, X, batch_size=batch_size)

    return torch_checkpoint

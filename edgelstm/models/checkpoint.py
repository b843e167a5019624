"""Checkpoints: weights plus everything needed to rebuild and deploy the model.

A checkpoint is a plain dict of tensors, numbers, strings and lists. It loads with
``torch.load(..., weights_only=True)``: no pickled code is ever run.

Payload keys: ``format``, ``version``, ``model_name`` (registry name), ``model_config`` (kwargs of
``create_model``), ``state_dict``, ``classes`` (names, index = class id), ``data``, ``metrics``,
``extra`` (optimiser/scheduler state, epoch, history: only last.pt needs it, for ``--resume``).

``data`` holds the facts export and the runtime rely on: an :class:`edgelstm.spec.DataFacts`
(kind, size, mean/std, clip length, stride, fps, feature size, sampling, source, ...), stored as plain
JSON-like values and read back strictly. ``digest`` is the SHA-256 of every tensor and value in the
payload (:func:`content_digest`): a checkpoint whose bytes changed after it was written is refused
on load, and so is one with non-finite weights or optimiser state.
"""
from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgelstm.errors import BundleError, CheckpointError
from edgelstm.fsutil import atomic_path, sha256_file
from edgelstm.models.registry import create_model
from edgelstm.spec import DataFacts

log = logging.getLogger(__name__)

FORMAT = "edgelstm-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: nn.Module
    name: str                      # registry name
    config: dict[str, Any]         # kwargs for create_model
    classes: list[str]
    data: DataFacts                # what it was trained on: preprocessing and temporal facts
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # optimiser state, epoch ... (for --resume)
    path: Path | None = None
    sha256: str = ""


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_name": ckpt.name,
        "model_config": _plain(ckpt.config),
        "state_dict": ckpt.model.state_dict(),
        "classes": list(ckpt.classes),
        "data": ckpt.data.to_dict(),
        "metrics": _plain(ckpt.metrics),
        "extra": ckpt.extra,
    }
    payload["digest"] = content_digest(payload)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, *, with_extra: bool = False) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", expected="a .pt file written by `edgelstm train`",
                              fix="check the path (runs keep best.pt and last.pt)", path=path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError("this file needs pickle to load (it holds Python objects or code), which edgelstm "
                              "refuses for safety", expected="a checkpoint of plain tensors and values",
                              fix="re-save it with `edgelstm train`, or save only a state_dict", path=path) from None
    except Exception as e:  # torch raises RuntimeError/EOFError/zipfile errors for corrupt files
        raise CheckpointError(f"cannot be read as a torch checkpoint ({type(e).__name__}: {str(e)[:120]})",
                              expected="a .pt file written by `edgelstm train`",
                              fix="the file may be truncated or not a checkpoint; re-train or copy it again",
                              path=path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError("is not an edgelstm checkpoint", expected=f"a dict with format '{FORMAT}'",
                              fix="use a checkpoint written by `edgelstm train` or `edgelstm distill`", path=path)
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"checkpoint version {payload['version']} is newer than this edgelstm ({VERSION})",
                              fix="upgrade edgelstm", path=path)
    _check_content(payload, path, with_extra=with_extra)
    try:
        facts = DataFacts.from_dict(payload["data"], source=path)
    except BundleError as e:
        raise CheckpointError(e.what, expected=e.expected, path=path,
                              fix="the checkpoint's data facts are damaged; re-train or copy it again") from None
    model = create_model(payload["model_name"], **payload["model_config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"weights do not fit model '{payload['model_name']}': {str(e)[:200]}",
                              fix="the checkpoint is damaged or from an incompatible version", path=path) from None
    model.eval()
    return Checkpoint(model=model, name=payload["model_name"], config=payload["model_config"],
                      classes=list(payload["classes"]), data=facts, metrics=payload.get("metrics", {}),
                      extra=payload.get("extra", {}) if with_extra else {}, path=path, sha256=sha256_file(path))


def content_digest(payload: dict[str, Any]) -> str:
    """SHA-256 over every key, value and tensor byte of ``payload`` (its own ``digest`` excluded), in a fixed
    order: what the checkpoint held when it was written."""
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(obj, dict):
            h.update(b"{")
            for k in sorted(obj, key=str):
                if k != "digest":
                    h.update(repr(str(k)).encode())
                    feed(obj[k])
            h.update(b"}")
        elif isinstance(obj, (list, tuple)):
            h.update(b"[")
            for v in obj:
                feed(v)
            h.update(b"]")
        else:
            h.update(repr(obj).encode())

    feed(payload)
    return h.hexdigest()


def _check_content(payload: dict[str, Any], path: Path, *, with_extra: bool) -> None:
    """Refuse a checkpoint whose content changed since it was written, or whose numbers are not finite."""
    stored = payload.get("digest")
    if stored is None:
        log.info("%s: written before checkpoints carried a digest; its content cannot be verified", path)
    elif content_digest(payload) != stored:
        raise CheckpointError("its content does not match the digest stored when it was written (bytes changed: "
                              "a disk or copy error, or an edit)", expected="the checkpoint as it was saved",
                              fix="copy it again from where it was written, or use the run's other checkpoint "
                                  "(best.pt / last.pt)", path=path)
    parts = {"weights": payload.get("state_dict", {})}
    if with_extra:
        parts["optimiser state"] = payload.get("extra", {})
    for what, part in parts.items():
        bad = _first_non_finite(part)
        if bad:
            raise CheckpointError(f"its {what} hold non-finite values (NaN or inf) in '{bad}'",
                                  expected="finite weights", path=path,
                                  fix="training diverged before this checkpoint was saved: resume from an "
                                      "earlier one or re-train with a lower --lr")


def _first_non_finite(obj: Any, name: str = "") -> str:
    if isinstance(obj, torch.Tensor):
        return name if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else ""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        found = _first_non_finite(v, f"{name}.{k}" if name else str(k))
        if found:
            return found
    return ""


def _plain(obj: Any) -> Any:
    """Tuples to lists, so the payload is plain data for weights_only loading."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj

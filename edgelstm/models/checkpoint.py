"""Checkpoints: weights plus everything needed to rebuild and deploy the model.

A checkpoint is a plain dict of tensors, numbers, strings and lists. It loads with
``torch.load(..., weights_only=True)``: no pickled code is ever run.

Payload keys: ``format``, ``version``, ``model_name`` (registry name), ``model_config`` (kwargs of
``create_model``), ``state_dict``, ``classes`` (names, index = class id), ``data``, ``metrics``,
``extra`` (optimiser/scheduler state, epoch, history: only last.pt needs it, for ``--resume``).

``data`` holds the facts export and the runtime rely on. These keys are stable:

==================  ==========================================================================
``kind``            "frames" (uint8 RGB clips into an encoder) or "features" (float32 per step)
``size``            [H, W] of the frames the model takes; null for features
``mean``, ``std``   per RGB channel on the 0..1 scale; the model's FrameNorm applies exactly these
                    (frames: statistics of the training frames; features: unused)
``clip_len``        T, frames per clip in training
``stride``          source frames between two model frames (1 for the synthetic set)
``fps``             rate of model frames in training (source fps / stride); 0 when unknown
``feature_size``    width of one LSTM step input: the encoder's output for frames, F for features
``sampling``        "uniform" or "stride": how T frames were taken from a clip
``resize``          "area": how frames were resized (OpenCV INTER_AREA)
``source``          the --data it was trained on ("synthetic", a path)
``data_seed``       seed of the synthetic set or of carving val/test
``synthetic_counts``  [train, val, test] clips of the synthetic set; null otherwise
==================  ==========================================================================
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgelstm.errors import CheckpointError
from edgelstm.fsutil import atomic_path, sha256_file
from edgelstm.models.registry import create_model

FORMAT = "edgelstm-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: nn.Module
    name: str                      # registry name
    config: dict[str, Any]         # kwargs for create_model
    classes: list[str]
    data: dict[str, Any]           # preprocessing and temporal facts (keys in the module docstring)
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
        "data": _plain(ckpt.data),
        "metrics": _plain(ckpt.metrics),
        "extra": ckpt.extra,
    }
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
    model = create_model(payload["model_name"], **payload["model_config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"weights do not fit model '{payload['model_name']}': {str(e)[:200]}",
                              fix="the checkpoint is damaged or from an incompatible version", path=path) from None
    model.eval()
    return Checkpoint(model=model, name=payload["model_name"], config=payload["model_config"],
                      classes=list(payload["classes"]), data=payload["data"], metrics=payload.get("metrics", {}),
                      extra=payload.get("extra", {}) if with_extra else {}, path=path, sha256=sha256_file(path))


def _plain(obj: Any) -> Any:
    """Tuples to lists, so the payload is plain data for weights_only loading."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj

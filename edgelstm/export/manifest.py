"""Build the manifest from a checkpoint, and seal a bundle folder: embed the spec, hash, write.

Sealing order makes the spec and the hashes consistent: every ONNX file first receives
``manifest.without_hashes()`` in its ``metadata_props``, then every file is hashed, then
``manifest.json`` (with the hashes) is written.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from edgelstm import __version__, spec
from edgelstm.fsutil import sha256_file, write_text_atomic
from edgelstm.spec import (Artifact, Backend, ColourOrder, FeatureNorm, FileHash, Manifest, ModelInfo, ModelKind,
                           Precision, Preprocess, ResetPolicy, Role, Temporal, TensorSpec, Versions)

log = logging.getLogger(__name__)

# Artefact file names: one table. "{role}" and "{precision}" are filled in; OpenVINO adds .bin beside .xml.
FILE_STEM = "{role}-{precision}"


def artifact_files(role: Role, backend: Backend, precision: Precision) -> tuple[str, ...]:
    stem = FILE_STEM.format(role=role, precision=precision)
    if backend == Backend.OPENVINO:
        return (f"openvino/{stem}.xml", f"openvino/{stem}.bin")
    return (f"{stem}.onnx",)


def new_artifact(role: Role, backend: Backend, precision: Precision, io: tuple[tuple[TensorSpec, ...], ...],
                 **kw: Any) -> Artifact:
    files = tuple(FileHash(p, "", 0) for p in artifact_files(role, backend, precision))
    return Artifact(role, backend, precision, files, io[0], io[1], **kw)


def model_info(name: str, model: Any, size: tuple[int, int] | None) -> ModelInfo:
    from edgelstm.models.macs import count_params, macs_per_frame

    from edgelstm.export.graphs import kind_of

    kind = kind_of(model)
    lstm = model.lstm
    macs = macs_per_frame(model, size=size) if kind == ModelKind.FRAMES else macs_per_frame(
        model, feature_size=lstm.input_size)
    carries = bool(getattr(model, "carries_features", False))
    width = _encoded_width(model, size) if carries else lstm.input_size  # a motion model's step takes its map
    return ModelInfo(name=name, kind=kind, num_classes=model.head.out_features, feature_size=width,
                     hidden_size=lstm.hidden_size, num_layers=lstm.num_layers, params=count_params(model),
                     macs_per_frame=macs, carries_features=carries)


def _encoded_width(model: Any, size: tuple[int, int] | None) -> int:
    """What ``encode_frames`` writes per frame at ``size`` (a motion model's map depends on the frame size)."""
    import torch

    if size is None:
        raise ValueError("a model that carries its features needs the frame size")
    was = model.training
    with torch.no_grad():
        width = int(model.eval().encode_frames(torch.zeros(1, size[0], size[1], 3, dtype=torch.uint8)).shape[1])
    model.train(was)
    return width


def preprocess(model: Any, data: spec.DataFacts, size: tuple[int, int]) -> Preprocess:
    norm = model.norm  # the in-graph normalisation is the truth, not the dataset's statistics
    return Preprocess(size=(int(size[0]), int(size[1])), colour_order=ColourOrder.BGR,
                      mean=tuple(float(v) for v in norm.mean), std=tuple(float(v) for v in norm.std),  # type: ignore[arg-type]
                      resize=data.resize, layout="NHWC")


def feature_norm(model: Any) -> FeatureNorm | None:
    """A feature model's in-graph standardisation, read from the model (the truth), or None."""
    if not getattr(model, "standardized", False):
        return None
    return FeatureNorm(mean=tuple(float(-v) for v in model.feature_shift),
                       std=tuple(float(1.0 / v) for v in model.feature_scale))


def temporal(data: spec.DataFacts) -> Temporal:
    # Training clips start from a zero state; a gap of more than a few frame periods (or one second)
    # means the stream is no longer the continuous video the model was trained on.
    max_gap = max(1.0, 4.0 / data.fps) if data.fps > 0 else 1.0
    return Temporal(clip_len=data.clip_len, frame_stride=data.stride, train_fps=data.fps,
                    reset=ResetPolicy(max_gap_s=max_gap, on_reconnect=True, every_frames=0))


def versions(**extra: str) -> Versions:
    import onnx
    import onnxruntime
    import torch

    from edgelstm.export.onnx import OPSET

    fields: dict[str, Any] = {"toolkit": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                              "opset": OPSET, "onnxruntime": onnxruntime.__version__}
    try:
        import openvino

        fields["openvino"] = openvino.__version__
    except ImportError:
        pass
    fields.update(extra)
    return Versions(**fields)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def seal(folder: Path, manifest: Manifest) -> Manifest:
    """Embed the hash-free spec in each ONNX file, hash every file, write manifest.json. Returns the final manifest."""
    from edgelstm.export.onnx import embed_spec

    embedded = manifest.without_hashes().to_json()
    for art in manifest.artifacts:
        if art.backend == Backend.ONNXRUNTIME:
            embed_spec(folder / art.files[0].path, embedded)
    arts = []
    for art in manifest.artifacts:
        files = tuple(FileHash(f.path, sha256_file(folder / f.path), (folder / f.path).stat().st_size)
                      for f in art.files)
        arts.append(dataclasses.replace(art, files=files))
    final = dataclasses.replace(manifest, artifacts=tuple(arts))
    write_text_atomic(folder / spec.MANIFEST_NAME, final.to_json())
    return final

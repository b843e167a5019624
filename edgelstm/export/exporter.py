"""``export_bundle``: checkpoint -> a bundle folder that the torch-free runtime runs by itself.

The bundle is built in a staging folder beside ``out_dir`` and moved into place only when every
artefact has passed its streaming-equivalence check, so a failed or interrupted export never leaves
a half-written bundle that looks valid.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgelstm import spec
from edgelstm.errors import ExportCheckError, UsageError, unknown_choice
from edgelstm.quantreport import MIN_FINAL_AGREEMENT, Int8Report
from edgelstm.runtime.stream import BackendOptions
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.frames import graph_order
from edgelstm.spec import Backend, Manifest, ModelKind, ParityResult, Precision, Role

log = logging.getLogger(__name__)


class GraphLayout(StrEnum):
    SPLIT = "split"  # encoder (stateless, batched across streams) + step (carries the state)
    FUSED = "fused"  # one graph: frame and state in, logits and state out


FORMATS = {"onnx": Backend.ONNXRUNTIME, "openvino": Backend.OPENVINO}


@dataclass
class ExportReport:
    path: Path
    manifest: Manifest
    quantization: Int8Report | None = None  # when --int8
    notes: list[str] = field(default_factory=list)

    def table(self) -> Any:
        from edgelstm.export.report import export_table

        return export_table(self)


def parse_formats(formats: str | tuple[str, ...] | list[str]) -> tuple[Backend, ...]:
    names = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    out = []
    for n in names:
        if n not in FORMATS:
            raise unknown_choice("format", n, FORMATS, fix="pass --format onnx or --format onnx,openvino")
        out.append(FORMATS[n])
    if Backend.ONNXRUNTIME not in out:
        out.insert(0, Backend.ONNXRUNTIME)  # OpenVINO IR is converted from the checked ONNX file
    return tuple(dict.fromkeys(out))


def export_bundle(checkpoint_path: str | Path, out_dir: str | Path, *, formats: Any = ("onnx",),
                  int8: bool = False, calib_data: str | None = None, size: tuple[int, int] | None = None,
                  force: bool = False, max_drop: float = 1.0, min_agreement: float = MIN_FINAL_AGREEMENT,
                  graph: str = GraphLayout.SPLIT, parity_frames: int = 120, calib_clips: int = 64,
                  eval_clips: int = 200) -> ExportReport:
    """Export a checkpoint as a streaming bundle; see the module docstring and issue 3."""
    from edgelstm.fsutil import OutputKind, atomic_dir, check_outputs, check_replaceable
    from edgelstm.models.checkpoint import load_checkpoint

    inputs = [("CHECKPOINT", checkpoint_path), ("--calib-data", calib_data)]
    check_replaceable(out_dir, OutputKind.BUNDLE, force=force)  # before any work
    check_outputs(inputs=inputs, outputs=[("--out", out_dir)], folders=["--out"])
    backends = parse_formats(formats)
    try:
        layout = GraphLayout(graph)
    except ValueError:
        raise unknown_choice("graph layout", str(graph), [g.value for g in GraphLayout]) from None
    ckpt = load_checkpoint(checkpoint_path)
    if int8:  # usage errors before any work
        from edgelstm.export.calib import resolve_calib_data
        from edgelstm.export.quantize import check_gate_clips, gate_settings

        settings = gate_settings(max_drop, min_agreement)
        check_gate_clips(settings, eval_clips)
        calib_data = resolve_calib_data(calib_data, ckpt.data.source)
    from edgelstm.export.graphs import kind_of

    kind = kind_of(ckpt.model)
    if kind == ModelKind.FRAMES:
        size = _frame_size(size, ckpt.data)
    elif size is not None:
        raise UsageError("--size was given for a feature model", expected="no --size (features have no frames)",
                         fix="drop --size")
    if kind == ModelKind.FEATURES and layout == GraphLayout.FUSED:
        layout = GraphLayout.SPLIT  # a feature model has no encoder: its step graph is the whole model

    with atomic_dir(out_dir, kind=OutputKind.BUNDLE, force=force, inputs=inputs) as stage:
        manifest = build_fp32(ckpt, stage, size=size, layout=layout, backends=backends, frames=parity_frames)
        quant = None
        if int8:
            from edgelstm.export.quantize import add_int8

            manifest, quant = add_int8(stage, manifest, calib_data=calib_data, backends=backends,
                                       settings=settings, calib_clips=calib_clips, eval_clips=eval_clips)
        from edgelstm.export.manifest import seal

        manifest = seal(stage, manifest)
    log.info("bundle written to %s", out_dir)
    return ExportReport(Path(out_dir), manifest, quant)


def _frame_size(size: tuple[int, int] | None, data: spec.DataFacts) -> tuple[int, int]:
    if size is None:
        if data.size is None:
            raise UsageError("the checkpoint does not say which frame size it was trained at",
                             expected="--size H,W", fix="pass --size, e.g. --size 64,64")
        return data.size
    if len(size) != 2 or min(size) < 8:
        raise UsageError(f"--size {size} is not a frame size", expected="H,W of at least 8 each",
                         fix="pass --size like 64,64")
    return int(size[0]), int(size[1])


def build_fp32(ckpt: Any, stage: Path, *, size: tuple[int, int] | None, layout: GraphLayout,
               backends: tuple[Backend, ...], frames: int) -> Manifest:
    """Export the fp32 artefacts into ``stage`` and check each; returns the unsealed manifest."""
    from edgelstm.export import graphs, manifest as mf, onnx as ox, parity
    from edgelstm.export.detect import task_fields

    model = graphs.deployable(ckpt.model, ckpt.name, size)
    info = mf.model_info(ckpt.name, ckpt.model, size)
    roles = _roles(info.kind, layout)
    specs = {
        Role.ENCODER: (lambda: spec.encoder_io(size, info.feature_size)),  # type: ignore[arg-type]
        Role.STEP: (lambda: spec.step_io(info)),
        Role.FUSED: (lambda: spec.step_io(info, size=size, fused=True)),
        Role.CLIP: (lambda: spec.clip_io(info, size)),
    }
    modules = {
        Role.ENCODER: lambda: graphs.EncoderGraph(model),
        Role.STEP: lambda: graphs.step_graph(model, fused=False),
        Role.FUSED: lambda: graphs.step_graph(model, fused=True),
        Role.CLIP: lambda: graphs.ClipGraph(model),
    }
    artifacts = []
    for role in roles:
        io = specs[role]()
        art = mf.new_artifact(role, Backend.ONNXRUNTIME, Precision.FP32, io, inference_precision="f32")
        ox.export_onnx(modules[role](), stage / art.files[0].path, *io)
        artifacts.append(art)
    manifest = Manifest(
        format_version=spec.FORMAT_VERSION, model=info, labels=tuple(ckpt.classes),
        preprocess=mf.preprocess(model, ckpt.data, size) if size is not None else None,
        features=mf.feature_norm(model),
        temporal=mf.temporal(ckpt.data), state=spec.state_specs(info.num_layers, info.hidden_size, info.carried_size),
        artifacts=tuple(artifacts), source_checkpoint_sha256=ckpt.sha256, parity=(), versions=mf.versions(),
        created=mf.now(), data_source=ckpt.data.source, **task_fields(ckpt))
    X = parity.parity_sequence(manifest, frames=frames)
    ref = parity.torch_reference(ckpt.model, X)  # the original model, RGB input, whole sequences
    X_dev = graph_order(X, manifest)
    results = parity.check_artifacts(Bundle(stage, manifest), Backend.ONNXRUNTIME, ref, X_dev)
    if Backend.OPENVINO in backends:
        manifest, ov_results = _add_openvino(stage, manifest, ref, X_dev)
        results += ov_results
    manifest = dataclasses.replace(manifest, parity=tuple(results))
    _fail_on_parity(manifest.parity, stage)
    from edgelstm.export.caption import with_decoder  # a captioner's word decoder, its own step graph

    return with_decoder(ckpt, stage, _with_selftest(stage, manifest), backends)


def _with_selftest(stage: Path, manifest: Manifest) -> Manifest:
    """The FP32 ONNX artefact's answer to the seeded self-test stream (parity just proved it equals PyTorch),
    stored for ``Engine.load(verify=True)`` to replay on the device."""
    from edgelstm.runtime.selftest import record
    from edgelstm.runtime.stream import open_chain

    chain = open_chain(Bundle(stage, manifest), Backend.ONNXRUNTIME, Precision.FP32)
    return dataclasses.replace(manifest, selftest=record(chain))


def _roles(kind: ModelKind, layout: GraphLayout) -> tuple[Role, ...]:
    if kind == ModelKind.FEATURES:
        return (Role.STEP, Role.CLIP)
    if layout == GraphLayout.FUSED:
        return (Role.FUSED, Role.CLIP)
    return (Role.ENCODER, Role.STEP, Role.CLIP)


def _add_openvino(stage: Path, manifest: Manifest, ref: Any, X_dev: Any) -> tuple[Manifest, list[ParityResult]]:
    """Convert every fp32 ONNX artefact to IR; parity with f32 inference, bf16 deviation recorded."""
    from edgelstm.export import manifest as mf, openvino as ovx, parity

    arts = list(manifest.artifacts)
    for art in manifest.artifacts:
        if art.backend != Backend.ONNXRUNTIME or art.precision != Precision.FP32:
            continue
        ov_art = mf.new_artifact(art.role, Backend.OPENVINO, Precision.FP32, (art.inputs, art.outputs))
        xml = stage / ov_art.files[0].path
        xml.parent.mkdir(parents=True, exist_ok=True)
        ovx.convert_to_ir(stage / art.files[0].path, xml)
        default = ovx.default_inference_precision(xml)
        arts.append(dataclasses.replace(ov_art, inference_precision=default))
    manifest = dataclasses.replace(manifest, artifacts=tuple(arts))
    bundle = Bundle(stage, manifest)
    results = parity.check_artifacts(bundle, Backend.OPENVINO, ref, X_dev,
                                     opts=BackendOptions(inference_precision="f32"))
    # The plugin's default (bf16 on this class of CPU): measured and recorded, not gated on the fp32 tolerance.
    default = next(a.inference_precision for a in arts if a.backend == Backend.OPENVINO)
    if default != "f32":
        for r in parity.check_artifacts(bundle, Backend.OPENVINO, ref, X_dev, tol=float("inf"),
                                        opts=BackendOptions(inference_precision=default),
                                        reference=f"torch ({default} inference)"):
            results.append(dataclasses.replace(r, tolerance=-1.0, passed=r.argmax_agreement >= 0.98))
            note = (f"{default} inference (the plugin default here): max|dlogit| {r.max_abs_diff:.3g}, "
                    f"argmax agreement {100 * r.argmax_agreement:.1f}% over {r.frames} steps; "
                    f"set inference_precision=f32 for exact fp32")
            arts = [dataclasses.replace(a, notes=note) if a.key == r.artifact else a for a in arts]
        manifest = dataclasses.replace(manifest, artifacts=tuple(arts))
    return manifest, results


def _fail_on_parity(results: tuple[ParityResult, ...], stage: Path) -> None:
    bad = [r for r in results if not r.passed and r.tolerance >= 0]
    if bad:
        lines = "; ".join(f"{r.artifact}: max|diff| {r.max_abs_diff:.2e} (tolerance {r.tolerance:g}), argmax "
                          f"agreement {100 * r.argmax_agreement:.2f}%" for r in bad)
        raise ExportCheckError(f"streaming-equivalence check failed: {lines}",
                               expected="the exported models to match PyTorch step by step",
                               fix="nothing was written; report this with the checkpoint (an exporter or backend "
                                   "bug), or try --graph fused/split")

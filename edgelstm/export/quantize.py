"""INT8 behind an accuracy gate, for onnxruntime and OpenVINO.

For each backend the gate walks a ladder of layer groups kept in float, from none to the stem, the
way NNCF's accuracy control reverts the most harmful layers: it quantizes, evaluates FP32 and INT8 on
the held-out split through the runtime's evaluation path, and stops at the first rung whose
accuracy drop is within ``max_drop`` points and whose final decisions agree with FP32 on >= 98% of
clips. When no rung fits, nothing is written and the error shows every trial.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgelstm import spec
from edgelstm.errors import ExportCheckError, unknown_choice
from edgelstm.runtime.backends import open_model
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.spec import Artifact, Backend, FileHash, Manifest, Precision, Role

log = logging.getLogger(__name__)

LADDER: tuple[tuple[str, ...], ...] = ((), ("head",), ("lstm", "head"), ("lstm", "head", "proj"),
                                       ("lstm", "head", "proj", "stem"))
MIN_FINAL_AGREEMENT = 0.98


@dataclass
class QuantReport:
    trials: list[Any] = field(default_factory=list)        # gate.Trial, every attempt
    chosen: dict[str, Any] = field(default_factory=dict)   # backend -> the Trial that passed
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)  # sizes, latency, op counts, precisions
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def trial(t: Any) -> dict[str, Any]:
            return {**{k: v for k, v in dataclasses.asdict(t).items() if k != "details"},
                    "drop_points": round(t.drop, 3), "kept_float": list(t.kept_float)}

        return {"gate": {"max_drop_points": self.data.get("max_drop"), "min_final_agreement": MIN_FINAL_AGREEMENT},
                "data": self.data, "trials": [trial(t) for t in self.trials],
                "backends": {b: {**info, "chosen": trial(self.chosen[b])} for b, info in self.backends.items()}}

    def table(self) -> Any:
        from edgelstm.export.report import quant_table

        return quant_table(self)


def _strip_int8(manifest: Manifest) -> Manifest:
    return dataclasses.replace(manifest, artifacts=tuple(a for a in manifest.artifacts
                                                         if a.precision != Precision.INT8), quantization={})


def add_int8(stage: Path, manifest: Manifest, *, calib_data: str | None, ckpt_data: dict[str, Any] | None,
             backends: tuple[Backend, ...], max_drop: float = 1.0, calib_clips: int = 64,
             eval_clips: int = 200) -> tuple[Manifest, QuantReport]:
    """Add INT8 artefacts for ``backends`` to the unsealed bundle in ``stage``."""
    from edgelstm.export import calib, gate

    calib_data = calib.resolve_calib_data(calib_data, ckpt_data or {"source": manifest.data_source})
    manifest = _strip_int8(manifest)
    gd = calib.load_gate_data(calib_data, manifest, calib_clips=calib_clips, eval_clips=eval_clips)
    feeds = _calibration_feeds(Bundle(stage, manifest), calib.device_frames(gd.calib, manifest))
    report = QuantReport(data={"source": gd.source, "split": gd.split, "eval_clips": int(len(gd.y)),
                               "calib_clips": int(len(gd.calib)), "max_drop": max_drop})
    for backend in backends:
        fp32 = gate.logits(Bundle(stage, manifest), gd.X, backend, Precision.FP32, gd.lengths)
        for kept in LADDER:
            trial_manifest = _quantize_all(stage, manifest, backend, kept, feeds)
            int8 = gate.logits(Bundle(stage, trial_manifest), gd.X, backend, Precision.INT8, gd.lengths)
            trial = gate.judge(backend, kept, fp32, int8, gd.y, max_drop=max_drop,
                               min_final_agreement=MIN_FINAL_AGREEMENT)
            report.trials.append(trial)
            log.info("%s int8, float %s: drop %.2f points, final agreement %.3f -> %s", backend, kept or "none",
                     trial.drop, trial.final_agreement, "pass" if trial.passed else "retry")
            if trial.passed:
                manifest = trial_manifest
                report.chosen[str(backend)] = trial
                report.backends[str(backend)] = _describe(Bundle(stage, manifest), backend)
                break
        else:
            from edgelstm.export.report import trials_text

            raise ExportCheckError(f"INT8 on {backend} does not fit the accuracy gate even with "
                                   f"{', '.join(LADDER[-1])} in float:\n{trials_text(report.trials)}",
                                   expected=f"an accuracy drop <= {max_drop} points and >= "
                                            f"{100 * MIN_FINAL_AGREEMENT:.0f}% final-decision agreement",
                                   fix="deploy FP32 (nothing was written), raise --max-drop, or calibrate on more "
                                       "representative --calib-data")
    _clean_unused(stage, manifest)
    versions = manifest.versions
    if Backend.OPENVINO in backends:
        import nncf

        versions = dataclasses.replace(versions, nncf=nncf.__version__)
    return dataclasses.replace(manifest, quantization=report.to_json(), versions=versions), report


def _calibration_feeds(bundle: Bundle, X_dev: Any) -> dict[Role, list[dict[str, Any]]]:
    """Per streaming role, the feeds it sees when the FP32 chain runs the calibration clips."""
    from edgelstm.export.calib import stepwise_feeds

    m = bundle.manifest
    runners = {a.role: open_model(bundle, a) for a in m.artifacts
               if a.backend == Backend.ONNXRUNTIME and a.precision == Precision.FP32 and a.role != Role.CLIP}
    out: dict[Role, list[dict[str, Any]]] = {}
    if Role.ENCODER in runners:
        out[Role.ENCODER] = list(stepwise_feeds(X_dev, m, first=spec.FRAMES, with_state=False))
    first = m.artifact(Role.FUSED if Role.FUSED in runners else Role.STEP, Backend.ONNXRUNTIME, Precision.FP32)
    role = first.role  # type: ignore[union-attr]
    out[role] = list(stepwise_feeds(X_dev, m, first=first.inputs[0].name, with_state=True,  # type: ignore[union-attr]
                                    step_runner=runners[role], encoder_runner=runners.get(Role.ENCODER)))
    return out


def _quantize_all(stage: Path, manifest: Manifest, backend: Backend, kept: tuple[str, ...],
                  feeds: dict[Role, list[dict[str, Any]]]) -> Manifest:
    """INT8 artefacts of every streaming role for ``backend`` with ``kept`` groups in float."""
    from edgelstm.export import manifest as mf, quantize_ort, quantize_ov

    arts = [a for a in manifest.artifacts if not (a.backend == backend and a.precision == Precision.INT8)]
    for role, role_feeds in feeds.items():
        src = manifest.artifact(role, backend, Precision.FP32)
        if src is None:
            continue
        files = mf.artifact_files(role, backend, Precision.INT8)
        dst = stage / files[0]
        if backend == Backend.ONNXRUNTIME:
            chosen = quantize_ort.quantize(stage / src.files[0].path, dst, kept, role_feeds)
            did = any(chosen.values())
        else:
            did = quantize_ov.quantize(stage / src.files[0].path, dst, kept, role_feeds)
        notes = f"float: {', '.join(kept) or 'none'}"
        if did:
            art = Artifact(role, backend, Precision.INT8, tuple(FileHash(p, "", 0) for p in files), src.inputs,
                           src.outputs, inference_precision=src.inference_precision, notes=notes)
        else:  # nothing left to quantize in this graph: the INT8 chain uses the FP32 file
            art = dataclasses.replace(src, precision=Precision.INT8, notes=f"{notes}; this graph runs FP32")
        arts.append(art)
    return dataclasses.replace(manifest, artifacts=tuple(arts))


BATCHES = (1, 8, 32)  # streams stepped together: the runtime batches the encoder (and step) across streams


def _describe(bundle: Bundle, backend: Backend) -> dict[str, Any]:
    """Sizes, per-frame latency per batch, op types and what ran in which precision, FP32 vs INT8.

    ``int8_fp32_latency_ratio`` is batch 1 (one stream), the one ``int8_pays`` and the runtime's
    ``int8_verdict`` read; ``int8_fp32_latency_ratio_by_batch`` has every batch measured and
    ``int8_pays_from_batch`` the smallest where INT8 is faster (None: at none), so a multi-stream
    engine can choose INT8 where a single stream keeps FP32.
    """
    from edgelstm.export import gate, onnx as ox, openvino as ovx

    m = bundle.manifest
    lat = gate.latency_by_batch(bundle, backend, (Precision.FP32, Precision.INT8), batches=BATCHES, frames=320)
    out: dict[str, Any] = {}
    for prec in (Precision.FP32, Precision.INT8):
        arts = [a for a in m.artifacts if a.backend == backend and a.precision == prec and a.role != Role.CLIP]
        info: dict[str, Any] = {"bytes": sum((bundle.path / f.path).stat().st_size for a in arts for f in a.files),
                                "latency_ms": round(lat[prec][1], 4),
                                "latency_ms_by_batch": {str(b): round(v, 4) for b, v in lat[prec].items()},
                                "graphs": {}}
        for a in arts:
            path = bundle.path / a.files[0].path
            g: dict[str, Any] = {"file": a.files[0].path}
            if backend == Backend.ONNXRUNTIME:
                g["op_types"] = ox.op_counts(path)
            else:
                import openvino as ov

                g["op_types"] = ovx.op_counts_ir(path)
                g["executed"] = ovx.exec_precisions(ov.Core().compile_model(str(path), "CPU"))
            info["graphs"][str(a.role)] = g
        out[str(prec)] = info
    ratios = {b: lat[Precision.INT8][b] / max(lat[Precision.FP32][b], 1e-9) for b in BATCHES}
    out["int8_fp32_latency_ratio"] = round(ratios[1], 3)
    out["int8_fp32_latency_ratio_by_batch"] = {str(b): round(r, 3) for b, r in ratios.items()}
    out["int8_pays"] = bool(ratios[1] <= 1.0)
    out["int8_pays_from_batch"] = next((b for b in BATCHES if ratios[b] <= 1.0), None)
    if not out["int8_pays"]:
        log.warning("%s: INT8 is slower than FP32 for one stream here (%.2fx; by batch %s); the device profile "
                    "keeps FP32", backend, ratios[1], ", ".join(f"{b}: {r:.2f}x" for b, r in ratios.items()))
    return out


def _clean_unused(stage: Path, manifest: Manifest) -> None:
    used = {f.path for a in manifest.artifacts for f in a.files}
    for p in list(stage.rglob("*-int8.*")):
        if str(p.relative_to(stage)) not in used:
            p.unlink()


def quantize_bundle(bundle_dir: str | Path, *, calib_data: str | None = None,
                    backends: tuple[str, ...] | None = None, max_drop: float = 1.0, force: bool = True,
                    calib_clips: int = 64, eval_clips: int = 200) -> QuantReport:
    """Add INT8 artefacts to an existing bundle: built in a copy beside it, swapped in whole."""
    from edgelstm.export.manifest import seal
    from edgelstm.fsutil import atomic_dir

    bundle = load_bundle(bundle_dir)  # verifies hashes before anything is copied
    have = tuple(dict.fromkeys(a.backend for a in bundle.manifest.artifacts))
    chosen = have if not backends else tuple(_backend(b, have) for b in backends)
    with atomic_dir(bundle.path, force=force) as stage:
        shutil.rmtree(stage)
        shutil.copytree(bundle.path, stage)
        manifest, report = add_int8(stage, bundle.manifest, calib_data=calib_data, ckpt_data=None,
                                    backends=chosen, max_drop=max_drop, calib_clips=calib_clips,
                                    eval_clips=eval_clips)
        seal(stage, manifest)
    return report


def _backend(name: str, have: tuple[Backend, ...]) -> Backend:
    aliases = {"onnx": Backend.ONNXRUNTIME, "ort": Backend.ONNXRUNTIME, "ov": Backend.OPENVINO}
    b = aliases.get(name.lower()) or next((x for x in Backend if x.value == name.lower()), None)
    if b is None or b not in have:
        raise unknown_choice("backend", name, [str(x) for x in have],
                             fix="quantize a backend the bundle holds (re-export with --format onnx,openvino)")
    return b

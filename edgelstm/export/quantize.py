"""INT8 behind an accuracy gate, for onnxruntime and OpenVINO.

For each backend the gate walks a ladder of layer groups kept in float, from none to the stem, the
way NNCF's accuracy control reverts the most harmful layers: it quantizes, evaluates FP32 and INT8 on
the held-out split through the runtime's evaluation path, and stops at the first rung whose
accuracy drop is within ``max_drop`` points and whose final decisions agree with FP32 on >= 98% of
clips. When no rung fits, nothing is written and the error shows every trial. The gate refuses to run
on fewer held-out clips than its tolerance needs (:func:`edgelstm.quantreport.clips_needed`), and each
trial records its clip count and a confidence interval. The result is an
:class:`~edgelstm.quantreport.Int8Report`, stored in the manifest.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

from edgelstm.errors import DataError, ExportCheckError, UsageError, unknown_choice
from edgelstm.export import gate
from edgelstm.export.int8_backends import INT8_BACKENDS
from edgelstm.quantreport import (MIN_FINAL_AGREEMENT, BackendReport, GateData, GateSettings, Int8Report,
                                  PrecisionFacts, Trial, clips_needed)
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.frames import graph_order
from edgelstm.runtime.stream import open_chain
from edgelstm.spec import Artifact, Backend, FileHash, Manifest, Precision, Role, Task

log = logging.getLogger(__name__)

# Layer groups kept in float, rung by rung. Each backend applies its own rules (quantize_ort keeps the
# stem and depthwise convs float by default; NNCF keeps proj and head together), so rungs that would
# run the same graphs as the one before are skipped, and trials record what really stayed float.
LADDER: tuple[tuple[str, ...], ...] = ((), ("head",), ("lstm", "head"), ("lstm", "head", "proj"),
                                       ("lstm", "head", "proj", "stem"))
BATCHES = (1, 8, 32)  # streams stepped together: the runtime batches the encoder (and step) across streams


def gate_settings(max_drop: float, min_agreement: float = MIN_FINAL_AGREEMENT) -> GateSettings:
    """The gate's thresholds, checked: usage errors (exit 2) before any work."""
    if not (max_drop > 0 and max_drop <= 100):
        raise UsageError(f"--max-drop {max_drop}", expected="a drop in accuracy points, > 0 and <= 100",
                         fix="pass e.g. --max-drop 1 (the default)")
    if not (0 < min_agreement < 1):
        raise UsageError(f"--min-agreement {min_agreement}", expected="a fraction of clips, > 0 and < 1",
                         fix="pass e.g. --min-agreement 0.98 (the default)")
    return GateSettings(float(max_drop), float(min_agreement), clips_needed(max_drop, min_agreement))


def check_gate_clips(settings: GateSettings, eval_clips: int) -> None:
    """Refuse a gate whose tolerance one flipped clip could break (a usage error before any work)."""
    if eval_clips < settings.min_clips:
        raise UsageError(
            f"{eval_clips} held-out clips for an INT8 gate of {settings.max_drop_points:g} points and "
            f"{100 * settings.min_final_agreement:g}% final agreement (one clip would be "
            f"{100 / max(1, eval_clips):.1f} points)",
            expected=f"at least {settings.min_clips} clips, so one flipped clip cannot decide the gate",
            fix=f"pass --eval-clips {settings.min_clips} or more, or a larger --max-drop / smaller --min-agreement")


def add_int8(stage: Path, manifest: Manifest, *, calib_data: str | None, backends: tuple[Backend, ...],
             settings: GateSettings, calib_clips: int = 64, eval_clips: int = 200,
             judge: gate.Judge = gate.judge) -> tuple[Manifest, Int8Report]:
    """Add INT8 artefacts for ``backends`` to the unsealed bundle in ``stage``, walking :data:`LADDER`
    until ``judge`` passes a trial. ``calib_data`` None: the data the model was trained on."""
    from edgelstm.export import calib

    check_gate_clips(settings, eval_clips)
    calib_data = calib.resolve_calib_data(calib_data, manifest.data_source)
    # INT8 of backends not re-quantized now is kept, with its part of the report
    old = manifest.quantization
    redo = {str(b) for b in backends}
    manifest = dataclasses.replace(manifest, quantization=None, artifacts=tuple(
        a for a in manifest.artifacts if not (a.precision == Precision.INT8 and a.backend in backends)))
    if manifest.task == Task.DETECT:  # frame mAP and delay on held-out video chunks (edgelstm.export.detect)
        from edgelstm.export.detect import judge_detect, load_detect_gate_data

        gd = load_detect_gate_data(calib_data, manifest, calib_clips=calib_clips, eval_clips=eval_clips)
        judge = judge_detect(manifest) if judge is gate.judge else judge
    elif manifest.task == Task.TRACK:  # closed-loop tracking of held-out sequences (edgelstm.export.track)
        from edgelstm.export.track import judge_track, load_track_gate_data

        gd = load_track_gate_data(calib_data, manifest, calib_clips=calib_clips, eval_clips=eval_clips)
        judge = judge_track if judge is gate.judge else judge
    elif manifest.task == Task.CAPTION:  # held-out captions: BLEU-4, CIDEr-D, motion words (export.caption_int8)
        from edgelstm.export.caption_int8 import judge_caption, load_caption_gate_data

        gd, refs = load_caption_gate_data(calib_data, manifest, calib_clips=calib_clips, eval_clips=eval_clips)
        judge = judge_caption(refs) if judge is gate.judge else judge
    else:
        gd = calib.load_gate_data(calib_data, manifest, calib_clips=calib_clips, eval_clips=eval_clips)
    if manifest.task != Task.DETECT and len(gd.y) < settings.min_clips:
        raise DataError(f"'{calib_data}' has {len(gd.y)} held-out clips the model can be scored on",
                        expected=f"at least {settings.min_clips} for this gate", path=calib_data,
                        fix="pass larger --calib-data, or a larger --max-drop / smaller --min-agreement")
    feeds = calibration_feeds(Bundle(stage, manifest), graph_order(gd.calib, manifest))
    if manifest.task == Task.CAPTION:  # the decoder, calibrated on the states and words it sees captioning them
        from edgelstm.export.caption_int8 import decoder_feeds

        feeds[Role.DECODER] = decoder_feeds(Bundle(stage, manifest), gd.calib)
    trials: list[Trial] = [t for t in old.trials if t.backend not in redo] if old else []
    reports: dict[str, BackendReport] = {k: v for k, v in old.backends.items() if k not in redo} if old else {}
    for backend in backends:
        manifest, chosen = _gate_backend(stage, manifest, backend, gd, feeds, settings, judge, trials)
        reports[str(backend)] = describe(Bundle(stage, manifest), backend, chosen)
    _clean_unused(stage, manifest)
    versions = manifest.versions
    if Backend.OPENVINO in backends:
        import nncf

        versions = dataclasses.replace(versions, nncf=nncf.__version__)
    report = Int8Report(settings, GateData(gd.source, gd.split, int(len(gd.y)), int(len(gd.calib)),
                                           settings.max_drop_points), tuple(trials), reports)
    return dataclasses.replace(manifest, quantization=report, versions=versions), report


def _gate_backend(stage: Path, manifest: Manifest, backend: Backend, gd: Any, feeds: dict[Role, list[Any]],
                  settings: GateSettings, judge: gate.Judge, trials: list[Trial]) -> tuple[Manifest, Trial]:
    """Walk the ladder for one backend; the manifest with its passing INT8 artefacts, and that trial."""
    run = gate.logits
    if manifest.task == Task.TRACK:  # boxes tracked in a closed loop: INT8 cuts its crops around its own boxes
        from edgelstm.export.track import track_boxes as run
    elif manifest.task == Task.CAPTION:  # the held-out clips' greedy captions (edgelstm.export.caption_int8)
        from edgelstm.export.caption_int8 import caption_run as run  # type: ignore[assignment]
    fp32 = run(Bundle(stage, manifest), gd.X, backend, Precision.FP32, gd.lengths)
    tried: set[tuple[str, ...]] = set()
    for rung in LADDER:
        kept = INT8_BACKENDS[backend].effective_float(rung)
        if kept in tried:
            continue  # the same graphs as a rung already judged
        tried.add(kept)
        trial_manifest = _quantize_all(stage, manifest, backend, kept, feeds)
        if trial_manifest is None:
            break  # nothing left to quantize: INT8 would be the FP32 model
        int8 = run(Bundle(stage, trial_manifest), gd.X, backend, Precision.INT8, gd.lengths)
        trial = judge(backend, kept, fp32, int8, gd.y, settings)
        trials.append(trial)
        log.info("%s int8, float %s: drop %.2f points (1 clip = %.2f), final agreement %.3f -> %s", backend,
                 kept or "none", trial.drop_points, trial.points_per_clip, trial.final_agreement,
                 "pass" if trial.passed else "retry")
        if trial.passed:
            return trial_manifest, trial
    from edgelstm.export.report import trials_text

    raise ExportCheckError(f"INT8 on {backend} does not fit the accuracy gate with any layers kept in float "
                           f"(tried: {'; '.join(', '.join(k) or 'none' for k in sorted(tried, key=len))}):\n"
                           f"{trials_text([t for t in trials if t.backend == str(backend)])}",
                           expected=f"an accuracy drop <= {settings.max_drop_points:g} points and >= "
                                    f"{100 * settings.min_final_agreement:g}% final-decision agreement",
                           fix="deploy FP32 (nothing was written), raise --max-drop, or calibrate on more "
                               "representative --calib-data")


def calibration_feeds(bundle: Bundle, X_dev: Any) -> dict[Role, list[dict[str, Any]]]:
    """Per streaming role, the feeds it sees when the FP32 onnxruntime chain streams the calibration clips
    (state from zero at each clip, carried step to step: the runtime's own loop records them)."""
    chain = open_chain(bundle, Backend.ONNXRUNTIME, Precision.FP32)
    out: dict[Role, list[dict[str, Any]]] = {}
    for start in range(0, len(X_dev), 8):
        chain.run(X_dev[start:start + 8], record=lambda role, feeds: out.setdefault(role, []).append(feeds))
    return out


def _quantize_all(stage: Path, manifest: Manifest, backend: Backend, kept: tuple[str, ...],
                  feeds: dict[Role, list[dict[str, Any]]]) -> Manifest | None:
    """INT8 artefacts of every streaming role for ``backend`` with ``kept`` groups in float; None when no
    graph had anything left to quantize."""
    from edgelstm.export import manifest as mf

    arts = [a for a in manifest.artifacts if not (a.backend == backend and a.precision == Precision.INT8)]
    quantized_any = False
    for role, role_feeds in feeds.items():
        src = manifest.artifact(role, backend, Precision.FP32)
        if src is None:
            continue
        files = mf.artifact_files(role, backend, Precision.INT8)
        did = INT8_BACKENDS[backend].quantize(stage / src.files[0].path, stage / files[0], kept, role_feeds)
        quantized_any |= did
        notes = f"float: {', '.join(kept) or 'none'}"
        if did:
            art = Artifact(role, backend, Precision.INT8, tuple(FileHash(p, "", 0) for p in files), src.inputs,
                           src.outputs, inference_precision=src.inference_precision, notes=notes)
        else:  # nothing left to quantize in this graph: the INT8 chain uses the FP32 file
            art = dataclasses.replace(src, precision=Precision.INT8, notes=f"{notes}; this graph runs FP32")
        arts.append(art)
    return dataclasses.replace(manifest, artifacts=tuple(arts)) if quantized_any else None


def describe(bundle: Bundle, backend: Backend, chosen: Trial) -> BackendReport:
    """Sizes, per-frame latency per batch, op types and what ran in which precision, FP32 vs INT8.

    ``int8_pays_from_batch`` is the smallest batch measured where INT8 is not slower (None: at none), so
    a multi-stream engine can choose INT8 where a single stream keeps FP32.
    """
    m = bundle.manifest
    lat = gate.latency_by_batch(bundle, backend, (Precision.FP32, Precision.INT8), batches=BATCHES, frames=320)
    facts = {}
    for prec in (Precision.FP32, Precision.INT8):
        arts = [a for a in m.artifacts if a.backend == backend and a.precision == prec and a.role != Role.CLIP]
        graphs = {str(a.role): dataclasses.replace(INT8_BACKENDS[backend].graph_ops(bundle.file(a)),
                                                   file=a.files[0].path) for a in arts}
        facts[prec] = PrecisionFacts(bytes=sum(bundle.file(a, i).stat().st_size for a in arts
                                               for i in range(len(a.files))),
                                     latency_ms=round(lat[prec][1], 4),
                                     latency_ms_by_batch={str(b): round(v, 4) for b, v in lat[prec].items()},
                                     graphs=graphs)
    # rounded once, and every verdict below reads the rounded figures the report shows
    ratios = {b: round(lat[Precision.INT8][b] / max(lat[Precision.FP32][b], 1e-9), 3) for b in BATCHES}
    rep = BackendReport(fp32=facts[Precision.FP32], int8=facts[Precision.INT8],
                        int8_fp32_latency_ratio=ratios[1],
                        int8_fp32_latency_ratio_by_batch={str(b): r for b, r in ratios.items()},
                        int8_pays=bool(ratios[1] <= 1.0),
                        int8_pays_from_batch=next((b for b in BATCHES if ratios[b] <= 1.0), None), chosen=chosen)
    if not rep.int8_pays:
        log.warning("%s: INT8 is slower than FP32 for one stream here (%.2fx; by batch %s); the device profile "
                    "keeps FP32", backend, ratios[1], rep.ratios_text())
    return rep


def _clean_unused(stage: Path, manifest: Manifest) -> None:
    used = {f.path for a in manifest.artifacts for f in a.files}
    for p in list(stage.rglob("*-int8.*")):
        if str(p.relative_to(stage)) not in used:
            p.unlink()


def quantize_bundle(bundle_dir: str | Path, *, calib_data: str | None = None,
                    backends: tuple[str, ...] | None = None, max_drop: float = 1.0,
                    min_agreement: float = MIN_FINAL_AGREEMENT, force: bool = True, calib_clips: int = 64,
                    eval_clips: int = 200, judge: gate.Judge = gate.judge) -> Int8Report:
    """Add INT8 artefacts to an existing bundle: built in a copy beside it, swapped in whole."""
    from edgelstm.export.manifest import seal
    from edgelstm.fsutil import OutputKind, atomic_dir, check_outputs

    settings = gate_settings(max_drop, min_agreement)
    check_gate_clips(settings, eval_clips)
    bundle = load_bundle(bundle_dir)  # verifies hashes before anything is copied
    check_outputs(outputs=[("BUNDLE", bundle.path)], folders=["BUNDLE"])  # replaced in place: writable?
    have = tuple(dict.fromkeys(a.backend for a in bundle.manifest.artifacts))
    chosen = have if not backends else tuple(_backend(b, have) for b in backends)
    with atomic_dir(bundle.path, kind=OutputKind.BUNDLE, force=force) as stage:
        shutil.rmtree(stage)
        shutil.copytree(bundle.path, stage)
        manifest, report = add_int8(stage, bundle.manifest, calib_data=calib_data, backends=chosen,
                                    settings=settings, calib_clips=calib_clips, eval_clips=eval_clips, judge=judge)
        seal(stage, manifest)
    return report


def _backend(name: str, have: tuple[Backend, ...]) -> Backend:
    aliases = {"onnx": Backend.ONNXRUNTIME, "ort": Backend.ONNXRUNTIME, "ov": Backend.OPENVINO}
    b = aliases.get(name.lower()) or next((x for x in Backend if x.value == name.lower()), None)
    if b is None or b not in have:
        raise unknown_choice("backend", name, [str(x) for x in have],
                             fix="quantize a backend the bundle holds (re-export with --format onnx,openvino)")
    return b

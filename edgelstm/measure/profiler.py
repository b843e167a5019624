"""``profile_bundle``: latency per stage in the live loop, for every configuration, with baselines.

Each configuration (device profile x backend x precision) is loaded fresh; its first inference is
timed on its own; after a warm-up, :func:`~edgelstm.runtime.loop.run_loop` runs it with a camera-rate
source (capture thread, temporal gate, preprocessing, encoder, LSTM step, postprocessing), then
un-paced for the loop's maximum throughput, then the model call alone, back to back, for the loop's
overhead. Beside the streaming rows, the same loop runs clip re-inference (the bundle's clip graph on
the last T frames for every decision) and, when torch and the checkpoint are here, PyTorch eager.
``streams=N`` adds N streams on one engine against N engines. ``accuracy=D`` adds accuracy and argmax
agreement with FP32 on a dataset split, through :mod:`edgelstm.measure.evaluate`.

The configurations and settings are in :mod:`~edgelstm.measure.config`, the measurement of one
configuration in :mod:`~edgelstm.measure.loop_measure`, the streams comparison in
:mod:`~edgelstm.measure.streams`; this module runs them in order and adds the baselines.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from edgelstm.errors import UsageError
from edgelstm.measure import accuracy as profile_accuracy
from edgelstm.measure.config import Interrupted, ProfileConfig, Settings, default_configs
from edgelstm.measure.harness import WindowEngine, render_frames
from edgelstm.measure.loop_measure import engine_call, measure, run_measured
from edgelstm.measure.report import ProfileReport, machine_info
from edgelstm.measure.streams import measure_streams
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.stream import ModelRunner, open_model
from edgelstm.spec import CLIP, CLIP_LOGITS, ModelKind, Precision, Role, Task

log = logging.getLogger(__name__)


def profile_bundle(bundle: str | Path | Bundle, *, configs: Sequence[ProfileConfig] | None = None,
                   devices: Sequence[str] | None = None, backends: Sequence[str] | None = None,
                   precisions: Sequence[str] | None = None, frames: int = 90, warmup: int = 20, fps: float = 30.0,
                   source: str = "synthetic", streams: int = 1, clip_len: int = 0, threads: int | None = None,
                   checkpoint: str | Path | None = None, accuracy: str | None = None, split: str = "test",
                   accuracy_clips: int | None = 200, baselines: bool = True,
                   progress: Callable[[str], None] | None = None, stop: threading.Event | None = None) -> ProfileReport:
    """Profile ``bundle`` in the live loop; see the module docstring. Returns a :class:`ProfileReport`.

    ``stop`` set (a signal handler, another thread) ends the run early: the measurement in progress is
    dropped and the report holds the rows completed so far, with ``report.interrupted`` saying where.
    """
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    m = b.manifest
    _check_profilable(b, frames=frames, streams=streams, warmup=warmup, fps=fps)
    s = Settings(frames, warmup, fps, source, streams, clip_len or m.temporal.clip_len, threads, baselines, stop)
    notes: list[str] = []
    if configs is None:
        configs, notes = default_configs(b, devices=devices, backends=backends, precisions=precisions)
    if not configs:
        raise UsageError("nothing to profile", expected="at least one usable configuration",
                         fix="run `edgelstm devices`; check the bundle has artefacts for the chosen backend")
    say = progress or (lambda msg: log.info("%s", msg))
    camera = render_frames(32) if source == "synthetic" else []
    report = _new_report(b, s, configs, notes)
    done = "configurations"
    try:
        for cfg in configs:
            done = f"profiling {cfg.label}"
            say(done)
            t0 = time.perf_counter()
            eng = Engine.load(b, device=cfg.device, backend=str(cfg.backend), precision=str(cfg.precision),
                              threads=threads)
            report.rows.append(measure(b, eng, s, camera, label=cfg.label, mode="stream", device=cfg.device,
                                        load_s=time.perf_counter() - t0))
            del eng
        _cold_note(report)
        if m.task == Task.CAPTION:  # the word decoder, timed per token (it runs when a caption is written)
            from edgelstm.measure.caption import decoder_notes

            done = "decoder"
            report.notes += decoder_notes(b, configs, threads)
        if baselines:
            done = "baselines"
            _baselines(b, report, s, camera, configs, checkpoint, say)
        if streams > 1:
            cfg = configs[0]
            done = f"{streams} streams"
            say(f"{streams} streams: one engine against {streams} engines ({cfg.label})")
            report.streams += measure_streams(b, cfg, streams, s, camera, threads=threads)
        if accuracy is not None:
            done = "accuracy"
            say(f"accuracy on {accuracy} ({split})")
            if stop is not None and stop.is_set():
                raise Interrupted
            profile_accuracy.add_accuracy(b, report, accuracy, split=split, limit=accuracy_clips,
                                          checkpoint=_checkpoint_or_none(b, checkpoint, report))
    except Interrupted:
        report.interrupted = f"stopped during {done.removeprefix('profiling ')}; {len(report.rows)} row(s) complete"
        log.warning("profile %s", report.interrupted)
    return report


def _cold_note(report: ProfileReport) -> None:
    """Say so when the camera rate itself slows the decisions (caches and clocks cool between frames)."""
    worst = max((r for r in report.rows if r.cold_factor == r.cold_factor), key=lambda r: r.cold_factor, default=None)
    if worst is not None and worst.cold_factor >= 1.5:
        report.notes.append(
            f"at the camera rate a decision takes {worst.cold_factor:.1f}x as long as back to back ({worst.label}: "
            f"{worst.stages['total']['p50']:.3f} ms against {worst.unpaced_ms['p50']:.3f} ms, p50): between frames the "
            "caches go cold; 'loop / model' compares the un-paced loop with the model called back to back")


def _check_profilable(b: Bundle, *, frames: int, streams: int, warmup: int, fps: float) -> None:
    """Refuse a bundle the camera loop cannot run (a feature model) and out-of-range settings."""
    m = b.manifest
    if m.model.kind != ModelKind.FRAMES or m.preprocess is None:
        raise UsageError("profile runs frame models in the camera loop; this bundle takes pre-extracted features",
                         expected="a bundle exported from a frame model (student, student_tiny)",
                         fix="measure a feature model with `edgelstm eval BUNDLE --data FEATURES.npz`")
    for name, value, low in (("frames", frames, 5), ("streams", streams, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{name}={value!r}", expected=f"an integer >= {low}", fix=f"pass --{name} {max(low, 1)}")
    if not fps > 0:
        raise UsageError(f"fps={fps!r}", expected="a camera rate > 0", fix="pass --fps 30")


def _new_report(b: Bundle, s: Settings, configs: Sequence[ProfileConfig], notes: list[str]) -> ProfileReport:
    """An empty report: the model, the machine, the settings, and the notes so far (INT8's among them)."""
    report = ProfileReport(str(b.path), _model_info(b), machine_info(),
                           {"frames": s.frames, "warmup": s.warmup, "fps": s.fps, "source": s.source if s.source !=
                            "synthetic" else "the synthetic camera (640x480, replayed)", "streams": s.streams,
                            "clip_len": s.clip_len, "threads": s.threads}, notes=notes)
    for note in _int8_notes(b, configs, s.streams):
        if note not in report.notes:
            report.notes.append(note)
    return report


def _int8_notes(b: Bundle, configs: Sequence[ProfileConfig], streams: int) -> list[str]:
    """For each backend profiled, why INT8 passed its gate but does not pay at this stream count (by batch)."""
    q = b.manifest.quantization
    notes = []
    for be in dict.fromkeys(c.backend for c in configs):
        rep = q.backends.get(str(be)) if q is not None else None
        if rep is not None and rep.chosen.passed and not rep.pays_at(streams):
            notes.append(f"{be}: {q.verdict(str(be), streams)[1]}")  # type: ignore[union-attr]
    return notes


def _model_info(b: Bundle) -> dict[str, Any]:
    m = b.manifest
    return {"name": m.model.name, "params": m.model.params, "macs_per_frame": m.model.macs_per_frame,
            "size": list(m.preprocess.size) if m.preprocess else None, "clip_len": m.temporal.clip_len,
            "train_fps": m.temporal.train_fps, "labels": len(m.labels)}


# --- baselines: clip re-inference and PyTorch eager -------------------------------------
class ClipModel:
    """The bundle's clip graph re-run on the last T frames: the logits of the newest frame."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner

    def __call__(self, window: np.ndarray, ids: list[int]) -> np.ndarray:
        return self.runner.run({CLIP: window})[CLIP_LOGITS][:, -1]  # (n, T, K) -> (n, K)

    def reset(self, stream: int | None) -> None:
        pass


def _baselines(b: Bundle, report: ProfileReport, s: Settings, camera: list[np.ndarray],
               configs: Sequence[ProfileConfig], checkpoint: str | Path | None, say: Callable[[str], None]) -> None:
    m = b.manifest
    done = set()
    for cfg in configs:
        art = m.artifact(Role.CLIP, cfg.backend, Precision.FP32)
        if cfg.backend in done or art is None:
            continue
        done.add(cfg.backend)
        say(f"clip re-inference, {cfg.backend} fp32 ({s.clip_len}-frame window)")
        eng = Engine.load(b, device=cfg.device, backend=str(cfg.backend), precision="fp32", threads=s.threads)
        runner = open_model(b, art, eng.plan.options)
        model = ClipModel(runner)
        window = np.random.default_rng(0).integers(0, 256, (1, s.clip_len, *m.preprocess.size, 3),  # type: ignore
                                                   dtype=np.uint8)  # type: ignore[arg-type]
        weng = WindowEngine(m, model, window=s.clip_len, info={
            "backend": str(cfg.backend), "precision": "fp32", "graph": "clip", "threads": eng.plan.options.threads,
            "inference_precision": runner.info.get("inference_precision", ""),
            "model_bytes": sum(f.bytes for f in art.files)})
        report.rows.append(measure(b, weng, s, camera, label=f"{cfg.backend} fp32 clip re-inference (T={s.clip_len})",
                                    mode="clip", device=cfg.device, window=s.clip_len,
                                    bare=lambda: model(window, [0])))
        del eng
    if not any(r.mode == "clip" for r in report.rows):
        report.notes.append("clip re-inference: the bundle has no clip graph (re-export it with `edgelstm export`)")
    ckpt = _checkpoint_or_none(b, checkpoint, report)
    if ckpt is None:
        return
    threads = next((r.threads for r in report.rows if r.mode == "stream"), 0)
    from edgelstm.measure import eager as eager_bench  # torch: only now

    for mode, win in (("eager-stream", 1), ("eager-clip", s.clip_len)):
        say(f"PyTorch eager, {'streaming' if win == 1 else f'clip re-inference (T={win})'}")
        # the runtime's thread count (a fair comparison; torch's default pool stalls on a busy 2-core machine)
        model_e, info = eager_bench.eager_model(ckpt, m, window=win, threads=s.threads or threads)
        weng = WindowEngine(m, cast(Any, model_e), window=win, colour=eager_bench.COLOUR, info=info)
        x = np.random.default_rng(0).integers(0, 256, (1, win, *m.preprocess.size, 3), dtype=np.uint8)  # type: ignore
        report.rows.append(measure(b, weng, s, camera, label=f"PyTorch eager fp32 {'streaming' if win == 1 else f'clip re-inference (T={win})'}",
                                    mode=mode, device="torch", window=win, bare=functools.partial(model_e, x, [0]),
                                    note=f"checkpoint {ckpt}"))


def _checkpoint_or_none(b: Bundle, checkpoint: str | Path | None, report: ProfileReport) -> Path | None:
    from edgelstm.measure.accuracy import find_checkpoint

    ckpt, why = find_checkpoint(b, checkpoint)
    if ckpt is None and why not in report.notes:
        report.notes.append(why)
    return ckpt


__all__ = ["ClipModel", "Interrupted", "ProfileConfig", "ProfileReport", "Settings", "default_configs", "engine_call",
           "measure_streams", "profile_bundle", "run_measured"]

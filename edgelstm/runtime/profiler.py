"""``profile_bundle``: latency per stage in the live loop, for every configuration, with baselines.

Each configuration (device profile x backend x precision) is loaded fresh; its first inference is
timed on its own; after a warm-up, :func:`~edgelstm.runtime.loop.run_loop` runs it with a camera-rate
source (capture thread, temporal gate, preprocessing, encoder, LSTM step, postprocessing), then
un-paced for the loop's maximum throughput, then the model call alone, back to back, for the loop's
overhead. Beside the streaming rows, the same loop runs clip re-inference (the bundle's clip graph on
the last T frames for every decision) and, when torch and the checkpoint are here, PyTorch eager.
``streams=N`` adds N streams on one engine against N engines. ``accuracy=D`` adds accuracy and argmax
agreement with FP32 on a dataset split, through :mod:`edgelstm.runtime.evaluate`.
"""
from __future__ import annotations

import functools
import gc
import math
import logging
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from edgelstm.devices import list_profiles, load_profile, usable
from edgelstm.errors import DeviceError, UsageError, unknown_choice
from edgelstm.runtime import profile_accuracy
from edgelstm.runtime.backends import ModelRunner, open_model
from edgelstm.runtime.bundle import Bundle, load_bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.loop import LoopStats, Rate, run_loop
from edgelstm.runtime.profile_harness import PeakRSS, Probe, ReplaySource, WindowEngine, render_frames, stats
from edgelstm.runtime.profile_report import ProfileReport, Row, StreamsRow, machine_info
from edgelstm.runtime.sources import Source, open_source
from edgelstm.spec import CLIP, CLIP_LOGITS, FEATURES, FRAMES, Backend, ModelKind, Precision, Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileConfig:
    device: str            # device profile name or .toml path
    backend: Backend
    precision: Precision

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision} ({self.device})"


@dataclass(frozen=True)
class Settings:
    frames: int = 90           # decisions measured per configuration at the camera rate
    warmup: int = 20
    fps: float = 30.0          # camera rate of the paced run
    source: str = "synthetic"  # or a file/camera/URL (open_source)
    streams: int = 1
    clip_len: int = 0          # window of clip re-inference; 0: the manifest's clip length
    threads: int | None = None
    baselines: bool = True     # clip re-inference and PyTorch eager rows
    abort: threading.Event | None = field(default=None, compare=False)  # set: stop now, keep the rows done


class Interrupted(Exception):
    """``Settings.abort`` was set (a signal): the measurement in progress is dropped."""


def default_configs(bundle: Bundle, *, devices: Sequence[str] | None = None, backends: Sequence[str] | None = None,
                    precisions: Sequence[str] | None = None) -> tuple[list[ProfileConfig], list[str]]:
    """Every usable device x precision the bundle has (or the ones asked for), and notes on what was left out."""
    notes: list[str] = []
    for be in backends or ():
        if be not in {b.value for b in Backend}:
            raise unknown_choice("backend", be, [b.value for b in Backend])
    for pr in precisions or ():
        if pr not in {x.value for x in Precision}:
            raise unknown_choice("precision", pr, [x.value for x in Precision])
    if devices:
        profiles = [load_profile(d) for d in devices]  # unknown names: DeviceError with close matches
        for p in profiles:
            ok, why = usable(p)
            if not ok:
                raise DeviceError(f"device '{p.name}' cannot run here: {why}",
                                  fix="choose a usable one (`edgelstm devices`), or drop --device for all usable")
    else:
        profiles = []
        for p in list_profiles():
            ok, why = usable(p)
            if not ok:
                notes.append(f"device {p.name}: not usable here ({why})")
            elif p.arch and platform.machine().lower() not in p.arch:
                notes.append(f"device {p.name}: left out by default (tuned for {'/'.join(p.arch)}; this machine is "
                             f"{platform.machine().lower()})")
            elif p.device == "AUTO":
                notes.append(f"device {p.name}: left out by default (OpenVINO AUTO picks a device measured "
                             f"separately); ask for it with --device {p.name}")
            else:
                profiles.append(p)
    if backends:
        wanted = {Backend(b) for b in backends}
        left = [p for p in profiles if p.backend in wanted]
        if not left:
            raise UsageError(f"no device profile {'given' if devices else 'usable here'} runs on "
                             f"{', '.join(sorted(wanted))}", expected="a --device for that backend",
                             fix="run `edgelstm devices`, and pass a usable --device of that backend")
        profiles = left
    m = bundle.manifest
    configs = []
    for p in profiles:
        for prec in [Precision(x) for x in (precisions or ("fp32", "int8"))]:
            if not _has(m, p.backend, prec):
                notes.append(f"{p.backend} {prec} ({p.name}): the bundle has no such artefact"
                             + (" (quantize it: `edgelstm quantize`)" if prec == Precision.INT8 else ""))
                continue
            configs.append(ProfileConfig(p.name, p.backend, prec))
    return configs, list(dict.fromkeys(notes))


def _has(m: Any, backend: Backend, precision: Precision) -> bool:
    return any(a.backend == backend and a.precision == precision and a.role != Role.CLIP for a in m.artifacts)


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
    if m.model.kind != ModelKind.FRAMES or m.preprocess is None:
        raise UsageError("profile runs frame models in the camera loop; this bundle takes pre-extracted features",
                         expected="a bundle exported from a frame model (student, student_tiny)",
                         fix="measure a feature model with `edgelstm eval BUNDLE --data FEATURES.npz`")
    for name, value, low in (("frames", frames, 5), ("streams", streams, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{name}={value!r}", expected=f"an integer >= {low}", fix=f"pass --{name} {max(low, 1)}")
    if not fps > 0:
        raise UsageError(f"fps={fps!r}", expected="a camera rate > 0", fix="pass --fps 30")
    s = Settings(frames, warmup, fps, source, streams, clip_len or m.temporal.clip_len, threads, baselines, stop)
    notes: list[str] = []
    if configs is None:
        configs, notes = default_configs(b, devices=devices, backends=backends, precisions=precisions)
    if not configs:
        raise UsageError("nothing to profile", expected="at least one usable configuration",
                         fix="run `edgelstm devices`; check the bundle has artefacts for the chosen backend")
    say = progress or (lambda msg: log.info("%s", msg))
    camera = render_frames(32) if source == "synthetic" else []
    report = ProfileReport(str(b.path), _model_info(b), machine_info(),
                           {"frames": frames, "warmup": warmup, "fps": fps, "source": source if source !=
                            "synthetic" else "the synthetic camera (640x480, replayed)", "streams": streams,
                            "clip_len": s.clip_len, "threads": threads}, notes=notes)
    say_int8 = _int8_notes(b, configs, streams)
    for note in say_int8:
        if note not in report.notes:
            report.notes.append(note)
    done = "configurations"
    try:
        for cfg in configs:
            done = f"profiling {cfg.label}"
            say(done)
            t0 = time.perf_counter()
            eng = Engine.load(b, device=cfg.device, backend=str(cfg.backend), precision=str(cfg.precision),
                              threads=threads)
            report.rows.append(_measure(b, eng, s, camera, label=cfg.label, mode="stream", device=cfg.device,
                                        load_s=time.perf_counter() - t0))
            del eng
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


def _int8_notes(b: Bundle, configs: Sequence[ProfileConfig], streams: int) -> list[str]:
    """The quantization report's per-batch verdict for each backend profiled with INT8 (or asked about)."""
    from edgelstm.runtime.engine import int8_verdict

    notes = []
    for be in dict.fromkeys(c.backend for c in configs):
        if not b.manifest.quantization:
            continue
        ok, why = int8_verdict(b.manifest, be, streams)
        if not ok and "does not pay" in why:
            notes.append(f"{be}: {why.replace('INT8 does not pay', 'INT8 does not pay (ratio by batch)', 1)}")
    return notes


def _model_info(b: Bundle) -> dict[str, Any]:
    m = b.manifest
    return {"name": m.model.name, "params": m.model.params, "macs_per_frame": m.model.macs_per_frame,
            "size": list(m.preprocess.size) if m.preprocess else None, "clip_len": m.temporal.clip_len,
            "train_fps": m.temporal.train_fps, "labels": len(m.labels)}


# --- one configuration ------------------------------------------------------------------
def _sources(s: Settings, camera: list[np.ndarray], *, live: bool, n: int = 1, limit: int | None = None) -> list[Source]:
    if s.source == "synthetic":
        return [ReplaySource(camera, fps=s.fps, live=live, offset=7 * i, limit=limit) for i in range(n)]
    return [open_source(s.source, realtime=live, fps=s.fps) for _ in range(n)]


def run_measured(engine: Any, sources: Sequence[Source], *, max_frames: int | None = None,
                 seconds: float | None = None, abort: threading.Event | None = None) -> tuple[LoopStats, Probe]:
    """run_loop with a :class:`Probe`, every frame fed (rate 'all'), until ``max_frames`` or ``seconds``.

    ``abort`` set (from any thread) stops the loop within 50 ms and raises :class:`Interrupted`.
    """
    probe = Probe()
    stop = threading.Event()
    deadline = time.monotonic() + seconds if seconds else math.inf

    def watch() -> None:
        while not stop.wait(0.05):
            if time.monotonic() >= deadline or (abort is not None and abort.is_set()):
                stop.set()

    watcher = threading.Thread(target=watch, name="profile-timer", daemon=True)
    watcher.start()
    try:
        st = run_loop(cast(Engine, engine), list(sources), on_decision=probe, stop_event=stop, max_frames=max_frames,
                      rate=Rate.ALL, stall_timeout_s=10.0)
    finally:
        stop.set()
        watcher.join()
    if abort is not None and abort.is_set():
        raise Interrupted
    if st.error:
        raise UsageError(f"the source failed while profiling: {st.error}", fix="check --source")
    return st, probe


def _measure(b: Bundle, eng: Any, s: Settings, camera: list[np.ndarray], *, label: str, mode: str, device: str,
             bare: Callable[[], object] | None = None, window: int = 1, note: str = "", load_s: float = 0.0) -> Row:
    gc.collect()
    with PeakRSS() as rss:
        frame = camera[0] if camera else _first_frame(s)
        first = eng.step(frame).timings.total  # cold: the first inference on a freshly loaded model
        for i in range(s.warmup + window):
            eng.step(camera[i % len(camera)] if camera else frame)
        st, probe = run_measured(eng, _sources(s, camera, live=True), max_frames=s.frames, abort=s.abort)
        fast, _ = run_measured(eng, _sources(s, camera, live=False), max_frames=max(s.frames, 30), abort=s.abort)
        bare_ms = _bare(eng, bare, s.frames, s.abort)
    stages = {k: stats(v) for k, v in st.stages_ms.items()}
    stages["capture_wait"] = stats(probe.wait_ms)
    info = eng.info
    return Row(label=label, mode=mode, backend=str(info.get("backend", "")), precision=str(info.get("precision", "")),
               device=device, inference_precision=str(eng.inference_precision), graph=str(info.get("graph", "")),
               threads=int(info.get("threads") or 0), window=window, load_s=round(load_s, 3), first_ms=round(first, 4),
               stages=stages, age_ms=stats(st.ages_ms), bare_ms=bare_ms, fps=round(fast.mean_fps, 1),
               paced_fps=round(st.mean_fps, 1), frames=st.frames_decided, dropped=st.frames_dropped,
               peak_rss_mb=round(rss.peak / 2**20, 1), model_bytes=int(info.get("model_bytes") or _bytes(b, eng)),
               totals_ms=[round(x, 4) for x in st.stages_ms["total"]], note=note)


def _first_frame(s: Settings) -> np.ndarray:
    src = open_source(s.source)
    src.open()
    try:
        raw = src.read()
    finally:
        src.close()
    if raw is None:
        raise UsageError(f"{s.source} delivered no frame", fix="check --source")
    return raw.image


def _bytes(b: Bundle, eng: Any) -> int:
    if not isinstance(eng, Engine):
        return 0
    roles = {"split": (Role.ENCODER, Role.STEP), "fused": (Role.FUSED,), "step": (Role.STEP,)}[eng.plan.graph]
    return sum(f.bytes for r in roles for f in b.find(r, eng.plan.backend, eng.plan.precision).files)


def _bare(eng: Any, bare: Callable[[], object] | None, n: int, abort: threading.Event | None = None) -> dict[str, float]:
    """The model call alone at batch 1, back to back, after a few warm calls (ms)."""
    call = bare or engine_call(eng)
    for _ in range(5):
        call()
    times = []
    for _ in range(max(n, 60)):
        if abort is not None and abort.is_set():
            raise Interrupted
        t = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - t) / 1e6)
    return stats(times)


def engine_call(eng: Engine) -> Callable[[], None]:
    """The engine's graphs at batch 1 on a ready uint8 frame, opened again with the engine's options."""
    b, plan, m = eng.bundle, eng.plan, eng.manifest
    roles = {"split": (Role.ENCODER, Role.STEP), "fused": (Role.FUSED,), "step": (Role.STEP,)}[plan.graph]
    runners = {r: open_model(b, b.find(r, plan.backend, plan.precision), plan.options) for r in roles}
    h, w = m.preprocess.size if m.preprocess else (0, 0)
    x = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)  # (1, H, W, 3)
    state = {st.input: np.zeros([1 if isinstance(d, str) else d for d in st.shape], np.float32) for st in m.state}
    outs = {st.output: st.input for st in m.state}

    def call() -> None:
        if plan.graph == "split":
            feats = runners[Role.ENCODER].run({FRAMES: x})[FEATURES]
            res = runners[Role.STEP].run({FEATURES: feats, **state})
        else:
            res = runners[Role.FUSED].run({FRAMES: x, **state})
        for o, i in outs.items():
            state[i] = res[o]
    return call


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
                                                   dtype=np.uint8)
        weng = WindowEngine(m, model, window=s.clip_len, info={
            "backend": str(cfg.backend), "precision": "fp32", "graph": "clip", "threads": eng.plan.options.threads,
            "inference_precision": runner.info.get("inference_precision", ""),
            "model_bytes": sum(f.bytes for f in art.files)})
        report.rows.append(_measure(b, weng, s, camera, label=f"{cfg.backend} fp32 clip re-inference (T={s.clip_len})",
                                    mode="clip", device=cfg.device, window=s.clip_len,
                                    bare=lambda: model(window, [0])))
        del eng
    if not any(r.mode == "clip" for r in report.rows):
        report.notes.append("clip re-inference: the bundle has no clip graph (re-export it with `edgelstm export`)")
    ckpt = _checkpoint_or_none(b, checkpoint, report)
    if ckpt is None:
        return
    threads = next((r.threads for r in report.rows if r.mode == "stream"), 0)
    from edgelstm.train import eager_bench  # torch: only now

    for mode, win in (("eager-stream", 1), ("eager-clip", s.clip_len)):
        say(f"PyTorch eager, {'streaming' if win == 1 else f'clip re-inference (T={win})'}")
        # the runtime's thread count (a fair comparison; torch's default pool stalls on a busy 2-core machine)
        model_e, info = eager_bench.eager_model(ckpt, m, window=win, threads=s.threads or threads)
        weng = WindowEngine(m, cast(Any, model_e), window=win, colour=eager_bench.COLOUR, info=info)
        x = np.random.default_rng(0).integers(0, 256, (1, win, *m.preprocess.size, 3), dtype=np.uint8)  # type: ignore
        report.rows.append(_measure(b, weng, s, camera, label=f"PyTorch eager fp32 {'streaming' if win == 1 else f'clip re-inference (T={win})'}",
                                    mode=mode, device="torch", window=win, bare=functools.partial(model_e, x, [0]),
                                    note=f"checkpoint {ckpt}"))


def _checkpoint_or_none(b: Bundle, checkpoint: str | Path | None, report: ProfileReport) -> Path | None:
    from edgelstm.runtime.profile_accuracy import find_checkpoint

    ckpt, why = find_checkpoint(b, checkpoint)
    if ckpt is None and why not in report.notes:
        report.notes.append(why)
    return ckpt


# --- streams ----------------------------------------------------------------------------
def measure_streams(b: Bundle, cfg: ProfileConfig, n: int, s: Settings, camera: list[np.ndarray], *,
                    threads: int | None = None, seconds: float | None = None) -> list[StreamsRow]:
    """N camera-rate streams on one engine (encoder batched) against N engines, each in its own loop thread."""
    seconds = seconds or max(2.0, s.frames / s.fps)
    load = dict(device=cfg.device, backend=str(cfg.backend), precision=str(cfg.precision), threads=threads)
    out = []
    with PeakRSS() as rss:
        eng = Engine.load(b, streams=n, **load)  # type: ignore[arg-type]
        for _ in range(s.warmup):
            eng.step_batch([camera[0] if camera else _first_frame(s)] * n)
        eng.reset()
        st, _ = run_measured(eng, _sources(s, camera, live=True, n=n), seconds=seconds, abort=s.abort)
        fast, _ = run_measured(eng, _sources(s, camera, live=False, n=n), max_frames=n * max(s.frames, 30),
                               abort=s.abort)
    out.append(_streams_row(cfg, "one engine", n, s, st, [fast], rss.peak))
    del eng
    gc.collect()
    with PeakRSS() as rss:
        engines = [Engine.load(b, streams=1, **load) for _ in range(n)]  # type: ignore[arg-type]
        for e in engines:
            for _ in range(s.warmup):
                e.step(camera[0] if camera else _first_frame(s))
        paced = _threaded(engines, s, camera, live=True, seconds=seconds)
        unpaced = _threaded(engines, s, camera, live=False, max_frames=max(s.frames, 30))
    merged = _merge(paced)
    out.append(_streams_row(cfg, f"{n} engines", n, s, merged, unpaced, rss.peak))
    return out


def _threaded(engines: list[Engine], s: Settings, camera: list[np.ndarray], *, live: bool,
              seconds: float | None = None, max_frames: int | None = None) -> list[LoopStats]:
    results: list[Any] = [None] * len(engines)

    def run(i: int) -> None:
        src = _sources(s, camera, live=live)[0]
        if isinstance(src, ReplaySource):
            src.offset = 7 * i
        try:
            results[i] = run_measured(engines[i], [src], seconds=seconds, max_frames=max_frames, abort=s.abort)[0]
        except Interrupted:
            pass

    ts = [threading.Thread(target=run, args=(i,), name=f"profile-engine-{i}") for i in range(len(engines))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if s.abort is not None and s.abort.is_set():
        raise Interrupted
    return [r for r in results if r is not None]


def _merge(stats_list: list[LoopStats]) -> LoopStats:
    out = LoopStats()
    for st in stats_list:
        out.frames_read += st.frames_read
        out.frames_decided += st.frames_decided
        out.frames_dropped += st.frames_dropped
        out.ages_ms += st.ages_ms
        out.stages_ms["total"] += st.stages_ms["total"]
        out.batch_sizes += st.batch_sizes
        out.wall_s = max(out.wall_s, st.wall_s)
    return out


def _aggregate_fps(stats_list: Sequence[LoopStats]) -> float:
    span = max(st.last_decision for st in stats_list) - min(st.first_decision for st in stats_list)
    decided = sum(st.frames_decided for st in stats_list)
    return (decided - len(stats_list)) / span if span > 0 else 0.0


def _streams_row(cfg: ProfileConfig, layout: str, n: int, s: Settings, st: LoopStats, fast: Sequence[LoopStats],
                 peak: int) -> StreamsRow:
    return StreamsRow(label=cfg.label, layout=layout, streams=n, fps_per_stream=s.fps, offered_fps=n * s.fps,
                      decided_fps=round(st.frames_decided / st.wall_s, 1) if st.wall_s else 0.0,
                      capacity_fps=round(_aggregate_fps(fast), 1), read=st.frames_read, decided=st.frames_decided,
                      dropped=st.frames_dropped, age_ms=stats(st.ages_ms), latency_ms=stats(st.stages_ms["total"]),
                      mean_batch=round(st.batch_sizes.lifetime_mean, 2) if st.batch_sizes.count else 0.0,
                      peak_rss_mb=round(peak / 2**20, 1))


__all__ = ["ClipModel", "Interrupted", "ProfileConfig", "ProfileReport", "Settings", "default_configs", "engine_call",
           "measure_streams", "profile_bundle", "run_measured"]

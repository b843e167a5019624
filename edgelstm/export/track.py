"""What export does differently for a tracker (``Manifest.task == track``).

- The manifest names the task and the crop geometry the model was trained with (:func:`track_fields`); the
  graphs are the usual encoder, step and clip graphs over crop pairs, checked for streaming equivalence like any
  other (open loop: the same crop pairs into PyTorch and the runtime).
- The INT8 gate judges what a tracker is for: held-out sequences tracked from their first box to their end in a
  closed loop through the runtime (the crops cut around the boxes FP32 or INT8 itself produced, so drift counts),
  scored with the OTB metrics. INT8 passes when neither the success AUC nor the mean IoU drops by more than
  ``--max-drop`` points (:func:`load_track_gate_data`, :func:`track_boxes`, :func:`judge_track`).
- :func:`closed_loop_parity`: the whole tracker (crops, graphs, decoding) against the PyTorch checkpoint's, each
  step of the loop from the same crops (held to 1e-4 px) and each left to its own boxes (recorded).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgelstm.data.tracking import SYNTHETIC, TrackConfig, TrackSequence, load_tracking, synthetic_sequence
from edgelstm.errors import DataError, ExportCheckError
from edgelstm.export.calib import GateData
from edgelstm.quantreport import GateSettings, Int8Report, Trial, wilson_interval
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.stream import BackendOptions, open_chain
from edgelstm.runtime.track import chain_step, track_offline
from edgelstm.spec import Backend, Manifest, Precision, Task
from edgelstm.track_metrics import iou, track_report
from edgelstm.trackspec import Tracking, tracking_of

log = logging.getLogger(__name__)

GATE_FRAMES = 48            # frames per synthetic held-out sequence (the embedded set's default)
DEFAULT_FRAME_SIZE = (64, 64)
METRIC = "success_auc"


def track_fields(ckpt: Any) -> dict[str, Any]:
    """The manifest's ``task`` and ``tracking`` for a track checkpoint."""
    t = tracking_of(ckpt.metrics, source=ckpt.path or "checkpoint")
    if t is None:
        raise ExportCheckError("a track checkpoint without its tracking geometry", path=ckpt.path,
                               expected="best.pt of a finished `edgelstm train --task track` run",
                               fix="export the run's best.pt")
    return {"task": Task.TRACK, "tracking": t}


def _tracking(manifest: Manifest) -> Tracking:
    if manifest.tracking is None:  # the manifest's own check makes a track bundle carry it
        raise ExportCheckError("the bundle has no tracking section", expected="a track bundle",
                               fix="re-export the tracker's checkpoint")
    return manifest.tracking


def gate_sequences(data: str, manifest: Manifest, *, train: int, held_out: int
                   ) -> tuple[list[TrackSequence], list[TrackSequence], str]:
    """Training sequences (calibration) and held-out ones (test, else val) of ``data``: 'synthetic' renders
    them at the frame size the model was trained on."""
    t = _tracking(manifest)
    if data == SYNTHETIC:
        size = t.frame_size if min(t.frame_size) > 0 else DEFAULT_FRAME_SIZE
        cfg = TrackConfig(size=size, frames=GATE_FRAMES, train=train, val=0, test=held_out)
        return ([synthetic_sequence(cfg, "train", i) for i in range(train)],
                [synthetic_sequence(cfg, "test", i) for i in range(held_out)], "test")
    ds = load_tracking(data)
    split = "test" if ds["test"] else "val"
    if not ds["train"] or not ds[split]:
        raise DataError(f"'{data}' has {len(ds['train'])} training and {len(ds[split])} held-out sequences",
                        expected="sequences in train and in test (or val)", path=data,
                        fix="pass a dataset with train/ and test/ sequence folders to --calib-data")
    return ds["train"][:train], ds[split][:held_out], split


def load_track_gate_data(calib_data: str, manifest: Manifest, *, calib_clips: int, eval_clips: int) -> GateData:
    """Calibration crop pairs (windows of training sequences, around jittered true boxes, as training cuts them)
    and held-out sequences: ``X`` holds the :class:`TrackSequence` objects, ``y`` their true boxes."""
    from edgelstm.train.track_data import crop_pairs, jitter, sample_windows

    t = _tracking(manifest)
    train, held, split = gate_sequences(calib_data, manifest, train=calib_clips, held_out=eval_clips)
    rng = np.random.default_rng(0)
    win = sample_windows(train, manifest.temporal.clip_len, rng)
    calib = crop_pairs(win, jitter(win.boxes, rng, [f.shape[1:3] for f in win.frames], t=t), t).x
    X, y = np.empty(len(held), object), np.empty(len(held), object)
    for i, seq in enumerate(held):
        X[i], y[i] = seq, seq.boxes
    log.info("track gate data: %d calibration windows, %d held-out %s sequences from %s", len(calib), len(held),
             split, calib_data)
    return GateData(calib, X, y, None, calib_data, split)


def track_boxes(bundle: Bundle, X: np.ndarray, backend: Backend, precision: Precision, lengths: Any = None
                ) -> np.ndarray:
    """Each held-out sequence of ``X`` tracked through the bundle's graphs from its first box: boxes (object
    array of (T, 4)). The frames are RGB; the graphs take BGR."""
    chain = open_chain(bundle, backend, precision, BackendOptions(threads=1))
    step, zero = chain_step(chain)
    seqs = list(X)
    boxes = track_offline(step, zero, [np.ascontiguousarray(s.frames[..., ::-1]) for s in seqs],
                          [s.boxes[0] for s in seqs], _tracking(bundle.manifest))
    out = np.empty(len(boxes), object)
    for i, b in enumerate(boxes):
        out[i] = b
    return out


def judge_track(backend: Backend, kept: tuple[str, ...], fp32: np.ndarray, int8: np.ndarray, y: np.ndarray,
                settings: GateSettings) -> Trial:
    """The INT8 gate's verdict for a tracker: success AUC (``accuracy_*``) and mean IoU may each drop by at most
    ``max_drop`` points. ``frame_agreement``: the mean IoU of INT8's boxes with FP32's; ``final_agreement``: the
    share of sequences whose last INT8 box overlaps FP32's by IoU >= 0.5 (recorded, not gated: where FP32 itself
    lost the target, INT8 losing it elsewhere says nothing)."""
    r32, r8 = track_report(list(fp32), list(y)), track_report(list(int8), list(y))
    n = len(y)
    follow = float(np.mean(np.concatenate([iou(a[1:], b[1:]) for a, b in zip(int8, fp32)])))
    same = int(sum(iou(a[-1], b[-1]) >= 0.5 for a, b in zip(int8, fp32)))
    drop, iou_drop = 100.0 * (r32.success_auc - r8.success_auc), 100.0 * (r32.mean_iou - r8.mean_iou)
    ok = drop <= settings.max_drop_points and iou_drop <= settings.max_drop_points
    return Trial(str(backend), kept, round(r32.success_auc, 5), round(r8.success_auc, 5), round(follow, 5),
                 same / max(n, 1), 0.0, 0.0, ok, drop_points=round(drop, 3), clips=n,
                 points_per_clip=round(100.0 / max(n, 1), 3), metric=METRIC,
                 final_agreement_ci95=tuple(round(v, 4) for v in wilson_interval(same, n)),  # type: ignore[arg-type]
                 mean_iou=(round(r32.mean_iou, 5), round(r8.mean_iou, 5)))


def track_gate_table(report: Int8Report) -> Any:
    """A tracker's gate: success AUC and mean IoU, FP32 against INT8, and how closely INT8 follows FP32."""
    from rich.table import Table

    d, g = report.data, report.gate
    t = Table(title=f"INT8 gate of a tracker ({d.eval_clips} held-out sequences of {d.source}/{d.split}, tracked "
                    f"in a closed loop: success AUC and mean IoU may each drop <= {g.max_drop_points:g} points)",
                    title_justify="left")
    for col in ("backend", "kept in float", "AUC FP32", "AUC INT8", "drop", "mean IoU fp32→int8",
                "IoU with FP32 boxes", "last box agrees", "result"):
        t.add_column(col)
    for tr in report.trials:
        m = tr.mean_iou or (0.0, 0.0)
        t.add_row(tr.backend, ", ".join(tr.kept_float) or "none", f"{tr.accuracy_fp32:.3f}", f"{tr.accuracy_int8:.3f}",
                  f"{tr.drop_points:.2f}", f"{m[0]:.3f} → {m[1]:.3f}", f"{tr.frame_agreement:.3f}",
                  f"{100 * tr.final_agreement:.1f}%", "[green]pass[/]" if tr.passed else "[red]retry[/]")
    return t


@dataclass(frozen=True)
class LoopParity:
    """The bundle's tracker against the PyTorch one, in pixels of box coordinates, over some sequences.

    ``step_px``: each step of the loop from the same input (the crops cut around the runtime's own previous box):
    the runtime's crops, graphs and decoding against PyTorch's. This is the loop's streaming equivalence, held to
    :data:`STEP_TOL_PX`. ``free_*``: each tracker left to its own boxes; not held to 1e-4, since a 1e-7 px
    difference sometimes rounds one uint8 crop pixel the other way and the loop carries it on (recorded, with the
    mean IoU of each, to show the drift is rounding, not a different tracker)."""

    step_px: float
    free_p50_px: float
    free_max_px: float
    iou_runtime: float
    iou_pytorch: float

    @property
    def passed(self) -> bool:
        return self.step_px <= STEP_TOL_PX

    def to_json(self) -> dict[str, float | bool]:
        return {**{k: round(float(v), 8) for k, v in asdict(self).items()}, "passed": self.passed}


STEP_TOL_PX = 1e-4  # the graphs agree to ~1e-6 in their outputs; boxes are outputs times the crop's scale (tens of px)


def closed_loop_parity(bundle: Bundle, model: Any, seqs: list[TrackSequence], *,
                       backend: Backend = Backend.ONNXRUNTIME) -> LoopParity:
    """The bundle's FP32 tracker (runtime crops, graphs, decoding) against the PyTorch model over ``seqs`` from
    their first boxes: step by step on the same crops, and each left to its own boxes (:class:`LoopParity`)."""
    from edgelstm.train.track import track_split

    X = np.empty(len(seqs), object)
    for i, s in enumerate(seqs):
        X[i] = s
    got = list(track_boxes(bundle, X, backend, Precision.FP32))
    t = _tracking(bundle.manifest)
    stepped = track_split(model, seqs, t, follow=got)
    free = track_split(model, seqs, t)
    gaps = np.concatenate([np.abs(a - b).max(-1) for a, b in zip(got, free)])
    truth = [s.boxes for s in seqs]
    return LoopParity(step_px=float(max(np.abs(a - b).max() for a, b in zip(got, stepped))),
                      free_p50_px=float(np.median(gaps)), free_max_px=float(gaps.max()),
                      iou_runtime=track_report(got, truth).mean_iou, iou_pytorch=track_report(free, truth).mean_iou)

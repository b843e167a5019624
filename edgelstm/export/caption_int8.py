"""The INT8 gate of a captioner: what its captions say, not its motion logits.

Calibration streams the training clips through the FP32 encoder and step graphs (as for any model) and records
the decoder's feeds while it captions them greedily, so the decoder graph is calibrated on the states and words
it really sees. Each trial captions the held-out clips (test, else val) with FP32 and with INT8, through the
runtime's streaming loop (:class:`~edgelstm.runtime.stream.Chain`) and decoder
(:class:`~edgelstm.runtime.decode.WordDecoder`), and scores both against every reference:

- motion-word accuracy may drop by at most ``--max-drop`` points (the temporal part, judged like clip accuracy);
- BLEU-4 by at most 2 x ``--max-drop`` BLEU points, CIDEr-D by at most 5 x ``--max-drop`` CIDEr points (x100):
  corpus metrics over a few hundred captions move by about a point when one caption changes a word.

``Trial.accuracy_*`` hold BLEU-4 (0..1), ``frame_agreement`` the share of captions INT8 writes word for word as
FP32 does, ``final_agreement`` the share whose motion word is the same, ``captions`` the three metrics.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgelstm import spec
from edgelstm.caption_metrics import caption_scores
from edgelstm.data.captions import motion_of
from edgelstm.export.calib import GateData
from edgelstm.quantreport import GateSettings, Trial
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.decode import WordDecoder
from edgelstm.runtime.frames import graph_order
from edgelstm.runtime.stream import BackendOptions, Feeds, open_chain
from edgelstm.spec import Backend, Manifest, Precision, Role

log = logging.getLogger(__name__)

BLEU_FACTOR, CIDER_FACTOR = 2.0, 5.0  # allowed drops, in multiples of --max-drop


def load_caption_gate_data(calib_data: str, manifest: Manifest, *, calib_clips: int,
                           eval_clips: int) -> tuple[GateData, list[list[str]]]:
    """Calibration clips (train) and held-out clips (test, else val) with their references, at the bundle's size."""
    from edgelstm.data.caption_set import load_captions

    size = manifest.data_options()["size"]
    counts = (calib_clips, 2, eval_clips) if calib_data == "synthetic" else None
    ds = load_captions(calib_data, size=size, clip_len=manifest.temporal.clip_len, counts=counts)
    split = "test" if len(ds.splits.get("test", ())) >= 2 else "val"
    held = ds[split]
    log.info("caption gate data: %d calibration clips, %d held-out %s clips from %s",
             min(calib_clips, len(ds["train"])), min(eval_clips, len(held)), split, calib_data)
    gd = GateData(ds["train"].X[:calib_clips], held.X[:eval_clips], held.y[:eval_clips], None, calib_data, split)
    return gd, held.refs[:eval_clips]


def end_states(bundle: Bundle, X: np.ndarray, backend: Backend, precision: Precision,
               opts: BackendOptions) -> dict[str, np.ndarray]:
    """The state after each clip's last frame, clips (N, T, H, W, 3) RGB streamed side by side from zero."""
    chain = open_chain(bundle, backend, precision, opts)
    X_dev = graph_order(X, bundle.manifest)
    state = chain.zero_state(len(X))
    for t in range(X.shape[1]):
        state = chain.step(np.ascontiguousarray(X_dev[:, t]), state).state
    return state


def caption_run(bundle: Bundle, X: np.ndarray, backend: Backend, precision: Precision, lengths: Any = None,
                *, batch: int = 64) -> np.ndarray:
    """Greedy captions (an object array of N strings) of clips X at their last frame, on ``backend``/``precision``."""
    opts = BackendOptions(inference_precision="f32") if backend == Backend.OPENVINO and \
        precision == Precision.FP32 else BackendOptions()
    dec = WordDecoder.open(bundle, backend, precision, opts)
    out = np.empty(len(X), object)
    for s in range(0, len(X), batch):
        caps = dec.greedy(end_states(bundle, X[s:s + batch], backend, precision, opts))
        out[s:s + len(caps)] = [c.text for c in caps]
    return out


def decoder_feeds(bundle: Bundle, X: np.ndarray, *, batch: int = 16) -> list[Feeds]:
    """The decoder's feeds while FP32 onnxruntime captions the calibration clips greedily."""
    feeds: list[Feeds] = []

    def keep(role: Role, f: Feeds) -> None:
        feeds.extend({k: v[i:i + 1].copy() if k == spec.TOKEN else v[:, i:i + 1].copy() for k, v in f.items()}
                     for i in range(len(f[spec.TOKEN])))

    opts = BackendOptions()
    for s in range(0, len(X), batch):
        state = end_states(bundle, X[s:s + batch], Backend.ONNXRUNTIME, Precision.FP32, opts)
        WordDecoder.open(bundle, Backend.ONNXRUNTIME, Precision.FP32, opts, record=keep).greedy(state)
    return feeds


def judge_caption(refs: list[list[str]]) -> Any:
    """The gate's judge for a captioner (see the module docstring), scoring against ``refs``."""
    def judge(backend: Backend, kept: tuple[str, ...], fp32: np.ndarray, int8: np.ndarray, y: np.ndarray,
              settings: GateSettings) -> Trial:
        s32, s8 = caption_scores(list(fp32), refs, y), caption_scores(list(int8), refs, y)
        m32, m8 = s32.motion_accuracy or 0.0, s8.motion_accuracy or 0.0
        bleu, cider, motion = s32.bleu4 - s8.bleu4, 100 * (s32.cider_d - s8.cider_d), 100 * (m32 - m8)
        d = settings.max_drop_points
        ok = motion <= d and bleu <= BLEU_FACTOR * d and cider <= CIDER_FACTOR * d
        n = len(fp32)
        same = float(np.mean(fp32 == int8))
        motion_same = float(np.mean([motion_of(a) == motion_of(b) for a, b in zip(fp32, int8)]))
        return Trial(str(backend), kept, round(s32.bleu4 / 100, 5), round(s8.bleu4 / 100, 5), same, motion_same,
                     0.0, 0.0, ok, drop_points=round(bleu, 3), clips=n, points_per_clip=round(100.0 / n, 3),
                     metric="bleu4", captions=((s32.bleu4, s8.bleu4), (s32.cider_d, s8.cider_d), (m32, m8)))
    return judge


def caption_gate_table(report: Any) -> Any:
    """A captioner's gate: BLEU-4, CIDEr-D and motion-word accuracy, FP32 against INT8, trial by trial."""
    from rich.table import Table

    d, g = report.data, report.gate
    t = Table(title=f"INT8 gate of a captioner ({d.eval_clips} held-out clips of {d.source}/{d.split}: motion words "
                    f"drop <= {g.max_drop_points:g} points, BLEU-4 <= {BLEU_FACTOR * g.max_drop_points:g}, CIDEr-D "
                    f"<= {CIDER_FACTOR * g.max_drop_points:g} (x100))", title_justify="left")
    for col in ("backend", "kept in float", "BLEU-4 fp32→int8", "CIDEr-D fp32→int8", "motion words fp32→int8",
                "same caption", "same motion", "result"):
        t.add_column(col)
    for tr in report.trials:
        (b32, b8), (c32, c8), (m32, m8) = tr.captions or ((0.0, 0.0),) * 3
        t.add_row(tr.backend, ", ".join(tr.kept_float) or "none", f"{b32:.1f} → {b8:.1f}",
                  f"{100 * c32:.1f} → {100 * c8:.1f}", f"{100 * m32:.1f}% → {100 * m8:.1f}%",
                  f"{100 * tr.frame_agreement:.1f}%", f"{100 * tr.final_agreement:.1f}%",
                  "[green]pass[/]" if tr.passed else "[red]retry[/]")
    return t

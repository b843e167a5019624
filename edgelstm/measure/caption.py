"""``edgelstm eval --task caption`` as a library: a captioner checkpoint or bundle on the clips of a split.

Both paths caption every clip of the split at its last frame (greedy) and score the captions with
:func:`~edgelstm.caption_metrics.caption_scores` against every reference: BLEU-4, CIDEr-D and motion-word
accuracy. A bundle's captions come from the runtime (the exported encoder and step graphs streamed frame by frame
from a zero state, then the decoder graph; :func:`edgelstm.export.caption_int8.caption_run`, what the INT8 gate
runs); a checkpoint's from PyTorch. The data defaults to what the model was trained on (the synthetic set's own
counts and seed, or the training CSV).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgelstm.caption_metrics import CaptionScores, caption_scores
from edgelstm.data.caption_set import CaptionSet, load_captions
from edgelstm.errors import UsageError, unknown_choice
from edgelstm.spec import Backend, Precision, Task


@dataclass(frozen=True)
class CaptionEvalResult:
    artifact: str                 # "onnxruntime:fp32", or "torch" for a checkpoint
    split: str
    scores: CaptionScores
    examples: list[dict[str, Any]]  # the first few clips: caption and references
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"task": str(Task.CAPTION), "artifact": self.artifact, "split": self.split,
                "seconds": round(self.seconds, 3), **self.scores.to_json(), "examples": self.examples}

    def summary(self) -> str:
        s = self.scores
        motion = "n/a" if s.motion_accuracy is None else f"{100 * s.motion_accuracy:.1f}%"
        lines = [f"{self.artifact} on {s.clips} {self.split} clips: BLEU-4 {s.bleu4:.2f}, CIDEr-D {s.cider_d:.3f}, "
                 f"motion words {motion}, {s.mean_words:.1f} words per caption ({self.seconds:.1f}s)"]
        lines += [f"  {e['caption']!r}  (e.g. {e['references'][0]!r})" for e in self.examples[:3]]
        return "\n".join(lines)


def _data(data: str | None, source: str, size: tuple[int, int], clip_len: int, seed: int,
          counts: tuple[int, int, int] | None) -> CaptionSet:
    spec = data or source or "synthetic"
    return load_captions(spec, size=size, clip_len=clip_len, seed=seed, counts=counts if spec == "synthetic" else None)


def _result(artifact: str, split: str, ds: CaptionSet, hyps: list[str], t0: float) -> CaptionEvalResult:
    if split not in ds.splits or len(ds[split]) < 2:
        raise UsageError(f"split '{split}' has {len(ds.splits.get(split, ()))} clips", expected="at least 2 clips",
                         fix="pass --split with a larger split, or more --data")
    s = ds[split]
    examples = [{"caption": h, "references": r} for h, r in zip(hyps[:5], s.refs[:5])]
    return CaptionEvalResult(artifact, split, caption_scores(hyps, s.refs, s.y), examples, time.perf_counter() - t0)


def evaluate_caption_checkpoint(path: str | Path, data: str | None = None, *, split: str = "test") -> CaptionEvalResult:
    """A captioner checkpoint in PyTorch."""
    from edgelstm.export.caption import captioning_of
    from edgelstm.models.checkpoint import load_checkpoint
    from edgelstm.train.caption import generate

    t0 = time.perf_counter()
    ck = load_checkpoint(path)
    if ck.data.task != Task.CAPTION:
        raise UsageError(f"{path} was trained for {ck.data.task}", expected="a checkpoint trained with --task caption",
                         fix="drop --task caption, or pass a captioner checkpoint")
    f = ck.data
    ds = _data(data, f.source, f.size or (32, 32), f.clip_len, f.data_seed, f.synthetic_counts)
    _split_exists(ds, split)
    return _result("torch", split, ds, generate(ck.model, ds[split].X, captioning_of(ck)), t0)


def evaluate_caption_bundle(path: str | Path, data: str | None = None, *, split: str = "test",
                            artifact: str = "onnxruntime:fp32",
                            counts: tuple[int, int, int] | None = None) -> CaptionEvalResult:
    """A captioning bundle through the runtime, on ``artifact`` (``backend:precision``). ``counts``: the
    synthetic set's clips per split (the first N clips of a split are the same for any count) [default: 300
    val, 500 test]."""
    from edgelstm.export.caption_int8 import caption_run
    from edgelstm.runtime.bundle import load_bundle

    t0 = time.perf_counter()
    b = load_bundle(path)
    m = b.manifest
    if m.task != Task.CAPTION:
        raise UsageError(f"{path} is a {m.task} bundle", expected="a captioning bundle",
                         fix="drop --task caption, or pass a captioning bundle")
    backend, _, precision = artifact.partition(":")
    if backend not in {str(x) for x in Backend} or (precision or "fp32") not in {str(x) for x in Precision}:
        raise unknown_choice("artifact", artifact, [a.key.split(":", 1)[1] for a in m.artifacts],
                             fix="pass --artifact BACKEND:PRECISION, e.g. onnxruntime:int8")
    size = m.preprocess.size if m.preprocess is not None else (32, 32)
    ds = _data(data, m.data_source, size, m.temporal.clip_len, 0, counts or (2, 300, 500))
    _split_exists(ds, split)
    hyps = caption_run(b, ds[split].X, Backend(backend), Precision(precision or "fp32"))
    return _result(artifact, split, ds, [str(h) for h in hyps], t0)


def _split_exists(ds: CaptionSet, split: str) -> None:
    if split not in ds.splits:
        raise UsageError(f"split '{split}'", expected="train, val or test", fix="pass --split test")


def decoder_latency(bundle: Any, backend: Backend, precision: Precision, *, clips: int = 16,
                    threads: int | None = None) -> dict[str, float]:
    """The decoder graph's time per token at batch 1 (greedy captions of ``clips`` synthetic clips, one at a
    time, as the engine writes them): p50/p90/mean ms per token, words and ms per caption."""
    import numpy as np

    from edgelstm.export.caption import parity_clips
    from edgelstm.export.caption_int8 import end_states
    from edgelstm.runtime.decode import WordDecoder, token_latency_ms
    from edgelstm.runtime.stream import BackendOptions

    opts = BackendOptions(threads=threads or 0)
    states = end_states(bundle, parity_clips(bundle.manifest, clips), backend, precision, opts)
    dec = WordDecoder.open(bundle, backend, precision, opts)
    dec.greedy({k: v[:, :1].copy() for k, v in states.items()})  # warm-up
    times, words, per_caption = [], [], []
    for i in range(clips):
        c = dec.greedy({k: np.ascontiguousarray(v[:, i:i + 1]) for k, v in states.items()})[0]
        times += list(c.token_ms)
        words.append(len(c.words))
        per_caption.append(c.decode_ms)
    return {**token_latency_ms(times), "tokens": float(len(times)), "words_per_caption": float(np.mean(words)),
            "ms_per_caption": float(np.median(per_caption))}


def decoder_notes(bundle: Any, configs: Any, threads: int | None = None) -> list[str]:
    """``edgelstm profile`` on a captioning bundle: the decoder's time per token for each backend and precision
    profiled (a line each), beside the per-frame stages (whose postprocess holds the captions the loop wrote)."""
    notes = []
    for backend, precision in dict.fromkeys((c.backend, c.precision) for c in configs):
        lat = decoder_latency(bundle, backend, precision, threads=threads)
        notes.append(f"decoder per token ({backend} {precision}, batch 1): p50 {lat['p50']:.3f} ms, p90 "
                     f"{lat['p90']:.3f} ms over {int(lat['tokens'])} tokens; {lat['words_per_caption']:.1f} words and "
                     f"{lat['ms_per_caption']:.2f} ms per caption (p50)")
    return notes

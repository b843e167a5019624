"""Caption metrics: BLEU-4, CIDEr-D and motion-word accuracy, against every reference of a clip.

BLEU-4 is sacrebleu's corpus BLEU (``sacrebleu.corpus_bleu``: 4-gram, brevity penalty, its standard ``13a``
tokenisation, a varying number of references per clip): the maintained, versioned implementation that papers
quote, not a re-implementation. CIDEr-D is the COCO caption evaluation's own scorer (``pycocoevalcap.cider``, the
code of Vedantam et al.: TF-IDF n-grams 1-4 with the clipping and Gaussian length penalty of CIDEr-D, sigma 6,
x10), pure Python; only that module is imported, never the package's METEOR and SPICE, which need Java. Both
install from PyPI (``edgelstm[caption]``) and run offline. Captions are scored as the lower-case words
:func:`edgelstm.captionspec.words_of` gives, joined by spaces, so both scorers see the same tokens.

The motion-word accuracy is the temporal part: the fraction of generated captions whose motion
(:func:`edgelstm.data.captions.motion_of`) is the clip's, over clips whose motion is known. A clip and its
time-reversed partner differ only there, so a model that ignores order gets half of them wrong.
Torch-free: export's INT8 gate and the bundle evaluator use it too.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgelstm.captionspec import words_of
from edgelstm.errors import UsageError


@dataclass(frozen=True)
class CaptionScores:
    bleu4: float            # sacrebleu corpus BLEU, 0..100
    cider_d: float          # pycocoevalcap CIDEr-D, 0..10 (x10 as the COCO scorer reports it)
    motion_accuracy: float | None  # fraction of clips with a known motion whose caption names it; None: none known
    clips: int
    mean_words: float       # mean generated caption length
    empty: int              # clips whose caption had no words

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"caption metrics need the '{module.split('.')[0]}' package, which is not installed",
                         expected="sacrebleu and pycocoevalcap (edgelstm[caption])",
                         fix="pip install 'edgelstm[caption]'") from None


def _norm(text: str) -> str:
    return " ".join(words_of(text))


def bleu4(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """sacrebleu's corpus BLEU-4 of ``hyps`` against every reference of each clip (0..100)."""
    sacrebleu = _need("sacrebleu")
    most = max((len(r) for r in refs), default=0)
    streams = [[_norm(r[k]) if k < len(r) else None for r in refs] for k in range(most)]  # None: no k-th reference
    return float(sacrebleu.corpus_bleu([_norm(h) for h in hyps], streams).score)


def cider_d(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """CIDEr-D of the COCO caption scorer over the corpus (document frequencies from these references)."""
    cider = _need("pycocoevalcap.cider.cider")
    if len(hyps) < 2:  # its IDF is log(clips): one clip gives every n-gram weight 0
        raise UsageError(f"CIDEr-D of {len(hyps)} clip", expected="at least 2 clips (its IDF is over the corpus)",
                         fix="score more clips")
    gts = {i: [_norm(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [_norm(h)] for i, h in enumerate(hyps)}
    score, _ = cider.Cider().compute_score(gts, res)
    return float(score)


def motion_accuracy(hyps: Sequence[str], motions: np.ndarray | Sequence[int]) -> float | None:
    """Fraction of clips with a known motion (>= 0) whose caption names exactly that motion."""
    from edgelstm.data.captions import motion_of

    y = np.asarray(motions, np.int64)
    known = np.flatnonzero(y >= 0)
    if not len(known):
        return None
    return float(np.mean([motion_of(hyps[int(i)]) == int(y[i]) for i in known]))


def caption_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]],
                   motions: np.ndarray | Sequence[int] | None = None) -> CaptionScores:
    """Every metric of generated captions ``hyps`` (one per clip) against ``refs`` (several per clip)."""
    if len(hyps) != len(refs) or not hyps:
        raise UsageError(f"{len(hyps)} captions for {len(refs)} clips", expected="one caption per clip, at least one",
                         fix="caption every clip of the split")
    lengths = [len(words_of(h)) for h in hyps]
    return CaptionScores(bleu4=round(bleu4(hyps, refs), 4), cider_d=round(cider_d(hyps, refs), 4),
                         motion_accuracy=None if motions is None else motion_accuracy(hyps, motions),
                         clips=len(hyps), mean_words=round(float(np.mean(lengths)), 3),
                         empty=int(sum(n == 0 for n in lengths)))

"""A captioning model's facts in the manifest (``Manifest.captioning``): its vocabulary, how long a caption may be,
and when the runtime writes one. Standard library only, strict like the manifest.

Words are lower-case runs of letters (:func:`words_of`); the first four vocabulary entries are the special tokens
(:data:`SPECIALS`): padding, begin, end and unknown. Export writes the section from the checkpoint (the
vocabulary is built from the training captions); the runtime's decoder (:mod:`edgelstm.runtime.decode`) and
``edgelstm eval --task caption`` read it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgelstm.errors import DataError, UsageError, closest

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
MAX_CAPTION_WORDS = 64   # a caption longer than this is not a caption of one clip
CAPTIONING_KEY = "captioning"  # where a captioner checkpoint's metrics keep its Captioning (vocabulary, limits)
_WORD = re.compile(r"[a-z]+")


def words_of(text: str) -> list[str]:
    """A caption's words: lower-cased runs of letters (punctuation and digits separate words and are dropped)."""
    return _WORD.findall(text.lower())


def check_caption(text: str, *, where: str | Path) -> list[str]:
    """A caption's words, or a :class:`DataError` naming ``where`` (a file:line) for an empty or overlong one."""
    words = words_of(text)
    if not words:
        raise DataError(f"caption {text.strip()!r} has no words", expected="a caption of at least one word "
                        "(letters a-z)", fix="write the caption, or drop the row", path=where)
    if len(words) > MAX_CAPTION_WORDS:
        raise DataError(f"caption of {len(words)} words", expected=f"at most {MAX_CAPTION_WORDS} words per caption",
                        fix="describe the clip in one short sentence", path=where)
    return words


@dataclass(frozen=True)
class Captioning:
    """``vocab``: the words the decoder knows, index = token id, :data:`SPECIALS` first. ``max_words``: the longest
    caption the runtime decodes (it stops there without an end token). ``window``: frames between two captions
    of a stream when its action does not change (the clip length trained on); ``min_gap``: the fewest frames
    between two captions, so a flickering action does not flood the output. ``beam``: the runtime's default
    beam width (1: greedy)."""

    vocab: tuple[str, ...]
    max_words: int
    window: int
    min_gap: int
    beam: int = 1

    @property
    def size(self) -> int:
        return len(self.vocab)

    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def encode(self, text: str | list[str], *, unknown: str = "error") -> list[int]:
        """Token ids of a caption's words (no begin/end token). ``unknown``: "error" refuses a word the model does
        not know (a :class:`UsageError` naming it and the closest known word), "unk" maps it to ``<unk>``."""
        idx = self.index()
        words = words_of(text) if isinstance(text, str) else list(text)
        out = []
        for w in words:
            if w not in idx or w in SPECIALS:
                if unknown == "unk":
                    out.append(UNK_ID)
                    continue
                known = [v for v in self.vocab if v not in SPECIALS]
                raise UsageError(f"word '{w}' is not in the model's vocabulary of {len(known)} words"
                                 f"{closest(w, known)}",
                                 expected="words the captioner was trained on",
                                 fix="use only known words (the manifest's captioning.vocab), or train on captions "
                                     "that contain it")
            out.append(idx[w])
        return out

    def decode(self, tokens: list[int]) -> list[str]:
        """Words of token ids up to the first end token; padding and begin tokens are skipped."""
        out = []
        for t in tokens:
            if t == EOS_ID:
                break
            if t in (PAD_ID, BOS_ID) or not 0 <= t < len(self.vocab):
                continue
            out.append(self.vocab[t])
        return out


def check_captioning(c: Captioning, source: str | Path, field: Any) -> None:
    """Bounds of a manifest's captioning section; ``field(where, got, expected)`` makes the error."""
    if tuple(c.vocab[:len(SPECIALS)]) != SPECIALS:
        raise field("captioning.vocab", list(c.vocab[:4]), f"the special tokens {list(SPECIALS)} first")
    if len(set(c.vocab)) != len(c.vocab) or len(c.vocab) <= len(SPECIALS):
        raise field("captioning.vocab", f"{len(c.vocab)} entries", "distinct words, at least one besides the "
                    "special tokens")
    for name, value, low, high in (("max_words", c.max_words, 1, MAX_CAPTION_WORDS), ("window", c.window, 1, 1 << 20),
                                   ("min_gap", c.min_gap, 1, 1 << 20), ("beam", c.beam, 1, 16)):
        if isinstance(value, bool) or not low <= value <= high:
            raise field(f"captioning.{name}", value, f"{low}..{high}")

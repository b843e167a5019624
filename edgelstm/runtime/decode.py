"""Captions on the device: the decoder step graph run greedily or with a small beam, and when to run it.

A captioning bundle (``Manifest.task == caption``) holds, beside the encoder and step graphs that stream frames as
a classifier's do (their logits are the motion classes), a decoder step graph: (token, h, c) -> (word logits,
h_out, c_out). The encoder LSTM's state after a frame is the decoder's initial state, so a caption of what a
stream saw so far costs one decoder step per word and never touches the frames again.

:class:`WordDecoder` decodes a batch of states greedily, or one state with a beam of a few hypotheses (batched
as one decoder call per word); a prefix of given words may start the caption (words outside the vocabulary are
refused by name). :class:`Narrator` decides, per stream, when a caption is written: at the end of each clip window
(``Captioning.window`` frames, the clip length trained on) or when the stream's action changes (no sooner than
``min_gap`` frames after the last caption). The :class:`~edgelstm.runtime.engine.Engine` calls it after every
step. numpy and the runtime's loader only: no torch.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from edgelstm import spec
from edgelstm.captionspec import BOS_ID, EOS_ID, PAD_ID, Captioning
from edgelstm.errors import BundleError
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.stream import BackendOptions, ModelRunner, Recorder, State, open_model
from edgelstm.spec import Backend, Precision, Role, Task


@dataclass(frozen=True)
class Caption:
    text: str
    words: tuple[str, ...]
    tokens: tuple[int, ...]
    logprob: float                 # sum of the chosen words' log-probabilities (end token included)
    reason: str = ""               # "window" (a clip window ended) or "action" (the action changed); "" on demand
    frame: int = 0                 # frames the stream was fed since its last reset when the caption was written
    decode_ms: float = 0.0         # the whole decode
    token_ms: tuple[float, ...] = ()  # each decoder call (one per word; a beam's hypotheses share a call)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-probabilities of the next word; padding and begin are never a next word."""
    x = x.copy()
    x[:, [PAD_ID, BOS_ID]] = -np.inf
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))  # type: ignore[no-any-return]


class WordDecoder:
    """The bundle's decoder step graph on one backend and precision."""

    def __init__(self, runner: ModelRunner, captioning: Captioning, record: Recorder | None = None) -> None:
        self.runner, self.cap, self.record = runner, captioning, record

    @classmethod
    def open(cls, bundle: Bundle, backend: Backend, precision: Precision,
             opts: BackendOptions = BackendOptions(), record: Recorder | None = None) -> WordDecoder:
        m = bundle.manifest
        if m.task != Task.CAPTION or m.captioning is None:
            raise BundleError(f"the bundle's task is {m.task}, not caption", path=bundle.path,
                              expected="a captioning bundle (exported from a captioner)",
                              fix="export a checkpoint trained with --task caption")
        return cls(open_model(bundle, bundle.find(Role.DECODER, backend, precision), opts), m.captioning, record)

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One word for a batch: tokens (N,) int64 and the state -> word logits (N, V) and the next state."""
        feeds = {spec.TOKEN: np.ascontiguousarray(tokens, dtype=np.int64), **state}
        if self.record is not None:
            self.record(Role.DECODER, feeds)
        out = self.runner.run(feeds)
        return out[spec.WORD_LOGITS], {spec.H_IN: out[spec.H_OUT], spec.C_IN: out[spec.C_OUT]}

    def _start(self, state: State, prefix: str | None) -> tuple[np.ndarray, State, list[int], list[float]]:
        """Feed BOS and the prefix's words: the logits after them, the state, the prefix tokens, call times."""
        forced = self.cap.encode(prefix) if prefix else []
        n = next(iter(state.values())).shape[1]
        times = []
        for t in [BOS_ID, *forced]:
            t0 = time.perf_counter()
            logits, state = self.step(np.full(n, t, np.int64), state)
            times.append(1e3 * (time.perf_counter() - t0))
        return logits, state, forced, times

    def greedy(self, state: State, *, prefix: str | None = None, max_words: int | None = None) -> list[Caption]:
        """The most likely word at each step, for every stream of ``state`` ((L, N, hidden) h and c)."""
        t0 = time.perf_counter()
        limit = max_words or self.cap.max_words
        logits, state, forced, times = self._start(state, prefix)
        n = logits.shape[0]
        toks = [list(forced) for _ in range(n)]
        score, done = np.zeros(n), np.zeros(n, bool)
        for _ in range(limit - len(forced) + 1):
            lp = _log_softmax(logits)
            best = lp.argmax(-1)
            score += np.where(done, 0.0, lp[np.arange(n), best])
            for i in np.flatnonzero(~done):
                toks[i].append(int(best[i]))
            done |= best == EOS_ID
            if done.all():
                break
            t = time.perf_counter()
            logits, state = self.step(best.astype(np.int64), state)
            times.append(1e3 * (time.perf_counter() - t))
        ms = 1e3 * (time.perf_counter() - t0)
        return [self._caption(tk, float(s), ms, times) for tk, s in zip(toks, score)]

    def beam(self, state: State, *, width: int = 3, prefix: str | None = None,
             max_words: int | None = None) -> Caption:
        """Beam search of ``width`` hypotheses for one stream (state (L, 1, hidden)); the best by mean log-prob."""
        if width <= 1:
            return self.greedy(state, prefix=prefix, max_words=max_words)[0]
        t0 = time.perf_counter()
        limit = max_words or self.cap.max_words
        logits, state, forced, times = self._start(state, prefix)
        beams: list[tuple[list[int], float]] = [(list(forced), 0.0)]
        finished: list[tuple[list[int], float]] = []
        for _ in range(limit - len(forced) + 1):
            lp = _log_softmax(logits)  # (len(beams), V)
            cand = [(b, s + float(lp[i, w]), i, w) for i, (b, s) in enumerate(beams)
                    for w in np.argsort(-lp[i])[:width]]
            cand.sort(key=lambda c: -c[1])
            keep: list[tuple[list[int], float, int]] = []
            for toks, s, i, w in cand:
                if w == EOS_ID:
                    finished.append(([*toks, EOS_ID], s))
                elif len(keep) < width:
                    keep.append(([*toks, int(w)], s, i))
            if not keep or len(finished) >= width:
                break
            rows = np.array([i for _, _, i in keep])
            beams = [(tk, s) for tk, s, _ in keep]
            t = time.perf_counter()
            logits, state = self.step(np.array([tk[-1] for tk, _ in beams], np.int64),
                                      {k: np.ascontiguousarray(v[:, rows]) for k, v in state.items()})
            times.append(1e3 * (time.perf_counter() - t))
        pool = finished or [(tk, s) for tk, s in beams]
        toks, s = max(pool, key=lambda p: p[1] / max(1, len(p[0])))
        return self._caption(toks, s, 1e3 * (time.perf_counter() - t0), times)

    def _caption(self, toks: list[int], score: float, ms: float, times: list[float]) -> Caption:
        words = tuple(self.cap.decode(toks))
        kept = tuple(toks[:toks.index(EOS_ID)] if EOS_ID in toks else toks)
        return Caption(" ".join(words), words, kept, score, decode_ms=ms, token_ms=tuple(times))


class Narrator:
    """When each stream gets a caption: a window of ``window`` frames ended, or its action changed."""

    def __init__(self, decoder: WordDecoder, streams: int, *, beam: int | None = None) -> None:
        self.decoder, self.cap = decoder, decoder.cap
        self.width = beam or self.cap.beam
        self._frames = np.zeros(streams, np.int64)   # fed since the stream's last reset
        self._last = np.zeros(streams, np.int64)     # frame of its last caption
        self._action = np.full(streams, -1, np.int64)

    def reset(self, stream: int | None = None) -> None:
        sel = slice(None) if stream is None else stream
        self._frames[sel], self._last[sel], self._action[sel] = 0, 0, -1

    def update(self, stream: int, action: int, state: State) -> Caption | None:
        """After a step of ``stream`` whose shown action is ``action`` and whose state ((L, 1, hidden) h and c) is
        ``state``: the caption to write now, or None."""
        self._frames[stream] += 1
        frame, since = int(self._frames[stream]), int(self._frames[stream] - self._last[stream])
        was, self._action[stream] = int(self._action[stream]), action
        reason = "window" if since >= self.cap.window else \
            "action" if 0 <= was != action and since >= self.cap.min_gap else ""
        if not reason:
            return None
        self._last[stream] = frame
        c = self.decoder.beam(state, width=self.width) if self.width > 1 else self.decoder.greedy(state)[0]
        return Caption(c.text, c.words, c.tokens, c.logprob, reason, frame, c.decode_ms, c.token_ms)


def open_narrator(bundle: Bundle, backend: Backend, precision: Precision, opts: BackendOptions,
                  streams: int) -> Narrator | None:
    """The engine's narrator for a captioning bundle (None for other tasks)."""
    if bundle.manifest.task != Task.CAPTION:
        return None
    return Narrator(WordDecoder.open(bundle, backend, precision, opts), streams)


def token_latency_ms(times: list[float]) -> dict[str, float]:
    """p50/p90/mean of per-token decoder times (ms)."""
    if not times:
        return {"p50": math.nan, "p90": math.nan, "mean": math.nan}
    a = np.asarray(times)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "mean": float(a.mean())}

"""Video captioning, S2VT-style: a streaming encoder LSTM over frame features, and an LSTM decoder that emits words.

:class:`CaptionStudent` is the streaming student (:class:`~edgelstm.models.clip_models.StreamingClipModel`: frame
encoder, causal LSTM, a per-step head over the motion classes, so its encoder and step graphs export and stream as
a classifier's do) plus a word decoder: the encoder LSTM's state after the last frame is the decoder LSTM's initial
state, and each step takes one token and gives the next word's logits. That step is its own exported graph
(token, h, c -> word logits, h, c), so the runtime decodes greedily or with a small beam without torch.

:class:`CaptionTeacher` is larger and never streams: a wide encoder, a two-layer bidirectional LSTM, a bridge from
its final states to a wider decoder, and the mean of its outputs fed to the decoder with every word. Students are
distilled on its word distributions (:mod:`edgelstm.train.caption`).
"""
from __future__ import annotations

import torch
from torch import nn

from edgelstm.captionspec import BOS_ID, EOS_ID, PAD_ID
from edgelstm.models.clip_models import IMAGENET_MEAN, IMAGENET_STD, BiLSTMClipModel, StreamingClipModel
from edgelstm.models.encoders import Encoder
from edgelstm.models.lstm_classifier import State


FORGET_BIAS = 3.0  # sigmoid(3) = 0.95: a state kept for ~20 words rather than halved at every one


class WordDecoder(nn.Module):
    """tokens (B, L) int64 and (h, c) -> word logits (B, L, V) and the new (h, c); ``context`` (B, C), if the
    decoder was built with ``context_size``, goes in beside every token's embedding."""

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, num_layers: int,
                 context_size: int = 0) -> None:
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.lstm = nn.LSTM(embed_size + context_size, hidden_size, num_layers, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)
        with torch.no_grad():  # forget gates start near 1: the video's state must last to the caption's last words
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias"):
                    p[hidden_size:2 * hidden_size].fill_(FORGET_BIAS / 2)  # torch's gate order: i, f, g, o

    def forward(self, tokens: torch.Tensor, state: State,
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        x = self.embed(tokens)  # (B, L, E)
        if context is not None:
            x = torch.cat([x, context.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        out, state = self.lstm(x, state)
        return self.out(out), state


class _Captioner(nn.Module):
    """What training, evaluation and export call on any captioner.

    ``bag`` is a training aid: from what the decoder starts from, which words the clip's captions use (a multi-label
    head over the vocabulary). Without it the decoder first learns the captions' language alone and is slow to
    look at the video at all (every caption came out the same); with it the encoder's state must say what is
    there from the first epoch. It is not exported."""

    decoder: WordDecoder
    bag: nn.Linear

    def start(self, clip: torch.Tensor) -> tuple[torch.Tensor, State, torch.Tensor | None, torch.Tensor]:
        """(B, T, H, W, 3) uint8 -> per-step motion logits (B, T, K), the decoder's initial state, its context, and
        the bag-of-words logits (B, V)."""
        raise NotImplementedError

    def words(self, clip: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher forcing: motion logits (B, T, K), word logits (B, L, V) after each input token, bag logits."""
        motion, state, ctx, bag = self.start(clip)
        logits, _ = self.decoder(tokens, state, ctx)
        return motion, logits, bag

    @torch.no_grad()
    def greedy(self, clip: torch.Tensor, max_words: int) -> list[list[int]]:
        """The most likely word at every step, for a batch of clips: token ids without begin/end tokens."""
        _, state, ctx, _ = self.start(clip)
        b = clip.shape[0]
        tok = torch.full((b, 1), BOS_ID, dtype=torch.long)
        out = torch.zeros(b, 0, dtype=torch.long)
        done = torch.zeros(b, dtype=torch.bool)
        for _ in range(max_words + 1):
            logits, state = self.decoder(tok, state, ctx)
            last = logits[:, -1].clone()
            last[:, [PAD_ID, BOS_ID]] = float("-inf")  # never a next word
            tok = last.argmax(-1, keepdim=True)
            out = torch.cat([out, tok], 1)
            done |= tok[:, 0] == EOS_ID
            if bool(done.all()):
                break
        seqs = []
        for row in out.tolist():
            seqs.append(row[:row.index(EOS_ID)] if EOS_ID in row else row)
        return seqs


class CaptionStudent(StreamingClipModel, _Captioner):
    """The streaming student: a StreamingClipModel (motion head per step) whose final state starts the decoder."""

    def __init__(self, encoder: Encoder, hidden_size: int, num_layers: int, num_classes: int, vocab_size: int,
                 embed_size: int = 32, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__(encoder, hidden_size, num_layers, num_classes, mean, std)
        self.decoder = WordDecoder(vocab_size, embed_size, hidden_size, num_layers)
        self.bag = nn.Linear(hidden_size, vocab_size)

    def start(self, clip: torch.Tensor) -> tuple[torch.Tensor, State, torch.Tensor | None, torch.Tensor]:
        out, state = self.lstm(self.encode(clip))  # (B, T, hidden); the state after the last frame
        return self.head(out), state, None, self.bag(out[:, -1])


class CaptionTeacher(BiLSTMClipModel, _Captioner):
    """The teacher: bidirectional encoder (motion head over the whole clip), a bridge from its final states to a
    wider decoder, the mean encoder output as the decoder's context."""

    def __init__(self, encoder: Encoder, hidden_size: int, num_layers: int, num_classes: int, vocab_size: int,
                 embed_size: int = 64, decoder_size: int = 256, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__(encoder, hidden_size, num_layers, num_classes, True, mean, std)
        self.bridge = nn.Linear(2 * hidden_size, 2 * decoder_size)
        self.decoder = WordDecoder(vocab_size, embed_size, decoder_size, 1, context_size=2 * hidden_size)
        self.bag = nn.Linear(2 * hidden_size, vocab_size)

    def start(self, clip: torch.Tensor) -> tuple[torch.Tensor, State, torch.Tensor | None, torch.Tensor]:
        out, _ = self.lstm(self.encode(clip))  # (B, T, 2 * hidden)
        h = self.hidden_size
        summary = torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=-1)  # each direction at its last step
        h0, c0 = torch.tanh(self.bridge(summary)).chunk(2, dim=-1)
        motion = self.head(out)  # (B, T, K): the teacher sees the whole clip at every step
        state = (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous())
        return motion, state, out.mean(1), self.bag(summary)

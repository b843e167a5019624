"""What export does for a captioner (a checkpoint trained with ``--task caption``).

The encoder and step graphs are exported and checked as a classifier's (their logits are the motion classes). Then
:func:`with_decoder` adds the word decoder as its own step graph, ``decoder-fp32.onnx`` (and its OpenVINO IR):
(token int64 (N,), h, c) -> (word_logits (N, V), h_out, c_out), the state shaped as the encoder's (the decoder
starts from the encoder's state after the last frame). The manifest names the task and carries the captioning
section (vocabulary, longest caption, window), and the reset policy restarts the state every window, as in
training (each caption describes one window from a zero state).

Decoder parity is end to end: held-out clips stream through the exported encoder and step graphs (the runtime's
Chain), then the decoder graph is fed, word by word, the words PyTorch's greedy decoding chose; every step's word
logits must match PyTorch's teacher-forced decoder within the FP32 tolerance (1e-4).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from edgelstm import spec
from edgelstm.captionspec import BOS_ID, CAPTIONING_KEY, EOS_ID, Captioning
from edgelstm.errors import ExportCheckError
from edgelstm.jsonspec import from_jsonable
from edgelstm.runtime.bundle import Bundle
from edgelstm.runtime.decode import WordDecoder
from edgelstm.runtime.frames import graph_order
from edgelstm.runtime.stream import BackendOptions, open_chain, open_model
from edgelstm.spec import Backend, Manifest, ParityResult, Precision, Role, Task, TensorSpec

log = logging.getLogger(__name__)

PARITY_CLIPS = 8


class DecoderGraph(nn.Module):
    """token (N,) int64, h and c (L, N, hidden) -> word_logits (N, V), h_out, c_out: one word of the decoder."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, (h_out, c_out) = cast(nn.Module, self.decoder)(token.unsqueeze(1), (h, c))  # (N, 1, V)
        return logits[:, 0], h_out, c_out


def decoder_io(manifest: Manifest, vocab_size: int) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The decoder graph's inputs and outputs: the token, then the state as the manifest's state specs say."""
    st = manifest.state
    inputs = (TensorSpec(spec.TOKEN, (spec.BATCH,), "int64"),) + tuple(TensorSpec(s.input, s.shape, s.dtype)
                                                                       for s in st)
    outputs = (TensorSpec(spec.WORD_LOGITS, (spec.BATCH, vocab_size), "float32"),) + tuple(
        TensorSpec(s.output, s.shape, s.dtype) for s in st)
    return inputs, outputs


def captioning_of(ckpt: Any) -> Captioning:
    raw = ckpt.metrics.get(CAPTIONING_KEY)
    if raw is None:
        raise ExportCheckError("a caption checkpoint without its vocabulary", path=ckpt.path,
                               expected="best.pt of a finished `edgelstm train --task caption` run",
                               fix="export the run's best.pt")
    return from_jsonable(Captioning, raw, where=CAPTIONING_KEY, source=ckpt.path or "checkpoint")  # type: ignore


def with_decoder(ckpt: Any, stage: Path, manifest: Manifest, backends: tuple[Backend, ...]) -> Manifest:
    """For a captioner: the manifest with the decoder graph(s) exported into ``stage`` and parity-checked; any other
    checkpoint's manifest unchanged."""
    if ckpt.data.task != Task.CAPTION:
        return manifest
    from edgelstm.export import manifest as mf, onnx as ox

    cap = captioning_of(ckpt)
    dec = ckpt.model.decoder
    if (dec.num_layers, dec.hidden_size) != (manifest.model.num_layers, manifest.model.hidden_size):
        raise ExportCheckError(f"its decoder state is {dec.num_layers}x{dec.hidden_size}", path=ckpt.path,
                               expected=f"the encoder's {manifest.model.num_layers}x{manifest.model.hidden_size} "
                                        "(the decoder starts from it): a streaming captioner (captioner)",
                               fix="distil the teacher into `captioner` and export that")
    reset = dataclasses.replace(manifest.temporal.reset, every_frames=cap.window)
    manifest = dataclasses.replace(manifest, task=Task.CAPTION, captioning=cap,
                                   temporal=dataclasses.replace(manifest.temporal, reset=reset))
    io = decoder_io(manifest, cap.size)
    art = mf.new_artifact(Role.DECODER, Backend.ONNXRUNTIME, Precision.FP32, io, inference_precision="f32")
    graph = DecoderGraph(ckpt.model).eval()
    ox.export_onnx(graph, stage / art.files[0].path, *io)
    arts = [art]
    if Backend.OPENVINO in backends:
        from edgelstm.export import openvino as ovx

        ov_art = mf.new_artifact(Role.DECODER, Backend.OPENVINO, Precision.FP32, io, inference_precision="f32")
        (stage / ov_art.files[0].path).parent.mkdir(parents=True, exist_ok=True)
        ovx.convert_to_ir(stage / art.files[0].path, stage / ov_art.files[0].path)
        arts.append(ov_art)
    manifest = dataclasses.replace(manifest, artifacts=manifest.artifacts + tuple(arts))
    X = parity_clips(manifest)
    results = [decoder_parity(ckpt.model, Bundle(stage, manifest), b, X) for b in dict.fromkeys(a.backend
                                                                                                for a in arts)]
    bad = [r for r in results if not r.passed]
    if bad:
        raise ExportCheckError("decoder streaming-equivalence check failed: " + "; ".join(
            f"{r.artifact}: max|diff| {r.max_abs_diff:.2e} (tolerance {r.tolerance:g}), argmax agreement "
            f"{100 * r.argmax_agreement:.2f}%" for r in bad), expected="the exported decoder to match PyTorch word "
            "by word", fix="nothing was written; report this with the checkpoint (an exporter or backend bug)")
    return dataclasses.replace(manifest, parity=manifest.parity + tuple(results))


def parity_clips(manifest: Manifest, count: int = PARITY_CLIPS) -> np.ndarray:
    """Held-out synthetic clips (N, T, H, W, 3) RGB at the bundle's size and clip length."""
    from edgelstm.data.synthetic import SyntheticActions, SyntheticConfig

    size = manifest.data_options()["size"]
    cfg = SyntheticConfig(size=size, clip_len=manifest.temporal.clip_len, test=count)
    return SyntheticActions(cfg, "test").arrays()[0]


def torch_words(model: Any, X: np.ndarray, max_words: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's greedy words as decoder inputs [BOS, w1, ...] (N, L) and its teacher-forced logits (N, L, V)."""
    seqs = model.greedy(torch.from_numpy(X), max_words)
    length = max(len(s) for s in seqs) + 1
    inp = np.full((len(seqs), length), EOS_ID, np.int64)
    inp[:, 0] = BOS_ID
    for i, s in enumerate(seqs):
        inp[i, 1:len(s) + 1] = s
    with torch.no_grad():
        _, logits, _ = model.words(torch.from_numpy(X), torch.from_numpy(inp))
    return inp, logits.numpy()


def decoder_parity(model: Any, bundle: Bundle, backend: Backend, X: np.ndarray, *,
                   precision: Precision = Precision.FP32, tol: float = 1e-4) -> ParityResult:
    """Clips through the exported encoder + step graphs, then the decoder word by word against PyTorch."""
    from edgelstm.export.parity import compare

    m = bundle.manifest
    assert m.captioning is not None
    inp, ref = torch_words(model, X, m.captioning.max_words)
    opts = BackendOptions(inference_precision="f32") if backend == Backend.OPENVINO else BackendOptions()
    chain = open_chain(bundle, backend, precision, opts)
    state = chain.zero_state(len(X))
    X_dev = graph_order(X, m)
    for t in range(X.shape[1]):
        state = chain.step(np.ascontiguousarray(X_dev[:, t]), state).state
    dec = WordDecoder(open_model(bundle, bundle.find(Role.DECODER, backend, precision), opts), m.captioning)
    got = np.empty_like(ref)
    for t in range(inp.shape[1]):
        got[:, t], state = dec.step(inp[:, t], state)
    art = bundle.find(Role.DECODER, backend, precision)
    return compare(art.key, "torch", got, ref, tol)

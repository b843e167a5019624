"""A captioner's bundle: the decoder as its own step graph, parity with PyTorch, and torch-free decoding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgelstm import spec
from edgelstm.errors import UsageError
from edgelstm.models.checkpoint import load_checkpoint
from edgelstm.runtime.bundle import load_bundle
from edgelstm.runtime.decode import WordDecoder
from edgelstm.runtime.frames import graph_order
from edgelstm.runtime.stream import BackendOptions, open_chain
from edgelstm.spec import Backend, Precision, Role, Task


def test_manifest_names_the_task_and_the_decoder(caption_bundle: Path) -> None:
    m = load_bundle(caption_bundle).manifest
    assert m.task == Task.CAPTION and m.captioning is not None and m.captioning.vocab[:2] == ("<pad>", "<bos>")
    assert m.temporal.reset.every_frames == m.captioning.window == m.temporal.clip_len
    dec = m.artifact(Role.DECODER, Backend.ONNXRUNTIME, Precision.FP32)
    assert dec is not None and [t.name for t in dec.inputs] == [spec.TOKEN, spec.H_IN, spec.C_IN]
    assert dec.outputs[0].shape == (spec.BATCH, m.captioning.size)
    parity = {p.artifact: p for p in m.parity}
    for key in ("decoder:onnxruntime:fp32", "decoder:openvino:fp32", "step:onnxruntime:fp32"):
        assert parity[key].passed and parity[key].max_abs_diff <= 1e-4 and parity[key].argmax_agreement == 1.0


@pytest.mark.parametrize("backend", [Backend.ONNXRUNTIME, Backend.OPENVINO])
def test_runtime_greedy_equals_pytorch(caption_bundle: Path, caption_student: Path, caption_data: object,
                                       backend: Backend) -> None:
    b = load_bundle(caption_bundle)
    m = b.manifest
    X = caption_data["test"].X[:5]  # type: ignore[index]
    ck = load_checkpoint(caption_student)
    want = ck.model.greedy(torch.from_numpy(X), m.captioning.max_words)  # type: ignore[operator, union-attr]
    opts = BackendOptions(inference_precision="f32")  # OpenVINO's default here is bf16: near-tied words differ
    chain = open_chain(b, backend, Precision.FP32, opts)
    state = chain.zero_state(len(X))
    for t in range(X.shape[1]):
        state = chain.step(np.ascontiguousarray(graph_order(X, m)[:, t]), state).state
    dec = WordDecoder.open(b, backend, Precision.FP32, opts)
    got = dec.greedy(state)
    assert [list(c.tokens) for c in got] == want
    assert all(len(c.token_ms) >= 1 and c.decode_ms > 0 for c in got)
    one = {k: v[:, :1].copy() for k, v in state.items()}
    beam = dec.beam(one, width=3)
    assert beam.logprob >= got[0].logprob - 1e-4 or len(beam.tokens) != len(got[0].tokens)


def test_prefix_and_unknown_words(caption_bundle: Path) -> None:
    b = load_bundle(caption_bundle)
    m = b.manifest
    dec = WordDecoder.open(b, Backend.ONNXRUNTIME, Precision.FP32)
    state = {s.input: np.zeros((1, 1, m.model.hidden_size), np.float32) for s in m.state}
    word = m.captioning.vocab[5]  # type: ignore[union-attr]
    assert dec.greedy(state, prefix=word)[0].words[0] == word
    with pytest.raises(UsageError, match="word 'zebra' is not in the model's vocabulary"):
        dec.greedy(state, prefix="a zebra")

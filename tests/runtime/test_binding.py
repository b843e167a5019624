"""Bound inputs and outputs (runtime.binding) and the runners that use them: what is rebound, what is
shared, what the caller owns. No timings: the point is that binding once changes no result."""
from __future__ import annotations

import weakref

import numpy as np
import pytest
from toy_bundle import Toy

from edgelstm import spec
from edgelstm.errors import UsageError
from edgelstm.runtime.binding import BoundInputs, OutputBuffers, same_memory
from edgelstm.runtime.bundle import load_bundle
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.stream import BackendOptions, open_chain, open_model
from edgelstm.spec import Backend, Precision, Role, TensorSpec

BACKENDS = [Backend.ONNXRUNTIME, Backend.OPENVINO]
F32 = BackendOptions(inference_precision="f32")  # OpenVINO: no bf16 rounding against the numpy reference


def _recorder(keep: bool = True) -> tuple[BoundInputs, list[tuple[str, np.ndarray]]]:
    calls: list[tuple[str, np.ndarray]] = []
    bound = BoundInputs({"x": np.dtype(np.float32), "h": np.dtype(np.float32)},
                        lambda name, a: calls.append((name, a)), keep=keep)
    return bound, calls


def test_inputs_are_rebound_only_when_their_memory_changes() -> None:
    bound, calls = _recorder()
    buf, h = np.zeros((4, 3), np.float32), np.zeros((1, 4, 2), np.float32)
    assert bound.update({"x": buf[:2], "h": h[:, :2]})            # first sight: bound, shapes new
    assert [n for n, _ in calls] == ["x", "h"]
    assert not bound.update({"x": buf[:2], "h": h[:, :2]})        # new view objects, same memory: nothing
    assert len(calls) == 2
    assert bound.update({"x": buf[:3], "h": h[:, :2]})            # another batch: x again, reshaped
    assert [n for n, _ in calls[2:]] == ["x"]
    other = buf[:3].copy()
    assert not bound.update({"x": other, "h": h[:, :2]})          # same shape, other buffer: rebound
    assert calls[-1][1] is other


def test_inputs_that_cannot_be_shared_are_copied_and_rebound_each_call() -> None:
    bound, calls = _recorder()
    wide = np.zeros((3, 4), np.float64)                           # wrong dtype
    h = np.zeros((2, 3, 2), np.float32)[:, :2]                    # not contiguous (two layers, two of three streams)
    ro = np.zeros((3,), np.float32)
    ro.flags.writeable = False
    bound.update({"x": wide, "h": h})
    bound.update({"x": wide, "h": h})
    assert len(calls) == 4                                        # copies are new memory every call
    for _, a in calls:
        assert a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    np.testing.assert_array_equal(calls[-1][1], h)
    bound.update({"x": ro, "h": h})
    assert calls[-2][1] is not ro and calls[-2][1].flags.writeable
    bound2, calls2 = _recorder(keep=False)                        # a backend that copies at bind time
    x = np.zeros((2, 3), np.float32)
    bound2.update({"x": x, "h": h})
    bound2.update({"x": x, "h": h})
    assert [n for n, _ in calls2] == ["x", "h", "x", "h"]


def test_same_memory() -> None:
    a = np.zeros((4, 3), np.float32)
    assert same_memory(a[:2], a[:2]) and not same_memory(a[:2], a[1:3]) and not same_memory(a[:2], a[:3])
    assert not same_memory(a, a.view(np.int32)) and not same_memory(a, a.copy())


def test_output_buffers_per_axis_sizes() -> None:
    ins = (TensorSpec("clip", (spec.BATCH, spec.TIME, 4), "float32"),)
    outs = (TensorSpec("y", (spec.BATCH, spec.TIME, 2), "float32"), TensorSpec("z", (spec.BATCH,), "float32"))
    bufs = OutputBuffers(ins, outs)
    a = bufs.get({"clip": np.zeros((3, 5, 4), np.float32)})
    assert a is not None and [x.shape for x in a] == [(3, 5, 2), (3,)]
    assert bufs.get({"clip": np.zeros((3, 5, 4), np.float32)}) is a   # the same arrays for the same sizes
    assert bufs.get({"clip": np.zeros((1, 5, 4), np.float32)}) is not a
    for n in range(2, 2 + OutputBuffers.KEEP):
        bufs.get({"clip": np.zeros((n, 1, 4), np.float32)})
    assert len(bufs._sets) == OutputBuffers.KEEP                       # bounded
    free = OutputBuffers(ins, (TensorSpec("w", ("other",), "float32"),))
    assert free.get({"clip": np.zeros((1, 1, 4), np.float32)}) is None  # no input sets that axis


@pytest.mark.parametrize("backend", BACKENDS)
def test_runner_reads_bound_memory_afresh_and_returns_the_callers_arrays(toy: Toy, backend: Backend) -> None:
    b = load_bundle(toy.path)
    enc = open_model(b, b.find(Role.ENCODER, backend, Precision.FP32), F32)
    rng = np.random.default_rng(0)
    buf = rng.integers(0, 256, (3, *toy.size, 3), dtype=np.uint8)  # (S, H, W, 3), refilled in place
    first = enc.run({spec.FRAMES: buf})[spec.FEATURES]
    np.testing.assert_allclose(first, toy.encode(buf), atol=1e-5)
    buf[:] = rng.integers(0, 256, buf.shape, dtype=np.uint8)       # the same buffer, new frames
    second = enc.run({spec.FRAMES: buf})[spec.FEATURES]
    np.testing.assert_allclose(second, toy.encode(buf), atol=1e-5)  # not the stale bound copy
    assert second is not first and not np.shares_memory(first, second)
    second[:] = np.nan                                             # the caller's: writing it changes nothing
    np.testing.assert_allclose(enc.run({spec.FRAMES: buf})[spec.FEATURES], toy.encode(buf), atol=1e-5)
    views = [enc.run({spec.FRAMES: buf}, views=True)[spec.FEATURES] for _ in range(2)]
    assert views[0] is views[1]                                    # views: the runner's own output buffer
    one = enc.run({spec.FRAMES: buf[1:2]})[spec.FEATURES]          # batch 3 -> 1 -> 3
    np.testing.assert_array_equal(one[0], enc.run({spec.FRAMES: buf})[spec.FEATURES][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_chain_and_engine_match_plain_per_frame_calls(toy: Toy, backend: Backend) -> None:
    """Bound I/O against fresh runners called frame by frame with copied state: the same bits."""
    b = load_bundle(toy.path)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (2, 5, *toy.size, 3), dtype=np.uint8)  # (N, T, H, W, 3), graph order
    got = open_chain(b, backend, Precision.FP32, F32).run(X)
    enc, step = (open_model(b, b.find(r, backend, Precision.FP32), F32) for r in (Role.ENCODER, Role.STEP))
    state = {s.input: np.zeros([2 if isinstance(d, str) else d for d in s.shape], np.float32) for s in b.manifest.state}
    for t in range(X.shape[1]):
        feats = enc.run({spec.FRAMES: X[:, t].copy()})[spec.FEATURES].copy()
        out = step.run({spec.FEATURES: feats, **{k: v.copy() for k, v in state.items()}})
        np.testing.assert_array_equal(got[:, t], out[spec.LOGITS])
        state = {s.input: out[s.output] for s in b.manifest.state}
    eng = Engine.load(toy.path, backend=str(backend), precision="fp32", streams=2, options=F32)
    colour_swap = toy.colour == spec.ColourOrder.RGB
    for t in range(X.shape[1]):
        frames = [np.ascontiguousarray(X[n, t][..., ::-1]) if colour_swap else X[n, t] for n in range(2)]
        if t == 2:
            eng.reset(1)  # zeroed in place: the bound state must see it
            preds = eng.step_batch(frames)
            ref = open_chain(b, backend, Precision.FP32, F32)
            np.testing.assert_array_equal(preds[1].logits, ref.run(X[1:2, 2:3])[0, 0])
        else:
            preds = eng.step_batch(frames)
        if t < 2:
            np.testing.assert_array_equal(np.stack([p.logits for p in preds]), got[:, t])


@pytest.mark.parametrize("backend", BACKENDS)
def test_runner_refuses_a_missing_input_and_goes_with_its_last_reference(toy: Toy, backend: Backend) -> None:
    b = load_bundle(toy.path)
    step = open_model(b, b.find(Role.STEP, backend, Precision.FP32), F32)
    feats = np.zeros((1, b.manifest.model.feature_size), np.float32)
    with pytest.raises(UsageError, match="the model's inputs"):  # not a run on the last bound state
        step.run({spec.FEATURES: feats})
    gone = weakref.ref(step)
    del step
    assert gone() is None  # no reference cycle: Engine.close frees sessions and requests at once

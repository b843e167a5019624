"""Engine: parity with a hand-computed reference, state per stream, validation, device choice."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from toy_bundle import LABELS, Toy, add_selftest, int8_report, make_toy_bundle, swap_state_outputs

from edgelstm import spec
from edgelstm.errors import BundleError, DeviceError, FrameError, UsageError
from edgelstm.runtime.engine import Engine
from edgelstm.runtime.frames import Smoothing

# fp32 all the way; the reference is float64. 1e-5 covers float32 rounding over a few steps.
TOL = 1e-5


def _clip(seed: int, t: int = 6, size: tuple[int, int] = (8, 8)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, *size, 3), np.uint8)  # (T, H, W, 3)


@pytest.mark.parametrize("backend, graph", [("onnxruntime", "split"), ("onnxruntime", "fused"),
                                            ("openvino", "split"), ("openvino", "fused")])
def test_step_matches_reference(toy: Toy, backend: str, graph: str) -> None:
    rgb = _clip(1)
    ref = toy.logits(rgb)
    eng = Engine.load(toy.path, backend=backend, graph=graph)
    assert eng.info["graph"] == graph
    preds = [eng.step(np.ascontiguousarray(f[..., ::-1])) for f in rgb]  # the engine takes BGR
    got = np.stack([p.logits for p in preds])
    np.testing.assert_allclose(got, ref, atol=TOL)
    p = preds[-1]
    assert p.index == int(ref[-1].argmax()) and p.label == LABELS[p.index]
    assert p.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert p.top[0][0] == p.index and len(p.top) == 5
    tm = p.timings
    assert tm.total >= tm.preprocess + tm.encoder + tm.step + tm.postprocess - 1e-6
    assert (tm.encoder > 0) == (graph == "split") and tm.step > 0
    if backend == "openvino":
        assert eng.inference_precision == "f32"  # never the CPU plugin's silent bf16


def test_reset_restarts_the_sequence(toy: Toy) -> None:
    rgb = _clip(2)
    bgr = rgb[..., ::-1].copy()
    eng = Engine.load(toy.path)
    first = [eng.step(f).logits for f in bgr]
    second_without_reset = eng.step(bgr[0]).logits
    eng.reset()
    again = [eng.step(f).logits for f in bgr]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert np.abs(second_without_reset - first[0]).max() > 1e-3  # the state carried over


def test_resize_from_camera_size(toy: Toy) -> None:
    """A 48x64 frame is resized with INTER_AREA straight into the model's buffer."""
    import cv2

    big = np.random.default_rng(3).integers(0, 256, (48, 64, 3), np.uint8)
    small_rgb = cv2.cvtColor(cv2.resize(big, (8, 8), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    eng = Engine.load(toy.path)
    np.testing.assert_allclose(eng.step(big).logits, toy.logits(small_rgb[None])[0], atol=TOL)


def test_batch_equals_separate_streams(toy: Toy) -> None:
    clips = [_clip(10 + i)[..., ::-1].copy() for i in range(3)]
    single = Engine.load(toy.path)
    expected = []
    for c in clips:
        single.reset()
        expected.append(np.stack([single.step(f).logits for f in c]))
    eng = Engine.load(toy.path, streams=3)
    got = np.stack([np.stack([p.logits for p in eng.step_batch([c[t] for c in clips])]) for t in range(6)], 1)
    np.testing.assert_allclose(got, np.stack(expected), atol=TOL)
    # a subset of streams, out of order, leaves the others' state alone
    eng.reset()
    for t in range(6):
        preds = eng.step_batch([clips[2][t], clips[0][t]], streams=[2, 0])
        assert [p.stream for p in preds] == [2, 0]
    np.testing.assert_allclose(preds[0].logits, expected[2][-1], atol=TOL)
    np.testing.assert_allclose(eng.step(clips[1][0], stream=1).logits, expected[1][0], atol=TOL)


def test_static_batch_openvino(toy: Toy, tmp_path: Path) -> None:
    """NPU-style fixed batch: stepping one stream runs all slots but only that stream's state moves."""
    prof = tmp_path / "static.toml"
    prof.write_text('backend = "openvino"\ndevice = "CPU"\nstatic_batch = true\n')
    eng = Engine.load(toy.path, device=prof, streams=2)
    assert eng.plan.options.static_batch == 2
    rgb = _clip(4)
    got = [eng.step(np.ascontiguousarray(f[..., ::-1]), stream=1).logits for f in rgb]
    np.testing.assert_allclose(np.stack(got), toy.logits(rgb), atol=TOL)
    np.testing.assert_allclose(eng.step(rgb[0][..., ::-1].copy(), stream=0).logits, toy.logits(rgb[:1])[0], atol=TOL)


@pytest.mark.parametrize("frame, needle", [
    (np.zeros((8, 8), np.uint8), "GRAY2BGR"),
    (np.zeros((8, 8, 4), np.uint8), "BGRA2BGR"),
    (np.zeros((2, 8, 8, 3), np.uint8), "shape [2, 8, 8, 3]"),
    (np.full((8, 8, 3), np.nan, np.float32), "NaN/Inf"),
    (np.zeros((8, 8, 3), np.float64), "float64 frame"),
    ([[1, 2, 3]], "type list"),
    (np.zeros((0, 8, 3), np.uint8), "empty frame"),
])
def test_bad_frames_are_refused(toy: Toy, frame: object, needle: str) -> None:
    eng = Engine.load(toy.path)
    with pytest.raises(FrameError, match="Fix:") as e:
        eng.step(frame)  # type: ignore[arg-type]
    assert needle in str(e.value)


def test_feature_model_and_non_finite_state(toy_features: Toy, caplog: pytest.LogCaptureFixture) -> None:
    eng = Engine.load(toy_features.path, streams=2)
    x = np.random.default_rng(5).uniform(0.1, 1.0, (4, 6)).astype(np.float32)
    ref = toy_features.logits(x)
    for t in range(3):
        p = eng.step(x[t], stream=0)
    np.testing.assert_allclose(p.logits, ref[2], atol=TOL)
    eng.step(x[0], stream=1)
    bad = x[3].copy()
    bad[0] = -1.0  # the poisoned graph turns this stream's h into NaN
    with caplog.at_level(logging.WARNING):
        preds = eng.step_batch([bad, x[1]], streams=[0, 1])
    assert preds[0].reset == "non-finite state" and preds[0].index == -1
    assert "non-finite" in caplog.text
    assert preds[1].reset == "" and np.allclose(preds[1].logits, ref[1], atol=TOL)  # stream 1 untouched
    np.testing.assert_allclose(eng.step(x[0], stream=0).logits, ref[0], atol=TOL)  # stream 0 starts afresh
    with pytest.raises(FrameError, match="NaN/Inf"):
        eng.step(np.full(6, np.inf, np.float32))
    with pytest.raises(FrameError, match=r"\(6,\)"):
        eng.step(np.zeros(5, np.float32))


def test_smoothing_holds_the_label(toy: Toy) -> None:
    eng = Engine.load(toy.path, smoothing=Smoothing(ema=0.9, hysteresis=0.5))
    frames = _clip(7, t=12)[..., ::-1].copy()
    shown = [eng.step(f).index for f in frames]
    raw = Engine.load(toy.path)
    raw_idx = [raw.step(f).index for f in frames]
    changes = lambda xs: sum(a != b for a, b in zip(xs, xs[1:]))  # noqa: E731
    assert changes(shown) <= changes(raw_idx)
    assert changes(shown) == 0  # a 0.5 margin is never beaten by a 0.9-EMA of 5 classes in 12 frames


def test_bad_choices_are_clear(toy: Toy, tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="did you mean 'intel-gpu'"):
        Engine.load(toy.path, device="intel-gpv")
    with pytest.raises(DeviceError, match="CUDAExecutionProvider is not available"):
        Engine.load(toy.path, device="nvidia-cuda")
    with pytest.raises(UsageError, match="cannot drive"):
        Engine.load(toy.path, device="intel-npu", backend="onnxruntime")
    with pytest.raises(BundleError, match="quantize it first"):
        Engine.load(toy.path, precision="int8")
    with pytest.raises(UsageError, match="stream 3"):
        Engine.load(toy.path, streams=2).step(np.zeros((8, 8, 3), np.uint8), stream=3)
    broken = tmp_path / "b"
    shutil.copytree(toy.path, broken)
    (broken / "step.onnx").write_bytes((broken / "step.onnx").read_bytes()[:-3] + b"xyz")
    with pytest.raises(BundleError, match="does not match"):
        Engine.load(broken)


def test_model_inputs_checked_against_manifest(tmp_path: Path) -> None:
    """A model whose real input size differs from the manifest is refused before the first frame."""
    import json

    make_toy_bundle(tmp_path / "a", size=(8, 8))
    make_toy_bundle(tmp_path / "b", size=(12, 12))
    shutil.copy(tmp_path / "b" / "encoder.onnx", tmp_path / "a" / "encoder.onnx")
    m = json.loads((tmp_path / "a" / spec.MANIFEST_NAME).read_text())
    new = json.loads((tmp_path / "b" / spec.MANIFEST_NAME).read_text())
    for art, art_b in zip(m["artifacts"], new["artifacts"]):
        if art["role"] == "encoder":
            art["files"] = art_b["files"]  # hashes agree; shapes do not
    (tmp_path / "a" / spec.MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"input 'frames' is \[.*12, 12, 3\]"):
        Engine.load(tmp_path / "a")


def test_int8_only_when_the_report_says_so(tmp_path: Path) -> None:
    from edgelstm.runtime.engine import int8_verdict

    make_toy_bundle(tmp_path / "q", quantization=int8_report({"onnxruntime": {1: 0.7, 8: 0.6, 32: 0.5},
                                                              "openvino": {1: 1.3, 8: 1.2, 32: 1.1}}))
    m = spec.Manifest.read(tmp_path / "q" / spec.MANIFEST_NAME)
    ok, why = int8_verdict(m, spec.Backend.ONNXRUNTIME)
    assert ok and "pays on onnxruntime from batch 1" in why
    ok, why = int8_verdict(m, spec.Backend.OPENVINO)
    assert not ok and "does not pay on openvino at any batch" in why
    eng = Engine.load(tmp_path / "q")  # no INT8 artefact in the toy: fp32, and it says why
    assert eng.plan.precision == spec.Precision.FP32 and "no INT8 artefact" in eng.info["choice"]
    make_toy_bundle(tmp_path / "f", quantization=int8_report({"onnxruntime": {1: 0.5}}, passed=False))
    m = spec.Manifest.read(tmp_path / "f" / spec.MANIFEST_NAME)
    assert int8_verdict(m, spec.Backend.ONNXRUNTIME) == (False, "INT8 did not pass its accuracy gate on onnxruntime")
    make_toy_bundle(tmp_path / "none")
    m = spec.Manifest.read(tmp_path / "none" / spec.MANIFEST_NAME)
    assert m.quantization is None and int8_verdict(m, spec.Backend.ONNXRUNTIME)[0] is False


def test_int8_by_stream_count(tmp_path: Path) -> None:
    """With a per-batch report, INT8 from the measured crossover batch on, FP32 below it."""
    from edgelstm.runtime.engine import int8_verdict

    report = int8_report({"onnxruntime": {1: 1.2, 8: 0.9, 32: 0.7}, "openvino": {1: 1.3, 8: 1.1, 32: 1.05}})
    make_toy_bundle(tmp_path / "b", quantization=report)
    m = spec.Manifest.read(tmp_path / "b" / spec.MANIFEST_NAME)
    assert m.quantization == report  # the typed report round-trips through manifest.json
    ok1, why1 = int8_verdict(m, spec.Backend.ONNXRUNTIME, 1)
    assert not ok1 and "below batch 8" in why1 and "1: 1.20x" in why1
    assert int8_verdict(m, spec.Backend.ONNXRUNTIME, 7)[0] is False
    assert int8_verdict(m, spec.Backend.ONNXRUNTIME, 8)[0] is True
    assert int8_verdict(m, spec.Backend.ONNXRUNTIME, 32)[0] is True
    ok, why = int8_verdict(m, spec.Backend.OPENVINO, 32)
    assert not ok and "does not pay" in why and "at any batch" in why


def test_state_accessor_is_a_copy_of_each_streams_state(toy: Toy) -> None:
    eng = Engine.load(toy.path, streams=2)
    h, c = eng.state(1)
    assert h.shape == c.shape == (1, toy.R.shape[1]) and not h.any() and not c.any()
    x = frames_rgb = np.random.default_rng(1).integers(0, 256, (1, *toy.size, 3), np.uint8)
    eng.step(x[0][..., ::-1].copy(), stream=1)  # BGR in
    _, h_ref, c_ref = toy.step(toy.encode(frames_rgb), np.zeros((1, h.shape[1])), np.zeros((1, h.shape[1])))
    h1, c1 = eng.state(1)
    np.testing.assert_allclose(h1, h_ref, atol=TOL)
    np.testing.assert_allclose(c1, c_ref, atol=TOL)
    assert not eng.state(0)[0].any()  # the other stream untouched
    h1[...] = 99.0  # a copy: the engine's state does not change
    assert np.abs(eng.state(1)[0]).max() < 1.0
    with pytest.raises(UsageError, match="stream 2"):
        eng.state(2)


def test_large_frames_are_halved_before_the_area_resize(toy: Toy) -> None:
    """640x480 -> 8x8: exact 2x2 box halvings, then INTER_AREA. Against the exact float box average the
    result is off by rounding only (each halving rounds once): at most 4 grey levels, mean under 0.5."""
    import cv2

    from edgelstm.measure.harness import render_frames

    eng = Engine.load(toy.path)
    for frame in render_frames(4):
        eng._prepare(0, frame, spec.ColourOrder.BGR)
        got = eng._buf[0].astype(np.float64)[..., ::-1]  # the graph takes RGB
        exact = frame.astype(np.float64).reshape(8, 60, 8, 80, 3).mean(axis=(1, 3))
        direct = cv2.resize(frame, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float64)
        assert np.abs(got - exact).max() <= 4.0 and np.abs(got - exact).mean() < 0.5
        assert np.abs(direct - exact).max() <= 0.5  # the direct path: one rounding


# --- the self-test, lifetime and resource bounds (issue 10 §3) ---------------------------------------
@pytest.mark.parametrize("graph", ["split", "fused"])
def test_selftest_catches_swapped_state_outputs(tmp_path: Path, graph: str) -> None:
    """h_out and c_out swapped in the step graph: every shape agrees, only the self-test can tell."""
    toy = make_toy_bundle(tmp_path / "b", fused=True)
    add_selftest(toy)
    assert "self-test passed" in Engine.load(toy.path, graph=graph).info["selftest"]
    swap_state_outputs(toy.path, "step" if graph == "split" else "fused")
    eng = Engine.load(toy.path, graph=graph, verify=False)  # loads: hashes, names and shapes all agree
    rgb = _clip(3)
    got = np.stack([eng.step(np.ascontiguousarray(f[..., ::-1])).logits for f in rgb])
    assert np.abs(got - toy.logits(rgb)).max() > 1e-2  # ...and computes something else
    with pytest.raises(BundleError, match=r"self-test failed on .*max \|logit difference\| (\S+) .*tolerance") as e:
        Engine.load(toy.path, graph=graph)
    measured = float(re.search(r"difference\| (\S+) ", str(e.value)).group(1))  # type: ignore[union-attr]
    assert measured > 1e-3 and "expected at most 0.001" in str(e.value)


def test_selftest_on_openvino_and_a_static_batch(tmp_path: Path) -> None:
    toy = make_toy_bundle(tmp_path / "b", openvino=True)
    add_selftest(toy)
    prof = tmp_path / "static.toml"  # NPU-style fixed batch 3: the self-test's 2 streams are repeated to fill it
    prof.write_text('backend = "openvino"\ndevice = "CPU"\nstatic_batch = true\n')
    assert "passed" in Engine.load(toy.path, backend="openvino").info["selftest"]
    assert "passed" in Engine.load(toy.path, device=prof, streams=3).info["selftest"]


def test_selftest_reduced_precision_checks_the_fp32_graphs(tmp_path: Path) -> None:
    """An INT8 (or bf16) engine's values move by the CPU's rounding, so its wiring is checked exactly on the same
    backend's FP32 graphs, and the INT8 chain must answer finitely; a mis-wired bundle fails either way."""
    import dataclasses

    from edgelstm.runtime.bundle import load_bundle

    toy = make_toy_bundle(tmp_path / "b", openvino=True)
    add_selftest(toy)
    m = load_bundle(toy.path).manifest
    int8 = tuple(dataclasses.replace(a, precision=spec.Precision.INT8) for a in m.artifacts)  # same files
    (toy.path / spec.MANIFEST_NAME).write_text(dataclasses.replace(m, artifacts=m.artifacts + int8).to_json())
    eng = Engine.load(toy.path, precision="int8")
    assert eng.inference_precision == "int8" and "on the FP32 graphs; int8 answers finite" in eng.info["selftest"]
    # OpenVINO runs an INT8 IR with the f32 inference hint: still INT8 values, still checked on the FP32 graphs
    eng = Engine.load(toy.path, backend="openvino", precision="int8")
    assert eng.inference_precision == "f32" and "on the FP32 graphs; int8 answers finite" in eng.info["selftest"]
    swap_state_outputs(toy.path, "step")  # the FP32 and the "INT8" step artefact are this one file
    with pytest.raises(BundleError, match=r"self-test failed on step:onnxruntime:fp32"):
        Engine.load(toy.path, precision="int8")


def test_bundle_without_selftest_loads_with_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    toy = make_toy_bundle(tmp_path / "old")
    with caplog.at_level(logging.WARNING):
        eng = Engine.load(toy.path)
    assert eng.info["selftest"] == "none in this bundle" and "has no self-test" in caplog.text


def test_close_and_context_manager(toy: Toy) -> None:
    frame = np.zeros((8, 8, 3), np.uint8)
    with Engine.load(toy.path, verify=False) as eng:
        assert eng.step(frame).label in LABELS
    with pytest.raises(UsageError, match="the engine is closed"):
        eng.step(frame)
    with pytest.raises(UsageError, match="the engine is closed"):
        eng.step_batch([frame])
    eng.close()  # twice is fine
    assert not hasattr(eng, "_chain")  # the runners (sessions, infer requests) are released


@pytest.mark.parametrize("stream, needle", [("0", "stream '0' (str)"), (1.0, "stream 1.0 (float)"),
                                            (True, "stream True (bool)"), (-1, "stream -1"), (2, "stream 2")])
def test_stream_must_be_an_int_in_range(toy: Toy, stream: object, needle: str) -> None:
    eng = Engine.load(toy.path, streams=2, verify=False)
    with pytest.raises(UsageError, match="0..1") as e:
        eng.step(np.zeros((8, 8, 3), np.uint8), stream=stream)  # type: ignore[arg-type]
    assert needle in str(e.value)
    with pytest.raises(UsageError, match="a sequence of stream ids"):
        eng.step_batch([np.zeros((8, 8, 3), np.uint8)], streams=0)  # type: ignore[arg-type]


def test_threads_above_the_cores_are_capped(toy: Toy, caplog: pytest.LogCaptureFixture) -> None:
    from edgelstm.runtime.stream import cpu_count

    with caplog.at_level(logging.WARNING):
        eng = Engine.load(toy.path, threads=100_000, verify=False)
    assert eng.plan.options.threads == cpu_count() and "--threads 100000 is more than" in caplog.text
    with pytest.raises(UsageError, match="threads=-1"):
        Engine.load(toy.path, threads=-1, verify=False)


def test_buffers_that_do_not_fit_are_refused_up_front(toy: Toy, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgelstm.runtime import engine as engine_mod

    monkeypatch.setattr(engine_mod, "_memory_bytes", lambda: 2**20)  # a 1 MiB machine: 8x8 frames x 10^4 streams
    with pytest.raises(UsageError, match=r"10000 stream\(s\) of 8x8 frames need .* GiB of buffers"):
        Engine.load(toy.path, streams=10_000, verify=False)
    assert Engine.load(toy.path, streams=2, verify=False).streams == 2

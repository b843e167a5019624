"""``edgelstm explain`` on models whose answer is planted in their weights (hand-set ONNX bundles, no training):
saliency must peak at the one frame that decides the class, and the forget gate must drop where a back-to-back
stream changes scene. Plus the bundle's own outputs against the numpy cell, the CLI and its errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelstm.cli import cli
from edgelstm.errors import BundleError, UsageError
from edgelstm.measure.explain import ExplainConfig, Occlusion, explain
from tests.measure.planted import gate_weights, make_planted_bundle

CUE_AT, STEPS = 5, 12
Z2 = np.zeros((2, 2))


def _cue_bundle(root: Path) -> Path:
    """Class 'cue' once x0 spiked: unit 0 opens its input gate only at the spike and keeps it (forget ~1);
    unit 1 integrates the distractor x1 and leans towards 'none'."""
    w = gate_weights({"i": (np.diag([10.0, 1.0]), Z2, np.array([-5.0, 0.0])),
                      "f": (Z2, Z2, np.array([5.0, 1.0])),
                      "c": (np.diag([3.0, 2.0]), Z2, np.zeros(2)),
                      "o": (Z2, Z2, np.array([5.0, 0.0]))})
    return make_planted_bundle(root, w, np.array([[0.0, 4.0], [0.5, 0.0]]), np.array([0.0, -1.0]), ("none", "cue"))


def _scene_bundle(root: Path) -> Path:
    """Two scenes, A (x = [1, 0]) and B ([0, 1]); unit A remembers A, unit B remembers B. Each unit's forget
    gate is sigmoid(10 (1.5 - x_other - h_self)): it closes only when the other scene arrives while the unit
    still holds its own, i.e. at a scene change, so the model resets itself without a reset."""
    w = gate_weights({"i": (10 * np.eye(2), Z2, np.array([-5.0, -5.0])),
                      "f": (-10 * np.eye(2)[::-1], -10 * np.eye(2), np.array([15.0, 15.0])),
                      "c": (3 * np.eye(2), Z2, np.zeros(2)),
                      "o": (Z2, Z2, np.array([5.0, 5.0]))})
    return make_planted_bundle(root, w, 4 * np.eye(2), np.zeros(2), ("scene_a", "scene_b"))


@pytest.fixture(scope="module")
def cue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cue")
    X = np.zeros((STEPS, 2), np.float32)
    X[:, 1] = np.random.default_rng(0).uniform(-1, 1, STEPS)
    X[CUE_AT, 0] = 1.0
    np.save(root / "cue.npy", X)
    return _cue_bundle(root / "bundle"), root / "cue.npy"


@pytest.mark.parametrize("occlude", list(Occlusion))
def test_saliency_peaks_at_the_planted_frame(cue: tuple[Path, Path], tmp_path: Path, occlude: Occlusion) -> None:
    bundle, source = cue
    expl, _ = explain(bundle, str(source), tmp_path, ExplainConfig(occlude=occlude, window=STEPS))
    assert expl.decided[-1] == 1 and expl.decided[CUE_AT - 1] == 0  # 'cue' only once it was seen
    last = expl.saliency[-1]  # lag k: frame STEPS - 1 - k
    frames = STEPS - 1 - np.arange(len(last))
    peak = int(frames[np.nanargmax(last)])
    others = np.abs(np.delete(last, np.nanargmax(last)))
    assert peak == CUE_AT, f"saliency of the last decision peaks at frame {peak}: {np.round(last, 3)}"
    assert last.max() > 2.0 * np.nanmax(others)
    for t in range(CUE_AT, STEPS):  # every decision since the cue rests on it
        assert t - int(np.nanargmax(expl.saliency[t])) == CUE_AT, (t, np.round(expl.saliency[t], 3))


def test_forget_gate_drops_at_the_scene_change(tmp_path: Path) -> None:
    X = np.array([[1.0, 0.0]] * 8 + [[0.0, 1.0]] * 8, np.float32)  # back to back, no reset between
    np.save(tmp_path / "scenes.npy", X)
    bundle = _scene_bundle(tmp_path / "bundle")
    expl, paths = explain(bundle, str(tmp_path / "scenes.npy"), tmp_path / "out")
    forget = expl.gates.f[:, 0].mean(1)  # (T,) mean over units, layer 0
    assert int(np.argmin(forget)) == 8, np.round(forget, 3)
    assert forget[8] < 0.6 and np.all(np.delete(forget, 8) > 0.9), np.round(forget, 3)
    assert list(expl.decided[1:8]) == [0] * 7 and list(expl.decided[9:]) == [1] * 7
    data = json.loads(paths[1].read_text())
    assert data["gate_means"]["f"][0][8] == pytest.approx(forget[8], abs=1e-4)  # the JSON carries the series


def test_numpy_cell_reproduces_the_bundle(cue: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, source = cue
    expl, _ = explain(bundle, str(source), tmp_path)
    ref_logits, ref_h, ref_c = expl.model.reference(expl.stream.inputs, expl.stream.resets)
    np.testing.assert_allclose(expl.logits, ref_logits, atol=1e-5)
    np.testing.assert_allclose(expl.gates.h, ref_h, atol=1e-5)
    np.testing.assert_allclose(expl.gates.c, ref_c, atol=1e-5)
    assert max(expl.parity.values()) < 1e-5


def test_frame_bundle_on_a_video_file(tmp_path: Path) -> None:
    """The toy frame bundle (encoder graph + ONNX LSTM step) on a video file, through the CLI."""
    import cv2
    from toy_bundle import make_toy_bundle

    toy = make_toy_bundle(tmp_path / "toy")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 15.0, (24, 16))
    for i in range(10):
        writer.write(np.random.default_rng(i).integers(0, 256, (16, 24, 3), np.uint8))
    writer.release()
    r = CliRunner().invoke(cli, ["explain", str(toy.path), "--source", str(video), "--out", str(tmp_path / "o"),
                                 "--label", "c"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "10 decisions" in r.output
    r = CliRunner().invoke(cli, ["explain", str(toy.path), "--source", str(tmp_path / "nowhere.mp4")])
    assert r.exit_code == 1 and "no such file or folder" in r.output and "nowhere.mp4" in r.output, r.output
    data = json.loads((tmp_path / "o" / "explain.json").read_text())
    assert data["steps"] == 10 and data["truth"] == [2] * 10 and data["parity_max_abs_diff"]["logits"] < 1e-4
    assert len(data["saliency"]["values"]) == 10 and data["saliency"]["values"][0][1] is None
    assert (tmp_path / "o" / "explain.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(tmp_path / "o" / "gates.npz") as z:
        assert z["f"].shape == (10, 1, 7)  # (T, layers, hidden)


def test_bad_inputs_are_clear_errors(cue: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, source = cue
    run = lambda *a: CliRunner().invoke(cli, ["explain", *map(str, a)])  # noqa: E731
    r = run(bundle, "--source", source, "--window", "0", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--window 0; expected a positive whole number" in r.output
    r = run(bundle, "--source", tmp_path / "nowhere.npy", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "no such file" in r.output and "nowhere.npy" in r.output, r.output
    r = run(bundle, "--source", "synthetic", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "expected a .npy of (T, F) features" in r.output, r.output
    r = run(bundle, "--source", source, "--label", "cu", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "did you mean 'cue'" in r.output
    no_lstm = make_planted_bundle(tmp_path / "nolstm", gate_weights({g: (Z2, Z2, np.zeros(2)) for g in "iofc"}),
                                  np.eye(2), np.zeros(2), ("a", "b"), lstm=False)
    with pytest.raises(BundleError, match=r"has no LSTM node \(its ops: Identity, MatMul\).*Fix: explain a bundle"):
        explain(no_lstm, str(source), tmp_path / "o2")
    explain(bundle, str(source), tmp_path / "o3")
    with pytest.raises(UsageError, match=r"--out '.*o3/explain.png' already exists.*Fix: pass --force"):
        explain(bundle, str(source), tmp_path / "o3")
    explain(bundle, str(source), tmp_path / "o3", force=True)


def test_a_cell_that_does_not_reproduce_the_model_is_refused(cue: tuple[Path, Path]) -> None:
    """The parity guard can fail: a reference whose h differs from the cell's by 0.01 stops the explanation."""
    import dataclasses

    from edgelstm.errors import EdgeLSTMError
    from edgelstm.measure.explain import explain_stream
    from edgelstm.measure.explain_model import open_model
    from edgelstm.measure.explain_source import read_stream

    bundle, source = cue
    model = open_model(bundle)
    ref = model.reference
    off = dataclasses.replace(model, reference=lambda x, r: (lambda lg, h, c: (lg, h + 0.01, c))(*ref(x, r)))
    with pytest.raises(EdgeLSTMError, match=r"does not reproduce the model: max \|difference\| h 0.01"):
        explain_stream(off, read_stream(off, str(source)), window=3)

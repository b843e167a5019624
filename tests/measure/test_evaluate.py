"""stream_logits and evaluate_bundle on the toy bundle, against the hand-computed reference."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from toy_bundle import LABELS, Toy

from edgelstm.errors import DataError, UsageError
from edgelstm.measure.evaluate import accuracy_report, evaluate_bundle
from edgelstm.runtime.clips import stream_logits

TOL = 1e-5  # fp32 against a float64 reference over 6 steps


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 6, 8, 8, 3), np.uint8)  # (N, T, H, W, 3) RGB


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_stream_logits_match_reference(toy: Toy, clips: np.ndarray, backend: str) -> None:
    ref = np.stack([toy.logits(c) for c in clips])
    got = stream_logits(toy.path, clips, backend=backend, precision="fp32", batch=2)  # 3 batches, resets between
    assert got.shape == (5, 6, len(LABELS))
    np.testing.assert_allclose(got, ref, atol=TOL)
    bgr = np.ascontiguousarray(clips[..., ::-1])
    np.testing.assert_allclose(stream_logits(toy.path, bgr, colour="bgr", backend=backend), ref, atol=TOL)


def test_stream_logits_features(toy_features: Toy) -> None:
    X = np.random.default_rng(1).uniform(0.1, 1, (3, 5, 6)).astype(np.float32)
    got = stream_logits(toy_features.path, X)
    np.testing.assert_allclose(got, np.stack([toy_features.logits(x) for x in X]), atol=TOL)
    with pytest.raises(DataError, match=r"\(N, T, 6\)"):
        stream_logits(toy_features.path, X[..., :4])


def test_stream_logits_wrong_size(toy: Toy) -> None:
    with pytest.raises(DataError, match="size=\\(8, 8\\)"):
        stream_logits(toy.path, np.zeros((1, 2, 16, 16, 3), np.uint8))


def test_accuracy_report_by_hand() -> None:
    logits = np.zeros((2, 4, 3), np.float32)
    logits[0, :, 0] = 1  # clip 0 says class 0 at every step
    logits[1, :2, 2] = 1  # clip 1 says 2 early, 1 late
    logits[1, 2:, 1] = 1
    r = accuracy_report(logits, np.array([0, 1]), None, ("x", "y", "z"))
    assert r.accuracy == 1.0 and r.per_class == {"x": 1.0, "y": 1.0, "z": None}
    assert r.accuracy_at_fraction == {"10%": 0.5, "25%": 0.5, "50%": 0.5, "100%": 1.0}
    assert r.confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    r = accuracy_report(logits, np.array([0, 1]), np.array([4, 2]), ("x", "y", "z"))  # clip 1 ends at step 2
    assert r.accuracy == 0.5 and r.confusion == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


@dataclass(frozen=True)
class _Split:
    X: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None


@dataclass(frozen=True)
class _Data:
    splits: dict[str, _Split]
    classes: tuple[str, ...] = LABELS
    notes: dict[str, str] = field(default_factory=dict)


def test_evaluate_bundle(toy: Toy, clips: np.ndarray) -> None:
    ref = np.stack([toy.logits(c) for c in clips])
    y = ref[:, -1].argmax(-1)
    y[0] = (y[0] + 1) % len(LABELS)  # one wrong clip: accuracy 4/5
    data = _Data({"test": _Split(clips, y)})
    r = evaluate_bundle(toy.path, data, artifact="onnxruntime:fp32", reference="openvino:fp32")
    assert r.accuracy == pytest.approx(0.8) and r.clips == 5 and r.frames == 30
    assert r.agreement is not None and r.agreement.reference == "openvino:fp32"
    assert r.agreement.frame_argmax_agreement == 1.0 and r.agreement.max_abs_diff < TOL
    j = r.to_json()  # the keys `edgelstm eval BUNDLE --json` prints
    assert j["accuracy"] == r.accuracy and j["clips"] == 5 and j["artifact"] == "onnxruntime:fp32"
    assert j["agreement"]["reference"] == "openvino:fp32" and j["reference_accuracy"] == pytest.approx(0.8)
    assert set(j["accuracy_at_fraction"]) == {"10%", "25%", "50%", "100%"}
    calls = []

    def torch_like(X: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        calls.append(X.shape)
        out = ref.copy()
        out[:, :3] = -out[:, :3]  # disagree on the first half of every clip
        return out

    r = evaluate_bundle(toy.path, data, artifact=("openvino", "fp32"), checkpoint=torch_like)
    assert calls == [clips.shape] and r.agreement is not None and r.agreement.reference == "torch"
    assert r.agreement.frame_argmax_agreement <= 0.5 + 1e-9
    assert r.inference_precision == "f32"
    with pytest.raises(UsageError, match="BACKEND:PRECISION"):
        evaluate_bundle(toy.path, data, artifact="tflite:fp32")
    with pytest.raises(UsageError, match="split 'val'"):
        evaluate_bundle(toy.path, data, split="val")


def test_checkpoint_logits_of_a_non_causal_model_share_the_report() -> None:
    """A non-causal model runs on each truncated clip; its logits land at the steps the report reads."""
    torch = pytest.importorskip("torch")
    from edgelstm.data import Split
    from edgelstm.train.evaluate import early_accuracy, fraction_logits

    class FramesSeen(torch.nn.Module):  # answers "how many frames did I see" (mod 10) as a class
        causal = False

        def forward(self, x: Any, lengths: Any = None) -> Any:
            n = torch.full((len(x),), x.shape[1]) if lengths is None else lengths.long()
            return torch.nn.functional.one_hot(n % 10, 10).float()

    X = np.zeros((3, 8, 1), np.float32)
    lengths = np.array([8, 8, 4])
    out = fraction_logits(FramesSeen(), X, lengths)
    assert out.shape == (3, 8, 10)
    assert [int(out[0, s - 1].argmax()) for s in (1, 2, 4, 8)] == [1, 2, 4, 8]  # 10%, 25%, 50%, 100% of 8 frames
    assert int(out[2, 3].argmax()) == 4 and int(out[2, 1].argmax()) == 2  # clip 2 ends at step 4 (its length)
    assert not out[0, 4:7].any()  # steps no fraction reads stay empty
    r = accuracy_report(out, np.array([8, 8, 4]), lengths, tuple("abcdefghij"))
    assert r.accuracy == 1.0 and r.accuracy_at_fraction == {"10%": 0.0, "25%": 0.0, "50%": 0.0, "100%": 1.0}
    y = np.array([4, 4, 2])  # right at half of each clip, wrong at its end
    early = early_accuracy(FramesSeen(), Split(X, y, lengths))
    assert early == {"0.1": 0.0, "0.25": 0.0, "0.5": 1.0, "1": 0.0}  # training's keys, the report's numbers

"""Models: streaming equals the whole sequence, registry errors, padding, MACs, checkpoints."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from edgelstm.errors import CheckpointError, UsageError
from edgelstm.models import create_model, model_names
from edgelstm.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgelstm.models.lstm_classifier import LSTMVideoClassifier
from edgelstm.models.macs import count_params, macs_per_frame
from edgelstm.spec import DataFacts, ModelKind


@pytest.mark.parametrize("name", ["student_tiny", "lstm"])
def test_step_equals_sequence_over_many_steps(name: str) -> None:
    torch.manual_seed(0)
    steps = 60
    if name == "lstm":
        model = create_model("lstm", input_size=6, num_classes=5, hidden_size=8, num_layers=2)
        x = torch.randn(3, steps, 6)
    else:
        model = create_model(name, num_classes=5)
        x = torch.randint(0, 256, (3, steps, 16, 16, 3), dtype=torch.uint8)
    model.eval()
    with torch.no_grad():
        full = model.step_logits(x)  # (B, T, K)
        state = None
        for t in range(steps):
            logits, state = model.step(x[:, t], state)
            # fp32, same kernels, same order of operations: the only difference is the batched matmul,
            # which stays within a few ulps; 1e-5 leaves room for that without hiding a wrong state
            torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(x), full[:, -1])
    assert model.causal


def test_student_is_causal_teacher_is_not() -> None:
    torch.manual_seed(0)
    x = torch.randint(0, 256, (2, 8, 16, 16, 3), dtype=torch.uint8)
    y = x.clone()
    y[:, 5:] = 0  # change the future
    s = create_model("student_tiny", num_classes=4).eval()
    t = create_model("teacher_tiny", num_classes=4).eval()
    with torch.no_grad():
        torch.testing.assert_close(s.step_logits(x)[:, :5], s.step_logits(y)[:, :5])
        assert not torch.allclose(t(x[:, :5]), t(torch.cat([x[:, :5], y[:, 5:]], 1)))  # sanity: inputs matter
        assert not torch.allclose(t(x), t(y))


def test_registry_unknown_name_suggests_close_match() -> None:
    assert {"lstm", "student", "student_tiny", "teacher", "teacher_tiny", "pooling"} <= set(model_names())
    with pytest.raises(UsageError, match=r"unknown model 'studnet'.*did you mean 'student'"):
        create_model("studnet", num_classes=3)


def test_lstm_classifier_reads_the_last_valid_step_of_padded_input() -> None:
    torch.manual_seed(0)
    m = LSTMVideoClassifier(4, 8, 1, 3).eval()
    x = torch.randn(2, 6, 4)
    padded = torch.cat([x[:, :4], torch.randn(2, 2, 4) * 100], 1)  # garbage after step 4
    with torch.no_grad():
        torch.testing.assert_close(m(padded, torch.tensor([4, 4])), m(x[:, :4]))
        out = m(padded, torch.tensor([4, 6]))
        torch.testing.assert_close(out[1], m(padded)[1])


def test_teacher_ignores_padding() -> None:
    torch.manual_seed(0)
    t = create_model("teacher_tiny", num_classes=3).eval()
    x = torch.randint(0, 256, (2, 7, 16, 16, 3), dtype=torch.uint8)
    padded = x.clone()
    padded[0, 4:] = 0
    with torch.no_grad():
        torch.testing.assert_close(t(padded, torch.tensor([4, 7]))[0], t(x[:1, :4])[0], rtol=1e-5, atol=1e-5)


def test_macs_and_params() -> None:
    m = LSTMVideoClassifier(10, 20, 1, 5)
    assert count_params(m) == 4 * 20 * (10 + 20) + 2 * 4 * 20 + 20 * 5 + 5
    assert macs_per_frame(m, feature_size=10) == 4 * 20 * (10 + 20) + 20 * 5
    s, t = create_model("student", num_classes=10), create_model("teacher", num_classes=10)
    ms, mt = macs_per_frame(s, size=(64, 64)), macs_per_frame(t, size=(64, 64))
    assert mt > 10 * ms > 0
    assert macs_per_frame(s, size=(32, 32)) < ms  # conv cost scales with the frame


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("student_tiny", num_classes=3, mean=[0.4, 0.5, 0.6], std=[0.2, 0.2, 0.3]).eval()
    data = DataFacts(kind=ModelKind.FRAMES, clip_len=8, size=(16, 16), mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.3),
                     stride=1, fps=15.0, feature_size=16)
    save_checkpoint(tmp_path / "m.pt", Checkpoint(model, "student_tiny", {"num_classes": 3, "mean": (0.4, 0.5, 0.6),
                                                                          "std": (0.2, 0.2, 0.3)},
                                                  ["a", "b", "c"], data, {"val_accuracy": 0.5}))
    back = load_checkpoint(tmp_path / "m.pt")
    x = torch.randint(0, 256, (2, 8, 16, 16, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(back.model(x), model(x), rtol=0, atol=0)
    assert back.classes == ["a", "b", "c"] and back.data == data and back.name == "student_tiny"
    assert len(back.sha256) == 64 and back.metrics["val_accuracy"] == 0.5


class Evil:
    def __reduce__(self):  # noqa: ANN204
        return (print, ("pickled code ran",))


def test_checkpoint_needing_pickle_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"format": "edgelstm-checkpoint", "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil.pt.*needs pickle"):
        load_checkpoint(tmp_path / "evil.pt")
    assert "pickled code ran" not in capsys.readouterr().out
    (tmp_path / "junk.pt").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other.pt.*not an edgelstm checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def _saved(tmp_path: Path, **extra: object) -> Path:
    torch.manual_seed(0)
    model = create_model("student_tiny", num_classes=3).eval()
    data = DataFacts(kind=ModelKind.FRAMES, clip_len=8, size=(16, 16), mean=(0.5,) * 3, std=(0.25,) * 3)  # type: ignore[arg-type]
    path = tmp_path / "m.pt"
    save_checkpoint(path, Checkpoint(model, "student_tiny", {"num_classes": 3}, ["a", "b", "c"], data,
                                     extra=dict(extra)))
    return path


def test_checkpoint_bytes_changed_after_writing_are_refused(tmp_path: Path) -> None:
    """A last.pt with bytes overwritten in the middle used to load and train on garbage weights."""
    path = _saved(tmp_path)
    raw = bytearray(path.read_bytes())
    payload = torch.load(path, weights_only=True)
    w = payload["state_dict"]["head.weight"].contiguous().view(-1).numpy().tobytes()
    at = raw.find(w[:16])
    assert at > 0  # the head's weights are stored uncompressed in the zip
    raw[at:at + 8] = b"\x7f\x7f\x7f\x7f\x01\x02\x03\x04"
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match the digest"):
        load_checkpoint(path)


def test_checkpoint_with_non_finite_state_is_refused(tmp_path: Path) -> None:
    from edgelstm.models.checkpoint import content_digest

    path = _saved(tmp_path, optimizer={"state": {0: {"exp_avg": torch.tensor([1.0, float("nan")])}}})
    assert load_checkpoint(path).name == "student_tiny"  # weights are fine; the optimiser is checked on resume
    with pytest.raises(CheckpointError, match=r"optimiser state hold non-finite values .*exp_avg"):
        load_checkpoint(path, with_extra=True)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["head.bias"][0] = float("inf")
    payload["digest"] = content_digest(payload)  # consistent, but diverged training saved inf
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"weights hold non-finite values .*head\.bias.*lower --lr"):
        load_checkpoint(path)

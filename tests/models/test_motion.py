"""Motion models (models.motion): the correlation reads a shift, the step carries the previous map as a third state
tensor, and export, the runtime and the eager path all honour that contract. Random Lite0 weights at 32x32 keep
it to seconds: what is tested is the arithmetic and the wiring, not accuracy."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgelstm.errors import UsageError
from edgelstm.models import create_model
from edgelstm.models.motion import correlation
from edgelstm.spec import C_IN, H_IN, P_IN, P_OUT
from tests.bundles import make_bundle, make_motion_checkpoint, synthetic_clips


def test_the_correlation_peaks_at_the_displacement_the_map_moved() -> None:
    """b is a moved by (dy, dx) = (1, -2) cells: a(x) . b(x + d) is largest at d = (1, -2), i.e. index
    (1 + r) * (2r + 1) + (-2 + r), and equals the per-cell norm there away from the borders."""
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(1, 8, 12, 12), dim=1)
    b = torch.roll(a, shifts=(1, -2), dims=(2, 3))
    r = 2
    c = correlation(a, b, r)  # (1, 25, 12, 12)
    assert c.shape == (1, (2 * r + 1) ** 2, 12, 12)
    inner = c[0, :, 3:-3, 3:-3].mean((1, 2))
    assert int(inner.argmax()) == (1 + r) * (2 * r + 1) + (-2 + r)
    assert float(inner.max()) == pytest.approx(1.0, abs=1e-5)  # cosine with itself
    assert float(inner.sort().values[-2]) < 0.5                # any other displacement: unrelated vectors


def _student(num_classes: int = 3) -> Any:
    torch.manual_seed(0)
    return create_model("motion_student", num_classes=num_classes, hidden_size=16, encoder_blocks=4,
                        encoder_grid=2).eval()


def test_stepping_frame_by_frame_equals_the_clip_and_carries_the_map() -> None:
    """Streaming equals offline in torch: each step's logits equal step_logits' row, with prev the last frame's
    features; and the previous map matters (zeroing it changes the logits)."""
    m = _student()
    clip = torch.from_numpy(synthetic_clips(2, size=(32, 32), num_classes=3)[0])
    with torch.no_grad():
        ref = m.step_logits(clip)
        state = None
        for t in range(clip.shape[1]):
            logits, state = m.step(clip[:, t], state)
            assert torch.allclose(logits, ref[:, t], atol=1e-5), t
            assert torch.equal(state[2][0], m.encode_frames(clip[:, t]))
        h, c, _ = state
        forgot, _ = m.step(clip[:, -1], (h, c, torch.zeros_like(state[2])))
        kept, _ = m.step(clip[:, -1], state)
    assert state[2].shape == (1, 2, m.encoder.feature_size) and m.encoder.map_hw == (8, 8)  # 4 blocks: stride 4
    assert float((forgot - kept).abs().max()) > 1e-4


def test_the_map_side_is_kept_in_the_checkpoint(tmp_path: Path) -> None:
    """The step reshapes its input to the map's side, which depends on the frame size: a reloaded model knows it
    before it has encoded a frame."""
    m = _student()
    m.encode_frames(torch.zeros(1, 64, 48, 3, dtype=torch.uint8))
    torch.save(m.state_dict(), tmp_path / "m.pt")
    fresh = _student()
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert fresh.encoder.map_hw == (16, 12) and fresh.init_state(2)[2].shape == (1, 2, fresh.encoder.channels * 192)


@pytest.fixture(scope="module")
def motion_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("motion")
    ckpt = make_motion_checkpoint(work)
    return ckpt, make_bundle(work, checkpoint=ckpt, formats=("onnx", "openvino"), parity_frames=12)


def test_the_bundle_declares_the_previous_map_as_state_and_streams_it(motion_bundle: tuple[Path, Path]) -> None:
    """Export wrote prev/prev_out into the contract (parity passed inside make_bundle, on both backends); the
    engine, fed frame by frame, gives the clip graph's rows; a reset zeroes the carried map like h and c."""
    from edgelstm.runtime.bundle import load_bundle
    from edgelstm.runtime.engine import Engine
    from edgelstm.runtime.stream import open_chain
    from edgelstm.spec import Backend, Precision, Role

    _, bundle = motion_bundle
    m = load_bundle(bundle).manifest
    assert [s.input for s in m.state] == [H_IN, C_IN, P_IN] and m.state[2].output == P_OUT
    assert m.model.carries_features and m.state[2].shape == (1, "batch", m.model.feature_size)
    step = m.artifact(Role.STEP, Backend.ONNXRUNTIME, Precision.FP32)
    assert step is not None and [t.name for t in step.inputs][-1] == P_IN
    assert all(p.passed for p in m.parity) and {p.artifact.split(":")[1] for p in m.parity} >= {
        "onnxruntime", "openvino"}
    clips = synthetic_clips(2, size=(32, 32), num_classes=3, split="test")[0]
    clip_ref = open_chain(load_bundle(bundle), Backend.ONNXRUNTIME, Precision.FP32, graph="split")
    offline = clip_ref.run(np.ascontiguousarray(clips[:, :, :, :, ::-1]))  # the graph takes BGR
    with Engine.load(bundle) as eng:
        for t in range(clips.shape[1]):
            got = eng.step(np.ascontiguousarray(clips[0, t, :, :, ::-1]))
            assert np.allclose(got.logits, offline[0, t], atol=1e-4), t
        assert float(np.abs(eng._state[P_IN]).max()) > 0
        eng.reset(0)
        assert float(np.abs(eng._state[P_IN]).max()) == 0.0


def test_explain_refuses_a_motion_model_with_the_reason(motion_bundle: tuple[Path, Path]) -> None:
    from edgelstm.measure.explain_model import open_model

    ckpt, bundle = motion_bundle
    for target in (ckpt, bundle):
        with pytest.raises(UsageError, match="motion model"):
            open_model(target)


def test_the_eager_path_streams_a_motion_student(motion_bundle: tuple[Path, Path]) -> None:
    """profile's PyTorch rows step the checkpoint with its own state tuple: three tensors here, per stream."""
    from edgelstm.measure.eager import EagerWindow
    from edgelstm.models.checkpoint import load_checkpoint

    ckpt, _ = motion_bundle
    model = load_checkpoint(ckpt).model
    win = EagerWindow(model, window=1)
    clips = synthetic_clips(2, size=(32, 32), num_classes=3, split="test")[0]
    with torch.no_grad():
        ref = model.eval().step_logits(torch.from_numpy(clips)).numpy()
    for t in range(clips.shape[1]):
        out = win(clips[:, t:t + 1], [0, 1])
        assert np.allclose(out, ref[:, t], atol=1e-4), t
    assert len(win.state[0]) == 3

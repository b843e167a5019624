"""The tracker models: crop pairs in, four box outputs per step, streaming equal to the whole sequence."""
from __future__ import annotations

import torch

from edgelstm.models.registry import create_model


def test_tracker_streams_like_the_whole_sequence() -> None:
    torch.manual_seed(0)
    model = create_model("tracker_tiny").eval()
    x = torch.randint(0, 256, (2, 5, 16, 32, 3), dtype=torch.uint8)  # (B, T, S, 2S, 3)
    with torch.no_grad():
        whole = model.step_logits(x)
        state, rows = None, []
        for t in range(5):
            out, state = model.step(x[:, t], state)
            rows.append(out)
    assert whole.shape == (2, 5, 4)
    torch.testing.assert_close(torch.stack(rows, 1), whole, atol=1e-5, rtol=1e-5)


def test_tracker_sees_both_crops() -> None:
    """Changing only the previous crop (left half) changes the output: the pair is fused, not one crop."""
    torch.manual_seed(0)
    model = create_model("tracker", crop_size=32).eval()
    x = torch.randint(0, 256, (1, 32, 64, 3), dtype=torch.uint8)
    y = x.clone()
    y[:, :, :32] = 0
    with torch.no_grad():
        assert not torch.allclose(model.step(x)[0], model.step(y)[0])
    teacher = create_model("tracker_teacher", crop_size=32)
    assert sum(p.numel() for p in teacher.parameters()) > 4 * sum(p.numel() for p in model.parameters())

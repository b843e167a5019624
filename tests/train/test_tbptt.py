"""Truncated BPTT over long videos: lanes walk videos window by window, the state a window starts from is the
one the window before it ended with (zero where a lane moves to a new video), and a causal model run window
after window equals the same model over the whole video."""
from __future__ import annotations

import numpy as np
import torch

from edgelstm.data.untrimmed import Video
from edgelstm.models import create_model
from edgelstm.train.tbptt import Lanes, carry, video_logits, window_logits


def _videos(lengths: list[int]) -> list[Video]:
    rng = np.random.default_rng(0)
    return [Video(f"v{i}", rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), np.arange(n) % 3)
            for i, n in enumerate(lengths)]


def test_lanes_walk_videos_in_order_and_reset_between_them() -> None:
    videos = _videos([40, 23, 31])
    lanes = Lanes(videos, batch=2, window=8, seed=1)
    assert lanes.steps() == (5 + 2 + 3) // 2
    walk = [next(it) for it in [lanes.lane(0, 0)] for _ in range(12)]
    for (v0, s0, _), (v1, s1, first) in zip(walk, walk[1:]):
        if not first:  # the same video, the next window
            assert v1 == v0 and s1 == s0 + 8
        else:
            assert s1 < 8  # a new video starts within its first window
    assert walk[0][2] and sum(f for _, _, f in walk) >= 2
    w = next(lanes.epoch(0))
    v, s, _ = w.chunks[1]
    assert w.x.shape == (2, 8, 16, 16, 3) and torch.equal(w.y[1], torch.from_numpy(videos[v].labels[s:s + 8]))


def test_state_at_a_window_start_is_the_last_window_end() -> None:
    torch.manual_seed(0)
    model = create_model("student_tiny", num_classes=3, mean=[0.5] * 3, std=[0.25] * 3).eval()
    video = _videos([24])[0]
    x = torch.from_numpy(video.frames).unsqueeze(0)  # (1, T, H, W, 3)
    with torch.no_grad():
        whole = model.step_logits(x)[0]
        state, parts = None, []
        for k, start in enumerate(range(0, 24, 8)):
            begin = carry(state, torch.tensor([k == 0]))
            if state is not None:  # carried: equal to where window k - 1 ended, detached
                assert torch.equal(begin[0], state[0]) and torch.equal(begin[1], state[1])
                assert not begin[0].requires_grad
            logits, state = window_logits(model, x[:, start:start + 8], begin)
            parts.append(logits[0])
        zeroed = carry(state, torch.tensor([True]))
        assert zeroed is not None and float(zeroed[0].abs().sum()) == 0.0  # a lane moving to a new video
    torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(video_logits(model, video.frames, window=5), whole.numpy(), rtol=1e-5, atol=1e-5)


def test_a_bidirectional_teacher_reads_every_frame_with_context() -> None:
    torch.manual_seed(0)
    teacher = create_model("teacher_tiny", num_classes=3, mean=[0.5] * 3, std=[0.25] * 3).eval()
    frames = _videos([40])[0].frames
    out = video_logits(teacher, frames, window=16)
    assert out.shape == (40, 3) and np.isfinite(out).all()
    with torch.no_grad():  # frame 20 comes from the window [16, 32): 4 frames of context before, 11 after
        ref = window_logits(teacher, torch.from_numpy(frames[16:32]).unsqueeze(0))[0][0, 4]
    np.testing.assert_allclose(out[20], ref.numpy(), rtol=1e-5, atol=1e-5)

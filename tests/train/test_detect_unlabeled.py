"""Distilling a detector with unlabelled footage (``distill --task detect --unlabeled``): the videos load with every
frame marked unlabelled, their frames add only the teacher's term to the loss, and bad specs are refused by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgelstm.data.synthetic_source import write_video
from edgelstm.data.untrimmed import UNLABELED, load_unlabeled, load_untrimmed
from edgelstm.errors import DataError
from edgelstm.train.config import DistillConfig, TrainConfig
from edgelstm.train.detect import _frame_loss
from edgelstm.train.tbptt import Window


@pytest.fixture(scope="module")
def tiny_set():  # type: ignore[no-untyped-def]
    return load_untrimmed("synthetic", size=(16, 16), counts=(1, 1, 1), seconds=4)


def _window(y: torch.Tensor, teacher: torch.Tensor | None) -> Window:
    b, w = y.shape
    return Window(torch.zeros(b, w, 2, 2, 3, dtype=torch.uint8), y, torch.zeros(b, dtype=torch.bool), teacher, [])


def test_synthetic_unlabeled_videos_are_new_footage_with_no_labels(tiny_set) -> None:  # type: ignore[no-untyped-def]
    extra = load_unlabeled("synthetic:2", tiny_set)
    assert len(extra) == 2 and all((v.labels == UNLABELED).all() for v in extra)
    train = tiny_set["train"][0]
    for v in extra:
        assert v.frames.shape == train.frames.shape and v.frames.dtype == np.uint8
        assert not np.array_equal(v.frames, train.frames)  # not a copy of a labelled video
    assert not np.array_equal(extra[0].frames, extra[1].frames)


def test_unlabeled_frames_add_only_the_teachers_term() -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(model="student_tiny", out=Path("unused"))
    dcfg = DistillConfig(teacher="unused", alpha=0.5, temperature=2.0)
    logits, teacher = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    labelled = torch.randint(0, 4, (2, 5))
    # only unlabelled frames: the loss is (1 - alpha) * tau^2 * KL alone
    kl_only = _frame_loss(cfg, dcfg, logits, _window(torch.full((2, 5), UNLABELED), teacher))
    p_t = F.softmax(teacher.reshape(-1, 4) / 2, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(logits.reshape(-1, 4) / 2, -1))).sum(-1).mean()
    assert torch.isfinite(kl_only) and torch.allclose(kl_only, 0.5 * 4 * kl, atol=1e-6)
    # half the lanes unlabelled: the cross-entropy is the labelled lane's alone
    mixed = labelled.clone()
    mixed[1] = UNLABELED
    ce = _frame_loss(cfg, None, logits, _window(mixed, None))
    assert torch.allclose(ce, F.cross_entropy(logits[0], labelled[0]), atol=1e-6)


def test_bad_unlabeled_specs_are_refused_by_name(tiny_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for spec in ("synthetic:0", "synthetic:many", "synthetic"):
        with pytest.raises(DataError, match="synthetic:N"):
            load_unlabeled(spec, tiny_set)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no video files here") as e:
        load_unlabeled(tmp_path / "empty", tiny_set)
    assert "empty" in str(e.value)
    (tmp_path / "vids").mkdir()
    write_video(tmp_path / "vids" / "a.avi", np.zeros((6, 16, 16, 3), np.uint8), 30.0)  # the set is 15 fps
    with pytest.raises(DataError, match="30 fps video among 15 fps") as e:
        load_unlabeled(tmp_path / "vids", tiny_set)
    assert "a.avi" in str(e.value) and "ffmpeg -r 15" in str(e.value)


def test_a_folder_of_videos_loads_at_the_sets_size(tiny_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "vids" / "day2").mkdir(parents=True)
    write_video(tmp_path / "vids" / "day2" / "b.avi", np.full((9, 40, 48, 3), 120, np.uint8), 15.0)
    (v,) = load_unlabeled(tmp_path / "vids", tiny_set)
    assert v.name == "day2/b.avi" and v.frames.shape == (9, 16, 16, 3) and (v.labels == UNLABELED).all()

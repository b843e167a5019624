"""Training and distilling tiny captioners on a few synthetic clips: checkpoints, metrics, greedy captions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgelstm.captionspec import CAPTIONING_KEY
from edgelstm.data.caption_set import load_captions
from edgelstm.errors import UsageError
from edgelstm.models.checkpoint import load_checkpoint
from edgelstm.spec import Task
from edgelstm.train.caption import CaptionConfig, fit_caption, pad_batch


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("cap")
    ds = load_captions("synthetic", size=(16, 16), clip_len=4, counts=(40, 8, 8))
    t = fit_caption(CaptionConfig(model="captioner_teacher_tiny", out=root / "t", epochs=2, threads=1,
                                  progress=False), ds)
    s = fit_caption(CaptionConfig(model="captioner_tiny", out=root / "s", epochs=2, threads=1, progress=False,
                                  teacher=t.best), ds)
    return t.best, s.best, ds


def test_runs_write_checkpoints_with_vocabulary_and_scores(runs: tuple[Path, Path, object]) -> None:
    _, student, ds = runs
    ck = load_checkpoint(student)
    assert ck.data.task == Task.CAPTION and tuple(ck.metrics[CAPTIONING_KEY]["vocab"]) == ds.vocab  # type: ignore
    m = json.loads((student.parent / "metrics.json").read_text())
    assert m["objective"] == "distill" and set(m["test"]) >= {"bleu4", "cider_d", "motion_accuracy"}
    X = ds["test"].X[:3]  # type: ignore[attr-defined]
    seqs = ck.model.greedy(torch.from_numpy(X), 6)  # type: ignore[operator]
    assert len(seqs) == 3 and all(len(s) <= 7 for s in seqs)


def test_student_streams_like_a_classifier(runs: tuple[Path, Path, object]) -> None:
    """The student's motion head per step equals its own per-frame step, and its final state starts the decoder."""
    ck = load_checkpoint(runs[1])
    X = torch.from_numpy(runs[2]["test"].X[:2])  # type: ignore[index]
    with torch.no_grad():
        motion, (h, c), _, _ = ck.model.start(X)  # type: ignore[operator]
        state = None
        for t in range(X.shape[1]):
            logits, state = ck.model.step(X[:, t], state)  # type: ignore[operator]
            np.testing.assert_allclose(logits.numpy(), motion[:, t].numpy(), atol=1e-5)
    np.testing.assert_allclose(state[0].numpy(), h.numpy(), atol=1e-5)


def test_teacher_forcing_batch() -> None:
    inp, tgt = pad_batch([np.array([5, 6]), np.array([7])], 3)
    assert inp.tolist() == [[1, 5, 6, 0], [1, 7, 0, 0]] and tgt.tolist() == [[5, 6, 2, 0], [7, 2, 0, 0]]


def test_distilling_from_a_classifier_is_refused(tmp_path: Path, runs: tuple[Path, Path, object]) -> None:
    from tests.bundles import make_checkpoint

    cls = make_checkpoint(tmp_path, steps=2)
    with pytest.raises(UsageError, match="a captioner checkpoint"):
        fit_caption(CaptionConfig(model="captioner_tiny", out=tmp_path / "s", epochs=1, teacher=cls,
                                  progress=False), runs[2])  # type: ignore[arg-type]

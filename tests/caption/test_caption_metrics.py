"""BLEU-4 (sacrebleu), CIDEr-D (pycocoevalcap) and motion-word accuracy against every reference of a clip."""
from __future__ import annotations

import pytest

from edgelstm.caption_metrics import bleu4, caption_scores, cider_d, motion_accuracy
from edgelstm.errors import UsageError

REFS = [["a small red triangle moves left over a green texture", "the red triangle slides to the left"],
        ["a big blue oval rises", "over a grey backdrop a large blue ellipse moves up", "a blue oval drifts up"],
        ["a pink bar fades out"]]


def test_perfect_and_wrong_captions() -> None:
    hyps = [r[0] for r in REFS]
    assert bleu4(hyps, REFS) == pytest.approx(100.0)
    assert cider_d(hyps, REFS) > cider_d(["a pink bar", "a red bar", "a triangle"], REFS)
    assert bleu4(["moves", "oval", "bar"], REFS) < 5.0


def test_a_second_reference_counts() -> None:
    """Matching any one reference of a clip is enough: BLEU and CIDEr-D score against all of them."""
    one = [["the red triangle slides to the left"], REFS[1], REFS[2]]
    hyps = ["the red triangle slides to the left", REFS[1][1], REFS[2][0]]
    assert bleu4(hyps, REFS) == pytest.approx(bleu4(hyps, one))
    assert bleu4(hyps, REFS) == pytest.approx(100.0)


def test_motion_accuracy_is_the_temporal_part() -> None:
    hyps = ["a red triangle moves right over a green texture", "a blue oval rises", "a pink bar fades in"]
    assert motion_accuracy(hyps, [0, 2, 9]) == pytest.approx(1 / 3)
    assert motion_accuracy(hyps, [-1, -1, -1]) is None  # user data: no motion labels
    s = caption_scores(hyps, REFS, [0, 2, 9])
    assert s.clips == 3 and s.motion_accuracy == pytest.approx(1 / 3) and s.empty == 0
    assert 0 < s.bleu4 < 100 and s.cider_d > 0


def test_refuses_what_it_cannot_score() -> None:
    with pytest.raises(UsageError, match="2 captions for 3 clips"):
        caption_scores(["a", "b"], REFS)
    with pytest.raises(UsageError, match="at least 2 clips"):
        cider_d(["a red bar"], [["a red bar"]])

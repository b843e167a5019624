"""Detection metrics on planted inputs: AP against a hand-computed case (scikit-learn and the reference
implementation), frame mAP without background, stage accuracy, delay / false alarms / missed counting, and
the threshold choice."""
from __future__ import annotations

import numpy as np
import pytest

from edgelstm.data.untrimmed import Instance, instances
from edgelstm.detect_metrics import (EventCounts, average_precision, average_precision_reference, choose_thresholds,
                                     count_events, earliness_at_false_alarms, frame_map, match_events,
                                     stage_accuracy)
from edgelstm.runtime.events import Event


@pytest.mark.parametrize("ap", [average_precision, average_precision_reference])
def test_average_precision_matches_the_hand_computed_value(ap) -> None:  # type: ignore[no-untyped-def]
    # ranked: + - + + -  -> P at each positive: 1, 2/3, 3/4; each adds recall 1/3
    y, s = np.array([1, 0, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.4, 0.3])
    assert ap(y, s) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # a tie is one threshold: {+,-} at 0.5 (P 1/2, R 1/2), then + at 0.2 (P 2/3, R 1)
    assert ap(np.array([1, 0, 1]), np.array([0.5, 0.5, 0.2])) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_reference_ap_equals_sklearn_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.uniform(size=200) < 0.2
        s = np.round(rng.uniform(size=200) + 0.5 * y, 2)  # rounded: ties too
        assert average_precision_reference(y, s) == pytest.approx(average_precision(y, s))


def test_frame_map_excludes_background_and_classes_without_frames() -> None:
    labels = np.array([0, 0, 1, 1, 0, 2, 2, 0])
    probs = np.full((8, 4), 0.1)
    probs[[2, 3], 1] = 0.9  # class 1 perfect
    probs[[5, 4], 2] = [0.8, 0.9]  # class 2: a background frame ranked above its positive ones
    probs[6, 2] = 0.7
    probs[:, 0] = 0.0  # background scores would be perfect nonsense: they must not count
    fmap, per_class = frame_map(probs, labels, background=0)
    assert set(per_class) == {1, 2}  # class 3 has no frame: skipped, not 0
    assert per_class[1] == pytest.approx(1.0) and per_class[2] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert fmap == pytest.approx((1.0 + (1 / 2 + 2 / 3) / 2) / 2)


def test_stage_accuracy_by_decile_of_each_action() -> None:
    labels = np.array([0] * 5 + [1] * 10 + [0] * 5)
    probs = np.zeros((20, 2))
    probs[:, 0] = 1.0
    probs[10:15, 1] = 2.0  # right from the middle of the action on
    acc = stage_accuracy([probs], [labels], background=0)
    assert acc == [0.0] * 5 + [1.0] * 5


LABELS = np.array([0] * 20 + [1] * 20 + [0] * 20 + [2] * 20 + [0] * 20)


def test_delay_missed_and_false_alarms_on_planted_events() -> None:
    truth = instances(LABELS, 0)
    assert truth == [Instance(1, 20, 40), Instance(2, 60, 80)]
    events = [Event(2, 10, 12, 0.9),   # class 2 in background: false alarm
              Event(1, 25, 45, 0.9),   # detects the first action 5 frames late
              Event(1, 65, 70, 0.9)]   # wrong class during the second one: false alarm, which is missed
    delays, missed, fa = match_events(events, truth)
    assert (delays, missed, fa) == ([5], 1, 2)
    # an event that starts before its action and overlaps it: detected with no delay
    assert match_events([Event(1, 18, 30, 0.9)], truth[:1]) == ([0], 0, 0)


def test_counting_on_a_planted_probability_series() -> None:
    probs = np.zeros((100, 3))
    probs[:, 0] = 1.0
    probs[25:45] = [0.1, 0.9, 0.0]  # action 1 seen from frame 25
    probs[10:12] = [0.2, 0.0, 0.8]  # a blip of action 2 in the background
    c = count_events([probs], [LABELS], background=0, on=0.5, off=0.3)
    assert c == EventCounts(delays=(5,), instances=2, missed=1, false_alarms=1, events=2, background_frames=60,
                            frames=100)
    assert c.false_alarms_per_hour(fps=10.0) == pytest.approx(1 / (60 / 10 / 3600))  # 60 frames at 10 fps = 6 s
    assert c.delay(50) == 5.0


def test_choose_thresholds_meets_the_false_alarm_target() -> None:
    probs = np.zeros((100, 3))
    probs[:, 0] = 1.0
    probs[22:40] = [0.1, 0.9, 0.0]
    probs[62:80, 2] = np.linspace(0.3, 0.9, 18)  # a lower `on` sees the second action earlier
    probs[62:80, 0] = 1.0 - probs[62:80, 2]
    probs[5:7] = [0.55, 0.0, 0.45]  # a background blip: an event (a false alarm) whenever on <= 0.45
    loose = choose_thresholds([probs], [LABELS], background=0, fps=10.0, target_false_alarms_per_hour=1e6)
    strict = choose_thresholds([probs], [LABELS], background=0, fps=10.0, target_false_alarms_per_hour=0.0)
    assert loose.on == pytest.approx(0.3) and loose.false_alarms_per_hour == pytest.approx(600.0)
    assert strict.on == pytest.approx(0.5) and strict.false_alarms_per_hour == 0.0  # the earliest without the blip
    assert strict.off < strict.on and strict.split == "val" and strict.target_false_alarms_per_hour == 0.0


def test_earliness_at_matched_false_alarms_and_detected_within() -> None:
    probs = np.zeros((100, 3))
    probs[:, 0] = 1.0
    probs[22:40] = [0.1, 0.9, 0.0]  # action 1 (frames 20-40) seen 2 frames in at any `on`
    probs[62:80, 2] = np.linspace(0.3, 0.9, 18)  # action 2 (60-80): at on 0.3 2 frames in, at on 0.5 8 frames in
    probs[62:80, 0] = 1.0 - probs[62:80, 2]
    probs[5:7] = [0.55, 0.0, 0.45]  # a background blip: a false alarm whenever on <= 0.45
    e = earliness_at_false_alarms([probs], [LABELS], background=0, fps=10.0, budgets=(0.0, 1e6),
                                  within_s=(0.5, 1.0))
    assert e["1e+06"] == {"0.5s": 1.0, "1s": 1.0}  # with false alarms allowed, both within 0.2 s
    assert e["0"] == {"0.5s": 0.5, "1s": 1.0}  # without, action 2 only after 0.8 s
    c = count_events([probs], [LABELS], background=0, on=0.5, off=0.25)
    assert c.within(5) == 0.5 and c.within(8) == 1.0 and c.within(1) == 0.0  # a missed action is never within
    probs[50:52] = [0.0, 0.0, 1.0]  # a second blip no threshold hides: no pair meets a budget of 0
    assert earliness_at_false_alarms([probs], [LABELS], background=0, fps=10.0, budgets=(0.0,))["0"] == \
        {"0.5s": None, "1s": None}

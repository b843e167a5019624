"""A track bundle's manifest: the task and its tracking section round-trip, and nonsense is refused by field."""
from __future__ import annotations

import json

import pytest

from edgelstm import spec
from edgelstm.errors import BundleError
from edgelstm.jsonspec import to_jsonable
from edgelstm.trackspec import OUTPUTS, Tracking
from tests.test_spec import _manifest


def _track(d: dict) -> dict:  # type: ignore[type-arg]
    d.update(task="track", tracking=to_jsonable(Tracking(crop_size=16)), labels=list(OUTPUTS))
    d["model"]["num_classes"] = 4
    d["preprocess"]["size"] = [16, 32]
    for a in d["artifacts"]:
        for t in a["outputs"]:
            if t["name"] in (spec.LOGITS, spec.CLIP_LOGITS):
                t["shape"][-1] = 4
    d["selftest"] = None
    return d


def test_a_track_manifest_round_trips() -> None:
    m = spec.Manifest.from_dict(_track(json.loads(_manifest().to_json())))
    assert m.task == spec.Task.TRACK and m.tracking == Tracking(crop_size=16) and m.labels == OUTPUTS
    assert spec.Manifest.from_dict(json.loads(m.to_json())) == m


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.update(task="track"), "'manifest.tracking' is 'absent'; expected a tracking section exactly when"),
    (lambda d: _track(d).update(task="classify"), "'manifest.tracking' is 'a tracking section'"),
    (lambda d: _track(d)["tracking"].update(crop_size=2), "'manifest.tracking.crop_size' is 2; expected 4..1024"),
    (lambda d: _track(d)["tracking"].update(context=0.5), "'manifest.tracking.context' is 0.5; expected >= 1"),
    (lambda d: _track(d)["preprocess"].update(size=[16, 16]), "'manifest.preprocess.size' is [16, 16]; expected "
                                                               "[16, 32]"),
])
def test_refuses_a_tracking_section_that_cannot_run(mutate, needle) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(_manifest().to_json())
    mutate(d)
    with pytest.raises(BundleError) as e:
        spec.Manifest.from_dict(d)
    assert needle in str(e.value)

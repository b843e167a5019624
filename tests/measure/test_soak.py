"""The soak's core on a few thousand frames, with the bounds benchmarks/soak.py checks at 100,000+."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.bundles import make_bundle  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("soak"))


def test_soak_bounds(bundle: Path, tmp_path: Path) -> None:
    from edgelstm.measure.soak import soak, write_test_video

    video = write_test_video(tmp_path / "loop.avi", frames=40, size=(240, 320))
    r = soak(bundle, frames=3000, video=video, synthetic_size=(96, 128))
    assert r.frames == 3000
    assert r.per_stream["synthetic"] > 100 and r.per_stream["file"] > 100  # both streams fed
    assert r.file_loops >= 2  # the file really looped
    assert r.rss_growth_mb <= 5.0, r.to_json()
    assert math.isfinite(r.max_abs_h) and math.isfinite(r.max_abs_c)
    assert 0 < r.max_abs_h <= 1.0  # h = o * tanh(c)
    assert 0 < r.max_abs_c < 100.0  # |c| grows by at most 1 per step; a drifting cell would blow through this
    assert "non-finite state" not in r.resets and "non-finite logits" not in r.resets
    # drift: the last window's median latency within 3x the first's (loose: the machine is shared)
    assert r.last["p50"] <= 3.0 * r.first["p50"], r.to_json()

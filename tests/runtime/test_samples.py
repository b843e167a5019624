"""LoopStats's sample stores: fixed memory, the newest window for percentiles, lifetime totals."""
from __future__ import annotations

import numpy as np

from edgelstm.runtime.loop import LoopStats
from edgelstm.runtime.samples import Samples


def test_ring_keeps_the_newest_window_in_order_and_lifetime_totals() -> None:
    s = Samples(5)
    assert len(s) == 0 and np.isnan(s.percentile(50)) and np.isnan(s.lifetime_mean)
    s.extend(range(1, 4))
    assert list(s) == [1.0, 2.0, 3.0] and len(s) == 3
    s += range(4, 13)  # 12 values into a ring of 5
    assert list(s) == [8.0, 9.0, 10.0, 11.0, 12.0] and len(s) == 5
    assert s.count == 12 and s.lifetime_mean == 6.5 and s.peak == 12.0
    assert s.percentile(50) == 10.0 and float(np.asarray(s).mean()) == 10.0


def test_loop_stats_memory_does_not_grow_with_decisions() -> None:
    st = LoopStats(window=64)
    before = st.nbytes
    bufs = [id(v._buf) for v in st.stages_ms.values()]
    for i in range(10_000):
        st.stages_ms["total"].append(float(i % 100))
        st.ages_ms.append(1.0)
    assert st.nbytes == before and [id(v._buf) for v in st.stages_ms.values()] == bufs
    s = st.summary()
    assert s["percentile_window"] == 64 and s["max_ms"] == 99.0
    assert s["p50_ms"] == float(np.percentile([float(i % 100) for i in range(10_000 - 64, 10_000)], 50))

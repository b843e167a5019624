"""Bounded sample stores for a loop that runs for weeks: a ring of the last N values, and lifetime totals.

:class:`Samples` keeps the newest ``capacity`` values in a preallocated float64 ring (percentiles over
a recent window: what a dashboard shows) and a count, sum and max over the whole run (lifetime totals).
Appending allocates nothing, so memory stays flat however many decisions the loop makes. It reads
like a sequence of the retained values, oldest first (``len``, iteration, ``np.asarray``).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

DEFAULT_CAPACITY = 8192  # per store; 64 KiB of float64


class Samples:
    """The last ``capacity`` values appended (a ring), plus lifetime count/sum/max."""

    __slots__ = ("_buf", "_next", "count", "total", "peak")

    def __init__(self, capacity: int = DEFAULT_CAPACITY, values: Iterable[float] = ()) -> None:
        if capacity < 1:
            raise ValueError(f"capacity {capacity}: expected >= 1")
        self._buf = np.empty(capacity, np.float64)
        self._next = 0         # where the next value goes
        self.count = 0         # values appended over the lifetime
        self.total = 0.0       # their sum (lifetime_mean = total / count)
        self.peak = float("-inf")
        self.extend(values)

    @property
    def capacity(self) -> int:
        return len(self._buf)

    def append(self, value: float) -> None:
        self._buf[self._next] = value
        self._next = (self._next + 1) % len(self._buf)
        self.count += 1
        self.total += value
        if value > self.peak:
            self.peak = value

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.append(float(v))

    def __iadd__(self, values: Iterable[float]) -> Samples:
        self.extend(values)
        return self

    def __len__(self) -> int:
        return min(self.count, len(self._buf))

    def values(self) -> np.ndarray:
        """The retained values, oldest first (a copy)."""
        if self.count <= len(self._buf):
            return self._buf[: self.count].copy()
        return np.concatenate((self._buf[self._next:], self._buf[: self._next]))

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        v = self.values()
        return v if dtype is None else np.asarray(v, dtype=dtype)  # type: ignore[call-overload]

    def __iter__(self) -> Iterator[float]:
        return iter(self.values().tolist())

    def __getitem__(self, i: int | slice) -> float | np.ndarray:
        return self.values()[i]  # type: ignore[no-any-return]

    def percentile(self, q: float) -> float:
        """Percentile ``q`` of the retained window; NaN when empty."""
        return float(np.percentile(self._buf[: len(self)], q)) if self.count else float("nan")

    @property
    def lifetime_mean(self) -> float:
        """Lifetime mean; NaN when empty."""
        return self.total / self.count if self.count else float("nan")

    def __repr__(self) -> str:
        return f"Samples(count={self.count}, window={len(self)}/{self.capacity})"


__all__ = ["DEFAULT_CAPACITY", "Samples"]

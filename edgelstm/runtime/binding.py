"""Inputs and outputs bound once per buffer: what keeps a small graph's call cheap on the host.

A tiny model runs in tens of microseconds, so the backends' everyday calls cost as much as the
model: onnxruntime's ``session.run`` checks and wraps every feed and allocates every output,
OpenVINO's ``infer(dict)`` copies every input into the request. Both backends can instead read
inputs from, and write outputs into, arrays bound to them once (onnxruntime's IOBinding, OpenVINO's
shared-memory tensors) and read that memory afresh at every run. :class:`BoundInputs` rebinds an
input only when the caller hands a different buffer; :class:`OutputBuffers` keeps one set of output
arrays per input shape for the backend to write into. The runners in :mod:`edgelstm.runtime.stream`
use both; the engine hands the same buffer objects every frame, so nothing is rebound.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgelstm.errors import UsageError
from edgelstm.spec import TensorSpec


def same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Two arrays over the very same bytes, shape and dtype (two views of one buffer)."""
    return (a.shape == b.shape and a.dtype == b.dtype and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


class BoundInputs:
    """The arrays a backend was last given, per input: a feed is rebound only when its memory changed.

    Holding the bound arrays keeps their memory alive (the backends keep raw pointers, not references),
    and an address seen again is the same buffer.
    ``bind(name, array)`` gets arrays that are C-contiguous, writeable and of ``dtypes[name]`` (others
    are copied first, and so rebound at every call). ``keep=False`` rebinds every call: for a backend
    that copies at bind time (onnxruntime's GPU providers), where a kept binding would go stale.
    """

    def __init__(self, dtypes: dict[str, np.dtype[Any]], bind: Callable[[str, np.ndarray], None], *,
                 keep: bool = True) -> None:
        self.dtypes, self._bind, self.keep = dtypes, bind, keep
        self.names = dtypes.keys()
        self._held: dict[str, np.ndarray] = {}

    def update(self, feeds: dict[str, np.ndarray]) -> bool:
        """Bind what changed; True when an input's shape changed (the outputs need rebinding)."""
        if feeds.keys() != self.names:  # a missing input would run on the last bound one's memory
            raise UsageError(f"inputs {sorted(feeds)}", expected=f"the model's inputs {sorted(self.names)}",
                             fix="feed every input the manifest lists, under its name")
        held, reshaped = self._held, False
        for name, arr in feeds.items():
            prev = held.get(name)
            # two arrays that own their data (base None) are two allocations: no need to compare addresses
            if prev is not None and self.keep and (prev is arr or (
                    (arr.base is not None or prev.base is not None) and same_memory(prev, arr))):
                held[name] = arr  # the next call's identical object: the cheap `is` test
                continue
            want = self.dtypes[name]
            a = arr if (arr.dtype == want and arr.flags.c_contiguous and arr.flags.writeable) else \
                np.array(arr, dtype=want, order="C")
            self._bind(name, a)
            reshaped = reshaped or prev is None or prev.shape != a.shape
            held[name] = a
        return reshaped


class OutputBuffers:
    """Arrays for a graph's outputs, one set per size of its named axes (batch, time), made on first use.

    They are kept here while bound: the backends write through raw pointers and hold no reference."""

    KEEP = 8  # sets kept (batch sizes of an engine, clip lengths of a window): the oldest goes beyond

    def __init__(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> None:
        self.inputs, self.outputs = inputs, outputs
        self._sets: dict[tuple[tuple[str, int], ...], list[np.ndarray]] = {}

    def get(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray] | None:
        """The output arrays for these feeds' shapes; None when an output axis is not set by an input."""
        axes: dict[str, int] = {}
        for t in self.inputs:
            shape = feeds[t.name].shape
            axes.update((d, shape[i]) for i, d in enumerate(t.shape) if isinstance(d, str) and i < len(shape))
        key = tuple(sorted(axes.items()))
        bufs = self._sets.get(key)
        if bufs is None:
            if any(isinstance(d, str) and d not in axes for t in self.outputs for d in t.shape):
                return None
            if len(self._sets) >= self.KEEP:  # not bound any more: the caller rebinds what this returns
                del self._sets[next(iter(self._sets))]
            bufs = self._sets[key] = [np.zeros([axes[d] if isinstance(d, str) else d for d in t.shape], t.dtype)
                                      for t in self.outputs]
        return bufs


__all__ = ["BoundInputs", "OutputBuffers", "same_memory"]

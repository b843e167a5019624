"""A tracking model's facts in the manifest (``Manifest.tracking``): how the runtime cuts the crops the model
sees from the previous box, and how it turns the model's four outputs back into a box.

A track bundle's graphs are the usual encoder, step and clip graphs; what differs is what their tensors hold
(tensor names stay those of :mod:`edgelstm.spec`):

- ``frames`` (N, S, 2S, 3) uint8 is a *crop pair* side by side: on the left the previous frame, on the right
  the current frame, both cut around the previous box enlarged ``context`` times and resized to S x S
  (:func:`edgelstm.runtime.track_geometry.crop_pair`); ``Manifest.preprocess.size`` is (S, 2S);
- ``logits`` (N, 4) are the box's change relative to that window, ``Manifest.labels`` name them
  (:data:`OUTPUTS`): centre shift as a fraction of the window and the log of the size ratio, each times
  ``output_scale`` (:func:`edgelstm.runtime.track_geometry.decode`).

Export writes it from the checkpoint (training stores it in its metrics under :data:`TRACKING_KEY`); the runtime
(:mod:`edgelstm.runtime.track`), evaluation and the INT8 gate read it. Standard library only, strict like the
manifest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUTS: tuple[str, str, str, str] = ("dx", "dy", "dw", "dh")  # the labels of a track model's four outputs
TRACKING_KEY = "tracking"  # where a track checkpoint's metrics keep its Tracking


@dataclass(frozen=True)
class Tracking:
    """The crop and box geometry a track model was trained with (defaults: the quickstart's)."""

    crop_size: int = 32              # S: each crop is S x S; the encoder takes the pair side by side (S, 2S)
    context: float = 2.0             # the window is the previous box scaled by this about its centre
    output_scale: float = 4.0        # the model's outputs are the box change times this
    max_scale_change: float = 1.6    # per frame, a box side grows or shrinks at most this factor
    min_side: float = 4.0            # pixels: a box side never shrinks below this
    reinit_every: int = 32           # the LSTM state is zeroed every N frames (0: never), the box kept (Re3)
    frame_size: tuple[int, int] = (0, 0)  # (H, W) of the training frames (the synthetic set eval renders); 0: any

    def check(self) -> tuple[str, object, str] | None:
        """The first field outside its bounds as (field, value, what was expected), or None."""
        if not 4 <= self.crop_size <= 1024:
            return "crop_size", self.crop_size, "4..1024 pixels"
        for name in ("context", "output_scale", "max_scale_change", "min_side"):
            value = getattr(self, name)
            if not (value == value and 0 < value < 1e6):
                return name, value, "a finite number > 0"
        if self.context < 1:
            return "context", self.context, ">= 1 (the window holds the box)"
        if self.max_scale_change <= 1:
            return "max_scale_change", self.max_scale_change, "> 1"
        if self.reinit_every < 0:
            return "reinit_every", self.reinit_every, ">= 0 (0: never)"
        return None


def tracking_of(metrics: dict[str, Any], *, source: str | Path) -> Tracking | None:
    """A track checkpoint's :class:`Tracking` (``metrics[TRACKING_KEY]``); None when it has none."""
    from edgelstm.jsonspec import from_jsonable

    raw = metrics.get(TRACKING_KEY)
    if raw is None:
        return None
    return from_jsonable(Tracking, raw, where=TRACKING_KEY, source=source)  # type: ignore[no-any-return]

"""What the demo writes for a captioning bundle: a JSON line per caption, and the latest caption on the frame.

The engine attaches a :class:`~edgelstm.runtime.decode.Caption` to the prediction of the frame it was written on
(a clip window ended, or the stream's action changed); :func:`caption_record` is its JSON line, and
:class:`CaptionOverlay` keeps each stream's latest caption on screen, in a banner above the status line, until
the next one.
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from edgelstm.runtime.decode import Caption, token_latency_ms


def caption_record(d: Any) -> dict[str, Any] | None:
    """The JSON line of the caption written on decision ``d`` (None when it wrote none): its text and words, why it
    was written (``window`` or ``action``), the stream, frame and media time, the shown action, the decode's
    time and its time per token."""
    c: Caption | None = d.prediction.caption
    if c is None:
        return None
    t = d.frame.t_media
    lat = token_latency_ms(list(c.token_ms))
    return {"caption": c.text, "words": len(c.words), "reason": c.reason, "stream": d.stream, "frame": d.frame.index,
            "window_frame": c.frame, "t_media": round(t, 6) if math.isfinite(t) else None,
            "action": d.prediction.label, "logprob": round(c.logprob, 4), "decode_ms": round(c.decode_ms, 3),
            "token_ms_p50": round(lat["p50"], 4), "tokens": len(c.token_ms)}


class CaptionOverlay:
    """Each stream's latest caption, drawn across the bottom of its frames."""

    def __init__(self) -> None:
        self.latest: dict[int, Caption] = {}

    def draw(self, img: np.ndarray, d: Any) -> np.ndarray:
        c = d.prediction.caption
        if c is not None:
            self.latest[d.stream] = c
        c = self.latest.get(d.stream)
        if c is None:
            return img
        h, w = img.shape[:2]
        s = max(0.4, min(w, h) / 480)
        th = max(1, int(round(s)))
        scale = 0.55 * s
        text = c.text or "(no words)"
        while cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)[0][0] > w - 16 and scale > 0.2:
            scale *= 0.9  # a long caption on a small frame: smaller type rather than cut words
        cv2.rectangle(img, (0, h - int(56 * s)), (w, h - int(28 * s)), (60, 30, 0), -1)
        cv2.putText(img, text, (int(8 * s), h - int(36 * s)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), th,
                    cv2.LINE_AA)
        return img

"""PyTorch eager baselines for ``edgelstm profile`` and the benchmarks (torch lives here, not in runtime/).

:func:`eager_model` wraps a checkpoint as a window model for
:class:`~edgelstm.measure.harness.WindowEngine`: streaming (``window=1``: one frame and the
per-stream (h, c) through ``model.step``) or clip re-inference (``model.step_logits`` on the last T
frames for every decision: how a clip model trained in PyTorch is commonly deployed). The model
takes RGB uint8 frames and normalises them itself, as in training.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.spec import ColourOrder, Manifest

COLOUR = ColourOrder.RGB  # the channel order the PyTorch models are trained on


class EagerWindow:
    """frames (n, T, H, W, 3) uint8 RGB -> logits (n, K) of the newest frame, in PyTorch eager."""

    def __init__(self, model: Any, *, window: int) -> None:  # a torch.nn.Module
        self.model: Any = model.eval()
        self.window = window
        self.state: dict[int, Any] = {}  # stream -> (h, c[, prev]), streaming only

    def __call__(self, frames: np.ndarray, ids: list[int]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._logits(torch, torch.from_numpy(np.ascontiguousarray(frames)), ids)

    def _logits(self, torch: Any, x: Any, ids: list[int]) -> np.ndarray:
        if self.window > 1:
            return self.model.step_logits(x)[:, -1].numpy()  # (n, T, K) -> (n, K)
        states = [self.state.get(i) or self.model.init_state(1) for i in ids]  # (h, c[, prev]), stream on axis 1
        state = tuple(torch.cat(part, 1) for part in zip(*states))
        logits, new = self.model.step(x[:, -1], state)  # (n, K), each (L, n, ...)
        for k, i in enumerate(ids):
            self.state[i] = tuple(s[:, k:k + 1] for s in new)
        return logits.numpy()

    def reset(self, stream: int | None) -> None:
        if stream is None:
            self.state.clear()
        else:
            self.state.pop(stream, None)

    def step_logits(self, X: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """(N, T, H, W, 3) uint8 RGB clips -> (N, T, K) per-step logits (for accuracy)."""
        from edgelstm.train.evaluate import per_step_logits

        return per_step_logits(self.model, X, batch_size=32)


def eager_model(checkpoint: str | Path, manifest: Manifest, *, window: int = 1,
                threads: int | None = None) -> tuple[EagerWindow, dict[str, Any]]:
    """The checkpoint as a window model, and the info row ``profile`` shows for it."""
    import torch

    from edgelstm.models.checkpoint import load_checkpoint

    if threads:
        torch.set_num_threads(threads)
    ckpt = load_checkpoint(checkpoint)
    if not hasattr(ckpt.model, "step"):
        raise TypeError(f"{ckpt.name} is not a streaming model")
    info = {"backend": "torch", "precision": "fp32", "graph": "eager", "threads": torch.get_num_threads(),
            "inference_precision": "f32", "model_bytes": Path(checkpoint).stat().st_size,
            "torch": torch.__version__}
    return EagerWindow(ckpt.model, window=window), info

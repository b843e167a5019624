"""Train on cached features when the encoder is frozen (``--freeze-encoder [--unfreeze-last N]``).

A frozen prefix of the encoder (frame normalisation and its first blocks, in eval mode: BatchNorm keeps its
running statistics) computes the same thing every epoch, so it runs once over the train and val clips
(:func:`extract`, with a progress bar and frames/s) and the loop trains what is left (the unfrozen blocks, the
pooling and projection, the LSTM and the head) on the cache: :class:`CachedView` shares its parameters with the
model, so the checkpoint is the ordinary frame model and export, INT8 and the runtime see nothing different.
Training reads no augmented frames, so the cached run is the same computation as the uncached one
(tests/train/test_feature_cache.py compares the weights after an epoch of each).

What is cached: the pooled map when every block is frozen (a 1280-vector per frame for Lite0), else the map the
last frozen block writes. The cache also lives on disk, ``<cache>/features/<key>.npy``, keyed by the frozen
weights, the frame normalisation and every byte of the clips, so a rerun (``--resume``, another student on the
same frozen encoder) skips the extraction.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from edgelstm.data import Dataset, Split
from edgelstm.models.freeze import encoder_blocks

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CACHED_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CachedTraining:
    net: nn.Module     # what trains and validates: a CachedView over the model
    data: Dataset      # every split as cached features (N, T, ...) float32
    frozen: int        # encoder blocks run once
    seconds: float     # extraction wall time (0 when every split came from the disk cache)


class CachedView(nn.Module):
    """The trainable rest of a frame model, fed cached features: ``forward(feats, lengths)`` equals
    ``model(clip, lengths)`` when ``feats`` is the frozen prefix's output for ``clip``."""

    def __init__(self, model: nn.Module, frozen: int) -> None:
        super().__init__()
        self.model: Any = model
        self.head = cast(nn.Module, model.head)  # the distillation loss hooks "model.head" (shared, not copied)
        self.encoder = cast(Any, model.encoder)
        self.rest = nn.Sequential(*encoder_blocks(self.encoder)[frozen:])  # the unfrozen blocks (maybe none)
        self.pooled = frozen == len(encoder_blocks(self.encoder))   # the cache holds pooled maps already
        self.causal = bool(getattr(model, "causal", False))
        self.hidden_size = getattr(model, "hidden_size", None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, *cached) -> (B, T, F): the encoder's unfrozen rest."""
        b, t = x.shape[:2]
        maps = x.flatten(0, 1)
        if not self.pooled:
            maps = self.encoder.pool_maps(self.rest(maps))
        return cast(torch.Tensor, self.encoder.project(maps)).view(b, t, -1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return cast(torch.Tensor, self.model.forward_features(self.features(x), lengths))


class CachedStepView(CachedView):
    """A causal model's view: per-step logits too (the step loss, back-to-back pairs, distillation per step)."""

    def step_logits(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.model.step_logits_features(self.features(x)))


def can_cache(model: nn.Module) -> bool:
    """A frame model whose encoder was frozen by :func:`edgelstm.models.freeze.freeze`."""
    enc = getattr(model, "encoder", None)
    return enc is not None and hasattr(model, "forward_features") and int(getattr(enc, "frozen_blocks", 0)) > 0


@torch.no_grad()
def prefix(model: nn.Module, frames: torch.Tensor, frozen: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> what the frozen prefix writes: pooled (all frozen) or the last frozen block's map."""
    enc = cast(Any, model.encoder)
    blocks = encoder_blocks(enc)
    x = cast(nn.Module, model.norm)(frames)
    for block in blocks[:frozen]:
        x = block(x)
    return cast(torch.Tensor, enc.pool_maps(x)) if frozen == len(blocks) else x


def extract(model: nn.Module, X: np.ndarray, frozen: int, *, batch_frames: int | None = None, progress: bool = True,
            desc: str = "features") -> np.ndarray:
    """(N, T, H, W, 3) uint8 clips -> (N, T, *cached) float32, in batches of frames (tqdm + frames/s).

    ``batch_frames`` (default: :func:`frames_per_batch`) keeps each activation small: at 160x160, batches of 256
    frames allocate a 200 MB map per layer, which the allocator maps and unmaps every time; 8 frames ran the Lite0
    prefix 5x faster on a 2-core AMD EPYC (768 frames: 1.7 s against 8.2 s; ``benchmarks/frozen_path.py``)."""
    batch_frames = batch_frames or frames_per_batch(X.shape[2:4])
    from tqdm import tqdm

    n, t = X.shape[:2]
    flat = X.reshape(n * t, *X.shape[2:])
    device = next(model.parameters()).device
    was = [m.training for m in model.modules()]
    model.eval()
    parts: list[np.ndarray] = []
    try:
        with tqdm(total=len(flat), desc=desc, unit="frame", file=sys.stderr, leave=False,
                  disable=not (progress and sys.stderr.isatty())) as bar:
            for i in range(0, len(flat), batch_frames):
                frames = torch.from_numpy(flat[i:i + batch_frames]).to(device)
                parts.append(prefix(model, frames, frozen).float().cpu().numpy())
                bar.update(len(parts[-1]))
    finally:
        for m, w in zip(model.modules(), was):
            m.training = w
    out = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
    return out.reshape(n, t, *out.shape[1:])


def frames_per_batch(size: tuple[int, ...]) -> int:
    """Frames per extraction batch: a stem map of 32 channels at stride 2 (4 bytes each) near 8 MB, 1 to 256."""
    return max(1, min(256, 2 ** 23 // (32 * int(size[0]) * int(size[1]))))


def cache_key(model: nn.Module, frozen: int, X: np.ndarray, lengths: np.ndarray | None) -> str:
    """The frozen weights and normalisation, the split point, how a fully frozen encoder pools (a 4x4 grid, a 2x2
    one, or a motion model's whole map cache different arrays from the same blocks) and every byte of the clips."""
    enc = cast(Any, model.encoder)
    pooling = f":{type(enc).__name__}:{getattr(enc, 'grid', '')}" if frozen == len(encoder_blocks(enc)) else ""
    h = hashlib.sha256(f"{CACHE_VERSION}:{frozen}{pooling}:{list(X.shape)}:{X.dtype}".encode())
    frozen_state = {**cast(nn.Module, model.norm).state_dict(prefix="norm."),
                    **nn.Sequential(*encoder_blocks(enc)[:frozen]).state_dict()}
    for name in sorted(frozen_state):
        h.update(name.encode())
        h.update(np.ascontiguousarray(frozen_state[name].detach().cpu().numpy()).data)
    for i in range(0, len(X), 256):
        h.update(np.ascontiguousarray(X[i:i + 256]).data)
    if lengths is not None:
        h.update(np.ascontiguousarray(lengths, dtype=np.int64).data)
    return h.hexdigest()[:32]


def _cached_split(model: nn.Module, split: Split, frozen: int, *, name: str, cache_dir: Path | None,
                  progress: bool) -> tuple[Split, float]:
    """``split`` with its clips replaced by the prefix's output: from the disk cache, or one extraction."""
    from edgelstm.train.teacher_cache import cache_root, save_array

    path = cache_root(cache_dir, "features") / f"{cache_key(model, frozen, split.X, split.lengths)}.npy"
    if path.is_file():
        feats = np.load(path)
        log.info("%s features from the cache %s (%s)", name, path, feats.shape)
        return Split(feats, split.y, split.lengths), 0.0
    t0 = time.perf_counter()
    feats = extract(model, split.X, frozen, progress=progress, desc=f"frozen encoder: {name}")
    dt = time.perf_counter() - t0
    frames = split.X.shape[0] * split.X.shape[1]
    log.info("frozen encoder: %d %s frames at %.0f frames/s, cached %s float32 (%.0f MB)", frames, name,
             frames / max(dt, 1e-9), feats.shape[2:], feats.nbytes / 2**20)
    save_array(path, feats)
    return Split(feats, split.y, split.lengths), dt


def cached_training(model: nn.Module, ds: Dataset, *, cache_dir: Path | None = None,
                    progress: bool = True) -> CachedTraining:
    """Run ``model``'s frozen encoder prefix once over every split; the view that trains on the result."""
    frozen = int(cast(Any, model.encoder).frozen_blocks)
    splits = dict(ds.splits)
    seconds = 0.0
    for name in CACHED_SPLITS:
        if name in splits:
            splits[name], dt = _cached_split(model, splits[name], frozen, name=name, cache_dir=cache_dir,
                                             progress=progress)
            seconds += dt
    view_cls = CachedStepView if hasattr(model, "step_logits_features") else CachedView
    return CachedTraining(view_cls(model, frozen), dataclasses.replace(ds, splits=splits), frozen, seconds)

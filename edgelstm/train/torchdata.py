"""Torch views of :class:`edgelstm.data.Split`: tensors in memory, batches by index.

Clips are small uint8 arrays already in memory, so batches are slices of one tensor, chosen
by a (Distributed)Sampler; no per-item collation, no worker processes.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DistributedSampler, RandomSampler, Sampler, SequentialSampler

from edgelstm.data import Split


@dataclass
class Batch:
    x: torch.Tensor        # (B, T, H, W, 3) uint8 or (B, T, F) float32
    y: torch.Tensor        # (B,) int64
    lengths: torch.Tensor  # (B,) int64 valid steps
    index: torch.Tensor    # (B,) positions in the split (to look up cached teacher outputs)


class SplitTensors(torch.utils.data.Dataset):
    def __init__(self, split: Split) -> None:
        self.x = torch.from_numpy(split.X)
        self.y = torch.from_numpy(split.y).long()
        t = split.X.shape[1]
        self.lengths = (torch.from_numpy(split.lengths).long() if split.lengths is not None
                        else torch.full((len(split),), t, dtype=torch.long))
        self.padded = split.lengths is not None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> int:  # samplers only need len(); batches are gathered below
        return index

    def batch(self, index: torch.Tensor, device: torch.device) -> Batch:
        return Batch(self.x[index].to(device, non_blocking=True), self.y[index].to(device),
                     self.lengths[index].to(device), index)


def make_sampler(data: SplitTensors, *, shuffle: bool, seed: int, distributed: bool) -> Sampler[int]:
    if distributed:
        return DistributedSampler(data, shuffle=shuffle, seed=seed, drop_last=False)
    if shuffle:
        return RandomSampler(data, generator=torch.Generator().manual_seed(seed))
    return SequentialSampler(data)


def batches(data: SplitTensors, sampler: Sampler[int], batch_size: int, device: torch.device,
            *, drop_last: bool = False) -> Iterator[Batch]:
    order = torch.tensor(list(iter(sampler)), dtype=torch.long)
    stop = len(order) - (len(order) % batch_size if drop_last and len(order) > batch_size else 0)
    for i in range(0, stop, batch_size):
        yield data.batch(order[i:i + batch_size], device)


def num_batches(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    if drop_last and n > batch_size:
        return n // batch_size
    return -(-n // batch_size)


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to reuse freed blocks instead of returning every large one to the OS at once.

    Training and feature extraction allocate activations of tens to hundreds of MB per layer. Above glibc's mmap
    threshold (at most 32 MB by default) each one is a fresh mapping that the kernel zero-fills page by page: the
    footage preset's student step (``benchmarks/frozen_path.py``, 2-core AMD EPYC) took 0.56 s with 0.13 s in the
    kernel (64k page faults); with the thresholds at 1 GiB, 0.50 s with 0.01 s (4.5k), and the feature extraction
    in batches of 256 frames 4.5 s instead of 8.2 s.
    The effect is PyTorch's usual advice (jemalloc or tcmalloc) without a preload. A no-op (False) off glibc."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))

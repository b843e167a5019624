"""Distributed plumbing for the training loop: join the process group ``torchrun`` describes, or run alone.

``WORLD_SIZE`` > 1 joins it (nccl on GPU, gloo on CPU) and pins this rank's GPU (``LOCAL_RANK``);
otherwise one process on the first GPU, or the CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank, the number of ranks, and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_dist() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return Dist(device=torch.device("cuda" if cuda else "cpu"))
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cpu")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return Dist(rank=rank, world=dist.get_world_size(), device=device)


def barrier(d: Dist) -> None:
    """Wait for every rank (nothing to wait for when alone)."""
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()

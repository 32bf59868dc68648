"""Sharding the work over torchrun's processes, and gathering the results on rank 0.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank takes the model indices ``i`` with
``i % world == rank``: which models exist never depends on the number of processes,
only who computes them. Every model is seeded by its index, so the gathered results
equal a single process's. nccl when every rank has a GPU of its own, gloo on CPU
or when ranks share a GPU (``--workers``). Without torchrun everything is one process
and these helpers are no-ops.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices) -> list:
        """This rank's share of ``indices`` (by position, round robin)."""
        return [i for k, i in enumerate(indices) if k % self.size == self.rank]

    def gather(self, mine: dict) -> dict:
        """Merge every rank's ``{index: value}`` on all ranks (objects go through pickle)."""
        if self.size == 1:
            return dict(mine)
        parts = [None] * self.size
        dist.all_gather_object(parts, mine)
        merged = {}
        for part in parts:
            merged.update(part)
        return merged

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def init_world(timeout_minutes: float = 120) -> World:
    """Join torchrun's process group if there is one; a single-process World otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        # NCCL refuses two ranks on one GPU: gloo whenever ranks share a device (or on CPU).
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
        shared = not torch.cuda.is_available() or local_size > torch.cuda.device_count()
        backend = "gloo" if shared else "nccl"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return World(rank=rank, size=size, local_rank=local_rank)


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()

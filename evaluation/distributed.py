"""Sharding the work over torchrun's processes, and gathering the results on rank 0.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank takes the model indices ``i`` with
``i % world == rank``: which models exist never depends on the number of processes,
only who computes them. Every model is seeded by its index, so the gathered results
equal a single process's. nccl when every rank has a GPU of its own, gloo on CPU
or when ranks share a GPU (``--workers``). Without torchrun everything is one process
and these helpers are no-ops.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from training.devices import rank_device


class RankFailed(RuntimeError):
    """An exception on one rank, raised on every rank at the next collective call."""


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
        parts = self._all(mine)
        merged = {}
        for part in parts:
            merged.update(part)
        return merged

    def barrier(self) -> None:
        self.settle(None)

    def settle(self, error: BaseException | None) -> None:
        """Wait for every rank; if any brings an exception, raise ``RankFailed`` with the first
        one's rank and reason on every rank, so none is left waiting in a later collective."""
        if self.size == 1:
            if error is not None:
                raise error
            return
        self._all(None if error is None else _Failure(f"{type(error).__name__}: {error}"))

    @contextlib.contextmanager
    def together(self):
        """Run the block on every rank, then ``settle``: an exception in it reaches every rank."""
        error = None
        try:
            yield
        except Exception as e:  # noqa: BLE001 - carried to every rank, then raised
            error = e
        self.settle(error)

    def from_main(self, value_on_main):
        """Rank 0's ``value_on_main()`` on every rank: one decision, not one per rank."""
        if self.size == 1:
            return value_on_main()
        box = [value_on_main() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _all(self, mine) -> list:
        """Every rank's ``mine``; a rank that sent a failure (see ``settle``) fails them all."""
        parts = [None] * self.size
        dist.all_gather_object(parts, mine)
        for rank, part in enumerate(parts):
            if isinstance(part, _Failure):
                raise RankFailed(f"rank {rank}: {part.reason}")
        return parts


@dataclass(frozen=True)
class _Failure:
    reason: str


def backend_for(device: torch.device, local_ranks: int) -> str:
    """nccl only when every local rank has a GPU of its own; gloo on CPU (whatever the machine
    has) and whenever ranks share a GPU, which NCCL refuses."""
    cuda = torch.device(device).type == "cuda"
    return "nccl" if cuda and local_ranks <= torch.cuda.device_count() else "gloo"


def init_world(device: torch.device, timeout_minutes: float = 120) -> World:
    """Join torchrun's process group if there is one; a single-process World otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(rank_device(device, local_rank))
        dist.init_process_group(backend_for(device, local_size), timeout=datetime.timedelta(minutes=timeout_minutes))
    return World(rank=rank, size=size, local_rank=local_rank)


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()

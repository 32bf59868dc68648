"""K processes on one device: the command relaunched under PyTorch's own launcher.

``--workers K`` hands the same command line to ``torch.distributed``'s elastic launcher
(what ``torchrun --standalone --nproc_per_node K`` runs), so K processes share the
work exactly as torchrun's ranks do (``distributed.py``: run and reference indices
round robin, every model seeded by its index). Nothing here schedules: the launcher
starts, watches and stops the processes, and the ranks hand out indices.

Why processes: one unlearning run of a 32x32 ResNet-18 at batch 64 leaves a large GPU
mostly waiting on kernel launches, and a method is the user's own Python, so the runs
cannot be fused; several runs at once fill the device.

Threads: CPU arithmetic depends on the thread count, so every process gets the same
fixed count, ``--threads`` or the machine's cores divided among the K processes; the
numbers are then identical for any K at the same per-process count.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

WORKER_MEMORY = 4 * 2**30  # a process's share of GPU memory: CUDA context, the splits, a method's run
MAX_WORKERS = 8
CORES_PER_WORKER = 2  # one for the process's Python, one to feed the device


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_workers(device: torch.device) -> int:
    """1 on a CPU (processes would only split its cores); on a GPU as many as its free
    memory and the CPU cores carry, at most ``MAX_WORKERS``."""
    import torch  # here, not at the top: describe_exit serves processes that need no torch

    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(MAX_WORKERS, cpu_cores() // CORES_PER_WORKER, free // WORKER_MEMORY))


def threads_per_worker(workers: int, threads: int | None = None) -> int:
    """Each process's CPU threads: ``threads`` when given, else the cores split evenly."""
    return threads if threads else max(1, cpu_cores() // workers)


def is_worker() -> bool:
    """True inside a launched process (or any torchrun rank): never relaunch from there."""
    return "WORLD_SIZE" in os.environ


class WorkerFailed(Exception):
    """A process died without reporting an error of its own (killed, crashed)."""


def launch(argv: list[str], workers: int, threads: int) -> int:
    """Run ``python main.py argv`` as ``workers`` processes with ``threads`` threads each;
    returns the exit code of the first that failed, or 0.

    A process that fails with an error of its own (exit code 1 or 2) has printed it; one
    that dies otherwise raises :class:`WorkerFailed` with its exit code or signal. The
    launcher stops the other processes either way.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=workers, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5)
    try:
        elastic_launch(config, sys.executable)(*argv)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode in (1, 2):
            return failure.exitcode
        raise WorkerFailed(f"worker {rank} of {workers} died ({describe_exit(failure.exitcode)}); the store keeps "
                           "every model already trained, and -m all --resume every method already scored") from None
    return 0


def describe_exit(exitcode: int) -> str:
    """A process's exit code in words: the signal's name for a negative one."""
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"

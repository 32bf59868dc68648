"""A method's N runs, sandboxed: each from a fresh copy of an original model (run i of original
i mod K, ``--originals K``; one original, K = 1, is the competition's protocol), with loaders
shuffled by the run's seed and the global RNGs seeded with it, under a time limit, its
weights checked afterwards and its model scored (``scoring.score_model``).

The method arrives as a factory from the caller (``main.py``): the evaluation never
imports ``methods``. Under torchrun each process runs its share of the seeds; a failure in
any process fails the method in every one, with its reason. Judging the scores is the
judge's (``judge.py``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from data import SplitTensors, method_loaders
from training.devices import device_scope

from .distributed import World
from .scoring import score_model


class MethodFailed(Exception):
    """The method raised, ran past its time limit or left NaN/inf weights; the message says
    which run and why."""


class MethodTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise MethodTimeout in this (main) thread after ``seconds``; no limit for None.

    SIGALRM interrupts Python code between bytecodes, so a method stuck in a loop is
    stopped; one stuck inside a single native call stops when that call returns.
    """
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise MethodTimeout(f"ran past its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def weights_are_finite(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


@dataclass(frozen=True)
class Sandbox:
    """What every run starts from."""

    originals: tuple  # run i copies original i mod K (K = 1: the competition's protocol); never changed
    tensors: SplitTensors  # the splits on the evaluation's device
    batch_size: int  # the loaders'
    time_limit_s: float | None = None  # one run's, in seconds

    def original_for(self, run_seed: int) -> torch.nn.Module:
        return self.originals[run_seed % len(self.originals)]


@dataclass(frozen=True)
class Run:
    """One run's outcome, as it travels back from the process that ran it."""

    scores: object  # scoring.ModelScores of the model the run left
    seconds: float  # the run's own wall time: the gate's numerator
    log: list | None  # the method's round_log after the run (JSON-ready), None where it keeps none
    returned_model: bool = False  # run() returned its model instead of changing ``net`` in place


@dataclass(frozen=True)
class Runs:
    """A method's N runs, in seed order."""

    scores: list  # scoring.ModelScores of each run's model
    seconds: list  # each run's own wall time: the gate's numerator
    logs: list  # each run's round_log (None where the method keeps none)
    wall_seconds: float  # all N runs, every process's, done and gathered
    processes: int
    returned_models: int = 0  # runs whose run() returned the model scored


RETURNED_MODEL_NOTE = ("run() returns its model instead of changing `net` in place: the kit scores the returned "
                       "model and the exported notebook saves it, but the competition's own template notebook keeps "
                       "only in-place changes")


def unlearned_model(net: torch.nn.Module, returned) -> torch.nn.Module:
    """The model a run leaves: ``net`` when ``run()`` returned None or ``net`` itself, else the
    model it returned (as the starter kit's own example does), which must be a ResNet-18 like
    ``net``: the same parameter and buffer names and shapes. Anything else raises ValueError."""
    if returned is None or returned is net:
        return net
    if not isinstance(returned, torch.nn.Module):
        raise ValueError(f"run() returned a {type(returned).__name__}; return None (changes made to `net` in place "
                         "count) or the unlearned model")
    ours, theirs = net.state_dict(), returned.state_dict()
    if list(ours) != list(theirs) or any(ours[k].shape != theirs[k].shape for k in ours):
        raise ValueError(f"run() returned a {type(returned).__name__} whose weights are not those of the model it "
                         "was given (other names or shapes); return None or a model of the same architecture")
    return returned


def run_method(make_method: Callable, sandbox: Sandbox, run_seed: int) -> Run:
    """One unlearning run from the original model. The method's log travels back with the
    scores, as the method instance stays in this process."""
    net = copy.deepcopy(sandbox.original_for(run_seed))
    seed_everything(run_seed)
    retain_loader, forget_loader, val_loader = method_loaders(sandbox.tensors, sandbox.batch_size, run_seed)
    method = make_method()
    device = next(net.parameters()).device
    start = time.perf_counter()
    try:
        with time_limit(sandbox.time_limit_s), device_scope(device):  # a method's own "cuda" tensors land on net's GPU
            returned = method.run(net, retain_loader, forget_loader, val_loader)
    except MethodTimeout as e:
        raise MethodFailed(f"run {run_seed}: {e}") from None
    except Exception as e:
        raise MethodFailed(f"run {run_seed}: {type(e).__name__}: {e}") from e
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    try:
        model = unlearned_model(net, returned)
    except ValueError as e:
        raise MethodFailed(f"run {run_seed}: {e}") from None
    if not weights_are_finite(model):
        raise MethodFailed(f"run {run_seed}: the method left NaN or infinite weights")
    return Run(score_model(model.eval(), sandbox.tensors), seconds, _json_ready(getattr(method, "round_log", None)),
               model is not net)


def run_all(make_method: Callable, method_name: str, sandbox: Sandbox, num_models: int, world: World = World(),
            progress: bool = True) -> Runs:
    """Runs ``0..num_models-1`` of ``make_method``, each process its share; raises
    MethodFailed (on every process) when a run failed on any."""
    seeds = list(range(num_models))
    mine = {}
    started = time.perf_counter()
    for run_seed in tqdm(world.shard(seeds), desc=f"{method_name} runs", disable=not progress, unit="run"):
        try:
            mine[run_seed] = run_method(make_method, sandbox, run_seed)
        except Exception as e:  # noqa: BLE001 - scoring out of memory, say: it fails this method on every rank
            failure = e if isinstance(e, MethodFailed) else MethodFailed(f"run {run_seed}: {type(e).__name__}: {e}")
            mine[run_seed] = failure
            break  # the method has failed: its other runs would not count
    everything = world.gather(mine)
    failures = [v for _, v in sorted(everything.items()) if isinstance(v, MethodFailed)]
    if failures:
        raise failures[0]
    runs = [everything[s] for s in seeds]
    return Runs([r.scores for r in runs], [r.seconds for r in runs], [r.log for r in runs],
                time.perf_counter() - started, world.size, sum(r.returned_model for r in runs))


def _json_ready(log):
    """A method's log as plain JSON values (tensors and numpy numbers become numbers)."""
    if log is None:
        return None
    return json.loads(json.dumps(log, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))

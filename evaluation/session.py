"""One evaluation command after its arguments are checked: the zoo for the data and
profile, then one method (``evaluate_one``) or every method as a leaderboard
(``run_leaderboard``, which with ``resume`` reuses reports made under the same
conditions). ``main.py`` builds a ``Session`` and calls ``run``; it hands each method over
as a ``Contestant``, so that the judge never imports ``methods``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from data import DataError, ImageData, make_splits

from .comparison import CEILING, versus_ceiling
from .distributed import World, rank_device
from .leaderboard import build, markdown_table, write_leaderboard
from .profiles import Profile
from .report import environment, json_text, read_report, write_failure, write_report, write_result
from .retrain_clock import GATE
from .runner import (EvaluationResult, MethodFailed, evaluate, evaluate_retraining, measured_ceiling,
                     refresh_intervals, score_references)
from .store import CheckpointStore
from .zoo import SplitTensors, Zoo

# What a reused report must share with this run to stand in for it.
RESUME_KEYS = ("report_version", "profile", "seed", "run_seeds", "gate", "sizes")
# Bump when reports gain fields a leaderboard needs: an older report is then run again, not reused.
REPORT_VERSION = 2  # 2: intervals and the ceiling


class RunFailed(Exception):
    """The method failed (raised, or left NaN/inf weights), or rows of ``-m all`` did: exit code 1."""


@dataclass(frozen=True)
class Contestant:
    """One method as the caller hands it over: what builds it, and the values it runs with."""

    make: Callable  # a fresh instance of the method, one per run
    hyperparameters: dict = field(default_factory=dict)  # for the report, and what --resume compares


@dataclass(frozen=True)
class Session:
    """What one command evaluates, and how."""

    methods: dict[str, Contestant]  # name -> the method; several for a leaderboard
    leaderboard: bool  # -m all: every method, the ceiling first, and leaderboard files
    device: torch.device
    profile: Profile
    out: pathlib.Path
    store: pathlib.Path
    seed: int = 0
    gate: float = GATE
    progress: bool = True
    precision: str | None = None
    remeasure_clock: bool = False
    method_timeout: float | None = None
    ceiling: bool = False  # -m NAME: train the N extra references the ceiling needs
    resume: bool = False

    def process_device(self, world: World) -> torch.device:
        return rank_device(self.device, world.local_rank) if world.size > 1 else self.device

    def zoo(self, data: ImageData, groups, world: World) -> Zoo:
        """The split seed's models and tensors on this process's device (trained on first use)."""
        device = self.process_device(world)
        try:
            splits = make_splits(len(data.y_train), len(data.y_test), self.seed, train_subset=self.profile.train_subset,
                                 test_subset=self.profile.test_subset, groups=groups)
        except ValueError as e:
            raise DataError(str(e)) from None
        return Zoo(data, splits, self.profile, SplitTensors.build(data, splits, device), CheckpointStore(self.store),
                   self.progress and world.is_main, world=world, precision=self.precision,
                   remeasure_clock=self.remeasure_clock)

    def run(self, data: ImageData, groups, world: World) -> dict:
        """Evaluate on ``data`` in this process of ``world``; returns the result (or the
        leaderboard) with its context. Bad splits raise DataError; failures RunFailed."""
        zoo = self.zoo(data, groups, world)
        device, splits, progress = self.process_device(world), zoo.splits, zoo.progress
        context = {
            "report_version": REPORT_VERSION,
            "profile": self.profile.to_json(),
            "seed": self.seed,
            "run_seeds": list(range(self.profile.num_models)),
            "gate": self.gate,
            "data": {"source": data.source, "fingerprint": data.fingerprint(), "splits_file": "splits.json"},
            "sizes": {name: int(getattr(splits, name).size) for name in ("forget", "retain", "val", "test")},
            "environment": environment(device) | {"precision": zoo.engine_precision()},
            "world_size": world.size,  # processes (--workers or torchrun); the numbers do not depend on it
        }
        if self.leaderboard:
            board = run_leaderboard(self.methods, zoo, self.out, context, self.gate, progress, self.method_timeout,
                                    self.resume)
            if board["failures"]:
                raise RunFailed(f"{len(board['failures'])} of {len(board['rows'])} rows failed: "
                                f"{', '.join(board['failures'])} (each reason in {self.out}/NAME/report.json)")
            return board
        (name, contestant), = self.methods.items()
        return evaluate_one(contestant, name, zoo, self.out, context, self.gate, progress, self.method_timeout,
                            self.ceiling)


def evaluate_one(contestant: Contestant, name: str, zoo: Zoo, out: pathlib.Path, context: dict, gate: float,
                 progress: bool, time_limit_s: float | None, train_ceiling: bool) -> dict:
    """One method's evaluation, placed against the ceiling when the store holds it (or
    ``train_ceiling`` asks for it); its report in ``out/name``. A failure writes the failed
    report and raises RunFailed."""
    started = time.perf_counter()
    references = score_references(zoo)
    try:
        result = evaluate(contestant.make, name, zoo, gate=gate, progress=progress, references=references,
                          time_limit_s=time_limit_s)
        result.hyperparameters = dict(contestant.hyperparameters)
    except MethodFailed as e:
        if zoo.world.is_main:
            write_failure(out / name, name, str(e), context)
        raise RunFailed(f"{name} failed: {e}") from None
    ceiling = measured_ceiling(zoo, gate, references, train=train_ceiling)
    if ceiling is not None:
        result.ceiling = versus_ceiling(result, ceiling)
    if zoo.world.is_main:
        write_result(result, out / name, zoo.splits, context | {"wall_seconds": time.perf_counter() - started})
    return result.to_json() | context


def run_leaderboard(methods: dict[str, Contestant], zoo: Zoo, out: pathlib.Path, context: dict, gate: float,
                    progress: bool, time_limit_s: float | None = None, resume: bool = False) -> dict:
    """Every method against the same cached references; a failing method gets a failed row.
    The first row scores retraining as a method: the ceiling every method's report is placed
    against. With ``resume``, a method whose report in ``out`` matches this run is not run again.
    """
    references = score_references(zoo)
    results, failures, ceiling = [], {}, None
    for name, contestant in [(CEILING, None)] + list(methods.items()):
        started = time.perf_counter()
        # Rank 0 decides, for every rank: ranks comparing their own devices would split.
        # A method's report is reused only if it ran with the values it would run with now:
        # a changed default must not let an old result stand for the new method.
        wanted = None if name == CEILING else contestant.hyperparameters
        saved = zoo.world.from_main(lambda: reusable_result(out / name / "report.json", context, wanted)) if resume \
            else None
        if saved is not None:
            if zoo.world.is_main:
                print(f"{name}: reusing {out / name / 'report.json'} (--resume)")
            refresh_saved(saved, None if name == CEILING else ceiling, out / name, zoo.world.is_main)
            results.append(saved)
            ceiling = saved if name == CEILING else ceiling
            continue
        try:
            if contestant is None:
                result = ceiling = evaluate_retraining(zoo, gate, references)
            else:
                result = evaluate(contestant.make, name, zoo, gate, progress, references, time_limit_s)
                result.hyperparameters = dict(contestant.hyperparameters)
                if ceiling is not None:
                    result.ceiling = versus_ceiling(result, ceiling)
        except Exception as e:  # noqa: BLE001 - a broken method must not stop the others
            reason = str(e) if isinstance(e, MethodFailed) else f"{type(e).__name__}: {e}"
            if zoo.world.is_main:
                print(f"{name} failed: {reason}", file=sys.stderr)
                write_failure(out / name, name, reason, context)
            failures[name] = reason
            continue
        if zoo.world.is_main:
            write_result(result, out / name, zoo.splits, context | {"wall_seconds": time.perf_counter() - started})
        results.append(result)
    board = build(results, failures)
    if zoo.world.is_main:
        path = write_leaderboard(board, out, context)
        print(f"\n{markdown_table(board)}\n\nleaderboard: {path}")
    return {"rows": board.rows, "leaderboard": board, "failures": failures} | context


def reusable_result(path: pathlib.Path, context: dict, hyperparameters: dict | None = None) -> EvaluationResult | None:
    """The EvaluationResult saved in ``path`` if it was made under the same conditions
    (and, given ``hyperparameters``, with those values), else None."""
    report = read_report(path)
    if report is None:
        return None
    same = all(report.get(k) == context.get(k) for k in RESUME_KEYS)
    if hyperparameters is not None:
        # compared as the report stores them (tuples as lists, NaN as null)
        same = same and report.get("hyperparameters") == json.loads(json_text(hyperparameters))
    for section, key, default in (("data", "fingerprint", None), ("environment", "precision", "fp32")):
        # (reports from before precisions were a choice were fp32)
        same = same and report.get(section, {}).get(key, default) == context.get(section, {}).get(key, default)
    # CPU and CUDA round differently; which GPU (cuda:0 on rank 0, cuda under one process) does not matter.
    same = same and _device_type(report) == _device_type(context)
    if not same or report.get("status") == "failed" or not report.get("intervals"):
        return None
    try:
        # Fields added later with a default (hyperparameters) need not be in an older report.
        return EvaluationResult(**{f.name: report[f.name] for f in dataclasses.fields(EvaluationResult)
                                   if f.name in report or not _has_default(f)})
    except (KeyError, TypeError):
        return None


def _device_type(report: dict) -> str | None:
    device = report.get("environment", {}).get("device")
    return None if device is None else device.split(":")[0]


def _has_default(f) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def refresh_saved(result: EvaluationResult, ceiling, out_dir: pathlib.Path, write: bool) -> None:
    """Bring a reused result's derived numbers up to date (intervals from an older report,
    its place against this run's ceiling) and rewrite its report when they changed."""
    changed = refresh_intervals(result)
    if ceiling is not None:
        placed = versus_ceiling(result, ceiling)
        changed = changed or placed != result.ceiling
        result.ceiling = placed
    if changed and write:
        report = read_report(out_dir / "report.json")
        fields = {f.name for f in dataclasses.fields(result)}
        write_report(result, out_dir, {k: v for k, v in report.items() if k not in fields})

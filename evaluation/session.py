"""One evaluation command after its arguments are checked, each stage called once, in order:

1. the zoo: the original's and the N references' scores (``Zoo``, training what the store
   lacks), and the gate's yardstick (``retrain_clock.stored_clock``);
2. the runner: a method's N sandboxed runs and their models' scores (``runner.run_all``);
3. the judge: scores in, a ``Result`` out (``judge.judge``);
4. the report: its files (``report.write_result``; the leaderboard's, ``leaderboard.py``).

The ceiling (retraining scored as a method) is stages 1 and 3 again, for references N..2N-1.
``main.py`` builds a ``Session`` and calls ``run``; it hands each method over as a
``Contestant``, so that the judge never imports ``methods``.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from data import DataError, ImageData, SplitTensors, make_splits

from . import metric
from .comparison import CEILING, NO_UNLEARNING
from .competition_input import kit_description, write_competition_input
from .distributed import World
from .judge import References, judge, placed
from .leaderboard import build, markdown_table, write_leaderboard
from .profiles import Profile
from .report import REPORT_VERSION, environment, reusable_result, rewrite_report, write_failure, write_result
from .result import Result, SubmissionOrigin
from .retrain_clock import GATE, stored_clock
from .runner import RETURNED_MODEL_NOTE, MethodFailed, Sandbox, run_all
from .scoring import score_states
from .files import check_space
from .store import CheckpointStore, checkpoint_bytes, config_key, report_bytes, scores_bytes
from .submission import COMPETITION_RUNS, COMPETITION_SECONDS, RUNS_FILE, Submission
from .zoo import Zoo
from training.devices import rank_device


SCORES_PER_EVALUATION = 64  # methods' models scored in memory; their scores of the references' kind are stored


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
    originals: int = 1  # K originals of different seeds; run i starts from original i mod K
    reference_stores: tuple = ()  # stores read, never written (--reference-store)

    def zoo(self, data: ImageData, groups, world: World) -> Zoo:
        """The split seed's models and tensors on this process's device (trained on first use)."""
        device = rank_device(self.device, world.local_rank) if world.size > 1 else self.device
        try:
            splits = make_splits(len(data.y_train), len(data.y_test), self.seed, train_subset=self.profile.train_subset,
                                 test_subset=self.profile.test_subset, groups=groups)
        except ValueError as e:
            raise DataError(str(e)) from None
        store = CheckpointStore(self.store, self.reference_stores)
        return Zoo(data, splits, self.profile, SplitTensors.build(data, splits, device), store,
                   self.progress and world.is_main, world=world, precision=self.precision, originals=self.originals)

    def context(self, zoo: Zoo) -> dict:
        """What every report of this command records besides its result."""
        return {
            "report_version": REPORT_VERSION,
            "profile": self.profile.to_json(),
            "seed": self.seed,
            "run_seeds": list(range(self.profile.num_models)),
            "originals": self.originals,  # K: run i starts from original i mod K
            "gate": self.gate,
            "data": {"source": zoo.data.source, "fingerprint": zoo.data.fingerprint(), "splits_file": "splits.json"},
            "sizes": {name: int(getattr(zoo.splits, name).size) for name in ("forget", "retain", "val", "test")},
            "environment": environment(zoo.device) | {"precision": zoo.engine_precision()},
            "world_size": zoo.world.size,  # processes (--workers or torchrun); the numbers do not depend on it
        }

    def check_room(self, zoo: Zoo, ceiling: bool) -> None:
        """Stops the command (PathUnusable) before any model is trained when ``--store`` has no
        room for the models it still lacks, or ``--out`` none for the reports."""
        n_models = self.profile.num_models
        configs = [zoo.original_config(k) for k in range(zoo.originals)]
        configs += [zoo.retrained_config(i) for i in range(2 * n_models if ceiling else n_models)]
        missing = sum(not zoo.store.has(config_key(c)) for c in configs)
        per_model = checkpoint_bytes(zoo.data.num_classes) + scores_bytes(zoo.splits)
        check_space(self.store, missing * per_model + SCORES_PER_EVALUATION * scores_bytes(zoo.splits),
                    "--store", f"{missing} models still to train and the scores of the rest")
        rows = len(self.methods) + (2 if self.leaderboard else 0)
        check_space(self.out, rows * report_bytes(n_models, zoo.splits), "--out", f"{rows} reports")

    def run(self, data: ImageData, groups, world: World) -> dict:
        """Evaluate on ``data`` in this process of ``world``; returns the result (or the
        leaderboard) with its context. Bad splits raise DataError; failures RunFailed; a
        ``--store`` or ``--out`` without room for the work, PathUnusable before any."""
        zoo = self.zoo(data, groups, world)
        # every process checks (the same folders, the same answer), so all stop together
        # instead of the others waiting for a first process that has already left
        self.check_room(zoo, self.leaderboard or self.ceiling)
        context = self.context(zoo)
        started = time.perf_counter()
        references = gather_references(zoo, self.remeasure_clock)
        if self.leaderboard:
            board = run_leaderboard(self.methods, zoo, self.out, context, self.gate, zoo.progress,
                                    self.method_timeout, self.resume, references)
            if board["failures"]:
                raise RunFailed(f"{len(board['failures'])} of {len(board['rows'])} rows failed: "
                                f"{', '.join(board['failures'])} (each reason in {self.out}/NAME/report.json)")
            return board
        (name, contestant), = self.methods.items()
        return evaluate_one(contestant, name, zoo, self.out, context, self.gate, zoo.progress, self.method_timeout,
                            self.ceiling, references, started)

    def write_competition_input(self, data: ImageData, groups, out_dir) -> pathlib.Path:
        """The Kaggle notebook's input folder for this profile and seed (``competition_input.py``)."""
        return write_competition_input(self.zoo(data, groups, World()), out_dir, groups)

    def score_submission(self, data: ImageData, groups, submission: Submission, name: str) -> dict:
        """A Kaggle submission's N checkpoints scored as ``run`` scores a method's N runs, against
        N references of this profile and seed (stage 2 reads the zip instead of running a
        method); its report in ``out/name``. A kit file naming other references raises
        SubmissionError before anything is trained."""
        zoo = self.zoo(data, groups, World())
        origin = submission.check_origin(kit_description(zoo))
        self.check_room(zoo, self.ceiling)
        context = self.context(zoo)
        started = time.perf_counter()
        references = gather_references(zoo, self.remeasure_clock)
        read = time.perf_counter()
        states = submission.state_dicts(data.num_classes, zoo.device)
        scores = [score_states([state], zoo.tensors, data.num_classes)[0]
                  for state in tqdm(states, desc="checkpoints", total=submission.num_models, disable=not zoo.progress)]
        seconds, device, machine = submission.recorded_seconds()
        note = None
        if seconds is None:
            note = f"not recorded: no {RUNS_FILE} with every run's seconds beside the zip"
        elif device != zoo.device.type:
            note = f"not comparable: recorded on {device} ({machine}), the retrain clock here is on {zoo.device.type}"
        recorded = SubmissionOrigin(str(submission.path), origin, seconds, device, machine, COMPETITION_RUNS,
                                    COMPETITION_SECONDS)
        result = judge(name, scores, None if note else seconds, references, self.gate,
                       runs_wall_seconds=time.perf_counter() - read, processes=1, timing_note=note,
                       submission=recorded)
        ceiling = score_retraining(zoo, references, self.gate, train=self.ceiling)
        if ceiling is not None:
            result = placed(result, ceiling)
        write_result(result, self.out / name, zoo.splits, context | {"wall_seconds": time.perf_counter() - started})
        return result.to_json() | context


def gather_references(zoo: Zoo, remeasure_clock: bool = False) -> References:
    """Stage 1: the original's and references 0..N-1's scores, and the gate's retrain clock."""
    n_models = zoo.profile.num_models
    metric.max_measurable_epsilon(n_models)  # fails early, with the metric's message, for N < 3
    phases = {}
    with _timed(phases, "original"):
        originals = [zoo.original_scores(k) for k in range(zoo.originals)]
    with _timed(phases, "references"):
        retrained, _ = zoo.reference_scores(range(n_models))
    with _timed(phases, "retrain_clock"):
        clock = stored_clock(zoo.store, zoo.data, zoo.splits, zoo.profile, zoo.device, zoo.world, zoo.progress,
                             remeasure_clock)
    seconds = float(sum(record["train_seconds"] for _, record in originals) / len(originals))
    return References([scores for scores, _ in originals], seconds, retrained, clock, phases)


@contextlib.contextmanager
def _timed(into: dict, name: str):
    started = time.perf_counter()
    yield
    into[name] = time.perf_counter() - started


def evaluate_method(contestant: Contestant, name: str, zoo: Zoo, references: References, gate: float,
                    progress: bool, time_limit_s: float | None = None) -> Result:
    """Stages 2 and 3 for one method: its N runs, then the judge. A failed run raises MethodFailed."""
    sandbox = Sandbox(tuple(zoo.all_originals()), zoo.tensors, zoo.profile.loader_batch_size, time_limit_s)
    runs = run_all(contestant.make, name, sandbox, zoo.profile.num_models, zoo.world, progress)
    if runs.returned_models and zoo.world.is_main:
        print(f"note: {name}'s {RETURNED_MODEL_NOTE}", file=sys.stderr)
    return judge(name, runs.scores, runs.seconds, references, gate, runs_wall_seconds=runs.wall_seconds,
                 processes=runs.processes, hyperparameters=contestant.hyperparameters, round_logs=runs.logs)


def score_retraining(zoo: Zoo, references: References, gate: float, train: bool = True) -> Result | None:
    """Retraining from scratch scored as if it were a method (stages 1 and 3 for references
    N..2N-1, model seeds the references do not use): what a perfect unlearner scores at this N
    (the same distribution twice scores F of about 0.18-0.35, not 1). Its time is the gate's
    retrain time, so its ratio is 1 by definition; the engine trained these models much faster
    (``reference_seconds``). None when ``train`` is off and the store lacks some of them."""
    n_models = zoo.profile.num_models
    if not train and not zoo.has_retrained(range(n_models, 2 * n_models)):
        return None
    scores, engine_seconds = zoo.reference_scores(range(n_models, 2 * n_models))
    return judge(CEILING, scores, [references.retrain_clock["seconds"]] * n_models, references, gate,
                 reference_seconds=engine_seconds)


def score_originals(zoo: Zoo, references: References, gate: float) -> Result:
    """No unlearning scored as if it were a method (the ``original`` row): run i's model is original
    i mod K, untouched, at no cost. It is the far end of the scale at K = N (``--originals N``),
    where the N models vary as retrained ones do; with fewer originals the same models repeat."""
    n_models = zoo.profile.num_models
    scores = [references.originals[i % len(references.originals)] for i in range(n_models)]
    return judge(NO_UNLEARNING, scores, [0.0] * n_models, references, gate)


def evaluate_one(contestant: Contestant, name: str, zoo: Zoo, out: pathlib.Path, context: dict, gate: float,
                 progress: bool, time_limit_s: float | None, train_ceiling: bool, references: References | None = None,
                 started: float | None = None) -> dict:
    """One method's evaluation, placed against the ceiling when the store holds it (or
    ``train_ceiling`` asks for it); its report in ``out/name``. A failure writes the failed
    report and raises RunFailed."""
    started = time.perf_counter() if started is None else started
    references = references or gather_references(zoo)
    try:
        result = evaluate_method(contestant, name, zoo, references, gate, progress, time_limit_s)
    except MethodFailed as e:
        if zoo.world.is_main:
            write_failure(out / name, name, str(e), context)
        raise RunFailed(f"{name} failed: {e}") from None
    ceiling = score_retraining(zoo, references, gate, train=train_ceiling)
    if ceiling is not None:
        result = placed(result, ceiling)
    if zoo.world.is_main:
        write_result(result, out / name, zoo.splits, context | {"wall_seconds": time.perf_counter() - started})
    return result.to_json() | context


def run_leaderboard(methods: dict[str, Contestant], zoo: Zoo, out: pathlib.Path, context: dict, gate: float,
                    progress: bool, time_limit_s: float | None = None, resume: bool = False,
                    references: References | None = None) -> dict:
    """Every method against the same cached references; a failing method gets a failed row.
    The first row scores retraining as a method: the ceiling every method's report is placed
    against; the second scores the originals (no unlearning), the scale's other end. With
    ``resume``, a method whose report in ``out`` matches this run is not run again.
    """
    references = references or gather_references(zoo)
    results, failures, ceiling = [], {}, None
    built_in = {CEILING: lambda: score_retraining(zoo, references, gate),
                NO_UNLEARNING: lambda: score_originals(zoo, references, gate)}
    for name, contestant in [(CEILING, None), (NO_UNLEARNING, None)] + list(methods.items()):
        started = time.perf_counter()
        # Rank 0 decides, for every rank: ranks comparing their own devices would split.
        # A method's report is reused only if it ran with the values it would run with now:
        # a changed default must not let an old result stand for the new method.
        wanted = None if contestant is None else contestant.hyperparameters
        saved = zoo.world.from_main(lambda: reusable_result(out / name / "report.json", context, wanted)) if resume \
            else None
        if saved is not None:
            if zoo.world.is_main:
                print(f"{name}: reusing {out / name / 'report.json'} (--resume)")
            saved = refresh_saved(saved, ceiling, out / name, zoo.world.is_main)
            results.append(saved)
            ceiling = saved if name == CEILING else ceiling
            continue
        try:
            result = built_in[name]() if contestant is None else evaluate_method(contestant, name, zoo, references,
                                                                                 gate, progress, time_limit_s)
            if name == CEILING:
                ceiling = result
            elif ceiling is not None:
                result = placed(result, ceiling)
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


def refresh_saved(result: Result, ceiling: Result | None, out_dir: pathlib.Path, write: bool) -> Result:
    """A reused result placed against this run's ceiling; its report rewritten when that moved it."""
    if ceiling is None or result.method == CEILING:
        return result
    moved = placed(result, ceiling)
    if moved.ceiling != result.ceiling and write:
        rewrite_report(moved, out_dir)
    return moved

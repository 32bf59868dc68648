"""Run a method N times from the original model and score it against the references.

The method arrives as a factory from the caller (``main.py``): the evaluation never
imports ``methods``. Each run gets a fresh copy of the original model, loaders
shuffled by the run's seed, and the global RNGs seeded with it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from data import make_loader
from training.engine import device_scope

from . import metric, shared_shift
from .comparison import intervals_of, shift_of
from .intervals import CONFIDENCE, RESAMPLES, SEED
from .mia import simple_mia
from .retrain_clock import GATE
from .scoring import ModelScores, score_model
from .zoo import SplitTensors, Zoo

INTERVALS_INFO = {"confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": SEED,
                  "resampled": "forget examples and the models' shared offsets (F); models (accuracies)"}
MIA_MODELS = 8  # the MIA is a side view: averaged over at most this many models per kind
MIA_SPLITS = 10  # the starter kit's cross-validation


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


def method_loaders(tensors: SplitTensors, batch_size: int, seed: int):
    """The three loaders a method sees (never the test split), shuffled by ``seed``."""
    return (
        make_loader(*tensors.retain, batch_size, shuffle=True, seed=seed),
        make_loader(*tensors.forget, batch_size, shuffle=True, seed=seed + 1),
        make_loader(*tensors.val, batch_size, shuffle=True, seed=seed + 2),
    )


def weights_are_finite(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


@dataclass
class EvaluationResult:
    method: str
    num_models: int
    forget_quality: float
    final_score: float
    epsilons: list
    unlearned: dict
    retrained: dict
    original: dict
    mia: dict
    timing: dict
    metric_info: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)  # name -> Interval.to_json(): F, final score, accuracies
    ceiling: dict | None = None  # comparison.versus_ceiling, when retraining was scored too
    hyperparameters: dict = field(default_factory=dict)  # the values the method ran with
    round_log: list | None = None  # per run seed, the method's own ``round_log`` where it keeps one

    def to_json(self) -> dict:
        return asdict(self)


def run_method(make_method: Callable, zoo: Zoo, run_seed: int, time_limit_s: float | None = None):
    """One unlearning run from the original model; returns ``(scores, seconds, log)``, ``log``
    being the method's ``round_log`` after the run (JSON-ready) or None. It travels back
    with the scores, as the method instance stays in this process."""
    original, _ = zoo.original()
    net = copy.deepcopy(original)
    seed_everything(run_seed)
    retain_loader, forget_loader, val_loader = method_loaders(zoo.tensors, zoo.profile.loader_batch_size, run_seed)
    method = make_method()
    device = next(net.parameters()).device
    start = time.perf_counter()
    try:
        with time_limit(time_limit_s), device_scope(device):  # a method's own "cuda" tensors land on net's GPU
            returned = method.run(net, retain_loader, forget_loader, val_loader)
    except MethodTimeout as e:
        raise MethodFailed(f"run {run_seed}: {e}") from None
    except Exception as e:
        raise MethodFailed(f"run {run_seed}: {type(e).__name__}: {e}") from e
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if returned is not None and returned is not net:
        raise MethodFailed(f"run {run_seed}: run() returned a new model; only changes made to `net` in place count "
                           "(here and in the Kaggle notebook, which ignores the return value)")
    if not weights_are_finite(net):
        raise MethodFailed(f"run {run_seed}: the method left NaN or infinite weights")
    return score_model(net.eval(), zoo.tensors), seconds, _json_ready(getattr(method, "round_log", None))


def _json_ready(log):
    """A method's log as plain JSON values (tensors and numpy numbers become numbers)."""
    if log is None:
        return None
    return json.loads(json.dumps(log, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


@dataclass
class References:
    """The original model's and the N retrained models' scores, computed once per zoo, and
    the gate's yardstick: one retraining from scratch the starter kit's way (``retrain_clock``)."""

    original: ModelScores
    original_seconds: float
    retrained: list
    retrain_clock: dict  # Zoo.retrain_clock(): its "seconds" divide every method's time
    # Wall seconds this process spent getting each (training or reading back), in order:
    # the report's timing.phases, with the runs and the scoring after them.
    phase_seconds: dict = field(default_factory=dict)


def score_references(zoo: Zoo) -> References:
    n_models = zoo.profile.num_models
    metric.max_measurable_epsilon(n_models)  # fails early, with the metric's message, for N < 3
    phases = {}
    with _timed(phases, "original"):
        original, original_record = zoo.original_scores()
    with _timed(phases, "references"):
        retrained, _ = _score_retrained(zoo, range(n_models))
    with _timed(phases, "retrain_clock"):
        clock = zoo.retrain_clock()
    return References(original, original_record["train_seconds"], retrained, clock, phases)


@contextlib.contextmanager
def _timed(into: dict, name: str):
    started = time.perf_counter()
    yield
    into[name] = time.perf_counter() - started


def _score_retrained(zoo: Zoo, indices) -> tuple[list, list]:
    """Scores and training times of references ``indices``, each rank scoring its share."""
    indices = list(indices)
    zoo.ensure_retrained(indices)
    mine = {}
    with zoo.world.together():
        for i in zoo.world.shard(indices):
            scores, record = zoo.retrained_scores(i)
            mine[i] = (scores, record["train_seconds"])
    everything = zoo.world.gather(mine)
    return [everything[i][0] for i in indices], [everything[i][1] for i in indices]


def evaluate(make_method: Callable, method_name: str, zoo: Zoo, gate: float = GATE, progress: bool = True,
             references: References | None = None, time_limit_s: float | None = None) -> EvaluationResult:
    """Score ``method_name`` over ``zoo.profile.num_models`` runs; returns an EvaluationResult.

    Under torchrun each rank runs its share of the seeds; a failure on any rank
    fails the method on every rank, with its reason.
    """
    references = references or score_references(zoo)
    seeds = list(range(zoo.profile.num_models))
    mine = {}
    started = time.perf_counter()
    for run_seed in tqdm(zoo.world.shard(seeds), desc=f"{method_name} runs", disable=not progress, unit="run"):
        try:
            mine[run_seed] = run_method(make_method, zoo, run_seed, time_limit_s)
        except Exception as e:  # noqa: BLE001 - scoring out of memory, say: it fails this method on every rank
            failure = e if isinstance(e, MethodFailed) else MethodFailed(f"run {run_seed}: {type(e).__name__}: {e}")
            mine[run_seed] = failure
            break  # the method has failed: its other runs would not count
    everything = zoo.world.gather(mine)
    failures = [v for _, v in sorted(everything.items()) if isinstance(v, MethodFailed)]
    if failures:
        raise failures[0]
    runs_wall = time.perf_counter() - started  # every process's runs, done and gathered
    unlearned = [everything[s][0] for s in seeds]
    unlearn_seconds = [everything[s][1] for s in seeds]
    scoring_started = time.perf_counter()
    result = score_unlearned(method_name, unlearned, unlearn_seconds, references, gate)
    scoring = time.perf_counter() - scoring_started
    logs = [everything[s][2] for s in seeds]
    result.round_log = logs if any(log is not None for log in logs) else None
    # The throughput of the runs: with several processes on one device (--workers), what
    # sharing it gains; each run's own time (unlearn_seconds) still counts for the gate.
    result.timing |= {"runs_wall_seconds": runs_wall, "processes": zoo.world.size,
                      "phases": references.phase_seconds | {"runs": runs_wall, "scoring": scoring}}
    return result


def evaluate_retraining(zoo: Zoo, gate: float = GATE, references: References | None = None) -> EvaluationResult:
    """Retraining from scratch scored as if it were a method: N more references.

    They use model seeds the references do not, so the row shows what a perfect
    unlearner scores at this N (metric_resolution.py: the same distribution twice scores
    F of about 0.18-0.35, not 1). Its time is the gate's retrain time, so its ratio
    is 1 by definition; the engine trained these models much faster (``reference_seconds``).
    """
    references = references or score_references(zoo)
    n_models = zoo.profile.num_models
    scores, engine_seconds = _score_retrained(zoo, range(n_models, 2 * n_models))
    result = score_unlearned("retrain", scores, [references.retrain_clock["seconds"]] * n_models, references, gate)
    result.timing["reference_seconds"] = engine_seconds
    return result


def measured_ceiling(zoo: Zoo, gate: float, references: References, train: bool = False) -> EvaluationResult | None:
    """Retraining scored as a method (the ceiling of ``comparison``) when the store already
    holds its N extra references, or when ``train`` asks for them; else None."""
    n_models = zoo.profile.num_models
    if not train and not zoo.has_retrained(range(n_models, 2 * n_models)):
        return None
    return evaluate_retraining(zoo, gate, references)


def score_unlearned(method_name, unlearned, unlearn_seconds, references: References, gate: float) -> EvaluationResult:
    """The competition's numbers for N unlearned models against the references."""
    n_models = len(unlearned)
    retrained = references.retrained
    unlearned_confs = np.stack([s.forget_confs for s in unlearned])
    retrained_confs = np.stack([s.forget_confs for s in retrained])
    eps = metric.per_example_epsilons(unlearned_confs, retrained_confs)
    forget_quality = float(metric.epsilon_points(eps, n_models).mean())
    final = metric.final_score(
        forget_quality,
        [s.retain_acc for s in unlearned],
        [s.test_acc for s in unlearned],
        [s.retain_acc for s in retrained],
        [s.test_acc for s in retrained],
    )
    clock = references.retrain_clock
    ratio = float(np.mean(unlearn_seconds) / clock["seconds"])
    unlearned_summary = _summary(unlearned, confs=unlearned_confs)
    retrained_summary = _summary(retrained, confs=retrained_confs)
    shift = shared_shift.measure(unlearned_confs, retrained_confs, epsilons=eps)
    intervals = intervals_of(method_name, eps, n_models, unlearned_summary, retrained_summary, forget_quality, final,
                             shift)
    return EvaluationResult(
        method=method_name,
        num_models=n_models,
        forget_quality=forget_quality,
        final_score=final,
        epsilons=eps.tolist(),
        unlearned=unlearned_summary,
        retrained=retrained_summary,
        original=_summary([references.original]) | {"train_seconds": references.original_seconds},
        mia=_mia_summary(unlearned, retrained, references.original),
        timing={
            "unlearn_seconds": list(unlearn_seconds),
            "unlearn_seconds_mean": float(np.mean(unlearn_seconds)),
            "retrain_seconds": clock["seconds"],
            "retrain_clock": {k: clock.get(k) for k in ("machine", "images_per_second", "timed_steps", "version",
                                                        "batch_size", "window_rates", "others_cores", "busy",
                                                        "measured")},
            "time_ratio": ratio,
            "gate": gate,
            "passes_gate": bool(ratio <= gate),
        },
        metric_info={
            "max_measurable_epsilon": metric.max_measurable_epsilon(n_models),
            "bucket_count": metric.bucket_count(n_models),
            "mean_epsilon": float(np.mean(eps)),
            "intervals": INTERVALS_INFO,
            "shared_shift": None if shift is None else shift.to_json(),
        },
        intervals={name: interval.to_json() for name, interval in intervals.items()},
    )


def refresh_intervals(result: EvaluationResult) -> bool:
    """Recompute the intervals of a result saved before they included the models' shared
    offsets (its raw numbers are all still there); True when anything changed."""
    if "shared_shift" in result.metric_info:
        return False
    shift = shift_of(result)
    intervals = intervals_of(result.method, result.epsilons, result.num_models, result.unlearned, result.retrained,
                             result.forget_quality, result.final_score, shift)
    result.intervals = {name: interval.to_json() for name, interval in intervals.items()}
    result.metric_info |= {"intervals": INTERVALS_INFO, "shared_shift": None if shift is None else shift.to_json()}
    return True


def _summary(scores: list[ModelScores], confs: np.ndarray | None = None) -> dict:
    out = {}
    for name in ("retain_acc", "forget_acc", "test_acc"):
        values = [s.__dict__[name] for s in scores]
        out[name] = float(np.mean(values))
        out[f"{name}_per_model"] = values
    if confs is not None:
        out["forget_confs"] = confs.tolist()
    return out


def _mia_summary(unlearned: list[ModelScores], retrained: list[ModelScores], original: ModelScores) -> dict:
    """The attack's mean accuracy per kind of model; NaN with a note where the forget set is
    too small for its cross-validation (a side view must not lose the evaluation)."""
    scores = [*unlearned, *retrained, original]
    forget_size, test_size = (min(getattr(s, side).size for s in scores) for side in ("forget_losses", "test_losses"))
    if min(forget_size, test_size) < MIA_SPLITS:
        note = (f"not measured: the attack's {MIA_SPLITS} splits need at least {MIA_SPLITS} examples on each side; "
                f"forget has {forget_size}, test {test_size}")
        return {"unlearned": math.nan, "retrained": math.nan, "original": math.nan, "note": note}
    return {"unlearned": _mean_mia(unlearned), "retrained": _mean_mia(retrained), "original": _mean_mia([original])}


def _mean_mia(scores: list[ModelScores]) -> float:
    values = [simple_mia(s.forget_losses, s.test_losses, n_splits=MIA_SPLITS) for s in scores[:MIA_MODELS]]
    return float(np.mean(values)) if values else math.nan

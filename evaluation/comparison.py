"""Scores with their uncertainty: a result's intervals, its place between 0 and the
metric's ceiling, and paired differences between methods (``intervals.py`` says what is
resampled and why).

The ceiling is retraining from scratch scored as a method against independent references
(the ``retrain`` row): what a perfect unlearner scores at this N, which is far below 1.
A method's ``F / F_retrain`` says where it stands between 0 and that ceiling.
"""

from __future__ import annotations

import functools

import numpy as np

from . import metric
from .intervals import (ACCURACIES, Bootstrap, Interval, SharedShift, SideScores, difference_interval, ratio_interval,
                        score_intervals)
from .result import Ceiling, Result, Side

CEILING = "retrain"  # the leaderboard row that scores retraining as a method


@functools.lru_cache(maxsize=4)
def bootstrap_plan(n_examples: int, n_models: int) -> Bootstrap:
    """One plan per evaluation shape: every method of an evaluation draws the same examples."""
    return Bootstrap(n_examples, n_models)


def sides(epsilons, num_models: int, unlearned: Side, retrained: Side,
          shift: SharedShift | None = None) -> tuple[SideScores, SideScores]:
    """A result's two sides as the bootstrap sees them: per-example points, per-model
    accuracies and the method's shared offsets (``shared_shift.measure``)."""
    points = metric.epsilon_points(np.asarray(epsilons, dtype=np.float64), num_models)
    method = SideScores(points, {k: unlearned.per_model(k) for k in ACCURACIES}, shift)
    references = SideScores(None, {k: retrained.per_model(k) for k in ACCURACIES})
    return method, references


def _resampled(method_name: str, epsilons, num_models: int, unlearned: Side, retrained: Side,
               shift: SharedShift | None):
    """``(method side, reference side, replicates)`` of one result's numbers."""
    method, references = sides(epsilons, num_models, unlearned, retrained, shift)
    plan = bootstrap_plan(len(method.points), num_models)
    return method, references, plan.replicates(method_name, method, references)


def replicates_of(results: list[Result]) -> dict:
    """Each result's bootstrap replicates by method name: computed once, shared by every comparison."""
    return {r.method: _resampled(r.method, r.epsilons, r.num_models, r.unlearned, r.retrained, r.shared_shift)[2]
            for r in results}


def intervals_of(method_name: str, epsilons, num_models: int, unlearned: Side, retrained: Side,
                 forget_quality: float, final_score: float, shift: SharedShift | None = None) -> dict[str, Interval]:
    """95% intervals of F, the final score and the mean accuracies of both sides."""
    method, references, reps = _resampled(method_name, epsilons, num_models, unlearned, retrained, shift)
    return score_intervals(method, references, reps, forget_quality, final_score)


def _check_comparable(a: Result, b: Result) -> None:
    """Paired intervals need the same forget examples and the same references."""
    same = (a.num_models == b.num_models and len(a.epsilons) == len(b.epsilons)
            and all(np.array_equal(a.retrained.per_model(k), b.retrained.per_model(k)) for k in ACCURACIES))
    if not same:
        raise ValueError(f"{a.method} and {b.method} were not scored against the same references and forget set")


def versus_ceiling(result: Result, ceiling: Result, replicates: dict | None = None) -> Ceiling:
    """``result`` placed against ``ceiling`` (retraining scored as a method) on the same references;
    ``replicates`` (``replicates_of``) when the caller already has them."""
    _check_comparable(result, ceiling)
    replicates = replicates or replicates_of([result, ceiling])
    reps, ceiling_reps = replicates[result.method], replicates[ceiling.method]
    return Ceiling(
        method=ceiling.method,
        forget_quality=ceiling.intervals["forget_quality"],
        normalised_forget_quality=ratio_interval(result.forget_quality, ceiling.forget_quality,
                                                 reps.forget_quality, ceiling_reps.forget_quality),
        forget_quality_difference=difference_interval(result.forget_quality, ceiling.forget_quality,
                                                      reps.forget_quality, ceiling_reps.forget_quality),
    )


def paired_differences(results: list[Result], replicates: dict | None = None) -> list[dict]:
    """For every pair (a, b), ``a - b`` in final score and in F, each with its paired interval."""
    reps = replicates or replicates_of(results)
    pairs = []
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            _check_comparable(a, b)
            ra, rb = reps[a.method], reps[b.method]
            pairs.append({
                "a": a.method,
                "b": b.method,
                "final_score": difference_interval(a.final_score, b.final_score, ra.final_score,
                                                   rb.final_score).to_json(),
                "forget_quality": difference_interval(a.forget_quality, b.forget_quality, ra.forget_quality,
                                                      rb.forget_quality).to_json(),
            })
    return pairs


def difference(pairs: list[dict], a: str, b: str, score: str = "final_score") -> Interval | None:
    """``a - b`` from ``paired_differences``' list, whichever way round it was stored."""
    for p in pairs:
        if (p["a"], p["b"]) == (a, b):
            return Interval.from_json(p[score])
        if (p["a"], p["b"]) == (b, a):
            d = Interval.from_json(p[score])
            return Interval(-d.value, -d.high, -d.low)
    return None

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

from . import klom, metric
from .intervals import (ACCURACIES, Bootstrap, Interval, SharedShift, SideScores, difference_interval,
                        percentile_interval, ratio_interval, score_intervals)
from .result import Agreement, Ceiling, Klom, KlomSet, Result, Side

CEILING = "retrain"  # the leaderboard row that scores retraining as a method
NO_UNLEARNING = "original"  # the leaderboard row that scores the original models as a method


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


def klom_of(unlearned: list, retrained: list) -> Klom:
    """KLOM of the unlearned models' margins against the references' on each set, with each
    set's statistics and their intervals over examples (``scoring.ModelScores`` in)."""
    sets = {}
    for name in klom.SETS:
        values = klom.per_example_klom(np.stack([s.confs(name) for s in unlearned]),
                                       np.stack([s.confs(name) for s in retrained]))
        reps = klom.resampled(values, name)
        sets[name] = KlomSet(values, {stat: percentile_interval(float(klom.statistic(values, stat)), reps[stat])
                                      for stat in klom.STATISTICS})
    return Klom(sets)


def rank_correlation(a, b) -> float:
    """Spearman's correlation (ties at their mean rank); NaN where either side is constant."""
    ranks = [_ranks(np.asarray(x, dtype=np.float64)) for x in (a, b)]
    if len(ranks[0]) < 2 or min(float(np.std(r)) for r in ranks) == 0:
        return float("nan")
    return float(np.corrcoef(*ranks)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def agreement(result: Result, ceiling: Result) -> Agreement:
    """F's and KLOM's verdicts on each forget example of ``result``, KLOM's threshold taken from
    the ``retrain`` row (``ceiling``): what retraining itself reaches on 95% of the examples."""
    eps, values = result.epsilons, result.klom.sets["forget"].values
    threshold = float(np.quantile(ceiling.klom.sets["forget"].values, 0.95))
    by_f, by_klom = eps < metric.BUCKET_WIDTH, values <= threshold
    return Agreement(rank_correlation(eps, values), threshold, int((by_f & by_klom).sum()),
                     int((by_f & ~by_klom).sum()), int((~by_f & by_klom).sum()), int((~by_f & ~by_klom).sum()))


def versus_ceiling(result: Result, ceiling: Result, replicates: dict | None = None) -> Ceiling:
    """``result`` placed against ``ceiling`` (retraining scored as a method) on the same references;
    ``replicates`` (``replicates_of``) when the caller already has them. KLOM's 95th percentiles
    are compared example draw by example draw (both rows resample the same examples)."""
    _check_comparable(result, ceiling)
    replicates = replicates or replicates_of([result, ceiling])
    reps, ceiling_reps = replicates[result.method], replicates[ceiling.method]
    differences = together = None
    if result.klom is not None and ceiling.klom is not None:
        differences = {}
        for name in klom.SETS:
            mine, theirs = result.klom.sets[name], ceiling.klom.sets[name]
            differences[name] = difference_interval(mine.statistics["p95"].value, theirs.statistics["p95"].value,
                                                    klom.resampled(mine.values, name)["p95"],
                                                    klom.resampled(theirs.values, name)["p95"])
        together = agreement(result, ceiling)
    return Ceiling(
        method=ceiling.method,
        forget_quality=ceiling.intervals["forget_quality"],
        normalised_forget_quality=ratio_interval(result.forget_quality, ceiling.forget_quality,
                                                 reps.forget_quality, ceiling_reps.forget_quality),
        forget_quality_difference=difference_interval(result.forget_quality, ceiling.forget_quality,
                                                      reps.forget_quality, ceiling_reps.forget_quality),
        klom_difference=differences,
        agreement=together,
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

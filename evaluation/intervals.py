"""How sure is a score? 95% intervals for F, the final score and the accuracies, F against
its ceiling, and paired differences between methods.

What is resampled, and why:

* **Forget examples, for F.** F is the mean, over forget examples, of each example's
  points (``2^-bucket`` of its epsilon). An example's epsilon already carries the noise
  of the N + N models behind it, so resampling examples with replacement spreads F as a
  new draw of models and forget examples would. The epsilons are computed once: a
  resample only reweights their points, so intervals cost milliseconds where the metric
  costs seconds.
* **Not models, for F.** A bootstrap over models with replacement repeats some of them,
  the metric's rules treat repeats as ties, and the resampled F falls below the
  full-sample F (biased; ``benchmarks/interval_coverage.py`` measures it).
* **Models' shared offsets, for F.** A run can also sit a little higher or lower on every
  forget example at once, and no resample of examples sees that (each keeps the same
  models). ``shared_shift.py`` measures how much of the models' deviation is shared
  across examples and how F answers a common shift; each resample then also draws the
  mean shared offset of the method's N models and of the N references and moves F by
  that answer (``SharedShift``).
* **Models, for the accuracies.** A mean accuracy is a plain mean of one number per
  model. Each resample moves it by a Student-t draw with the models' own spread, which
  gives the exact t interval even at N = 3, and moves retain, test and forget accuracy
  of the same models together.
* **The final score** takes all of these in each resample: F over the resampled
  examples times the accuracy ratios over the resampled unlearned and retrained models.

Pairing: the methods of one evaluation share the forget examples and the retrained
references. Every method is resampled with the same example and reference draws (from
the seed alone) and its own models' draws (from the seed and its name). So a method's
interval is the same in its own report and in a leaderboard, and a difference between
two methods is taken resample by resample: "A beats B at 95%" means that the interval
of the paired difference excludes 0, not that two intervals do not overlap.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
ACCURACIES = ("retain_acc", "test_acc", "forget_acc")


@dataclass(frozen=True)
class Interval:
    """A value with its percentile interval (``low`` to ``high``, ``CONFIDENCE`` coverage)."""

    value: float
    low: float
    high: float

    def excludes(self, x: float = 0.0) -> bool:
        return bool(x < self.low or x > self.high)

    def to_json(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, d: dict) -> "Interval":
        return cls(float(d["value"]), float(d["low"]), float(d["high"]))

    def __format__(self, spec: str) -> str:
        spec = spec or ".4f"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def percentile_interval(value: float, replicates: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """``value`` with the central ``confidence`` range of its bootstrap ``replicates``."""
    replicates = np.asarray(replicates, dtype=np.float64)
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size == 0:
        return Interval(float(value), math.nan, math.nan)
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Interval(float(value), float(low), float(high))


@dataclass(frozen=True)
class SharedShift:
    """A method's models against the references, as a shift common to every forget
    example: the standard deviations of the two sides' mean shared offsets (in the
    references' per-example standard deviations) and F's answer to a shift of the method
    by each ``grid`` value (``response``: F there minus F at 0). ``*_share``: the share of
    a model's deviation that is common to every example, on each side."""

    grid: tuple
    response: tuple
    method_sd: float
    reference_sd: float
    method_share: float
    reference_share: float

    def effect(self, method_draws, reference_draws) -> np.ndarray:
        """F's change for standard-normal draws of the two sides' mean offsets."""
        offset = self.method_sd * np.asarray(method_draws) - self.reference_sd * np.asarray(reference_draws)
        return np.interp(offset, self.grid, self.response)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict) -> "SharedShift":
        return cls(tuple(d["grid"]), tuple(d["response"]), d["method_sd"], d["reference_sd"], d["method_share"],
                   d["reference_share"])


@dataclass(frozen=True)
class SideScores:
    """One side of an evaluation (a method's N models, or the N references): its
    per-example points (None for the references), its models' accuracies and, for a
    method, how F answers the shared offsets of its models (None: no shared part)."""

    points: np.ndarray | None
    accuracies: dict  # name in ACCURACIES -> per-model values [N]
    shift: SharedShift | None = None

    def mean(self, name: str) -> float:
        return float(np.mean(self.accuracies[name]))


@dataclass
class Replicates:
    """A method's bootstrap replicates, ``[resamples]`` each; ratios are against the references."""

    forget_quality: np.ndarray
    final_score: np.ndarray
    accuracies: dict  # name -> [resamples] mean accuracy of the method's models
    reference_accuracies: dict  # name -> [resamples] mean accuracy of the references


class Bootstrap:
    """The resampling plan of one evaluation: ``n_examples`` forget examples, ``n_models``
    per side. Draws depend only on the seed (and a method's name), never on which other
    methods are scored, so that intervals and paired differences agree everywhere."""

    def __init__(self, n_examples: int, n_models: int, resamples: int = RESAMPLES, seed: int = SEED):
        if n_examples < 1 or n_models < 2:
            raise ValueError(f"need at least 1 example and 2 models, got {n_examples} and {n_models}")
        self.n_examples, self.n_models, self.resamples, self.seed = n_examples, n_models, resamples, seed
        self.examples = self._rng("examples").integers(0, n_examples, size=(resamples, n_examples), dtype=np.int32)
        self._reference_draws = self._model_draws("references")
        self._reference_offsets = self._rng("offsets/references").standard_normal(resamples)

    def _rng(self, stream: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(stream.encode())])

    def _model_draws(self, stream: str) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian multipliers ``[resamples, N]`` and Student-t scales ``[resamples]``: a
        resampled mean is ``mean + sqrt(N/(N-1)) * mean(g * (x - mean)) / scale``, a
        ``t(N-1)`` draw with the models' standard error, the same g for every accuracy."""
        rng = self._rng(f"models/{stream}")
        n = self.n_models
        multipliers = rng.standard_normal((self.resamples, n)) * math.sqrt(n / (n - 1)) / n
        scales = np.sqrt(rng.chisquare(n - 1, size=self.resamples) / (n - 1))
        return multipliers, scales

    @staticmethod
    def _resampled_means(values, draws) -> np.ndarray:
        """Resampled mean accuracies, kept in [0, 1] where a t draw at small N would leave it."""
        values = np.asarray(values, dtype=np.float64)
        multipliers, scales = draws
        return np.clip(values.mean() + multipliers @ (values - values.mean()) / scales, 0.0, 1.0)

    def forget_quality(self, points) -> np.ndarray:
        """F over each resample of the examples: ``[resamples]``."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape != (self.n_examples,):
            raise ValueError(f"points must have shape ({self.n_examples},), got {points.shape}")
        return points[self.examples].mean(axis=1)

    def shared_shift(self, name: str, shift: SharedShift | None) -> np.ndarray:
        """F's change in each resample from the shared offsets of ``name``'s models and of
        the references (the references' draws are the same for every method)."""
        if shift is None:
            return np.zeros(self.resamples)
        return shift.effect(self._rng(f"offsets/method/{name}").standard_normal(self.resamples),
                            self._reference_offsets)

    def replicates(self, name: str, method: SideScores, references: SideScores) -> Replicates:
        """Every score of ``method`` (resampled as ``name``) against ``references``."""
        draws = self._model_draws(f"method/{name}")
        accs = {k: self._resampled_means(method.accuracies[k], draws) for k in ACCURACIES}
        refs = {k: self._resampled_means(references.accuracies[k], self._reference_draws) for k in ACCURACIES}
        forget = np.clip(self.forget_quality(method.points) + self.shared_shift(name, method.shift), 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            final = forget * (accs["retain_acc"] / refs["retain_acc"]) * (accs["test_acc"] / refs["test_acc"])
        return Replicates(forget, final, accs, refs)


def score_intervals(method: SideScores, references: SideScores, replicates: Replicates,
                    forget_quality: float, final_score: float) -> dict:
    """``{name: Interval}`` for F, the final score and each side's mean accuracies."""
    out = {
        "forget_quality": percentile_interval(forget_quality, replicates.forget_quality),
        "final_score": percentile_interval(final_score, replicates.final_score),
    }
    for k in ACCURACIES:
        out[k] = percentile_interval(method.mean(k), replicates.accuracies[k])
        out[f"retrained_{k}"] = percentile_interval(references.mean(k), replicates.reference_accuracies[k])
    return out


def ratio_interval(numerator: float, denominator: float, numerator_reps, denominator_reps) -> Interval:
    """``numerator / denominator`` with the interval of the paired replicates' ratios."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = numerator / denominator if denominator else math.nan
        return percentile_interval(value, np.asarray(numerator_reps) / np.asarray(denominator_reps))


def difference_interval(a: float, b: float, a_reps, b_reps) -> Interval:
    """``a - b`` with the interval of the paired replicates' differences."""
    # A t draw at N = 3 can leave a reference accuracy at 0 (an infinite final score):
    # such replicates are dropped by percentile_interval, not worth a warning.
    with np.errstate(invalid="ignore"):
        return percentile_interval(a - b, np.asarray(a_reps) - np.asarray(b_reps))

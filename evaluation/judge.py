"""The judge: N unlearned models' scores against the N references' in, a ``Result`` out.

The competition's numbers (``metric.py``: per-example epsilons, F, the final score), their
95% intervals (``comparison.py``), the MIA as a side view, and each run's time against the
gate's yardstick. The judge trains nothing, runs nothing and writes nothing; it never sees a
method, only the scores of the models a method left.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import metric, shared_shift
from .comparison import intervals_of, klom_of, versus_ceiling
from .mia import simple_mia
from .result import Mia, Result, Side, SubmissionOrigin, Timing, final_score_of, forget_quality_of
from .scoring import ModelScores

MIA_MODELS = 8  # the MIA is a side view: averaged over at most this many models per kind
MIA_SPLITS = 10  # the starter kit's cross-validation
# The clock reading's fields a result keeps (retrain_clock.stored_clock's note has more).
CLOCK_FIELDS = ("machine", "images_per_second", "timed_steps", "version", "batch_size", "window_rates",
                "others_cores", "busy", "measured")


@dataclass(frozen=True)
class References:
    """What every method of an evaluation is judged against: the original models' (one, or K
    with ``--originals K``) and the N retrained models' scores, and the gate's yardstick (one
    retraining the starter kit's way)."""

    originals: list  # ModelScores, original k at position k
    original_seconds: float  # their mean training time
    retrained: list  # ModelScores, one per reference
    retrain_clock: dict  # retrain_clock.stored_clock(): its "seconds" divide every method's time
    phase_seconds: dict = field(default_factory=dict)  # wall seconds spent getting each, in order

    @property
    def original_side(self) -> Side:
        return Side.of(self.originals)


def judge(method: str, unlearned: list[ModelScores], unlearn_seconds, references: References, gate: float, *,
          runs_wall_seconds: float | None = None, processes: int | None = None, reference_seconds=None,
          hyperparameters: dict | None = None, round_logs: list | None = None, timing_note: str | None = None,
          submission: SubmissionOrigin | None = None) -> Result:
    """``method``'s result from its models' scores and each run's seconds (None, with
    ``timing_note`` saying why, where they cannot be compared with this machine's clock).
    ``runs_wall_seconds`` (with ``processes``): a method's runs, whose wall time joins the
    references' phases in ``timing.phases`` with the judge's own (``scoring``);
    ``reference_seconds``: the engine's training time of retraining scored as a method.
    ``round_logs``: one per run (None where the method keeps none). ``submission``: a scored
    Kaggle submission's origin."""
    started = time.perf_counter()
    n_models = len(unlearned)
    unlearned_confs = np.stack([s.forget_confs for s in unlearned])
    retrained_confs = np.stack([s.forget_confs for s in references.retrained])
    eps = metric.per_example_epsilons(unlearned_confs, retrained_confs)
    method_side, reference_side = Side.of(unlearned, unlearned_confs), Side.of(references.retrained, retrained_confs)
    forget_quality = forget_quality_of(eps, n_models)
    final = final_score_of(forget_quality, method_side, reference_side)
    shift = shared_shift.measure(unlearned_confs, retrained_confs, epsilons=eps)
    intervals = intervals_of(method, eps, n_models, method_side, reference_side, forget_quality, final, shift)
    mia = _mia(unlearned, references.retrained, references.originals)
    clock = references.retrain_clock
    phases = None
    if runs_wall_seconds is not None:
        phases = references.phase_seconds | {"runs": runs_wall_seconds, "scoring": time.perf_counter() - started}
    timing = Timing(None if unlearn_seconds is None else tuple(unlearn_seconds), clock["seconds"],
                    {k: clock.get(k) for k in CLOCK_FIELDS}, gate, runs_wall_seconds, processes, phases,
                    None if reference_seconds is None else tuple(reference_seconds), timing_note)
    logs = list(round_logs or [])
    return Result(method=method, epsilons=eps, unlearned=method_side, retrained=reference_side,
                  original=references.original_side, original_seconds=references.original_seconds, mia=mia,
                  timing=timing, shared_shift=shift, intervals=intervals,
                  hyperparameters=dict(hyperparameters or {}),
                  round_log=logs if any(log is not None for log in logs) else None, submission=submission,
                  klom=klom_of(unlearned, references.retrained))


def placed(result: Result, ceiling: Result) -> Result:
    """``result`` with its place against ``ceiling`` (retraining scored as a method)."""
    return dataclasses.replace(result, ceiling=versus_ceiling(result, ceiling))


def _mia(unlearned: list[ModelScores], retrained: list[ModelScores], originals: list[ModelScores]) -> Mia:
    """The attack's mean accuracy per kind of model; NaN with a note where the forget set is
    too small for its cross-validation (a side view must not lose the evaluation)."""
    scores = [*unlearned, *retrained, *originals]
    forget_size, test_size = (min(getattr(s, side).size for s in scores) for side in ("forget_losses", "test_losses"))
    if min(forget_size, test_size) < MIA_SPLITS:
        note = (f"not measured: the attack's {MIA_SPLITS} splits need at least {MIA_SPLITS} examples on each side; "
                f"forget has {forget_size}, test {test_size}")
        return Mia(math.nan, math.nan, math.nan, note)
    return Mia(_mean_mia(unlearned), _mean_mia(retrained), _mean_mia(originals))


def _mean_mia(scores: list[ModelScores]) -> float:
    values = [simple_mia(s.forget_losses, s.test_losses, n_splits=MIA_SPLITS) for s in scores[:MIA_MODELS]]
    return float(np.mean(values)) if values else math.nan

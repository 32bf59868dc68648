"""The part of a model's deviation that is common to every forget example, and what it
does to F.

A run is not only noisy example by example: one run can be a little more confident on
every forget example at once. Resampling examples keeps the same models, so it cannot
see that part, and an interval built from it alone is too narrow when runs move
together (``benchmarks/interval_coverage.py --rho``). Here it is measured in two steps:

* **The share.** Standardise each example's confidences across the N models; a model's
  mean over examples then averages away its own noise and keeps its shared offset. The
  share is the mean correlation, across models, between two examples' confidences:
  0 when models deviate independently per example, 1 when they only shift as a whole.
* **F's answer.** The method's confidences are shifted on every example by a few
  multiples of the mean shared offset's standard deviation (in the references'
  per-example standard deviations) and scored again: one metric call on a subset of at
  most ``CURVE_EXAMPLES`` examples. ``intervals.Bootstrap`` interpolates that answer.

Only a shift is modelled (the first-order way models move together); a side whose share
is 0 costs nothing.
"""

from __future__ import annotations

import math

import numpy as np

from . import metric
from .intervals import SharedShift

STEPS = (-2.5, -1.0, 0.0, 1.0, 2.5)  # in sd of the offset: 5 points answer within 0.002 of 13 (measured)
CURVE_EXAMPLES = 500  # enough for F's mean answer; bounds the cost at the competition's 5,000


def shared_share(confs) -> float:
    """The share of a model's deviation common to every example of ``confs`` ``[N, n]``
    (0 to 1; examples on which every model agrees carry no information and are left out)."""
    x = np.asarray(confs, dtype=np.float64)
    sd = x.std(axis=0, ddof=1)
    keep = sd > 0
    n = int(keep.sum())
    if x.shape[0] < 3 or n < 2:
        return 0.0
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]
    # Var of a model's mean z is (1 + (n - 1) * mean correlation) / n.
    share = (n * z.mean(axis=1).var(ddof=1) - 1) / (n - 1)
    return float(min(max(share, 0.0), 1.0))


def measure(unlearned_confs, retrained_confs, device=None, epsilons=None) -> SharedShift | None:
    """The shared offsets of a method's models and of the references, and F's answer to
    them; None when neither side has a shared part. ``epsilons``: the unshifted
    per-example epsilons when the caller has them (the answer at 0 is not scored again)."""
    u = np.asarray(unlearned_confs, dtype=np.float64)
    r = np.asarray(retrained_confs, dtype=np.float64)
    n_models = u.shape[0]
    method_share, reference_share = shared_share(u), shared_share(r)
    if method_share == 0 and reference_share == 0:
        return None
    su, sr = u.std(axis=0, ddof=1), r.std(axis=0, ddof=1)
    both = (su > 0) & (sr > 0)
    # The method's offset is a share of its own spread; the shift is applied in the references' units.
    scale = float(np.median(su[both] / sr[both])) if both.any() else 1.0
    method_sd = scale * math.sqrt(method_share / n_models)
    reference_sd = math.sqrt(reference_share / n_models)
    grid = np.asarray(STEPS) * math.hypot(method_sd, reference_sd)
    pick = np.unique(np.linspace(0, u.shape[1] - 1, min(CURVE_EXAMPLES, u.shape[1])).astype(int))
    zero = STEPS.index(0.0)
    scored = [g for k, g in enumerate(grid) if epsilons is None or k != zero]
    shifted = np.concatenate([u[:, pick] + g * sr[pick] for g in scored], axis=1)
    eps = metric.per_example_epsilons(shifted, np.tile(r[:, pick], len(scored)), device=device)
    eps = eps.reshape(len(scored), len(pick))
    if epsilons is not None:
        eps = np.insert(eps, zero, np.asarray(epsilons, dtype=np.float64)[pick], axis=0)
    f = metric.epsilon_points(eps, n_models).mean(axis=1)
    return SharedShift(tuple(grid.tolist()), tuple((f - f[zero]).tolist()), method_sd, reference_sd, method_share,
                       reference_share)

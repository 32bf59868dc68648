"""A deliberately slow, literal implementation of shared/docs/metric.md.

Loops over examples, builds every threshold explicitly with numpy.linspace and
counts models with plain comparisons. It exists only to check evaluation.metric.
"""

import math

import numpy as np

DELTA = 1e-5
CAP = 50.0


def rule_epsilons(tpr, fnr, fpr):
    """Epsilon of every rule (arrays of rates); NaN marks a discarded rule."""
    with np.errstate(divide="ignore", invalid="ignore"):
        term1 = np.log(1 - DELTA - fpr) - np.log(fnr)
        term2 = np.log(1 - DELTA - fnr) - np.log(fpr)
        eps = np.clip(np.fmax(term1, term2), 0, None)  # a NaN term is ignored
    eps[(fpr == 0) != (fnr == 0)] = np.nan  # exactly one error rate is zero
    eps[(fpr == 0) & (fnr == 0)] = np.inf  # perfect separation
    return eps


def rates(pos_pred, neg_pred):
    """(tpr, fnr, fpr) per rule from [models, rules] boolean predictions."""
    return pos_pred.mean(axis=0), (~pos_pred).mean(axis=0), neg_pred.mean(axis=0)


def single_threshold_epsilons(pos, neg):
    both = np.concatenate([pos, neg])
    lo, hi = both.min(), both.max()
    thresholds = np.linspace(lo, hi, int(np.ceil((hi - lo) * 100)))
    tpr, fnr, fpr = rates(pos[:, None] >= thresholds, neg[:, None] >= thresholds)
    return rule_epsilons(tpr, fnr, fpr)


def double_threshold_epsilons(pos, neg):
    pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
    width = neg_range if pos_range > neg_range else pos_range
    peaky, other = (neg, pos) if pos_range >= neg_range else (pos, neg)
    lo = peaky.min() + width - 2.0
    hi = peaky.max() + 2.0
    out = []
    for t_r in np.linspace(lo, hi, int(np.ceil((hi - lo) * 100))):
        t_l = np.linspace(t_r - width - 2.0, t_r - width + 2.0, 400)
        peaky_pred = (t_l <= peaky[:, None]) & (peaky[:, None] <= t_r)
        other_pred = (t_l <= other[:, None]) & (other[:, None] <= t_r)
        out.append(rule_epsilons(*rates(peaky_pred, other_pred)))
    return np.concatenate(out)


def example_epsilon(u, r):
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
    larger = pos_range if pos_range > neg_range else neg_range
    smaller = neg_range if pos_range > neg_range else pos_range
    if larger > 0 and smaller / larger < 0.01:
        return CAP
    all_rules = np.concatenate([single_threshold_epsilons(pos, neg), double_threshold_epsilons(pos, neg)])
    survivors = all_rules[~np.isnan(all_rules)]
    if survivors.size == 0:
        return 0.0  # no rule survived: no evidence of a difference
    return float(np.clip(survivors.max(), 0.0, CAP))


def epsilons(unlearned, retrained):
    return np.array([example_epsilon(unlearned[:, i], retrained[:, i]) for i in range(unlearned.shape[1])])


def forget_score(unlearned, retrained):
    n_models = unlearned.shape[0]
    max_eps = math.ceil(math.log(n_models - 1))
    buckets, start, points = [], 0.0, 1.0
    while start + 0.5 <= max_eps:
        buckets.append((start, points))
        start, points = start + 0.5, points / 2
    total = 0.0
    for e in epsilons(unlearned, retrained):
        for start, points in buckets:
            if e < start + 0.5:
                total += points
                break
    return total / unlearned.shape[1]

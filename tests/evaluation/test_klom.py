"""evaluation/klom.py: KLOM against a direct implementation and its known answers."""

import math

import numpy as np
import pytest

from evaluation import klom
from evaluation.comparison import rank_correlation


def direct(unlearned, retrained) -> np.ndarray:
    """KLOM as written down: one example at a time, numpy's histogram, the sum over bins."""
    out = []
    for u, r in zip(np.clip(unlearned, -100, 100).T, np.clip(retrained, -100, 100).T):
        low, high = min(u.min(), r.min()), max(u.max(), r.max())
        p_u = np.histogram(u, bins=20, range=(low, high))[0] / len(u)
        p_r = np.histogram(r, bins=20, range=(low, high))[0] / len(r)
        out.append(sum(p * math.log(p / max(q, 1e-5)) for p, q in zip(p_u, p_r) if p > 0))
    return np.array(out)


def test_klom_is_the_direct_computation_with_ties_edges_clips_and_equal_values():
    rng = np.random.default_rng(0)
    for n_u, n_r in ((3, 3), (8, 16), (33, 17)):
        u, r = rng.normal(0, 3, (n_u, 200)), rng.normal(0.5, 3, (n_r, 200))
        u[:, :40], r[:, :40] = np.round(u[:, :40]), np.round(r[:, :40])  # values on bin edges, ties
        u[:, 40:45] = r[:, 40:45] = 7.0  # all equal: one bin of width 1
        u[:, 45:50], r[:, 45:50] = 500.0, -300.0  # clipped to +-100, disjoint
        np.testing.assert_allclose(klom.per_example_klom(u, r), direct(u, r), rtol=0, atol=1e-12)


def test_known_answers_and_the_direction():
    same = np.random.default_rng(1).normal(size=(16, 30))
    assert np.array_equal(klom.per_example_klom(same, same), np.zeros(30))
    # every unlearned margin where no retrained one is: ln(1 / 1e-5)
    assert klom.per_example_klom(np.full((8, 2), 5.0), np.full((8, 2), -5.0)) == pytest.approx([math.log(1e5)] * 2)
    # KL(unlearned || retrained): the unlearned all in one bin, the retrained half there, half in another
    unlearned, retrained = np.zeros((4, 1)), np.array([[0.0], [0.0], [1.0], [1.0]])
    assert klom.per_example_klom(unlearned, retrained)[0] == pytest.approx(math.log(2))
    assert klom.per_example_klom(retrained, unlearned)[0] == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5e5))
    with pytest.raises(ValueError, match="same examples"):
        klom.per_example_klom(np.zeros((3, 4)), np.zeros((3, 5)))


def test_resamples_are_paired_across_rows_and_their_intervals_hold_the_value():
    rng = np.random.default_rng(2)
    a, b = rng.exponential(size=500), rng.exponential(size=500)
    ra, rb = klom.resampled(a, "forget", resamples=200), klom.resampled(b, "forget", resamples=200)
    # the same example draws: a row against itself differs by exactly 0 in every resample
    assert np.array_equal(klom.resampled(a, "forget", resamples=200)["p95"], ra["p95"])
    for name in klom.STATISTICS:
        value = klom.statistic(a, name)
        assert np.quantile(ra[name], 0.025) <= value <= np.quantile(ra[name], 0.975)
    assert not np.array_equal(klom.resampled(a, "retain", resamples=200)["mean"], ra["mean"])  # sets draw apart
    assert ra["mean"].shape == rb["mean"].shape == (200,)


def test_rank_correlation():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert rank_correlation([1, 1, 2, 3], [5, 5, 6, 7]) == pytest.approx(1)  # ties at their mean rank
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))

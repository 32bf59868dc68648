"""evaluation/intervals.py: coverage against a known truth, pairing, the ceiling, the accuracies."""

import numpy as np
import pytest
from scipy import stats

from benchmarks.interval_coverage import draw_confidences, points
from evaluation import shared_shift
from evaluation.intervals import (
    ACCURACIES,
    Bootstrap,
    Interval,
    SideScores,
    difference_interval,
    percentile_interval,
    ratio_interval,
)


def _side(points, accs):
    return SideScores(points, {k: np.asarray(accs, dtype=float) for k in ACCURACIES})


@pytest.mark.slow
def test_f_interval_covers_the_expected_f_at_about_its_nominal_rate():
    """40 evaluations of 25 examples at N = 8, methods shifted by 0.5 sd, a share ``rho`` of
    every model's deviation common to all examples (resampling examples alone covers 0.78 here):
    each interval is checked against the mean F of the 39 others, an independent estimate
    of the expected F."""
    draws, n_examples, n_models, rho = 40, 25, 8, 0.3
    unlearned, _, retrained = draw_confidences(np.random.default_rng(0), n_models, n_examples, 0.5, rho, draws)
    per_example = points(unlearned, retrained)
    f = per_example.mean(axis=1)
    bootstrap = Bootstrap(n_examples, n_models)
    intervals = [percentile_interval(f[d], bootstrap.forget_quality(per_example[d]) + bootstrap.shared_shift(
        "m", shared_shift.measure(unlearned[d], retrained[d], "cpu"))) for d in range(draws)]
    held = sum(not iv.excludes((f.sum() - f[d]) / (draws - 1)) for d, iv in enumerate(intervals))
    assert held / draws >= 0.85, f"coverage {held / draws:.2f}"
    # Not covering by being wide: the mean width matches the spread of F between evaluations.
    width = np.mean([iv.high - iv.low for iv in intervals])
    assert 0.7 < width / (2 * 1.96 * f.std(ddof=1)) < 1.4


def test_independent_references_score_a_normalised_f_near_one():
    """A perfect unlearner (models drawn like the references) against the ceiling row
    (independent references): F / F_retrain near 1, its interval holding 1."""
    n_examples, n_models = 100, 8
    perfect, independent, retrained = draw_confidences(np.random.default_rng(1), n_models, n_examples, 0.0, 0.0)
    p, q = points(perfect, retrained)[0], points(independent, retrained)[0]
    bootstrap = Bootstrap(n_examples, n_models)
    normalised = ratio_interval(p.mean(), q.mean(), bootstrap.forget_quality(p), bootstrap.forget_quality(q))
    assert 0.6 < normalised.value < 1.6 and not normalised.excludes(1.0)
    assert normalised.high - normalised.low < 1.5


def test_paired_difference_is_narrower_than_either_interval_and_exact_for_itself():
    rng = np.random.default_rng(2)
    common = rng.choice([1.0, 0.5, 0.25, 0.0], size=300)
    a, b = common.copy(), common.copy()
    b[rng.random(300) < 0.1] = 0.0  # b differs from a on a tenth of the examples
    bootstrap = Bootstrap(300, 16)
    ra, rb = bootstrap.forget_quality(a), bootstrap.forget_quality(b)
    d = difference_interval(a.mean(), b.mean(), ra, rb)
    ia = percentile_interval(a.mean(), ra)
    assert d.value == pytest.approx(a.mean() - b.mean()) and d.low > 0, "paired: the shared noise cancels"
    assert d.high - d.low < (ia.high - ia.low) / 2
    assert difference_interval(a.mean(), a.mean(), ra, ra) == Interval(0.0, 0.0, 0.0)


def test_draws_depend_on_the_seed_and_name_only():
    rng = np.random.default_rng(3)
    method = _side(rng.random(50), rng.uniform(0.4, 0.6, 8))
    references = _side(None, rng.uniform(0.4, 0.6, 8))
    first = Bootstrap(50, 8).replicates("finetune", method, references)
    Bootstrap(50, 8).replicates("other", method, references)
    again = Bootstrap(50, 8).replicates("finetune", method, references)
    np.testing.assert_array_equal(first.final_score, again.final_score)
    other_name = Bootstrap(50, 8).replicates("kookmin", method, references)
    assert not np.array_equal(first.accuracies["retain_acc"], other_name.accuracies["retain_acc"])
    np.testing.assert_array_equal(first.forget_quality, other_name.forget_quality)  # the examples are shared


@pytest.mark.parametrize("n_models", [3, 16])
def test_accuracy_interval_is_the_t_interval_of_the_models(n_models):
    accs = np.random.default_rng(n_models).uniform(0.4, 0.5, n_models)
    side = _side(np.ones(10), accs)
    reps = Bootstrap(10, n_models, resamples=40000).replicates("m", side, side)
    interval = percentile_interval(accs.mean(), reps.accuracies["test_acc"])
    half = stats.t.ppf(0.975, n_models - 1) * accs.std(ddof=1) / np.sqrt(n_models)
    assert interval.low == pytest.approx(accs.mean() - half, rel=0.01)
    assert interval.high == pytest.approx(accs.mean() + half, rel=0.01)
    # the final score moves with the accuracy ratios: F = 1 here, so it is their product
    with np.errstate(divide="ignore"):  # at N = 3 a few t draws put the references' mean at 0
        ratios = (reps.accuracies["retain_acc"] / reps.reference_accuracies["retain_acc"]) * (
            reps.accuracies["test_acc"] / reps.reference_accuracies["test_acc"])
    np.testing.assert_allclose(reps.final_score, ratios)


def test_interval_text_and_json():
    iv = Interval(0.2, 0.15, 0.26)
    assert f"{iv:.2f}" == "0.20 [0.15, 0.26]" and Interval.from_json(iv.to_json()) == iv
    assert iv.excludes(0.0) and not iv.excludes(0.2)


def test_intervals_narrow_as_n_grows_until_a_half_sd_shift_is_seen():
    """The same 200 examples scored with N = 4, 16 and 64 models per side: the F interval
    narrows, and the paired difference between a method shifted by 0.5 sd and a perfect one
    is inside the noise at N = 4 and told apart at N = 64."""
    n_examples, widths, differences = 200, [], []
    for n_models in (4, 16, 64):
        shifted, perfect, retrained = draw_confidences(np.random.default_rng(4), n_models, n_examples, 0.5, 0.0)
        p, q = points(shifted, retrained)[0], points(perfect, retrained)[0]
        bootstrap = Bootstrap(n_examples, n_models)
        rp, rq = bootstrap.forget_quality(p), bootstrap.forget_quality(q)
        interval = percentile_interval(p.mean(), rp)
        widths.append(interval.high - interval.low)
        differences.append(difference_interval(p.mean(), q.mean(), rp, rq))
    assert widths[0] > widths[1] > widths[2], widths
    assert not differences[0].excludes(0.0) and differences[2].high < 0, differences
    # The accuracies' interval (the t interval of the models) narrows like 1/sqrt(N) too.
    def accuracy_width(n_models):
        side = _side(np.ones(10), np.random.default_rng(5).uniform(0.4, 0.5, n_models))
        reps = Bootstrap(10, n_models).replicates("m", side, side).accuracies["test_acc"]
        interval = percentile_interval(side.accuracies["test_acc"].mean(), reps)
        return interval.high - interval.low

    assert accuracy_width(64) < accuracy_width(4) / 3

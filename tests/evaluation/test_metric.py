"""evaluation/metric.py: the organisers' forget quality, against a literal transcription of the
spec."""

import math

import numpy as np
import pytest
import torch

from evaluation import metric
from tests import metric_reference as reference
from tests.helpers import DEVICES

KINDS = ["continuous", "integers", "quarters", "zero_range", "scales"]


def _random_case(rng, kind, n_models, n_examples):
    """Confidence matrices of one kind: continuous, discrete (ties), zero-range, mixed scales."""
    shape = (n_models, n_examples)
    if kind == "continuous":
        shift = rng.normal(scale=2.0, size=n_examples)
        return rng.normal(size=shape), rng.normal(loc=shift, size=shape)
    if kind == "integers":
        return rng.integers(-3, 4, size=shape).astype(float), rng.integers(-2, 5, size=shape).astype(float)
    if kind == "quarters":
        return rng.integers(0, 12, size=shape) * 0.25, rng.integers(2, 10, size=shape) * 0.25
    if kind == "zero_range":
        u, r = rng.normal(size=shape), rng.normal(size=shape)
        u[:, 0] = 1.5  # one side constant
        r[:, 1] = -0.25
        u[:, 2] = r[:, 2] = 3.0  # both constant, equal
        u[:, 3], r[:, 3] = 2.0, 2.5  # both constant, different
        return u, r
    if kind == "scales":
        return rng.normal(scale=0.3, size=shape), rng.normal(scale=3.0, size=shape) + 1
    raise AssertionError(kind)


@pytest.mark.parametrize("seed", range(10))
def test_fast_epsilons_equal_literal_spec(seed):
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)]
    n_models = int(rng.choice([3, 4, 5, 8, 16, 31, 64]))
    unlearned, retrained = _random_case(rng, kind, n_models, n_examples=4)
    fast = metric.per_example_epsilons(unlearned, retrained)
    slow = reference.epsilons(unlearned, retrained)
    np.testing.assert_array_equal(fast, slow)
    assert metric.forget_quality(unlearned, retrained) == reference.forget_score(unlearned, retrained)


def test_fast_epsilons_on_realistic_confidences_equal_spec():
    rng = np.random.default_rng(123)
    n_models, n_examples = 32, 6
    base = rng.normal(2, 2, size=n_examples)
    retrained = base + rng.normal(size=(n_models, n_examples))
    unlearned = base + 0.5 + 0.8 * rng.normal(size=(n_models, n_examples))
    np.testing.assert_array_equal(
        metric.per_example_epsilons(unlearned, retrained), reference.epsilons(unlearned, retrained)
    )


def test_linspace_rebuilt_bit_for_bit():
    rng = np.random.default_rng(7)
    for _ in range(50):
        start = rng.normal(scale=10)
        stop = start + rng.exponential(5)
        num = int(rng.integers(1, 700))
        expected = np.linspace(start, stop, num)
        got = metric.linspace_at(
            torch.tensor(start, dtype=torch.float64),
            torch.tensor(stop, dtype=torch.float64),
            torch.tensor(num, dtype=torch.float64),
            torch.arange(num, dtype=torch.float64),
        ).numpy()
        np.testing.assert_array_equal(got, expected)


def test_identical_samples_score_one():
    rng = np.random.default_rng(1)
    confs = rng.normal(size=(16, 50))
    np.testing.assert_array_equal(metric.per_example_epsilons(confs, confs.copy()), np.zeros(50))
    assert metric.forget_quality(confs, confs.copy()) == 1.0


def test_fully_separated_samples_score_zero():
    rng = np.random.default_rng(2)
    retrained = rng.normal(size=(16, 20))
    unlearned = retrained.max() + 5 + rng.normal(size=(16, 20))
    np.testing.assert_array_equal(metric.per_example_epsilons(unlearned, retrained), np.full(20, 50.0))
    assert metric.forget_quality(unlearned, retrained) == 0.0


def test_peaky_unlearned_sample_gets_the_cap():
    rng = np.random.default_rng(3)
    retrained = rng.normal(size=(32, 10))
    unlearned = 1e-4 * rng.normal(size=(32, 10))  # range well under 1% of the other's
    np.testing.assert_array_equal(metric.per_example_epsilons(unlearned, retrained), np.full(10, 50.0))


def test_bucket_counts_and_edges():
    assert metric.bucket_count(512) == 14
    assert metric.bucket_count(16) == 6
    assert metric.max_measurable_epsilon(512) == 7.0
    assert metric.max_measurable_epsilon(16) == 3.0
    eps = np.array([0.0, 0.49, 0.5, 1.2, 2.99, 3.0, 50.0])
    np.testing.assert_array_equal(metric.epsilon_points(eps, 16), [1, 1, 0.5, 0.25, 1 / 32, 0, 0])


def test_largest_finite_epsilon_is_about_log_n_minus_one():
    # Retrained at 0..N-1, unlearned far above except one model inside the retrained
    # range: no rule is perfect, the best errs once on each side (fpr = fnr = 1/N).
    n = 64
    retrained = np.arange(n, dtype=float)[:, None]
    unlearned = retrained + 1000.0
    unlearned[0, 0] = 10.5
    eps = metric.per_example_epsilons(unlearned, retrained)[0]
    assert eps == pytest.approx(math.log(1 - metric.DELTA - 1 / n) - math.log(1 / n))
    assert abs(eps - math.log(n - 1)) < 1e-3
    assert eps == reference.epsilons(unlearned, retrained)[0]


def test_final_score_multiplies_the_ratios():
    score = metric.final_score(0.5, [0.9, 0.7], np.array([0.6]), torch.tensor([1.0, 0.6]), 0.8)
    assert score == pytest.approx(0.5 * (0.8 / 0.8) * (0.6 / 0.8))


def test_logit_scaled_confidence_matches_float64_formula():
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=3, size=(200, 10)).astype(np.float32)
    targets = rng.integers(0, 10, size=200)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p_true = p[np.arange(200), targets]
    expected = np.log(p_true + 1e-45) - np.log(1 - p_true + 1e-45)
    got = metric.logit_scaled_confidence(torch.from_numpy(logits), torch.from_numpy(targets))
    assert got.dtype == np.float64 and got.shape == (200,)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_logit_scaled_confidence_is_finite_for_extreme_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [1e4, 1e4, -1e4]])
    got = metric.logit_scaled_confidence(logits, np.array([0, 0, 0]))
    assert np.all(np.isfinite(got))
    assert got[0] > 100 and got[1] < -100  # saturates near +-log(1e45)
    assert got[2] == pytest.approx(0.0)


@pytest.mark.parametrize(
    "unlearned, retrained, message",
    [
        (np.zeros((4, 3)), np.zeros((4, 2)), "same shape"),
        (np.zeros((2, 3)), np.zeros((2, 3)), "at least 3 models"),
        (np.zeros((4, 0)), np.zeros((4, 0)), "forget set is empty"),
        (np.full((4, 3), np.nan), np.zeros((4, 3)), "NaN or infinite"),
        (np.zeros((4, 3)), np.full((4, 3), np.inf), "NaN or infinite"),
    ],
)
def test_bad_inputs_raise_clear_errors(unlearned, retrained, message):
    with pytest.raises(ValueError, match=message):
        metric.per_example_epsilons(unlearned, retrained)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_inputs_and_device_argument(device):
    rng = np.random.default_rng(5)
    u, r = rng.normal(size=(8, 5)), rng.normal(size=(8, 5)) + 0.3
    expected = metric.per_example_epsilons(u, r, device="cpu")
    tensors = [torch.from_numpy(a).to(device) for a in (u, r)]
    np.testing.assert_array_equal(metric.per_example_epsilons(*tensors), expected)
    np.testing.assert_array_equal(metric.per_example_epsilons(u, r, device=device), expected)


@pytest.mark.parametrize("n_models", [3, 8, 40])
def test_both_left_threshold_enumerations_give_the_same_epsilons(n_models):
    """Counting each gap between sample values once gives the epsilons of searching every left
    threshold, ties and values on the threshold grid (multiples of 0.01 and 0.125) included."""
    rng = np.random.default_rng(n_models)
    for trial in range(8):
        unlearned, retrained = _random_case(rng, KINDS[trial % len(KINDS)], n_models, n_examples=12)
        if trial % 3 == 1:
            unlearned, retrained = np.round(unlearned * 100) / 100, np.round(retrained * 100) / 100
        gaps = metric.per_example_epsilons(unlearned, retrained, "cpu", left_thresholds="gaps")
        grid = metric.per_example_epsilons(unlearned, retrained, "cpu", left_thresholds="grid")
        np.testing.assert_array_equal(gaps, grid)
    assert metric.left_thresholds_for(3) == "gaps" and metric.left_thresholds_for(64) == "grid"
    with pytest.raises(ValueError, match="'gaps' or 'grid'"):
        metric.per_example_epsilons(unlearned, retrained, "cpu", left_thresholds="all")

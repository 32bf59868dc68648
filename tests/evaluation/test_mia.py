"""evaluation/mia.py: the simple membership-inference attack."""

import numpy as np
import pytest

from evaluation.mia import simple_mia


def test_same_distribution_is_chance():
    rng = np.random.default_rng(0)
    score = simple_mia(rng.exponential(size=3000), rng.exponential(size=2000))
    assert abs(score - 0.5) < 0.04


def test_well_separated_losses_are_found():
    rng = np.random.default_rng(1)
    forget = rng.uniform(0.0, 0.1, size=500)  # members: low loss
    test = rng.uniform(2.0, 3.0, size=800)
    assert simple_mia(forget, test) > 0.97


def test_seeded_and_balanced():
    rng = np.random.default_rng(2)
    forget, test = rng.normal(1, 1, 400), rng.normal(1.3, 1, 900)
    assert simple_mia(forget, test, random_state=3) == simple_mia(forget, test, random_state=3)


@pytest.mark.parametrize("forget, test", [([], [1.0] * 20), ([np.nan] * 20, [1.0] * 20), ([1.0] * 5, [1.0] * 5)])
def test_bad_inputs(forget, test):
    with pytest.raises(ValueError):
        simple_mia(forget, test)

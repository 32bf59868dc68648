"""evaluation/shared_shift.py: how much of a method's offset its runs share, and what it does to F."""

import numpy as np
import pytest

from benchmarks.interval_coverage import draw_confidences, points
from evaluation import shared_shift
from evaluation.intervals import (
    Bootstrap,
    percentile_interval,
)
from evaluation.shared_shift import shared_share


def test_shared_share_recovers_the_share_of_a_common_offset():
    rng = np.random.default_rng(5)
    for rho in (0.0, 0.3):
        common, own = rng.standard_normal((16, 1)), rng.standard_normal((16, 400))
        confs = np.sqrt(rho) * common + np.sqrt(1 - rho) * own
        confs[:, :10] = 2.0  # examples on which every model agrees say nothing and are left out
        assert shared_share(confs) == pytest.approx(rho, abs=0.1)


def test_shared_offsets_move_f_the_way_the_shift_says():
    """A method already 0.5 sd above the references gains F when its runs move back down
    and loses it when they move further up; runs that only move together widen the interval."""
    unlearned, _, retrained = draw_confidences(np.random.default_rng(6), 8, 200, 0.5, 0.5)
    shift = shared_shift.measure(unlearned[0], retrained[0], "cpu")
    assert shift.method_share == pytest.approx(0.5, abs=0.25)
    assert shift.response[0] > 0 > shift.response[-1] and shift.response[shared_shift.STEPS.index(0.0)] == 0
    bootstrap = Bootstrap(200, 8)
    p = points(unlearned, retrained)[0]
    examples_only = percentile_interval(p.mean(), bootstrap.forget_quality(p))
    both = percentile_interval(p.mean(), bootstrap.forget_quality(p) + bootstrap.shared_shift("m", shift))
    assert both.high - both.low > 1.5 * (examples_only.high - examples_only.low)
    assert np.all(bootstrap.shared_shift("m", None) == 0)

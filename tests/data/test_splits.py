"""data/splits.py: the competition's split protocol, reproducible from its seed."""

import numpy as np

from data import make_splits


def test_splits_are_disjoint_and_cover_the_subset():
    s = make_splits(50000, 10000, seed=0)
    assert s.forget.size == 5000 and s.retain.size == 45000
    assert s.val.size == 5000 and s.test.size == 5000
    assert np.intersect1d(s.forget, s.retain).size == 0
    assert np.intersect1d(s.val, s.test).size == 0
    np.testing.assert_array_equal(np.union1d(s.forget, s.retain), np.arange(50000))


def test_splits_reproducible_from_the_seed():
    a, b, c = make_splits(1000, 200, seed=3), make_splits(1000, 200, seed=3), make_splits(1000, 200, seed=4)
    np.testing.assert_array_equal(a.forget, b.forget)
    np.testing.assert_array_equal(a.val, b.val)
    assert not np.array_equal(a.forget, c.forget)
    assert a.forget_hash() == b.forget_hash() != c.forget_hash()


def test_subset_splits():
    s = make_splits(50000, 10000, seed=1, train_subset=300, test_subset=200)
    assert s.forget.size == 30 and s.retain.size == 270 and s.val.size == 100 and s.test.size == 100

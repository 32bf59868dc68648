"""The starter kit's split protocol: forget/retain from train, validation/test from test."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Splits:
    """Indices into the training images (forget, retain) and the test images (val, test)."""

    forget: np.ndarray
    retain: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int

    def forget_hash(self) -> str:
        return hashlib.sha256(np.sort(self.forget).astype(np.int64).tobytes()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {name: getattr(self, name).tolist() for name in ("forget", "retain", "val", "test")} | {
            "seed": self.seed
        }


def make_splits(
    n_train: int,
    n_test: int,
    seed: int,
    forget_fraction: float = 0.1,
    train_subset: int | None = None,
    test_subset: int | None = None,
    groups: np.ndarray | None = None,
) -> Splits:
    """Seeded splits: forget = ``forget_fraction`` of the (sub)set of training images.

    With ``groups`` (a person id per training image) whole groups are forgotten, drawn
    in a seeded order until they hold ``forget_fraction`` of the images. The test
    images (or a seeded subset) are halved into validation and test. The same
    arguments always give the same indices.
    """
    if not 0 < forget_fraction < 1:
        raise ValueError(f"forget_fraction must be in (0, 1), got {forget_fraction}")
    rng = np.random.default_rng(seed)
    train_pool = _subset(rng, n_train, train_subset)
    test_pool = _subset(rng, n_test, test_subset)

    n_forget = max(1, int(round(forget_fraction * train_pool.size)))
    if groups is None:
        shuffled = rng.permutation(train_pool)
        forget, retain = np.sort(shuffled[:n_forget]), np.sort(shuffled[n_forget:])
    else:
        forget, retain = _group_split(rng, train_pool, np.asarray(groups)[train_pool], n_forget)
    shuffled_test = rng.permutation(test_pool)
    half = shuffled_test.size // 2
    val, test = np.sort(shuffled_test[:half]), np.sort(shuffled_test[half:])

    splits = Splits(forget=forget, retain=retain, val=val, test=test, seed=seed)
    check_disjoint(splits)
    return splits


def check_disjoint(splits: Splits) -> None:
    """Forget and retain share no training image; validation and test no test image."""
    assert np.intersect1d(splits.forget, splits.retain).size == 0, "forget and retain overlap"
    assert np.intersect1d(splits.val, splits.test).size == 0, "validation and test overlap"
    for name in ("forget", "retain", "val", "test"):
        idx = getattr(splits, name)
        assert np.unique(idx).size == idx.size, f"{name} has repeated indices"


def _group_split(rng, pool: np.ndarray, pool_groups: np.ndarray, n_forget: int):
    """Forget whole groups, in a seeded order, until at least ``n_forget`` images."""
    forgotten, count = [], 0
    for group in rng.permutation(np.unique(pool_groups)):
        if count >= n_forget:
            break
        forgotten.append(group)
        count += int((pool_groups == group).sum())
    in_forget = np.isin(pool_groups, forgotten)
    if in_forget.all():
        raise ValueError("the forget set would take every group: use more people or a smaller forget_fraction")
    return np.sort(pool[in_forget]), np.sort(pool[~in_forget])


def _subset(rng: np.random.Generator, n: int, size: int | None) -> np.ndarray:
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size, replace=False))

"""The CIFAR-10 starter kit's loss-based membership-inference attack.

One feature per example (its cross-entropy loss); forget examples are labelled
members (1), test examples non-members (0). A logistic regression is scored by
accuracy over stratified shuffle splits. About 0.5 means the attack cannot tell
the forget set from unseen data.
"""

from __future__ import annotations

import numpy as np


def simple_mia(forget_losses, test_losses, n_splits: int = 10, random_state: int = 0) -> float:
    """Mean cross-validated accuracy of the loss-threshold attack, forget vs test.

    The two sides are balanced by subsampling the larger one with a generator seeded
    by ``random_state``, so the chance level is exactly 0.5.
    """
    # here, not at the top: scikit-learn takes 1.5 s to import, which a process that never
    # scores (a worker rank, --list, the exporter) should not pay
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

    forget = _losses("forget_losses", forget_losses)
    test = _losses("test_losses", test_losses)
    if min(forget.size, test.size) < n_splits:
        raise ValueError(f"need at least n_splits={n_splits} losses on each side")
    rng = np.random.default_rng(random_state)
    size = min(forget.size, test.size)
    forget = forget[np.sort(rng.choice(forget.size, size, replace=False))] if forget.size > size else forget
    test = test[np.sort(rng.choice(test.size, size, replace=False))] if test.size > size else test

    features = np.concatenate([forget, test]).reshape(-1, 1)
    members = np.concatenate([np.ones(size, dtype=np.int64), np.zeros(size, dtype=np.int64)])
    splitter = StratifiedShuffleSplit(n_splits=n_splits, random_state=random_state)
    scores = cross_val_score(LogisticRegression(), features, members, cv=splitter, scoring="accuracy")
    return float(scores.mean())


def _losses(name: str, values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array

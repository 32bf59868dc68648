"""evaluation/runner.py: a method's sandboxed runs."""

import pytest

from tests.helpers import sandbox


def test_a_starter_kit_method_runs_unchanged_and_a_returned_copy_fails(mini_zoo):
    """Built with its name, reading dict batches; a run() that returns a new model fails
    with its reason instead of silently scoring the untouched original."""
    import functools

    from evaluation.runner import MethodFailed, run_method
    from methods.hyperparameters import build
    from tests.fixtures.starter_kit_method import MyMethod, ReturnsACopy

    scores, _, _ = run_method(functools.partial(build, MyMethod, "my_method"), sandbox(mini_zoo), run_seed=0)
    assert 0 <= scores.retain_acc <= 1
    with pytest.raises(MethodFailed, match=r"run 0: run\(\) returned a new model"):
        run_method(functools.partial(build, ReturnsACopy, "returns_a_copy"), sandbox(mini_zoo), run_seed=0)

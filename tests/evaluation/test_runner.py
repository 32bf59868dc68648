"""evaluation/runner.py: a method's sandboxed runs."""

import functools

import numpy as np
import pytest

from evaluation.runner import MethodFailed, run_method
from methods.hyperparameters import build
from tests.fixtures.starter_kit_method import MyMethod, ReturnsSomethingElse, TrainsACopy
from tests.helpers import sandbox


def test_a_starter_kit_method_runs_unchanged_in_place_or_returning_its_model(mini_zoo):
    """Built with its name, reading dict batches: changing ``net`` in place, or (the starter
    kit's own example) training a copy and returning it, which is the model scored."""
    box = sandbox(mini_zoo)
    in_place = run_method(functools.partial(build, MyMethod, "my_method"), box, run_seed=0)
    assert 0 <= in_place.scores.retain_acc <= 1 and not in_place.returned_model
    returned = run_method(functools.partial(build, TrainsACopy, "trains_a_copy"), box, run_seed=0)
    assert returned.returned_model
    # The same two SGD steps from the same batches: the same model either way.
    for name, value in in_place.scores.to_arrays().items():
        np.testing.assert_array_equal(value, returned.scores.to_arrays()[name], err_msg=name)
    original = mini_zoo.original_scores()[0]
    assert not np.array_equal(returned.scores.forget_confs, original.forget_confs), "the returned model was scored"


def test_a_return_value_that_is_no_model_of_the_nets_architecture_fails_the_run(mini_zoo):
    with pytest.raises(MethodFailed, match=r"run 0: run\(\) returned a Linear whose weights are not those"):
        run_method(ReturnsSomethingElse, sandbox(mini_zoo), run_seed=0)

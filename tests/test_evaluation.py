"""A small real evaluation on CIFAR-10: numbers in range and consistent with each other."""

import copy

import numpy as np
import pytest
import torch

from evaluation import metric, session
from data import method_loaders
from evaluation.scoring import score_model
from methods.finetune import Finetune
from tests.conftest import contestants, sandbox


def gentle_finetune():
    # The Kaggle notebook's variant of the baseline (methods.md section 0): at this
    # scale the starter kit's lr 0.1 restarts training rather than fine-tuning.
    return Finetune(epochs=1, lr=1e-3)


@pytest.fixture(scope="module")
def result(mini_zoo):
    return session.evaluate_method(contestants(finetune=gentle_finetune)["finetune"], "finetune", mini_zoo,
                                   session.gather_references(mini_zoo), gate=0.2, progress=False)


def test_report_numbers_are_in_range(result, mini_zoo):
    assert result.num_models == 3 and mini_zoo.splits.forget.size == 60  # 10% of 600
    assert 0.0 <= result.forget_quality <= 1.0
    eps = np.asarray(result.epsilons)
    assert eps.shape == (60,) and eps.min() >= 0 and eps.max() <= 50
    assert result.forget_quality == pytest.approx(metric.epsilon_points(eps, 3).mean())
    for side in (result.unlearned, result.retrained, result.original):
        for key in ("retain_acc", "forget_acc", "test_acc"):
            assert 0.0 <= getattr(side, key) <= 1.0
            assert getattr(side, key) == pytest.approx(np.mean(side.per_model(key)))
    for value in (result.mia.unlearned, result.mia.retrained, result.mia.original):
        assert 0.0 <= value <= 1.0
    assert result.timing.time_ratio > 0
    assert result.timing.passes_gate == (result.timing.time_ratio <= 0.2)
    phases = result.timing.phases  # wall seconds of the command's stages, in their order
    assert list(phases) == ["original", "references", "retrain_clock", "runs", "scoring"]
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["runs"] == result.timing.runs_wall_seconds >= sum(result.timing.unlearn_seconds)
    assert result.hyperparameters == {"epochs": 1, "lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4}


def test_references_behave_like_retrained_models(result):
    r, o = result.retrained, result.original
    assert r.test_acc > 0.2, "references should learn something"
    assert r.forget_acc < r.retain_acc, "retrained models never saw the forget set"
    assert o.forget_acc > r.forget_acc, "the original saw the forget set"


def test_final_score_is_f_times_the_ratios(result):
    u, r = result.unlearned, result.retrained
    expected = result.forget_quality * (u.retain_acc / r.retain_acc) * (u.test_acc / r.test_acc)
    assert result.final_score == pytest.approx(expected)


def _changed_fraction(a, b):
    changed = [not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())]
    return sum(changed) / len(changed)


def test_finetune_default_changes_every_layer(mini_zoo):
    original, _ = mini_zoo.original()
    net = copy.deepcopy(original)
    Finetune(epochs=1).run(net, *method_loaders(mini_zoo.tensors, 64, seed=0))
    assert _changed_fraction(original, net) > 0.95  # all weights and BN statistics move
    assert not net.training


def test_finetune_keeps_retain_accuracy(mini_zoo):
    original, _ = mini_zoo.original()
    net = copy.deepcopy(original)
    gentle_finetune().run(net, *method_loaders(mini_zoo.tensors, 64, seed=0))
    before, after = score_model(original, mini_zoo.tensors), score_model(net, mini_zoo.tensors)
    assert before.retain_acc > 0.9, "the mini original should fit its training data"
    assert after.retain_acc >= before.retain_acc - 0.05
    assert _changed_fraction(original, net) > 0.95


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

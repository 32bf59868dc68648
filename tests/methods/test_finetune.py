"""methods/finetune.py: the baseline on a small real zoo."""

import copy

import torch

from data import method_loaders
from evaluation.scoring import score_model
from methods.finetune import Finetune
from tests.fixtures.stub_methods import gentle


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
    gentle().run(net, *method_loaders(mini_zoo.tensors, 64, seed=0))
    before, after = score_model(original, mini_zoo.tensors), score_model(net, mini_zoo.tensors)
    assert before.retain_acc > 0.9, "the mini original should fit its training data"
    assert after.retain_acc >= before.retain_acc - 0.05
    assert _changed_fraction(original, net) > 0.95

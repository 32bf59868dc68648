"""methods/amnesiacs.py: its defining mechanism."""

import copy

import torch

from methods.amnesiacs import Amnesiacs
from tests.helpers import parameters_of


def test_amnesiacs_resets_conv1_and_fc_only(tiny):
    net = copy.deepcopy(tiny[0])
    before = parameters_of(net)
    Amnesiacs(warmup_epochs=0, epochs=0).run(net, *tiny[1:])
    after = parameters_of(net)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {"conv1.weight", "fc.weight", "fc.bias"}

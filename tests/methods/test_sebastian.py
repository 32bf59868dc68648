"""methods/sebastian.py: its defining mechanism."""

import copy

import torch

from methods.sebastian import Sebastian
from tests.helpers import parameters_of


def test_sebastian_prunes_99_percent_and_reinitialises(tiny):
    net = copy.deepcopy(tiny[0])
    before = parameters_of(net)
    Sebastian().prune_and_reinitialise(net)
    layers = (torch.nn.Conv2d, torch.nn.Linear)
    names = [f"{n}.weight" for n, m in net.named_modules() if isinstance(m, layers)] + ["fc.bias"]
    total = sum(before[n].numel() for n in names)
    params = dict(net.named_parameters())
    moved = sum((params[n] != before[n]).sum().item() for n in names)
    assert abs(moved - 0.99 * total) <= 0.0005 * total
    for n, m in net.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            bound = 1 / m.weight[0].numel() ** 0.5
            fresh = m.weight[m.weight != before[f"{n}.weight"]]
            assert fresh.abs().max() <= bound
    bias_moved = params["fc.bias"] != before["fc.bias"]
    assert torch.all(params["fc.bias"][bias_moved] == 0)  # pruned biases stay 0
    bn = [n for n in before if "bn" in n]
    assert all(torch.equal(params[n], before[n]) for n in bn)

"""methods/salun.py: its defining mechanism."""

import copy

import pytest
import torch

from methods.salun import SalUn, saliency_mask
from tests.helpers import parameters_of


@pytest.mark.parametrize("freeze, frozen_exactly", [("restore", True), ("gradients", False)])
def test_salun_leaves_weights_outside_the_mask(freeze, frozen_exactly, tiny):
    net = copy.deepcopy(tiny[0])
    torch.manual_seed(1)
    masks = saliency_mask(copy.deepcopy(net), tiny[2], 0.5)
    before = parameters_of(net)
    SalUn(epochs=2, batch_size=None, freeze=freeze).run(net, tiny[1], tiny[2], tiny[3])
    after = parameters_of(net)
    outside_same = all(torch.equal(after[n][masks[n] == 0], before[n][masks[n] == 0]) for n in masks)
    assert outside_same == frozen_exactly  # weight decay and momentum leak unless restored
    inside_moved = sum((after[n] != before[n])[masks[n] == 1].sum().item() for n in masks)
    total_inside = sum(m.sum().item() for m in masks.values())
    assert inside_moved > 0.5 * total_inside
    assert abs(total_inside / sum(m.numel() for m in masks.values()) - 0.5) < 1e-6

"""methods/toshi_k.py: its defining mechanism."""

import copy

import torch

from methods.common import conv_layers
from methods.toshi_k import ToshiK


def test_toshi_k_transposes_every_kernel(tiny):
    net = copy.deepcopy(tiny[0])
    ToshiK(epochs=0).run(net, *tiny[1:])
    for name, conv in conv_layers(net):
        assert torch.equal(conv.weight, tiny[0].get_submodule(name).weight.transpose(2, 3))

"""methods/kookmin.py: its defining mechanism."""

import copy

import torch

from methods.common import conv_layers
from methods.kookmin import Kookmin
from tests.helpers import parameters_of


def test_kookmin_reinitialises_30_percent_per_conv_and_scales_the_rest(tiny):
    net = copy.deepcopy(tiny[0])
    before = parameters_of(net)
    importance = {n: torch.rand_like(p) for n, p in net.named_parameters()}
    scales = Kookmin().reinitialise(net, importance)
    for (name, conv), scale in zip(conv_layers(net), scales):
        k = round(0.3 * conv.weight.numel())
        moved = conv.weight != before[f"{name}.weight"]
        assert moved.sum() == k  # fresh values differ from the trained ones almost surely
        assert torch.equal(moved, scale == 1.0)
        assert torch.all(scale[~moved] == torch.tensor(0.1))
        # the chosen entries are those with the smallest importance
        chosen = importance[f"{name}.weight"][moved]
        assert chosen.max() <= importance[f"{name}.weight"][~moved].min()


def test_kookmin_scales_kept_gradients_by_a_tenth(tiny):
    net = copy.deepcopy(tiny[0])
    k = Kookmin()
    scales = k.reinitialise(net, {n: torch.rand_like(p) for n, p in net.named_parameters()})
    conv = conv_layers(net)[0][1]
    handle = conv.weight.register_hook(lambda g: g * scales[0])
    net.zero_grad()
    x, y = next(iter(tiny[1]))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    masked = conv.weight.grad.clone()
    handle.remove()
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    torch.testing.assert_close(masked, conv.weight.grad * scales[0])

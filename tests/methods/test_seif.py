"""methods/seif.py: confuse the stem, then a class-weighted fine-tune on the retain set."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from methods import seif
from methods.common import add_gaussian_noise, conv_layers
from methods.seif import Seif
from tests.methods.recording import Epochs, Noise, batch

# the stand-in epochs take no optimiser step before the schedule's
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")


@pytest.mark.parametrize("layers", ["stem", "all"])
def test_noise_on_the_stem_then_weighted_ce_on_retain_with_a_cosine(tiny, monkeypatch, layers):
    net, retain, forget, val = copy.deepcopy(tiny[0]), *tiny[1:]
    epochs, noise = Epochs(net), Noise(net, add_gaussian_noise)
    monkeypatch.setattr(seif, "train_epoch", epochs)
    monkeypatch.setattr(seif, "add_gaussian_noise", noise)
    Seif(noise_layers=layers).run(net, retain, forget, val)
    convs = ["conv1.weight"] if layers == "stem" else [f"{n}.weight" for n, _ in conv_layers(net)]
    # 0.6 before training; 0.005 on the same tensors before the last of 4 epochs
    assert noise.calls == [(convs, 0.6), (convs, 0.005)]
    assert [c["loader"] for c in epochs.calls] == [retain] * 4  # never the forget set
    lrs = [c["lr"] for c in epochs.calls]  # CosineAnnealingLR(T_max=4) stepped per epoch
    assert lrs == pytest.approx([7e-4 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    x, y = batch(retain)
    loss = epochs.calls[0]["loss_fn"](net, x, y)
    counts = torch.bincount(torch.cat([b[1] for b in retain]), minlength=10).double()
    present = counts > 0
    balanced = torch.zeros(10, dtype=torch.float64)
    balanced[present] = counts.sum() / (present.sum() * counts[present])
    expected = F.cross_entropy(net(x), y) * balanced.float()[y].mean()  # batch-mean CE x mean class weight
    torch.testing.assert_close(loss, expected)

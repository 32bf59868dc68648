"""methods/sun.py: fc reset, selection epochs with noise on unseen tensors, then the whole model."""

import copy

import pytest
import torch

from methods import sun
from methods.common import add_gaussian_noise
from methods.sun import Sun
from tests.methods.recording import Epochs, Noise

# the stand-in epochs take no optimiser step before the schedule's
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")

BN = 34  # BatchNorm weights and biases named "bn" (the shortcuts' are "downsample.1")


def _run(tiny, monkeypatch, **options):
    net, loaders = copy.deepcopy(tiny[0]), tiny[1:]
    epochs, noise = Epochs(net), Noise(net, add_gaussian_noise)
    monkeypatch.setattr(sun, "train_epoch", epochs)
    monkeypatch.setattr(sun, "add_gaussian_noise", noise)
    torch.manual_seed(0)
    Sun(**options).run(net, *loaders)
    return net, epochs.calls, noise.calls


def test_selection_epochs_train_nine_tensors_and_bn_and_noise_only_unseen_ones(tiny, monkeypatch):
    net, calls, noise = _run(tiny, monkeypatch)
    every = {n for n, _ in net.named_parameters()}
    bn = {n for n in every if "bn" in n}
    assert len(bn) == BN and len(calls) == 9
    for call in calls[:5]:  # nine selectable tensors (convs, shortcut BN, fc) and every BN tensor, lr 2e-4
        assert bn <= call["trains"] and len(call["trains"] - bn) == 9 and call["lr"] == 2e-4
    assert [c["trains"] for c in calls[5:]] == [every] * 4
    assert [c["lr"] for c in calls[5:]] == [2e-4, 2e-4, 2e-4, 1e-3]
    assert all(c["loader"] is tiny[1] for c in calls)  # the retain set only
    seen = set(calls[0]["trains"])
    assert len(noise) == 4  # epochs 1-4; none at epoch 0
    for epoch, (noisy, std) in enumerate(noise, start=1):
        chosen = calls[epoch]["trains"] - bn
        assert std == 0.04 and set(noisy) <= chosen and len(noisy) <= 6 and not set(noisy) & seen
        seen |= calls[epoch]["trains"]
    assert not torch.equal(net.fc.weight, tiny[0].fc.weight)  # fc was reset (nothing trained here)


def test_the_write_ups_first_epoch_trains_everything_and_the_noise_still_runs(tiny, monkeypatch):
    net, calls, noise = _run(tiny, monkeypatch, first_epoch="all")
    assert calls[0]["trains"] == {n for n, _ in net.named_parameters()} and calls[0]["lr"] == 2e-4
    assert noise and noise[0][0], "epoch 1's chosen tensors still get noise"


def test_learning_rates_must_cover_the_epochs_after_selection():
    with pytest.raises(ValueError, match="full_lrs gives 2 learning rates for the 4 epochs after"):
        Sun(full_lrs=(1e-3, 1e-3))
    with pytest.raises(ValueError, match="first_epoch must be selected or all"):
        Sun(first_epoch="some")

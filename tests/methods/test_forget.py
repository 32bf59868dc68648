"""methods/forget.py: six draws a cycle from the pool, fresh values for what is drawn, then the
Remember epochs matching the original's logits on noisy retain images."""

import copy
import math

import pytest
import torch

from methods import forget
from methods.forget import Forget
from tests.methods.recording import Epochs, same_loss_for_any_labels

# the stand-in epochs take no optimiser step before the schedule's
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")


def _run(tiny, monkeypatch, **options):
    net, loaders = copy.deepcopy(tiny[0]), tiny[1:]
    epochs = Epochs(net)
    monkeypatch.setattr(forget, "train_epoch", epochs)
    method = Forget(**options)
    torch.manual_seed(0)
    method.run(net, *loaders)
    return method, net, epochs.calls


def test_the_tensor_pool_draws_six_a_cycle_and_resets_what_it_draws(tiny, monkeypatch):
    method, net, calls = _run(tiny, monkeypatch)
    pool = dict(method.pool_of(net))
    assert len(pool) == 51 and not any(n.startswith("fc.") or "downsample" in n for n in pool)
    log = method.round_log
    assert [len(c["drawn"]) for c in log] == [6, 6, 6]  # algorithm 1: three cycles
    drawn = {n for c in log for n in c["drawn"]}
    assert log[-1]["tensor_share"] == pytest.approx(len(drawn) / 51)
    assert 0 < log[0]["tensor_share"] <= log[1]["tensor_share"] <= log[2]["tensor_share"] <= 18 / 51
    original = dict(tiny[0].named_parameters())
    for name, tensor in net.named_parameters():  # nothing trained (the epochs are recorded): only draws moved
        moved = not torch.equal(tensor, original[name])
        assert moved == (name in drawn), name
        if name in drawn and tensor.dim() == 1:
            assert torch.equal(tensor, torch.full_like(tensor, 1.0 if name.endswith("weight") else 0.0))
    buffers = dict(tiny[0].named_buffers())
    assert all(torch.equal(b, buffers[n]) for n, b in net.named_buffers())  # running statistics untouched


def test_remember_epochs_match_the_original_without_labels_and_the_cosine_restarts(tiny, monkeypatch):
    _, net, calls = _run(tiny, monkeypatch)
    assert [c["loader"] for c in calls] == [tiny[1]] * 5  # 1 + 2 + 2 epochs on retain
    assert [c["lr"] for c in calls] == pytest.approx([1e-3, 1e-3, 5e-4, 1e-3, 5e-4])  # T_max 2, per cycle
    assert same_loss_for_any_labels(calls[0]["loss_fn"], net, tiny[1])
    _, _, whole = _run(tiny, monkeypatch, schedule="whole")
    assert [c["lr"] for c in whole] == pytest.approx([1e-3 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)])


def test_the_module_pool_is_the_seventeen_convolutions(tiny, monkeypatch):
    method, net, _ = _run(tiny, monkeypatch, pool="conv_modules", init="torchvision")
    assert len(method.pool_of(net)) == 17 and all(n.endswith(".weight") for n, _ in method.pool_of(net))
    assert method.round_log[0]["parameter_share"] > 0
    with pytest.raises(ValueError, match="pool must be one of tensors, conv_modules"):
        Forget(pool="layers")

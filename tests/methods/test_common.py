"""methods/common.py: the shared training loop."""

import copy

import torch

from methods.common import sgd, train_epoch


def test_the_training_loop_reads_the_loss_once_per_epoch_not_per_step(tiny, monkeypatch):
    """A per-step ``.item()`` stalls a GPU's queue: the running loss stays on the device."""
    original, retain, _, _ = tiny
    net = copy.deepcopy(original)
    reads, item = [], torch.Tensor.item
    # (the DataLoader draws its integer base seed with an .item() of its own, on the CPU)
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append(t.is_floating_point()) or item(t))
    loss = train_epoch(net, retain, sgd(net, 1e-3))
    assert len(retain) == 3 and sum(reads) == 1 and loss > 0

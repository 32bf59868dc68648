"""methods/fanchuan.py: forget to uniform, then rounds of contrast on forget and CE on retain."""

import copy

import pytest
import torch

from methods import fanchuan
from methods.common import kl_to_uniform
from methods.fanchuan import Fanchuan
from tests.methods.recording import Epochs, batch, same_loss_for_any_labels

# the stand-in epochs take no optimiser step before the schedule's
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")


def test_stage_one_then_contrast_and_retain_rounds_with_their_optimisers(tiny, monkeypatch):
    net, retain, forget_loader, val = copy.deepcopy(tiny[0]), *tiny[1:]
    epochs, rounds = Epochs(net), []
    monkeypatch.setattr(fanchuan, "train_epoch", epochs)
    monkeypatch.setattr(Fanchuan, "forget_round", lambda self, n, f, neg, opt, sched: rounds.append(
        (f, neg, opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"], sched.T_max)))
    Fanchuan(epochs=3).run(net, retain, forget_loader, val)
    stage1, *retain_rounds = epochs.calls
    # stage 1: one pass over the forget set towards uniform predictions, labels unused, lr 5e-3
    assert stage1["loader"] is forget_loader and stage1["lr"] == 5e-3 and stage1["weight_decay"] == 0
    x, y = batch(forget_loader)
    torch.testing.assert_close(stage1["loss_fn"](net, x, y), kl_to_uniform(net(x)))
    assert same_loss_for_any_labels(stage1["loss_fn"], net, forget_loader)
    # stage 2: each epoch a forget round (lr 3e-4, cosine over every forget step) then a retain round
    assert len(rounds) == len(retain_rounds) == 3
    assert all(f is forget_loader and lr == 3e-4 and wd == 0 and t_max == 3 * len(forget_loader)
               for f, _, lr, wd, t_max in rounds)
    negatives = rounds[0][1]
    assert negatives.batch_size == 256 and len(negatives.dataset) == len(retain.dataset)  # retain "negatives"
    for call in retain_rounds:  # CE on the retain set at batch 256, lr 1e-3 x 256 / 64, weight decay 1e-2
        assert call["loader"].batch_size == 256 and len(call["loader"].dataset) == len(retain.dataset)
        assert call["lr"] == pytest.approx(4e-3) and call["weight_decay"] == 1e-2 and call["loss_fn"] is None


def test_the_forget_round_steps_down_the_contrast_of_forget_logits_against_retain_ones(tiny):
    """Its loss, -mean log softmax(z_f z_r^T / t) over each forget row (a uniform target over the
    retain batch), falls with one small step; one optimiser and one schedule step per batch."""
    import torch.nn.functional as F

    net = copy.deepcopy(tiny[0]).train()
    method = Fanchuan()
    forget_x, _ = batch(tiny[2])
    retain_x, _ = batch(tiny[1])

    def loss():
        with torch.no_grad():  # train mode: BatchNorm normalises with the batch, whatever its running statistics
            return -F.log_softmax(net(forget_x) @ net(retain_x).T / method.temperature, dim=1).mean()

    before = loss()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-5)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
    method.forget_round(net, [(forget_x, None)] * 2, [(retain_x, None)] * 2, optimizer, schedule)
    assert loss() < before and optimizer.param_groups[0]["lr"] == pytest.approx(1e-5 / 4)  # two steps

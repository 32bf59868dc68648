"""methods/saliency_guided.py: its stops, its budget, its masked steps and its log."""

import copy
import math

import pytest
import torch

from methods import saliency_guided
from methods.common import StepBudget, gradient_saliency
from methods.saliency_guided import IMPAIR_LOSSES, SaliencyGuided, lower_loss_auc
from tests.helpers import tiny_loader


def _loaders():
    """Fresh loaders over ``tiny``'s images (their shuffling starts from the same state each time)."""
    return tiny_loader(48, 1), tiny_loader(16, 2), tiny_loader(16, 3)


@pytest.fixture(scope="module")
def memorised(tiny):
    """``tiny``'s network: it has memorised the retain and forget images of ``_loaders``."""
    return tiny[0]


def _run(net, seed=0, **options):
    method = SaliencyGuided(**{"repair_steps": 2, "max_steps": 12} | options)
    torch.manual_seed(seed)
    method.run(net, *_loaders())
    return method.round_log


def test_the_auc_and_its_standard_error_have_their_known_values():
    assert lower_loss_auc(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0, 5.0]))[0] == 1.0
    assert lower_loss_auc(torch.tensor([6.0]), torch.tensor([3.0, 4.0]))[0] == 0.0
    auc, se = lower_loss_auc(torch.tensor([1.0, 3.0]), torch.tensor([3.0, 0.0]))
    assert auc == pytest.approx((1 + 0 + 0.5 + 0) / 4) and se == pytest.approx(math.sqrt(5 / 48))
    same = torch.Generator().manual_seed(0)
    auc, se = lower_loss_auc(torch.rand(400, generator=same), torch.rand(600, generator=same))
    assert abs(auc - 0.5) < 3 * se


# The stop tests below switch the damage check off (val_floor 0; it has its own test): on
# random images the tiny model's validation accuracy is chance, one image in 16 or none,
# and which of the two a machine's arithmetic gives would decide "damaged".


def test_it_stops_on_overshoot(memorised, monkeypatch):
    """Forget examples that now look worse than unseen ones end the run: another round
    would impair further."""
    readings = iter([(0.95, 0.02), (0.30, 0.02)])
    monkeypatch.setattr(saliency_guided, "lower_loss_auc", lambda f, v: next(readings))
    log = _run(copy.deepcopy(memorised), max_rounds=4, val_floor=0.0)
    assert [r["round"] for r in log] == [0, 1]
    assert log[-1]["verdict"] == "overshoot" and log[-1]["stop"] == "overshoot"


def test_it_stops_once_forgotten_and_runs_every_round_while_not(memorised, monkeypatch):
    monkeypatch.setattr(saliency_guided, "lower_loss_auc", lambda f, v: (0.52, 0.02))  # within one se
    log = _run(copy.deepcopy(memorised), max_rounds=4, val_floor=0.0)
    assert [r["round"] for r in log] == [0, 1] and log[-1]["stop"] == "forgotten"
    monkeypatch.setattr(saliency_guided, "lower_loss_auc", lambda f, v: (0.95, 0.02))
    log = _run(copy.deepcopy(memorised), max_rounds=2, max_steps=1000)
    assert [r["round"] for r in log] == [0, 1, 2] and log[-1]["stop"] == "rounds"


def test_a_damaged_model_is_no_stop_and_only_repairs_next(memorised, monkeypatch):
    """A broken model's losses are high everywhere, which reads as forgotten; what tells it
    apart without references is its validation accuracy, below ``val_floor`` of the original's."""
    monkeypatch.setattr(saliency_guided, "lower_loss_auc", lambda f, v: (0.5, 0.02))  # always reads forgotten
    calls, losses = [], saliency_guided.loader_losses

    def val_right_then_wrong(net, loader):  # the check's calls: forget, then validation, per round
        calls.append(1)
        loss, correct = losses(net, loader)
        if len(calls) % 2 == 0:  # every validation image right, but in round 1 every one wrong
            correct = torch.full_like(correct, len(calls) != 4)
        return loss, correct

    monkeypatch.setattr(saliency_guided, "loader_losses", val_right_then_wrong)
    maps = []
    saliency = saliency_guided.gradient_saliency
    monkeypatch.setattr(saliency_guided, "gradient_saliency", lambda *a: maps.append(1) or saliency(*a))
    log = _run(copy.deepcopy(memorised), max_rounds=4, max_steps=100)
    assert [r["verdict"] for r in log][1:] == ["damaged", "forgotten"]  # (round 0 always goes on)
    assert log[-1]["stop"] == "forgotten"
    assert len(maps) == 1, "the round after damage maps no saliency: it only repairs"


def test_steps_that_overflow_are_undone(memorised, monkeypatch):
    net = copy.deepcopy(memorised)
    masked_steps = SaliencyGuided.masked_steps

    def overflowing(self, net_, loader, masks, lr, steps, budget, loss_fn, train_mode):
        masked_steps(self, net_, loader, masks, lr, steps, budget, loss_fn, train_mode)
        if not train_mode:
            with torch.no_grad():
                next(net_.parameters()).fill_(float("nan"))

    monkeypatch.setattr(SaliencyGuided, "masked_steps", overflowing)
    log = _run(net, max_rounds=1, rounds="fixed", impair_steps=2)
    assert log[1]["steps_undone"] == "non-finite weights"
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(net.parameters(), memorised.parameters()))


def test_the_step_budget_holds_within_a_round(memorised, monkeypatch):
    steps = []
    step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: steps.append(1) or step(self, *a, **k))
    log = _run(copy.deepcopy(memorised), max_steps=5, impair_steps=2, repair_steps=10, max_rounds=4)
    assert len(steps) == 5  # 2 impair steps, then the repair stops after 3 of its 10
    assert [r["round"] for r in log] == [0, 1] and log[-1]["stop"] == "steps" and log[-1]["steps"] == 5
    assert StepBudget(3).take() and not StepBudget(0).take()
    assert StepBudget(10, seconds=0.0).spent() == "seconds"


def test_an_impair_step_moves_only_masked_weights_and_no_batchnorm_statistics(memorised):
    """Momentum and weight decay are on; entries outside the mask, and the running
    statistics (the impair step runs in eval mode), stay exactly where they were."""
    net = copy.deepcopy(memorised)
    _, forget, _ = _loaders()
    masks = gradient_saliency(net, forget, IMPAIR_LOSSES["kl_uniform"], 0.1)
    before = copy.deepcopy(net.state_dict())
    method = SaliencyGuided()
    method.masked_steps(net, forget, masks, lr=0.05, steps=3, budget=StepBudget(3),
                         loss_fn=IMPAIR_LOSSES["kl_uniform"], train_mode=False)
    after = net.state_dict()
    for name, mask in masks.items():
        assert torch.equal(after[name][mask == 0], before[name][mask == 0]), name
    moved = sum(int((after[n] != before[n])[m == 1].sum()) for n, m in masks.items())
    assert moved > 0.5 * sum(int(m.sum()) for m in masks.values())
    buffers = [n for n in before if "running_" in n or "num_batches" in n]
    assert buffers and all(torch.equal(after[n], before[n]) for n in buffers)


@pytest.mark.parametrize("mask", ["weights", "layers"])
def test_runs_with_one_seed_are_equal_and_with_two_seeds_differ(memorised, mask):
    runs = {}
    for label, seed in (("a", 1), ("again", 1), ("b", 2)):
        net = copy.deepcopy(memorised)
        _run(net, seed=seed, max_rounds=1, max_steps=4, mask=mask)
        runs[label] = net.state_dict()
    assert all(torch.equal(runs["a"][n], runs["again"][n]) for n in runs["a"])
    assert not all(torch.equal(runs["a"][n], runs["b"][n]) for n in runs["a"])


def test_the_log_measures_what_changed(memorised):
    log = _run(copy.deepcopy(memorised), max_rounds=2, max_steps=9, rounds="fixed", mask_fraction=0.05,
               impair_steps=2, repair_scope="mask")
    first = log[0]
    assert first["auc"] > 0.6 and first["forget_acc"] > first["val_acc"], "the original remembers its forget set"
    assert first["steps"] == 0 and 0 < first["left"] <= 16
    for r in log[1:]:
        # the measured share of weights that moved: the mask's 5% at most (noise and steps
        # touch masked entries only), and most of it
        assert 0.03 < r["masked_fraction"] <= 0.05 + 1e-9
        assert set(r) >= {"round", "left", "masked_fraction", "forget_acc", "val_acc", "auc", "auc_se", "verdict",
                          "steps", "seconds"}
    assert log[-1]["stop"] == "rounds" and log[2]["steps"] > log[1]["steps"] > 0


def test_unknown_choices_are_refused():
    with pytest.raises(ValueError, match="variant must be one of impair_repair, saliency"):
        SaliencyGuided(variant="other")
    with pytest.raises(ValueError, match="tolerance"):
        SaliencyGuided(tolerance=-1.0)
    with pytest.raises(ValueError, match="val_floor"):
        SaliencyGuided(val_floor=1.5)


def test_the_layer_pool_is_the_convolutions_outside_the_shortcuts_and_saliency_weights_the_draw(memorised):
    pool = saliency_guided.erasable_layers(memorised)
    assert len(pool) == 17 and pool[0] == "conv1.weight"
    assert not any("downsample" in n or n.startswith("fc") for n in pool)
    drawn = set()
    for seed in range(5):
        torch.manual_seed(seed)
        masks = saliency_guided.layer_masks(memorised, None, 3, by_saliency=False)
        assert len(masks) == 3 and set(masks) <= set(pool) and all(bool(m.all()) for m in masks.values())
        drawn.add(tuple(masks))
    assert len(drawn) > 1, "each run draws its own layers"
    # all the gradient on one layer: saliency draws it every time, the control only sometimes
    grads = {n: torch.zeros_like(p) for n, p in memorised.named_parameters()}
    grads["layer3.0.conv2.weight"] += 1.0
    for seed in range(5):
        torch.manual_seed(seed)
        assert "layer3.0.conv2.weight" in saliency_guided.layer_masks(memorised, grads, 2, by_saliency=True)


def test_the_repair_moves_nothing_that_was_erased(memorised, monkeypatch):
    """repair_scope="outside": with momentum and weight decay on, every layer a round's noise
    touched keeps, to the bit, the value the noise left, through both rounds' repairs."""
    after_noise = []
    noise = saliency_guided.add_masked_noise

    def recorded(net, masks, scale):
        noise(net, masks, scale)
        after_noise.append({n: p.detach().clone() for n, p in net.named_parameters()})

    monkeypatch.setattr(saliency_guided, "add_masked_noise", recorded)
    net = copy.deepcopy(memorised)
    log = _run(net, max_rounds=2, rounds="fixed", mask="layers", mask_layers=2, repair_scope="outside",
               max_steps=100, repair_steps=3, val_floor=0.0)
    erased = {n for r in log[1:] for n in r["layers"]}
    assert len(after_noise) == 2 and 2 <= len(erased) <= 4
    final = dict(net.named_parameters())
    for name in erased:
        assert torch.equal(final[name], after_noise[-1][name]), name
    moved = [n for n in final if n not in erased and not torch.equal(final[n], after_noise[-1][n])]
    assert len(moved) > 20, "the rest of the network is repaired"


def test_the_excess_rule_leaves_nothing_on_a_model_that_never_saw_the_forget_set(memorised):
    """Forget and validation images both unseen: the median rule still finds about half the
    forget set left to forget; the excess rule finds none, and the run stops untouched."""
    from tests.helpers import tiny_loader

    losses = saliency_guided.loader_losses
    unseen_forget, val = tiny_loader(16, 4), tiny_loader(16, 3)
    f, _ = losses(memorised, unseen_forget)
    v, _ = losses(memorised, val)
    assert len(saliency_guided.excess_left(f, v, 1.0)) == 0 < int((f < v.median()).sum())
    # a memorised forget set is left, the whole excess of it
    f_seen, _ = losses(memorised, tiny_loader(16, 2))
    assert len(saliency_guided.excess_left(f_seen, v, 1.0)) >= 4
    net = copy.deepcopy(memorised)
    method = SaliencyGuided(left="excess", mask="layers", val_floor=0.0)
    torch.manual_seed(0)
    method.run(net, tiny_loader(48, 1), unseen_forget, val)
    assert method.round_log[-1]["stop"] == "nothing left" and method.round_log[0]["left"] == 0
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), memorised.parameters()))


def test_budgets_as_shares_of_a_retain_pass(memorised, monkeypatch):
    steps = []
    step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: steps.append(1) or step(self, *a, **k))
    # the retain loader has 3 batches: 0.5 of a pass is 2 steps a round, 1.0 is 3 steps in all
    log = _run(copy.deepcopy(memorised), max_rounds=4, rounds="fixed", repair_epochs=0.5, max_epochs=1.0,
               max_steps=1000, mask="random_layers", distill_weight=0.0, val_floor=0.0)
    assert len(steps) == 3 and log[-1]["stop"] == "steps" and [r["round"] for r in log] == [0, 1, 2]
    with pytest.raises(ValueError, match="repair_epochs is a share of a pass"):
        SaliencyGuided(repair_epochs=0)
    with pytest.raises(ValueError, match="mask must be one of layers, random_layers, weights"):
        SaliencyGuided(mask="rows")

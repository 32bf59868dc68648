"""Every registered method on a tiny problem, and each method's defining mechanism."""

import copy

import pytest
import torch

from data import make_loader
from methods import BaseMethod, all_method_handlers
from methods.amnesiacs import Amnesiacs
from methods.common import conv_layers, sgd, train_epoch
from methods.hyperparameters import SettingError, build, declared, parse_settings, values
from methods.kookmin import Kookmin
from methods.salun import SalUn, saliency_mask
from methods.sebastian import Sebastian
from methods.toshi_k import ToshiK
from tests.conftest import DEVICES

EXPECTED = {"finetune", "fanchuan", "kookmin", "seif", "sebastian", "toshi_k", "amnesiacs", "sun", "forget",
            "salun", "saliency_guided"}


def _params(net):
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def test_all_methods_registered():
    handlers = all_method_handlers()
    assert EXPECTED <= set(handlers)
    for name, cls in handlers.items():
        assert issubclass(cls, BaseMethod) and cls().name == name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_method_runs_changes_weights_and_stays_finite(name, device, tiny):
    original, *loaders = tiny
    net = copy.deepcopy(original).to(device)
    if device != "cpu":  # as the evaluation hands them out: the split already on the device
        loaders = [make_loader(*(t.to(device) for t in loader.dataset.tensors), loader.batch_size, shuffle=True,
                               seed=k) for k, loader in enumerate(loaders)]
    retain, forget, val = loaders
    torch.manual_seed(0)
    assert all_method_handlers()[name]().run(net, retain, forget, val) is None
    before = _params(original)
    after = dict(net.named_parameters())
    assert all(p.device.type == device for p in after.values()), "parameters left the net's device"
    assert all(torch.isfinite(p).all() for p in after.values())
    changed = sum(not torch.equal(before[n].to(device), p.detach()) for n, p in after.items())
    assert changed > 0, f"{name} did not change any weight"
    assert all(p.requires_grad for p in after.values())


def test_kookmin_reinitialises_30_percent_per_conv_and_scales_the_rest(tiny):
    net = copy.deepcopy(tiny[0])
    before = _params(net)
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


def test_sebastian_prunes_99_percent_and_reinitialises(tiny):
    net = copy.deepcopy(tiny[0])
    before = _params(net)
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


def test_toshi_k_transposes_every_kernel(tiny):
    net = copy.deepcopy(tiny[0])
    ToshiK(epochs=0).run(net, *tiny[1:])
    for name, conv in conv_layers(net):
        assert torch.equal(conv.weight, tiny[0].get_submodule(name).weight.transpose(2, 3))


def test_amnesiacs_resets_conv1_and_fc_only(tiny):
    net = copy.deepcopy(tiny[0])
    before = _params(net)
    Amnesiacs(warmup_epochs=0, epochs=0).run(net, *tiny[1:])
    after = _params(net)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {"conv1.weight", "fc.weight", "fc.bias"}


@pytest.mark.parametrize("freeze, frozen_exactly", [("restore", True), ("gradients", False)])
def test_salun_leaves_weights_outside_the_mask(freeze, frozen_exactly, tiny):
    net = copy.deepcopy(tiny[0])
    torch.manual_seed(1)
    masks = saliency_mask(copy.deepcopy(net), tiny[2], 0.5)
    before = _params(net)
    SalUn(epochs=2, batch_size=None, freeze=freeze).run(net, tiny[1], tiny[2], tiny[3])
    after = _params(net)
    outside_same = all(torch.equal(after[n][masks[n] == 0], before[n][masks[n] == 0]) for n in masks)
    assert outside_same == frozen_exactly  # weight decay and momentum leak unless restored
    inside_moved = sum((after[n] != before[n])[masks[n] == 1].sum().item() for n in masks)
    total_inside = sum(m.sum().item() for m in masks.values())
    assert inside_moved > 0.5 * total_inside
    assert abs(total_inside / sum(m.numel() for m in masks.values()) - 0.5) < 1e-6


def test_the_training_loop_reads_the_loss_once_per_epoch_not_per_step(tiny, monkeypatch):
    """A per-step ``.item()`` stalls a GPU's queue: the running loss stays on the device."""
    original, retain, _, _ = tiny
    net = copy.deepcopy(original)
    reads, item = [], torch.Tensor.item
    # (the DataLoader draws its integer base seed with an .item() of its own, on the CPU)
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append(t.is_floating_point()) or item(t))
    loss = train_epoch(net, retain, sgd(net, 1e-3))
    assert len(retain) == 3 and sum(reads) == 1 and loss > 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_method_built_with_its_name_has_its_defaults(name):
    """The starter kit builds methods as ``all_method_handlers()[name](name)``."""
    cls = all_method_handlers()[name]
    with_name, plain = cls(name), cls()
    assert with_name.name == plain.name == name
    assert values(with_name) == values(plain) == {k: h.default for k, h in declared(cls).items()}
    assert declared(cls), f"{name} declares no hyperparameter"


def test_one_construction_rule_serves_both_conventions():
    from tests.fixtures.starter_kit_method import MyMethod

    class ReadmeStyle(BaseMethod):
        def __init__(self, epochs: int = 2, lr: float = 0.01):
            super().__init__("readme_style")
            self.epochs, self.lr = epochs, lr

    assert build(MyMethod, "mine").name == "mine"
    built = build(ReadmeStyle, "readme_style", {"lr": 0.5})
    assert (built.name, built.epochs, built.lr) == ("readme_style", 2, 0.5)
    assert values(built) == {"epochs": 2, "lr": 0.5}
    assert build(all_method_handlers()["kookmin"], "kookmin", {"lr": 0.002}).lr == 0.002


def test_settings_are_typed_from_the_declaration():
    from methods.salun import SalUn
    from methods.sun import Sun

    assert parse_settings(Sun, ["full_lrs=2e-4, 1e-3", "epochs=4"]) == {"full_lrs": (2e-4, 1e-3), "epochs": 4}
    assert parse_settings(SalUn, ["batch_size=none", "freeze=gradients"]) == {"batch_size": None,
                                                                               "freeze": "gradients"}
    with pytest.raises(SettingError, match="no hyperparameter 'bogus'; valid: mask_fraction"):
        parse_settings(SalUn, ["bogus=1"])
    with pytest.raises(SettingError, match="expected an integer"):
        parse_settings(SalUn, ["epochs=1.5"])

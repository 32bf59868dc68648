"""methods/__init__.py: the registry, and every registered method on a tiny problem."""

import copy

import pytest
import torch

from data import make_loader
from methods import BaseMethod, all_method_handlers, get_method, register
from methods.hyperparameters import declared, values
from tests.helpers import DEVICES, parameters_of

EXPECTED = {"finetune", "fanchuan", "kookmin", "seif", "sebastian", "toshi_k", "amnesiacs", "sun", "forget",
            "salun", "saliency_guided"}


def test_registry_rejects_bad_registrations():
    all_method_handlers()  # the shipped methods registered, as any use of the registry does first
    with pytest.raises(TypeError):
        register("not_a_method")(object)
    with pytest.raises(ValueError, match="already registered"):

        @register("finetune")
        class Other(BaseMethod):
            pass

    with pytest.raises(KeyError, match="available: .*finetune"):
        get_method("nope")


def test_every_shipped_method_is_registered_and_found_by_name():
    handlers = all_method_handlers()
    assert EXPECTED <= set(handlers) and list(handlers) == sorted(handlers)
    for name, cls in handlers.items():
        assert issubclass(cls, BaseMethod) and cls().name == name and get_method(name) is cls


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
    before = parameters_of(original)
    after = dict(net.named_parameters())
    assert all(p.device.type == device for p in after.values()), "parameters left the net's device"
    assert all(torch.isfinite(p).all() for p in after.values())
    changed = sum(not torch.equal(before[n].to(device), p.detach()) for n, p in after.items())
    assert changed > 0, f"{name} did not change any weight"
    assert all(p.requires_grad for p in after.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_method_built_with_its_name_has_its_defaults(name):
    """The starter kit builds methods as ``all_method_handlers()[name](name)``."""
    cls = all_method_handlers()[name]
    with_name, plain = cls(name), cls()
    assert with_name.name == plain.name == name
    assert values(with_name) == values(plain) == {k: h.default for k, h in declared(cls).items()}
    assert declared(cls), f"{name} declares no hyperparameter"

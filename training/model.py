"""The competition's model."""

from __future__ import annotations

import torch
import torchvision


def make_model(num_classes: int = 10, seed: int | None = None) -> torch.nn.Module:
    """``torchvision.models.resnet18(weights=None, num_classes)``, unchanged.

    With ``seed`` the initial weights come from that seed without touching the
    global random state.
    """
    if seed is None:
        return torchvision.models.resnet18(weights=None, num_classes=num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torchvision.models.resnet18(weights=None, num_classes=num_classes)


def empty_model(num_classes: int = 10, device="cpu") -> torch.nn.Module:
    """The same network with uninitialised weights, for ``load_state_dict`` to fill.

    Built on the meta device: random initialisation costs about 0.1 s on a CPU, which
    scoring paid once for every stored model it loaded.
    """
    with torch.device("meta"):
        model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    return model.to_empty(device=device)

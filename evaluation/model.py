"""The competition's model and device choice."""

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


def pick_device(name: str | None = None) -> torch.device:
    """``cuda`` when present unless ``name`` says otherwise."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return torch.device(name)

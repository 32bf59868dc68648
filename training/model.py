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


def empty_model(num_classes: int = 10, device="cpu") -> torch.nn.Module:
    """The same network with uninitialised weights, for ``load_state_dict`` to fill.

    Built on the meta device: random initialisation costs about 0.1 s on a CPU, which
    scoring paid once for every stored model it loaded.
    """
    with torch.device("meta"):
        model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    return model.to_empty(device=device)


def pick_device(name: str | None = None) -> torch.device:
    """``cuda`` when present unless ``name`` says otherwise: ``cpu``, ``cuda`` or ``cuda:N``.

    Anything else, or a CUDA device this machine lacks, raises ``ValueError`` with a
    one-line reason (``torch.device`` would accept ``cuda:7`` and fail later, deep inside).
    """
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index):
        raise ValueError(f"unknown device {name!r}: use cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name} was asked for but no CUDA device is available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device

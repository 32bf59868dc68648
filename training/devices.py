"""Where things run: the one place that picks, names and enters a device."""

from __future__ import annotations

import contextlib

import torch


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


def device_of(thing) -> torch.device:
    """The device a tensor lives on, or a module's parameters."""
    return thing.device if isinstance(thing, torch.Tensor) else next(thing.parameters()).device


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """A rank's device: on CUDA ``cuda:(local_rank % device count)``, so ranks may share a GPU."""
    device = torch.device(device)
    return torch.device("cuda", local_rank % torch.cuda.device_count()) if device.type == "cuda" else device


def device_scope(device: torch.device):
    """Make ``device`` the current CUDA device (a no-op on CPU): streams, graphs and
    ``current_stream()`` belong to the current device, not to the tensors', so on
    ``cuda:1`` they must be created under it."""
    device = torch.device(device)
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()

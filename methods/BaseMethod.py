"""The contract every unlearning method follows."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(eq=False)
class BaseMethod:
    """An unlearning method: ``run`` modifies ``net`` in place and returns nothing (or
    ``net``), or returns the unlearned model, a model of ``net``'s architecture (the
    starter kit's own example trains a copy and returns it). The harness and the exported
    notebook keep the returned model; the competition's own template notebook kept only
    in-place changes, which is why the shipped methods change ``net``.

    ``net`` is a torchvision ResNet-18 already on its device; the loaders yield batches
    on that device that unpack as ``images, labels = batch`` and also answer
    ``batch["image"]`` and ``batch["age_group"]`` (the competition notebook's keys).

    The name is the only positional argument, as in the starter kit (``cls(name)``);
    a shipped method declares its hyperparameters as keyword-only dataclass fields with
    their documented defaults (``@dataclass(kw_only=True, eq=False)``), which
    ``--set KEY=VALUE`` and ``--list`` read.
    """

    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or getattr(type(self), "registered_name", type(self).__name__)

    def run(
        self,
        net: torch.nn.Module,
        retain_loader: torch.utils.data.DataLoader,
        forget_loader: torch.utils.data.DataLoader,
        val_loader: torch.utils.data.DataLoader,
    ) -> None:
        raise NotImplementedError

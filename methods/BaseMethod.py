"""The contract every unlearning method follows."""

from __future__ import annotations

import torch


class BaseMethod:
    """An unlearning method: ``run`` modifies ``net`` in place.

    ``net`` is a torchvision ResNet-18 already on its device; the loaders yield
    ``(images, labels)`` batches of normalised CPU tensors. Hyperparameters are
    constructor arguments with the documented defaults.
    """

    def __init__(self, name: str):
        self.name = name

    def run(
        self,
        net: torch.nn.Module,
        retain_loader: torch.utils.data.DataLoader,
        forget_loader: torch.utils.data.DataLoader,
        val_loader: torch.utils.data.DataLoader,
    ) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

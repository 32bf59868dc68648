"""Building blocks shared by the methods: optimisers and the training loop over a loader."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def device_of(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device


def sgd(net: torch.nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, params=None):
    return torch.optim.SGD(net.parameters() if params is None else params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def cross_entropy_loss(net, images, labels):
    return F.cross_entropy(net(images), labels)


def train_epoch(
    net: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable = cross_entropy_loss,
    after_backward: Callable | None = None,
) -> float:
    """One pass over ``loader`` in train mode; ``loss_fn(net, images, labels)`` per batch.

    ``after_backward(net)`` runs between backward and step (gradient masks, scaling).
    Returns the mean loss.
    """
    device = device_of(net)
    net.train()
    total, batches = 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = loss_fn(net, images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward(net)
        optimizer.step()
        total += loss.item()
        batches += 1
    return total / max(batches, 1)


def train_epochs(net, loader, optimizer, epochs: int, scheduler=None, **kwargs) -> list[float]:
    """``epochs`` passes of :func:`train_epoch`, stepping ``scheduler`` once per epoch."""
    losses = []
    for _ in range(epochs):
        losses.append(train_epoch(net, loader, optimizer, **kwargs))
        if scheduler is not None:
            scheduler.step()
    return losses

"""Building blocks shared by the methods: optimisers and the training loop over a loader."""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from training.devices import device_of


def sgd(net: torch.nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, params=None):
    return torch.optim.SGD(net.parameters() if params is None else params, lr=lr, momentum=momentum,
                           weight_decay=weight_decay)


def cross_entropy_loss(net, images, labels):
    return F.cross_entropy(net(images), labels)


def train_epoch(
    net: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable = cross_entropy_loss,
    after_backward: Callable | None = None,
    after_step: Callable | None = None,
    max_steps: int | None = None,
    budget: "StepBudget | None" = None,
    train_mode: bool = True,
) -> float:
    """One pass over ``loader``; ``loss_fn(net, images, labels)`` per batch.

    ``after_backward(net)`` runs between backward and step (gradient masks, scaling);
    ``after_step(net)`` after the step (restoring frozen entries). Every step is taken
    from ``budget`` when given; the pass ends when it is spent. ``train_mode=False``
    trains in eval mode: BatchNorm normalises with, and never updates, its running
    statistics. Returns the mean loss.
    """
    device = device_of(net)
    net.train(train_mode)
    # The running loss stays on the device: a per-step .item() would stall the GPU queue.
    total, batches = torch.zeros((), device=device), 0
    for images, labels in loader:
        if max_steps is not None and batches >= max_steps:
            break
        if budget is not None and not budget.take():
            break
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = loss_fn(net, images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward(net)
        optimizer.step()
        if after_step is not None:
            after_step(net)
        total += loss.detach()
        batches += 1
    return total.item() / max(batches, 1)


def train_epochs(net, loader, optimizer, epochs: int, scheduler=None, **kwargs) -> list[float]:
    """``epochs`` passes of :func:`train_epoch`, stepping ``scheduler`` once per epoch."""
    losses = []
    for _ in range(epochs):
        losses.append(train_epoch(net, loader, optimizer, **kwargs))
        if scheduler is not None:
            scheduler.step()
    return losses


# ---------------------------------------------------------------------------
# Teachers and losses


def frozen_copy(net: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``net`` with no gradients: a teacher or a reference."""
    teacher = copy.deepcopy(net).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(u || softmax(logits)) with u uniform over classes, batch mean."""
    log_p = F.log_softmax(logits, dim=1)
    n_classes = logits.shape[1]
    return (-math.log(n_classes) - log_p).sum(1).mean() / n_classes


def distillation_kl(student_logits, teacher_logits, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(z_T / T) || softmax(z / T)), batch mean, no T^2 factor."""
    return F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-example entropy of softmax(logits)."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(1)


# ---------------------------------------------------------------------------
# Data helpers: new loaders over the datasets of the given ones


def loader_over(loader, batch_size: int | None = None, shuffle: bool = True, indices=None, seed: int | None = None):
    """A new DataLoader over ``loader``'s dataset (or a subset of it)."""
    dataset = loader.dataset if indices is None else Subset(loader.dataset, list(indices))
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
    return DataLoader(dataset, batch_size=batch_size or loader.batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=loader.collate_fn)


def class_counts(loader, num_classes: int) -> torch.Tensor:
    """How many examples of each class the loader's dataset holds."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for _, labels in DataLoader(loader.dataset, batch_size=1024, collate_fn=loader.collate_fn):
        counts += torch.bincount(labels, minlength=num_classes).double().cpu()
    return counts


def num_classes_of(net: torch.nn.Module) -> int:
    return net.fc.out_features


# ---------------------------------------------------------------------------
# Parameters by layer type, reinitialisation, noise


def conv_layers(net: torch.nn.Module) -> list[tuple[str, torch.nn.Conv2d]]:
    return [(name, m) for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]


def reset_module(module: torch.nn.Module) -> None:
    """PyTorch's default initialisation of one layer."""
    module.reset_parameters()


@torch.no_grad()
def add_gaussian_noise(tensors, std: float) -> None:
    for t in tensors:
        t.add_(torch.randn_like(t) * std)


# ---------------------------------------------------------------------------
# Gradients, saliency and masks


def accumulate_gradients(net, loader, loss_fn, train_mode: bool = True) -> dict[str, torch.Tensor]:
    """Sum over batches of the gradient of ``loss_fn(net, images, labels)``, per parameter."""
    device = device_of(net)
    net.train(train_mode)
    net.zero_grad(set_to_none=True)
    for images, labels in loader:
        loss_fn(net, images.to(device), labels.to(device)).backward()
    grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for n, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    return grads


def gradient_saliency(net, loader, loss_fn, fraction: float) -> dict[str, torch.Tensor]:
    """0/1 masks on the top ``fraction`` of all weights by |gradient of ``loss_fn``| summed
    over ``loader``, the model in eval mode (SalUn's saliency)."""
    grads = accumulate_gradients(net, loader, loss_fn, train_mode=False)
    return top_fraction_mask({name: g.abs() for name, g in grads.items()}, fraction)


def top_fraction_mask(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """1 on the globally largest ``fraction`` of all entries of ``scores``, 0 elsewhere."""
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    k = int(round(fraction * flat.numel()))
    if k <= 0:
        return {n: torch.zeros_like(s) for n, s in scores.items()}
    threshold = torch.topk(flat, k, sorted=True).values[-1]
    masks, taken = {}, 0
    for name, s in scores.items():
        above = s > threshold
        masks[name] = above.to(s.dtype)
        taken += int(above.sum())
    # Ties at the threshold: take them in order until exactly k entries are set.
    for name, s in scores.items():
        if taken >= k:
            break
        at = (s == threshold).reshape(-1).nonzero().squeeze(1)[: k - taken]
        masks[name].view(-1)[at] = 1.0
        taken += at.numel()
    return masks


class FrozenOutsideMask:
    """Keeps parameter entries outside a 0/1 mask exactly where they are.

    Call after every optimiser step: masked-out entries are restored and their
    momentum zeroed, so neither weight decay nor momentum moves them (SalUn's
    current handling; masking gradients alone would let both leak through).
    """

    def __init__(self, net: torch.nn.Module, masks: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer):
        self.params = dict(net.named_parameters())
        self.masks = masks
        self.optimizer = optimizer
        self.snapshot()

    @torch.no_grad()
    def snapshot(self) -> None:
        self.saved = {n: self.params[n].detach().clone() for n in self.masks}

    @torch.no_grad()
    def mask_gradients(self, net=None) -> None:
        for name, mask in self.masks.items():
            if self.params[name].grad is not None:
                self.params[name].grad.mul_(mask)

    @torch.no_grad()
    def restore(self, net=None) -> None:
        for name, mask in self.masks.items():
            p = self.params[name]
            p.copy_(torch.where(mask.bool(), p, self.saved[name]))
            buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                buf.mul_(mask)


def soft_cross_entropy(student_logits, teacher_logits, temperature: float = 1.0) -> torch.Tensor:
    """-sum_c p_T(c) log p_S(c) at temperature T, batch mean."""
    p_teacher = F.softmax(teacher_logits / temperature, dim=1)
    return -(p_teacher * F.log_softmax(student_logits / temperature, dim=1)).sum(1).mean()


def train_steps(net, loader, optimizer, steps: int, budget: "StepBudget | None" = None, **kwargs) -> None:
    """Exactly ``steps`` optimiser steps, cycling over ``loader`` as often as needed
    (fewer when ``budget`` runs out first)."""
    done = 0
    while done < steps and len(loader) and not (budget is not None and budget.spent()):
        chunk = min(len(loader), steps - done)
        train_epoch(net, loader, optimizer, max_steps=chunk, budget=budget, **kwargs)
        done += chunk


def endless_batches(loader):
    """The loader's batches forever, a fresh pass (and shuffle) after each."""
    while True:
        yield from loader


class StepBudget:
    """What a method may still spend, counted per optimiser step: ``steps`` (so a seed
    gives the same model on any machine) and, optionally, wall-clock ``seconds``."""

    def __init__(self, steps: int, seconds: float | None = None):
        self.steps, self.seconds, self.taken = steps, seconds, 0
        self.started = time.perf_counter()

    def spent(self) -> str | None:
        """``"steps"`` or ``"seconds"`` once that limit is reached, else None."""
        if self.taken >= self.steps:
            return "steps"
        if self.seconds is not None and time.perf_counter() - self.started >= self.seconds:
            return "seconds"
        return None

    def take(self) -> bool:
        """Count one step if the budget allows it."""
        if self.spent():
            return False
        self.taken += 1
        return True


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@torch.no_grad()
def loader_losses(net: torch.nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example cross-entropy and correctness of ``net`` (eval mode) over a loader, in
    the loader's order, on the CPU; the train/eval mode is restored."""
    device, was_training = device_of(net), net.training
    net.eval()
    losses, correct = [], []
    for images, labels in loader:
        logits, labels = net(images.to(device)), labels.to(device)
        losses.append(F.cross_entropy(logits.float(), labels, reduction="none"))
        correct.append(logits.argmax(1) == labels)
    net.train(was_training)
    if not losses:
        return torch.zeros(0), torch.zeros(0, dtype=torch.bool)
    return torch.cat(losses).cpu(), torch.cat(correct).cpu()

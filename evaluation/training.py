"""One training function for the original model and the retrained references.

The data stays on the device as one normalised tensor; each step indexes a batch
and augments it with tensor ops. SGD with momentum and a per-step cosine schedule.
On CUDA: channels-last and bf16 autocast.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from data.tensors import random_crop_flip

from .model import make_model


@dataclass(frozen=True)
class TrainRecipe:
    """The starter kit's recipe; epochs and batch size come from the profile."""

    epochs: int
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True  # random crop (padding 4) + horizontal flip

    def to_json(self) -> dict:
        return asdict(self)


def train_model(images, labels, recipe: TrainRecipe, seed: int, num_classes: int = 10, progress=True, desc="train"):
    """Train a fresh ResNet-18 from ``seed`` on normalised ``images`` (already on the device).

    Returns ``(model, seconds)``. The seed fixes the initial weights, the data order and
    the augmentation, so the same call gives the same model on the same device.
    """
    device = images.device
    model = make_model(num_classes, seed=seed).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = max(1, recipe.epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))

    model.train()
    start = time.perf_counter()
    bar = tqdm(total=total_steps, desc=desc, disable=not progress, leave=False, unit="step")
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=generator, device=device)
        for s in range(steps_per_epoch):
            idx = order[s * recipe.batch_size : (s + 1) * recipe.batch_size]
            x, y = images[idx], labels[idx]
            if recipe.augment:
                x = random_crop_flip(x, generator)
            loss = training_step(model, optimizer, x, y)
            schedule.step()
            bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model.eval(), time.perf_counter() - start


def training_step(model, optimizer, x, y) -> float:
    """One SGD step of cross-entropy; bf16 autocast on CUDA. Returns the loss."""
    if x.is_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=x.is_cuda):
        loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()

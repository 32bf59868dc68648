"""The competition starter kit's way of training one model.

Per-image torchvision transforms (RandomCrop with padding 4, RandomHorizontalFlip,
ToTensor, Normalize) on PIL images in a DataLoader with 2 workers, fp32, one model,
``torch.optim.SGD`` with the recipe's per-step cosine schedule.

Two uses: the yardstick of the efficiency gate (``evaluation.retrain_clock``: the
organisers' gate compares a method with retraining as their kit did it, not with
this harness's engine), and the baseline the engine's benchmarks are measured against.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from data import NORMALISED, Pixels

from .model import make_model
from .recipe import TrainRecipe, cosine_factor

STARTER_KIT_WORKERS = 2


class _PilImages(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: bool, pixels: Pixels = NORMALISED):
        import torchvision.transforms as T

        size = images.shape[1:3]
        steps = [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()] if augment else []
        self.transform = T.Compose(steps + [T.ToTensor(), T.Normalize(*pixels.torchvision_normalize())])
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(images: np.ndarray, labels: np.ndarray, recipe: TrainRecipe, seed: int, device: torch.device,
          max_steps: int | None = None, warmup: int = 0, workers: int = STARTER_KIT_WORKERS,
          num_classes: int | None = None, pixels: Pixels = NORMALISED, window: int = 0,
          on_window: Callable[[int], None] | None = None):
    """Train one model the starter kit's way on uint8 ``[n, H, W, 3]`` images.

    Returns ``(model, images_per_second)``; the rate is timed after ``warmup`` steps
    (DataLoader start-up and cuDNN autotuning excluded), so at least ``warmup + 1``
    steps must run. ``max_steps`` stops early. ``workers`` changes only the speed.
    With ``window``, ``on_window(images seen since the warm-up)`` is called, the device
    synchronised, where timing starts, every ``window`` steps after it, and at the end
    (while the loader's workers still run: a caller can read their CPU time).
    """
    device = torch.device(device)
    torch.manual_seed(seed)  # the loader's shuffling and the transforms' draws
    loader = torch.utils.data.DataLoader(_PilImages(images, labels, recipe.augment, pixels),
                                         batch_size=recipe.batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)
    num_classes = num_classes or int(labels.max()) + 1
    model = make_model(num_classes, seed=seed).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    total = recipe.epochs * len(loader)
    if total <= warmup or (max_steps is not None and max_steps <= warmup):
        raise ValueError(f"nothing to time: {min(total, max_steps or total)} steps with {warmup} of warm-up")
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_factor(s, total))
    step, start, seen = 0, None, 0
    for _ in range(recipe.epochs):
        for x, y in loader:
            if step == warmup:
                _sync(device)
                start = time.perf_counter()
            if on_window and step >= warmup and (step - warmup) % window == 0:
                _sync(device)
                on_window(seen)
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            seen += len(y) if step > warmup else 0
            if step == max_steps:
                break
        if step == max_steps:
            break
    _sync(device)
    elapsed = time.perf_counter() - start
    if on_window:
        on_window(seen)
    return model, seen / elapsed

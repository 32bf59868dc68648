"""Images as normalised tensors, ordinary DataLoaders for methods, batched augmentation.

Training and inference in the harness keep a whole split as one tensor on the
device, normalised once, and augment whole batches with tensor ops (as airbench
does): no per-image Python in the hot loops. Methods get plain DataLoaders over the
same tensors, yielding ``(images, labels)`` like the starter kit's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

# The starter kit's normalisation.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CROP_PADDING = 4


def to_tensors(images: np.ndarray, labels: np.ndarray, device="cpu"):
    """uint8 ``[n, H, W, 3]`` images -> normalised float32 ``[n, 3, H, W]``; labels int64."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(CIFAR10_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=device).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous()
    return x, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)


def make_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0):
    """A DataLoader over CPU tensors yielding ``(images, labels)``; shuffling is seeded."""
    generator = torch.Generator().manual_seed(seed)
    dataset = TensorDataset(images.cpu(), labels.cpu())
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """RandomCrop(size, padding) + RandomHorizontalFlip for a whole normalised batch.

    Each image gets its own offset in ``[0, 2 * padding]`` per axis and a coin flip,
    all drawn from ``generator`` (on the images' device). The border is black, as
    torchvision pads the raw image before normalisation.
    """
    n, c, h, w = images.shape
    device = images.device
    black = (-torch.tensor(CIFAR10_MEAN, device=device) / torch.tensor(CIFAR10_STD, device=device)).view(1, 3, 1, 1)
    padded = torch.nn.functional.pad(images - black.to(images.dtype), (padding,) * 4) + black.to(images.dtype)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    rows = (dy[:, None] + torch.arange(h, device=device)[None, :])  # [n, h]
    cols = dx[:, None] + torch.arange(w, device=device)[None, :]  # [n, w]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]

"""Images as normalised tensors and batched augmentation.

Training and inference in the harness keep a whole split as one tensor on the
device, normalised once, and augment whole batches with tensor ops (as airbench
does): no per-image Python in the hot loops. Methods get DataLoaders over the same tensors
(``loaders.py``).
"""

from __future__ import annotations

import numpy as np
import torch

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


def pad_black(images: torch.Tensor, padding: int = CROP_PADDING) -> torch.Tensor:
    """Pad a normalised batch with the black border torchvision's RandomCrop gives the raw image
    (the interior is copied, so it stays exact in any dtype)."""
    n, c, h, w = images.shape
    mean = torch.tensor(CIFAR10_MEAN, device=images.device)
    black = (-mean / torch.tensor(CIFAR10_STD, device=images.device)).to(images.dtype)
    padded = black.view(1, c, 1, 1).repeat(n, 1, h + 2 * padding, w + 2 * padding)
    padded[:, :, padding : padding + h, padding : padding + w] = images
    return padded


def draw_crop_flip(n: int, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """``[3, n]`` int64 from ``generator``: row offset, column offset (each in ``[0, 2 * padding]``)
    and a coin flip (1 = mirror) per image."""
    device = generator.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return torch.stack([dy, dx, flip.long()])


def crop_flip(padded: torch.Tensor, index: torch.Tensor, crops: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Gather images ``index`` (any shape ``S``) of a padded set ``[N, C, H', W']`` and crop/flip
    each by ``crops`` (``[3, *S]``, from ``draw_crop_flip``) in one indexing op: ``[*S, C, size, size]``."""
    device = padded.device
    offsets = torch.arange(size, device=device)
    rows = crops[0][..., None] + offsets
    cols = crops[1][..., None] + offsets
    cols = torch.where(crops[2][..., None].bool(), cols.flip(-1), cols)
    channels = torch.arange(padded.shape[1], device=device)[:, None, None]
    return padded[index[..., None, None, None], channels, rows[..., None, :, None], cols[..., None, None, :]]


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """RandomCrop(size, padding) + RandomHorizontalFlip for a whole normalised batch.

    Each image gets its own offset in ``[0, 2 * padding]`` per axis and a coin flip,
    all drawn from ``generator`` (on the images' device). The border is black, as
    torchvision pads the raw image before normalisation.
    """
    n = images.shape[0]
    index = torch.arange(n, device=images.device)
    return crop_flip(pad_black(images, padding), index, draw_crop_flip(n, generator, padding), images.shape[-1])

"""Images as float tensors in a data set's pixel representation, and batched augmentation.

Training and inference in the harness keep a whole split as one tensor on the
device, encoded once, and augment whole batches with tensor ops (as airbench
does): no per-image Python in the hot loops. Methods get DataLoaders over the same tensors
(``loaders.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# The starter kit's normalisation.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CROP_PADDING = 4


@dataclass(frozen=True)
class Pixels:
    """What a model sees for a uint8 pixel value ``v``: ``(v / scale - mean) / std`` per channel."""

    name: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0-255 float) ``[n, 3, H, W]`` -> float32 in this representation."""
        x = images.float().div_(self.scale)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def black(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """``[3]``: a black pixel (v = 0), the border torchvision's RandomCrop pads the raw image with."""
        mean, std = torch.tensor(self.mean, device=device), torch.tensor(self.std, device=device)
        return ((0 - mean) / std).to(dtype)

    def torchvision_normalize(self) -> tuple[tuple, tuple]:
        """``(mean, std)`` for ``T.Normalize`` after ``T.ToTensor`` (which divides by 255)."""
        return (tuple(m * self.scale / 255 for m in self.mean), tuple(s * self.scale / 255 for s in self.std))


# CIFAR-10 runs: the starter kit's transform (ToTensor, then Normalize with CIFAR-10's statistics).
NORMALISED = Pixels("cifar10-normalised", 255.0, CIFAR10_MEAN, CIFAR10_STD)
# The competition's faces notebook: float 0-255, not normalised (exact: v / 1 - 0 is v).
RAW = Pixels("raw-0-255", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def to_tensors(images: np.ndarray, labels: np.ndarray, device="cpu", pixels: Pixels = NORMALISED):
    """uint8 ``[n, H, W, 3]`` images -> float32 ``[n, 3, H, W]`` in ``pixels``; labels int64."""
    x = pixels.encode(torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2))
    return x, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)


def pad_black(images: torch.Tensor, padding: int = CROP_PADDING, pixels: Pixels = NORMALISED) -> torch.Tensor:
    """Pad a batch in ``pixels`` with the black border torchvision's RandomCrop gives the raw image
    (the interior is copied, so it stays exact in any dtype)."""
    n, c, h, w = images.shape
    black = pixels.black(images.device, images.dtype)
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


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING,
                     pixels: Pixels = NORMALISED) -> torch.Tensor:
    """RandomCrop(size, padding) + RandomHorizontalFlip for a whole batch in ``pixels``.

    Each image gets its own offset in ``[0, 2 * padding]`` per axis and a coin flip,
    all drawn from ``generator`` (on the images' device). The border is black, as
    torchvision pads the raw image before normalisation.
    """
    n = images.shape[0]
    index = torch.arange(n, device=images.device)
    return crop_flip(pad_black(images, padding, pixels), index, draw_crop_flip(n, generator, padding), images.shape[-1])


@dataclass
class SplitTensors:
    """The four splits as float tensors on the device, in the data's pixel representation."""

    retain: tuple
    forget: tuple
    val: tuple
    test: tuple

    @classmethod
    def build(cls, data, splits, device) -> "SplitTensors":
        """``data`` (``ImageData``) cut by ``splits`` (``Splits``), on ``device``."""
        def encoded(x, y, index):
            return to_tensors(x[index], y[index], device, data.pixels)

        return cls(
            retain=encoded(data.x_train, data.y_train, splits.retain),
            forget=encoded(data.x_train, data.y_train, splits.forget),
            val=encoded(data.x_test, data.y_test, splits.val),
            test=encoded(data.x_test, data.y_test, splits.test),
        )

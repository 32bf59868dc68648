"""The loaders a method gets: real DataLoaders that gather a whole batch at once.

A method's loader is an ordinary ``DataLoader`` (``len()``, ``.dataset``,
``.batch_size``, a seeded shuffle, new loaders built over ``loader.dataset``), so
methods written for the starter kit work unchanged. What differs is underneath: the
dataset holds the split as tensors already on the evaluation's device and answers a
batch of indices with one indexing op (``__getitems__``, which ``DataLoader`` calls
for a whole batch), instead of ``batch_size`` ``__getitem__`` calls and a stack. A
batch is therefore already on the device, and a method's ``.to(device)`` is free
rather than a blocking copy.

A batch is a :class:`Batch`, a tuple ``(images, labels)``: it unpacks and indexes like
the starter kit's batches, and answers the competition notebook's ``batch["image"]``
and ``batch["age_group"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate


class Batch(tuple):
    """``(images, labels)`` of one batch, that also answers the competition notebook's
    dict keys: ``batch["image"]`` and ``batch["age_group"]`` (CIFAR-10's labels too).

    One type for both conventions, because ``images, labels = batch`` on a real dict
    would silently give its keys.
    """

    __slots__ = ()
    KEYS = {"image": 0, "age_group": 1}

    def __new__(cls, images: torch.Tensor, labels: torch.Tensor):
        return super().__new__(cls, (images, labels))

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.KEYS:
                raise KeyError(f"{key!r}: a batch has 'image' and 'age_group' (or unpack images, labels = batch)")
            key = self.KEYS[key]
        return super().__getitem__(key)

    def keys(self):
        return self.KEYS.keys()

    @property
    def images(self) -> torch.Tensor:
        return self[0]

    @property
    def labels(self) -> torch.Tensor:
        return self[1]


class GatheredSamples(Sequence):
    """A batch gathered in one op. It is also the sequence of its ``(image, label)``
    samples, so a loader built over the same dataset with PyTorch's default collate
    (a method's own ``DataLoader(loader.dataset, ...)``) still gets what it expects."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


class GatheredTensors(TensorDataset):
    """``TensorDataset(images, labels)`` that answers a list of indices in one gather,
    on the tensors' own device."""

    def __getitems__(self, indices) -> GatheredSamples:
        images, labels = self.tensors
        index = torch.as_tensor(indices, dtype=torch.long)
        if images.is_cuda:
            # Pinned, so the copy of the indices is queued without waiting for the GPU.
            index = index.pin_memory().to(images.device, non_blocking=True)
        return GatheredSamples(images[index], labels[index])


def collate_batch(samples) -> Batch:
    """A gathered batch as it is; anything else through PyTorch's default collate."""
    if isinstance(samples, GatheredSamples):
        return Batch(samples.images, samples.labels)
    return Batch(*default_collate(samples))


def make_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0):
    """A DataLoader over ``images`` and ``labels`` where they are (CPU or the device),
    yielding :class:`Batch` es; its shuffle is seeded, and its batches are those of a plain
    ``DataLoader(TensorDataset(images, labels), ...)`` with the same generator."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(GatheredTensors(images, labels), batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=collate_batch)


def method_loaders(tensors, batch_size: int, seed: int):
    """The three loaders a method sees from ``tensors`` (``SplitTensors``), never the test
    split: retain, forget and validation, shuffled by ``seed``."""
    return (
        make_loader(*tensors.retain, batch_size, shuffle=True, seed=seed),
        make_loader(*tensors.forget, batch_size, shuffle=True, seed=seed + 1),
        make_loader(*tensors.val, batch_size, shuffle=True, seed=seed + 2),
    )

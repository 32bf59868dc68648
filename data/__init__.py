"""Data: CIFAR-10 sources, the split protocol, tensors, loaders and batched augmentation.

Imports neither ``evaluation`` nor ``methods``.
"""

from .cifar10 import DataError, ImageData, load_cifar10, resolve_source
from .datasets import DATASETS, load_dataset
from .loaders import Batch, make_loader, method_loaders
from .splits import Splits, make_splits
from .tensors import (CIFAR10_MEAN, CIFAR10_STD, NORMALISED, RAW, Pixels, SplitTensors, crop_flip, draw_crop_flip,
                      pad_black, random_crop_flip, to_tensors)

__all__ = [
    "Batch",
    "DATASETS",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DataError",
    "ImageData",
    "crop_flip",
    "draw_crop_flip",
    "Splits",
    "SplitTensors",
    "load_cifar10",
    "load_dataset",
    "make_loader",
    "method_loaders",
    "make_splits",
    "NORMALISED",
    "Pixels",
    "RAW",
    "pad_black",
    "random_crop_flip",
    "resolve_source",
    "to_tensors",
]

"""The data sets ``main.py --dataset`` names, loaded from a path."""

from __future__ import annotations

import os

import numpy as np

from .cifar10 import DataError, ImageData, load_cifar10
from .faces import load_faces

DATASETS = ("cifar10", "faces")


def load_dataset(name: str, path: str | os.PathLike | None) -> tuple[ImageData, np.ndarray | None]:
    """``(ImageData, groups)``: groups are person ids for a per-person forget split, or None.
    A missing, unreadable or unknown source raises ``DataError`` with what to pass."""
    if name == "cifar10":
        return load_cifar10(path), None
    if name == "faces":
        if not path:
            raise DataError("--dataset faces needs --data DIR (retain.csv, forget.csv, validation.csv, images/)")
        return load_faces(path)
    raise DataError(f"unknown dataset {name!r}; choose {' or '.join(DATASETS)}")

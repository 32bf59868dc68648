"""CIFAR-10 from a torchvision data root or an ``.npz`` file, as uint8 arrays.

Where the data comes from, in order: ``--data PATH``, the ``UNLEARN_DATA``
environment variable, the default location ``data/cifar10`` in this repository
(a torchvision root, or ``data/cifar10.npz``), then torchvision's download into
that root. When none works, ``DataError`` says what to pass.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from dataclasses import dataclass, replace

import numpy as np

from .tensors import NORMALISED, Pixels

DEFAULT_ROOT = pathlib.Path(__file__).resolve().parent / "cifar10"
DEFAULT_NPZ = pathlib.Path(__file__).resolve().parent / "cifar10.npz"
ENV_VAR = "UNLEARN_DATA"
NUM_CLASSES = 10
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(Exception):
    """A data source is missing or malformed; the message says what to do."""


@dataclass(frozen=True)
class ImageData:
    """Images as uint8 ``[n, 32, 32, 3]`` and int64 labels, train and test, and the pixel
    representation that models train, score and unlearn on (``tensors.Pixels``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    num_classes: int = NUM_CLASSES
    pixels: Pixels = NORMALISED

    def fingerprint(self) -> str:
        """Short hash of every image and label and of the representation: tells two copies of a
        data set apart, and the same images fed two ways (models trained on one are not the
        other's). Computed once (about 0.2 s for CIFAR-10), then kept."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            h = hashlib.sha256(self.pixels.name.encode())
            for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
            cached = self.__dict__["_fingerprint"] = h.hexdigest()[:16]
        return cached


def resolve_source(path: str | os.PathLike | None = None) -> str:
    """The data path to use: the argument, else ``UNLEARN_DATA``, else the default root."""
    if path:
        return str(path)
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    if DEFAULT_NPZ.exists():
        return str(DEFAULT_NPZ)
    return str(DEFAULT_ROOT)


def load_cifar10(path: str | os.PathLike | None = None, download: bool = True) -> ImageData:
    """Load CIFAR-10 from ``path`` (see the module docstring for the search order)."""
    explicit = bool(path) or bool(os.environ.get(ENV_VAR))
    source = pathlib.Path(resolve_source(path)).expanduser()
    if source.suffix == ".npz":
        if not source.is_file():
            raise DataError(f"no CIFAR-10 file at {source}: pass --data PATH or set {ENV_VAR}")
        return _load_npz(source)
    if explicit and not source.exists():
        raise DataError(f"data path {source} does not exist: pass an .npz file or a torchvision CIFAR-10 root")
    return _load_torchvision(source, download=download)


def _load_npz(path: pathlib.Path) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ARRAYS}
    except KeyError as e:
        raise DataError(f"{path} lacks array {e}; expected x_train, y_train, x_test, y_test") from None
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    return from_arrays(arrays, str(path))


def from_arrays(arrays: dict, source: str, fingerprint: str | None = None) -> ImageData:
    """CIFAR-10's ``x_train, y_train, x_test, y_test`` (memory-mapped ones too), checked;
    ``fingerprint``: the one these arrays were found to have before, kept instead of hashed."""
    data = _checked(ImageData(**{k: np.asarray(arrays[k]) for k in ARRAYS}, source=source))
    if fingerprint is not None:
        data.__dict__["_fingerprint"] = fingerprint
    return data


def _load_torchvision(root: pathlib.Path, download: bool) -> ImageData:
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(str(root), train=True, download=download)
        test = CIFAR10(str(root), train=False, download=download)
    except Exception as e:  # noqa: BLE001 - torchvision raises RuntimeError or URLError/OSError offline
        raise DataError(
            f"no CIFAR-10 at {root} and the download failed ({type(e).__name__}); "
            f"pass --data PATH (an .npz with x_train/y_train/x_test/y_test or a torchvision root) "
            f"or set {ENV_VAR}"
        ) from None
    return _checked(
        ImageData(
            x_train=np.asarray(train.data),
            y_train=np.asarray(train.targets, dtype=np.int64),
            x_test=np.asarray(test.data),
            y_test=np.asarray(test.targets, dtype=np.int64),
            source=str(root),
        )
    )


def _checked(data: ImageData) -> ImageData:
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise DataError(f"{data.source}: x_{split} must be uint8 [n, 32, 32, 3], got {x.dtype} {x.shape}")
        if y.shape != (x.shape[0],):
            raise DataError(f"{data.source}: y_{split} must have one label per image")
        if y.size and (y.min() < 0 or y.max() >= data.num_classes):
            raise DataError(
                f"{data.source}: labels must lie in 0..{data.num_classes - 1} to match the model's "
                f"{data.num_classes} classes (found {y.min()}..{y.max()})"
            )
    return replace(data, y_train=data.y_train.astype(np.int64), y_test=data.y_test.astype(np.int64))

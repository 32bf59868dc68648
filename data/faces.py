"""The competition's faces layout: CSVs of image ids and labels, one PNG per image.

A directory holds ``retain.csv``, ``forget.csv`` and ``validation.csv`` (columns
``image_id, age_group, age, person_id``) and ``images/``; image id ``a-b`` is the file
``images/a/b.png``. Labels are ``age_group`` (10 classes). The competition's loaders
yield dicts (``image``, ``age_group``, ...); :class:`FacesDataset` can yield those or
``(image, label)`` tuples, which this kit's methods take.

For ``main.py --dataset faces --data DIR``: the retain and forget rows are the
training pool, split again per person (all images of the chosen people are
forgotten, as the organisers' leave-P-groups-out did), and the validation rows are
halved into validation and test.
"""

from __future__ import annotations

import csv
import pathlib

import numpy as np
from PIL import Image

from .cifar10 import DataError, ImageData
from .tensors import RAW

SPLIT_FILES = ("retain", "forget", "validation")
COLUMNS = ("image_id", "age_group", "age", "person_id")
NUM_CLASSES = 10


def image_path(root, image_id: str) -> pathlib.Path:
    """``a-b`` -> ``root/images/a/b.png``."""
    folder, name = image_id.split("-", 1)
    return pathlib.Path(root) / "images" / folder / f"{name}.png"


def read_rows(root, split: str) -> list[dict]:
    path = pathlib.Path(root) / f"{split}.csv"
    if not path.is_file():
        raise DataError(f"{path} not found: a faces directory holds {', '.join(s + '.csv' for s in SPLIT_FILES)}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not set(COLUMNS) <= set(rows[0]):
        raise DataError(f"{path} must have the columns {', '.join(COLUMNS)}")
    return rows


def load_images(root, rows: list[dict]) -> np.ndarray:
    """uint8 ``[n, H, W, 3]`` images of the rows (RGB)."""
    try:
        return np.stack([np.asarray(Image.open(image_path(root, r["image_id"])).convert("RGB")) for r in rows])
    except FileNotFoundError as e:
        raise DataError(f"missing image: {e.filename}") from None


class FacesDataset:
    """A map-style dataset over rows of the layout; ``as_dict`` gives the competition's batches."""

    def __init__(self, root, rows: list[dict], as_dict: bool = False, transform=None):
        self.root, self.rows, self.as_dict, self.transform = root, rows, as_dict, transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        import torch

        row = self.rows[index]
        image = torch.from_numpy(np.array(Image.open(image_path(self.root, row["image_id"])).convert("RGB")))
        image = image.permute(2, 0, 1).to(torch.float32)
        if self.transform is not None:
            image = self.transform(image)
        label = int(row["age_group"])
        if not self.as_dict:
            return image, label
        return {"image": image, "image_id": row["image_id"], "age_group": label, "age": int(row["age"]),
                "person_id": int(row["person_id"])}


def batch_images_labels(batch):
    """``(images, labels)`` of a batch that is a tuple or a competition-style dict."""
    if isinstance(batch, dict):
        return batch["image"], batch["age_group"]
    return batch[0], batch[1]


def load_faces(root) -> tuple[ImageData, np.ndarray]:
    """The layout as :class:`ImageData` (train = retain + forget rows, test = validation rows)
    and the person id of every training image, for a per-person forget split."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(f"faces directory {root} does not exist")
    train_rows = read_rows(root, "retain") + read_rows(root, "forget")
    test_rows = read_rows(root, "validation")
    labels = {split: np.array([int(r["age_group"]) for r in rows], dtype=np.int64)
              for split, rows in (("train", train_rows), ("test", test_rows))}
    data = ImageData(
        x_train=load_images(root, train_rows),
        y_train=labels["train"],
        x_test=load_images(root, test_rows),
        y_test=labels["test"],
        source=str(root),
        num_classes=NUM_CLASSES,
        pixels=RAW,  # what the competition's notebook fed: float 0-255, not normalised
    )
    from .cifar10 import _checked

    persons = np.array([int(r["person_id"]) for r in train_rows], dtype=np.int64)
    return _checked(data), persons


def write_synthetic_faces(root, n_persons: int = 40, images_per_person: int = 6, n_forget_persons: int = 4,
                          n_validation_persons: int = 8, size: int = 32, seed: int = 0) -> pathlib.Path:
    """Write a synthetic dataset in exactly the competition's layout (no real faces).

    Each "person" is a random colour pattern with an age group; their images are noisy
    variants, so a model can learn something. Returns ``root``.
    """
    rng = np.random.default_rng(seed)
    root = pathlib.Path(root)
    files = {s: [] for s in SPLIT_FILES}
    for person in range(n_persons):
        split = ("forget" if person < n_forget_persons
                 else "validation" if person < n_forget_persons + n_validation_persons else "retain")
        age_group = int(rng.integers(0, NUM_CLASSES))
        base = rng.integers(0, 256, size=(size, size, 3))
        for k in range(images_per_person):
            image_id = f"{person:04d}-{k:03d}"
            path = image_path(root, image_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            noisy = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(path)
            files[split].append((image_id, age_group, int(10 * age_group + rng.integers(0, 10)), person))
    for split, rows in files.items():
        with open(root / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    return root

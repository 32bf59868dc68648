"""The folder the Kaggle notebook reads, written from the kit's own data, split and original.

``python main.py --write-competition-input DIR`` writes the competition's layout
(``data/faces.py``): ``retain.csv``, ``forget.csv`` and ``validation.csv`` (columns
``image_id, age_group, age, person_id``), one PNG per image under ``images/``, and
``original_model.pth``, the stored original's state dict. Rows follow the kit's split
order, so a loader shuffled with a run's seed yields the batches the kit's loader yields.

Beside them, ``unlearn_kit.json`` (``KIT_FILE``) says where the folder comes from: the
profile, split seed, data fingerprint, the pixel representation the original was trained
on, the device class and precision of its engine, and the original's store key. The
notebook reads the representation and the loaders' batch size from it (the competition's
raw 0-255 pixels and batch 64 when the file is absent, as on Kaggle), and copies it beside
``submission.zip``, so that ``main.py --score-submission`` can check a submission against
the references it is scored with.

For CIFAR-10, which has no ages and no persons, ``age_group`` and ``age`` both hold the
class (0-9) and ``person_id`` is the image's own id, so every image is its own person: the
kit forgets CIFAR-10 image by image. Training images are ``train-<index>`` (their index in
CIFAR-10's training set), validation images ``test-<index>`` (in its test set), with
``person_id`` ``index`` and ``50000 + index``. A faces data set keeps its person ids for the
training rows.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib

import numpy as np

from data import ImageData, Splits
from data.faces import COLUMNS, image_path

from .files import write_atomically
from .store import config_key

KIT_FILE = "unlearn_kit.json"
KIT_VERSION = 1
TEST_PERSON_OFFSET = 50_000  # person ids of validation images, after every training image's


def kit_description(zoo) -> dict:
    """What a competition input (and a submission made from it) is tied to: the references it
    can be scored against are those of this profile, seed, data, device class and precision."""
    data, profile = zoo.data, zoo.profile
    return {
        "kit_version": KIT_VERSION,
        "profile": profile.name,
        "num_models": profile.num_models,
        "split_seed": zoo.splits.seed,
        "data_fingerprint": data.fingerprint(),
        "data_source": data.source,
        "num_classes": data.num_classes,
        "pixels": {"name": data.pixels.name, "scale": data.pixels.scale, "mean": list(data.pixels.mean),
                   "std": list(data.pixels.std)},
        "loader_batch_size": profile.loader_batch_size,
        "device": zoo.device.type,
        "precision": zoo.engine_precision(),
        "original_key": config_key(zoo.original_config()),
    }


def rows(data: ImageData, splits: Splits, groups: np.ndarray | None = None) -> dict[str, list[dict]]:
    """The three CSVs' rows, in the kit's split order, with the pixels each image id names."""
    def row(prefix: str, index: int, label: int, person: int) -> dict:
        return {"image_id": f"{prefix}-{index}", "age_group": label, "age": label, "person_id": person}

    def train_rows(indices):
        return [row("train", int(i), int(data.y_train[i]), int(groups[i]) if groups is not None else int(i))
                for i in indices]

    return {
        "retain": train_rows(splits.retain),
        "forget": train_rows(splits.forget),
        "validation": [row("test", int(i), int(data.y_test[i]), TEST_PERSON_OFFSET + int(i)) for i in splits.val],
    }


def write_competition_input(zoo, out_dir, groups: np.ndarray | None = None) -> pathlib.Path:
    """The Kaggle notebook's input folder for ``zoo`` (its original trained first if the
    store lacks it). Every file is written whole; a rerun rewrites them."""
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    out = pathlib.Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    model, _ = zoo.original()
    split_rows = rows(zoo.data, zoo.splits, groups)
    images = {"train": zoo.data.x_train, "test": zoo.data.x_test}
    everything = [r for split in split_rows.values() for r in split]
    for folder in {r["image_id"].split("-", 1)[0] for r in everything}:
        (out / "images" / folder).mkdir(exist_ok=True)
    for r in tqdm(everything, desc="images", disable=not zoo.progress, unit="image"):
        folder, index = r["image_id"].split("-", 1)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(images[folder][int(index)])).save(buffer, format="PNG")
        write_atomically(image_path(out, r["image_id"]), buffer.getvalue())
    for split, split_rows_ in split_rows.items():
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(split_rows_)
        write_atomically(out / f"{split}.csv", text.getvalue())
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_atomically(out / "original_model.pth", lambda f: torch.save(state, f))
    write_atomically(out / KIT_FILE, json.dumps(kit_description(zoo), indent=1) + "\n")
    return out

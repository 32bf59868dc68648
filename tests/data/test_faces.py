"""data/faces.py: the competition's faces layout, its dataset and its per-person split."""

import csv

import pytest
import torch
from torch.utils.data import DataLoader

from data import DataError
from data.faces import FacesDataset, batch_images_labels, image_path, load_faces, read_rows, write_synthetic_faces


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    return write_synthetic_faces(tmp_path_factory.mktemp("faces"), n_persons=30, images_per_person=5)


def test_synthetic_layout_is_the_competitions(faces_dir):
    for split in ("retain", "forget", "validation"):
        with open(faces_dir / f"{split}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["image_id", "age_group", "age", "person_id"]
        a, b = rows[0]["image_id"].split("-")
        assert (faces_dir / "images" / a / f"{b}.png").is_file()
        assert all(0 <= int(r["age_group"]) < 10 for r in rows)
    assert image_path(faces_dir, "0007-002") == faces_dir / "images" / "0007" / "002.png"


def test_dataset_yields_tuples_or_competition_dicts(faces_dir):
    rows = read_rows(faces_dir, "retain")
    images, labels = next(iter(DataLoader(FacesDataset(faces_dir, rows), batch_size=4)))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    batch = next(iter(DataLoader(FacesDataset(faces_dir, rows, as_dict=True), batch_size=4)))
    assert {"image", "image_id", "age_group", "age", "person_id"} <= set(batch)
    for b in (batch, (images, labels)):
        x, y = batch_images_labels(b)
        assert x.shape == (4, 3, 32, 32) and y.shape == (4,)


def test_load_faces_and_per_person_split(faces_dir):
    from data import make_splits

    data, persons = load_faces(faces_dir)
    assert data.x_train.shape[1:] == (32, 32, 3) and len(persons) == len(data.y_train)
    splits = make_splits(len(data.y_train), len(data.y_test), seed=0, groups=persons)
    forgotten = set(persons[splits.forget])
    assert forgotten and not forgotten & set(persons[splits.retain])
    assert splits.forget.size >= 0.1 * len(persons)


def _notebook_loaders(faces_dir, batch_size):
    """The exported notebook's own data cell, run against ``faces_dir``."""
    import json
    import os

    import notebook_utils

    cells = json.loads(notebook_utils.TEMPLATE.read_text())["cells"]
    data_cell = next("".join(c["source"]) for c in cells if "def get_dataset" in "".join(c["source"]))
    scope = {"os": os, "INPUT_DIR": str(faces_dir)}
    exec(data_cell, scope)
    return scope["get_dataset"](batch_size)


def test_faces_pipeline_batches_have_the_range_and_structure_of_the_notebooks(faces_dir):
    """A method gets the same batches locally (``--dataset faces``) as in the exported
    notebook: a 2-tuple that answers ["image"] and ["age_group"], float32 [B, 3, H, W]
    images of raw 0-255 values (not normalised), int64 labels; and the very same pixels
    for the same image."""
    from data import SplitTensors, make_splits, method_loaders
    from data.faces import read_rows

    data, persons = load_faces(faces_dir)
    splits = make_splits(len(data.y_train), len(data.y_test), seed=0, groups=persons)
    tensors = SplitTensors.build(data, splits, "cpu")
    local = next(iter(method_loaders(tensors, 16, seed=0)[0]))
    theirs = next(iter(_notebook_loaders(faces_dir, 16)[0]))
    for batch in (local, theirs):
        images, labels = batch
        assert isinstance(batch, tuple) and len(batch) == 2
        assert batch["image"] is images and batch["age_group"] is labels
        assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
        assert torch.equal(images, images.round()) and images.min() >= 0 and images.max() <= 255
        assert images.max() > 200  # 0-255, not [0, 1] or normalised
    # image by image: the notebook's decoded training images (retain.csv then forget.csv,
    # the order of the local pool) are exactly what the local splits hold
    notebook_sets = _notebook_loaders(faces_dir, 16)
    pool = torch.stack([img.float() for loader in notebook_sets[:2] for img in loader.dataset.images])
    assert len(pool) == len(read_rows(faces_dir, "retain")) + len(read_rows(faces_dir, "forget"))
    assert torch.equal(tensors.retain[0], pool[splits.retain])
    assert torch.equal(tensors.forget[0], pool[splits.forget])


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="retain.csv"):
        load_faces(tmp_path)

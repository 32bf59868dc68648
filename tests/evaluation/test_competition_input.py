"""evaluation/competition_input.py: the notebook's input, written from the kit's zoo, gives the
notebook the kit's data, batches and runs."""

import csv
import json
import os

import numpy as np
import pytest
import torch

import notebook_utils as nu
from data import method_loaders
from evaluation.competition_input import KIT_FILE, kit_description, write_competition_input
from evaluation.runner import run_method
from evaluation.scoring import score_states
from evaluation.store import config_key
from methods.hyperparameters import build
from tests.fixtures.starter_kit_method import TrainsACopy
from tests.helpers import sandbox

RUNS = 2


@pytest.fixture(scope="module")
def written(trained_mini_zoo, tmp_path_factory):
    return write_competition_input(trained_mini_zoo, tmp_path_factory.mktemp("competition") / "input")


def notebook_namespace(input_dir, work, code: str | None = None, cells: slice = slice(None)) -> dict:
    """The exported notebook's cells run in this process (``code``: its method cell), as a
    kernel runs them, on ``input_dir``."""
    notebook = nu.build_notebook("trains_a_copy", code=code or "def unlearning(net, *loaders):\n    pass")
    env = {"UNLEARN_INPUT_DIR": str(input_dir), "UNLEARN_CHECKPOINT_DIR": str(work / "tmp"),
           "UNLEARN_OUTPUT_DIR": str(work / "working"), "UNLEARN_N_CHECKPOINTS": str(RUNS)}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        namespace = {}
        for cell in notebook.cells[cells]:
            if cell.cell_type == "code":
                exec(compile(cell.source, "<notebook>", "exec"), namespace)
        return namespace
    finally:
        for k, v in before.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_the_folder_holds_the_kits_split_original_and_origin(written, mini_zoo):
    zoo = mini_zoo
    with open(written / "retain.csv", newline="") as f:
        retain = list(csv.DictReader(f))
    assert list(retain[0]) == ["image_id", "age_group", "age", "person_id"]
    assert [r["image_id"] for r in retain] == [f"train-{i}" for i in zoo.splits.retain]  # the kit's order
    assert all(int(r["age_group"]) == int(r["age"]) == zoo.data.y_train[int(r["person_id"])] for r in retain)
    with open(written / "validation.csv", newline="") as f:
        validation = list(csv.DictReader(f))
    assert [r["image_id"] for r in validation] == [f"test-{i}" for i in zoo.splits.val]
    assert int(validation[0]["person_id"]) == 50_000 + zoo.splits.val[0]
    original = torch.load(written / "original_model.pth", weights_only=True)
    assert all(torch.equal(original[k], v) for k, v in zoo.original()[0].state_dict().items())
    kit = json.loads((written / KIT_FILE).read_text())
    assert kit == kit_description(zoo) and kit["original_key"] == config_key(zoo.original_config())
    assert kit["pixels"]["name"] == "cifar10-normalised" and kit["loader_batch_size"] == zoo.profile.loader_batch_size


def test_each_runs_batches_in_the_notebook_are_the_kits(written, mini_zoo, tmp_path):
    """Element by element, for every loader of runs 0 and 1: the same images in the kit's
    representation (read from PNG and encoded by the notebook), the same labels, the same order."""
    namespace = notebook_namespace(written, tmp_path, cells=slice(0, 3))  # parameters and loaders
    assert namespace["BATCH_SIZE"] == mini_zoo.profile.loader_batch_size
    for run in range(RUNS):
        kit = method_loaders(mini_zoo.tensors, mini_zoo.profile.loader_batch_size, run)
        notebook = namespace["get_dataset"](namespace["BATCH_SIZE"], seed=run)
        for ours, theirs in zip(kit, notebook):
            batches = list(zip(ours, theirs, strict=True))
            assert batches
            for (images, labels), batch in batches:
                assert torch.equal(images, batch["image"]) and torch.equal(labels, batch["age_group"])


def test_a_deterministic_method_leaves_the_same_model_through_the_notebook(written, mini_zoo, tmp_path):
    """The starter kit's own shape (it returns a trained copy) run by the exported notebook, cell
    by cell in this process, and by the kit: the same scores for the same run index."""
    code = nu.export_class_code(TrainsACopy, "trains_a_copy")
    namespace = notebook_namespace(written, tmp_path, code)
    runs = json.loads((tmp_path / "working" / "submission_runs.json").read_text())
    assert [r["index"] for r in runs["runs"]] == list(range(RUNS)) and all(r["returned_model"] for r in runs["runs"])
    assert json.loads((tmp_path / "working" / KIT_FILE).read_text()) == json.loads((written / KIT_FILE).read_text())
    assert namespace["PIXELS"]["name"] == "cifar10-normalised"
    for i in range(RUNS):
        state = torch.load(tmp_path / "tmp" / f"unlearned_checkpoint_{i}.pth", weights_only=True)
        notebook = score_states([state], mini_zoo.tensors, 10)[0].to_arrays()
        kit = run_method(lambda: build(TrainsACopy, "trains_a_copy"), sandbox(mini_zoo), run_seed=i).scores.to_arrays()
        for name, value in kit.items():
            np.testing.assert_array_equal(notebook[name], value, err_msg=f"run {i}: {name}")

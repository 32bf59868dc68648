"""Exported notebooks run in a real kernel on the competition's input layout."""

import os
import zipfile

import nbformat
import pytest
import torch
import torchvision
from nbclient import NotebookClient

import notebook_utils as nu
from data.faces import write_synthetic_faces
from methods import all_method_handlers
from tests.fixtures import helper_method, starter_kit_method

N_CHECKPOINTS = 2


# Methods whose default budget is long on this tiny set run with a smaller one (exported by
# --set, as a user would); every other method runs with its defaults.
SMALL_BUDGETS = {"saliency_guided": ["max_steps=8", "check_examples=32"]}


@pytest.fixture(scope="module")
def competition_input(tmp_path_factory):
    """The competition's input folder: CSVs, images and a small original model."""
    root = write_synthetic_faces(tmp_path_factory.mktemp("kaggle") / "input", n_persons=24, images_per_person=4)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), root / "original_model.pth")
    return root


def execute(notebook, input_dir, work, monkeypatch, count=N_CHECKPOINTS):
    """Runs ``notebook`` on ``input_dir`` with ``count`` checkpoints (a cell may set its own)."""
    monkeypatch.setenv("UNLEARN_INPUT_DIR", str(input_dir))
    monkeypatch.setenv("UNLEARN_CHECKPOINT_DIR", str(work / "tmp"))
    monkeypatch.setenv("UNLEARN_OUTPUT_DIR", str(work / "working"))
    monkeypatch.setenv("UNLEARN_N_CHECKPOINTS", str(count))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    return work / "working" / "submission.zip"


def check_checkpoints(work, input_dir, count=N_CHECKPOINTS):
    original = torch.load(input_dir / "original_model.pth", weights_only=True)
    paths = sorted((work / "tmp").glob("unlearned_checkpoint_*.pth"))
    assert len(paths) == count
    for path in paths:
        net = torchvision.models.resnet18(weights=None, num_classes=10)
        net.load_state_dict(torch.load(path, weights_only=True))
        state = net.state_dict()
        assert any(not torch.equal(state[k], original[k]) for k in original), f"{path.name} equals the original"
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    with zipfile.ZipFile(work / "working" / "submission.zip") as archive:
        assert sorted(os.path.basename(n) for n in archive.namelist()) == [p.name for p in paths]


def exported_notebooks(tmp_path) -> list[tuple[str, object, int]]:
    """``(name, notebook, checkpoints)``: three methods from outside ``methods/``, exported as a
    user would, at two checkpoints (first, so that no other method's helpers are defined
    when they run), then every shipped method's notebook, validated, at one. The input has
    no kit file, as on Kaggle."""
    # a helper and a constant, from a file of its own
    code = nu.export_class_code(helper_method.ShrinkThenFinetune)
    assert "SHRINK = 0.9" in code and "def shrink_weights" in code and "def train_epoch" in code
    assert "methods" not in code.replace("# Method", "")  # nothing is imported from the kit
    notebooks = [("shrink_then_finetune", nu.build_notebook("shrink_then_finetune", code=code), N_CHECKPOINTS)]
    # the starter kit's shape: ``__init__(self, name)``, a module constant, a helper,
    # ``sample["image"]`` (the notebook's batches answer dict keys as the kit's do)
    code = nu.export_class_code(starter_kit_method.MyMethod, "my_method")
    assert "LEARNING_RATE = 1e-3" in code and "def make_optimizer" in code
    notebooks.append(("my_method", nu.build_notebook("my_method", code=code), N_CHECKPOINTS))
    # the starter kit's own example: it trains a copy of the model and returns it
    code = nu.export_class_code(starter_kit_method.TrainsACopy, "trains_a_copy")
    assert "def unlearning(original_model, retain_loader, forget_loader, val_loader, phase='dev'):" in code
    notebooks.append(("trains_a_copy", nu.build_notebook("trains_a_copy", code=code), N_CHECKPOINTS))
    for name in sorted(all_method_handlers()):
        path = nu.write_notebook(name, tmp_path / f"{name}.ipynb", settings=SMALL_BUDGETS.get(name))
        notebook = nbformat.read(str(path), as_version=4)
        nbformat.validate(notebook)
        notebooks.append((name, notebook, 1))
    return notebooks


def test_every_method_exports_validates_and_runs(competition_input, tmp_path, monkeypatch):
    """Every exported notebook's method cell and the notebook's own checkpoint cell run, one
    method after another, in one kernel (one start, the data loaded once), each method
    writing its own checkpoints to its own folders."""
    notebooks = exported_notebooks(tmp_path)
    combined = None
    for name, notebook, count in notebooks:
        method_at = next(i for i, c in enumerate(notebook.cells) if nu.METHOD_CELL_TAG in c.metadata.get("tags", []))
        setup, method_and_run = notebook.cells[:method_at], notebook.cells[method_at:]
        if combined is None:
            combined = nbformat.v4.new_notebook(metadata=notebook.metadata, cells=setup)
        folders = (f"CHECKPOINT_DIR = {str(tmp_path / name / 'tmp')!r}\n"
                   f"OUTPUT_DIR = {str(tmp_path / name / 'working')!r}\n"
                   f"N_CHECKPOINTS = {count}")
        combined.cells += [nbformat.v4.new_code_cell(folders), *method_and_run]
    execute(combined, competition_input, tmp_path, monkeypatch)
    for name, _, count in notebooks:
        check_checkpoints(tmp_path / name, competition_input, count=count)


def test_empty_txt_gives_an_empty_submission(competition_input, tmp_path, monkeypatch):
    empty_input = tmp_path / "input"
    empty_input.mkdir()
    (empty_input / "empty.txt").write_text("")
    submission = execute(nu.build_notebook("finetune"), empty_input, tmp_path, monkeypatch)
    assert submission.exists() and submission.stat().st_size == 0
    assert not (tmp_path / "tmp").exists()

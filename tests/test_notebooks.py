"""Every method exported as the Kaggle notebook, and really executed on a synthetic faces set."""

import ast
import os
import subprocess
import sys
import zipfile

import nbformat
import pytest
import torch
import torchvision
from nbclient import NotebookClient

import notebook_utils as nu
from data.faces import write_synthetic_faces
from methods import all_method_handlers
from tests.fixtures import checkout_imports, clashing_helpers, helper_method, starter_kit_method

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


def test_every_method_exports_validates_and_runs(competition_input, tmp_path, monkeypatch):
    """Every shipped method's notebook validates; then each one's method cell and the
    notebook's own checkpoint cell run, one method after another, in one kernel (one start,
    the data loaded once), each method writing to its own folders."""
    names = sorted(all_method_handlers())
    combined = None
    for name in names:
        settings = SMALL_BUDGETS.get(name)
        notebook = nbformat.read(str(nu.write_notebook(name, tmp_path / f"{name}.ipynb", settings=settings)),
                                 as_version=4)
        nbformat.validate(notebook)
        method_at = next(i for i, c in enumerate(notebook.cells) if nu.METHOD_CELL_TAG in c.metadata.get("tags", []))
        setup, method_and_run = notebook.cells[:method_at], notebook.cells[method_at:]
        if combined is None:
            combined = nbformat.v4.new_notebook(metadata=notebook.metadata, cells=setup)
        folders = (f"CHECKPOINT_DIR = {str(tmp_path / name / 'tmp')!r}\n"
                   f"OUTPUT_DIR = {str(tmp_path / name / 'working')!r}")
        combined.cells += [nbformat.v4.new_code_cell(folders), *method_and_run]
    execute(combined, competition_input, tmp_path, monkeypatch, count=1)
    for name in names:
        check_checkpoints(tmp_path / name, competition_input, count=1)


def test_method_with_helper_and_constant_exports_and_runs(competition_input, tmp_path, monkeypatch):
    code = nu.export_class_code(helper_method.ShrinkThenFinetune)
    assert "SHRINK = 0.9" in code and "def shrink_weights" in code and "def train_epoch" in code
    assert "methods" not in code.replace("# Method", "")  # nothing is imported from the kit
    notebook = nu.build_notebook("shrink_then_finetune", code=code)
    execute(notebook, competition_input, tmp_path, monkeypatch)
    check_checkpoints(tmp_path, competition_input)


def test_a_starter_kit_method_exports_and_runs(competition_input, tmp_path, monkeypatch):
    """``__init__(self, name)``, a module constant, a helper, ``sample["image"]``: the
    notebook's batches answer dict keys as the kit's do."""
    code = nu.export_class_code(starter_kit_method.MyMethod, "my_method")
    assert "LEARNING_RATE = 1e-3" in code and "def make_optimizer" in code
    execute(nu.build_notebook("my_method", code=code), competition_input, tmp_path, monkeypatch)
    check_checkpoints(tmp_path, competition_input)


def test_set_values_reach_the_notebook_code():
    default, tuned = nu.export_method_code("kookmin"), nu.export_method_code("kookmin", ["lr=0.002"])
    assert "0.002" in tuned and "0.002" not in default
    with pytest.raises(nu.ExportError, match="no hyperparameter 'bogus'"):
        nu.export_method_code("kookmin", ["bogus=1"])


@pytest.mark.parametrize(
    "cls, message",
    [(helper_method.UsesSelfAsValue, "uses `self` as a value"), (helper_method.NonLiteralDefault, "not a literal")],
)
def test_unexportable_method_fails_with_a_message(cls, message):
    with pytest.raises(nu.ExportError, match=message):
        nu.export_class_code(cls)


def test_exported_code_keeps_scopes_properties_state_and_comments():
    """A constant a nested function shadows is still exported; a @property becomes its
    value; a list mutated in place lives in STATE across calls; comments survive."""
    code = nu.export_class_code(helper_method.ExporterCases)
    assert "LIMIT = 3" in code and "# this comment must survive the export" in code
    namespace = {}
    exec(code, namespace)
    namespace["unlearning"](None, None, None, None)
    assert namespace["STATE"]["log"] == [(5, 3, 0.02)]


@pytest.mark.slow
def test_helpers_from_anywhere_in_the_checkout_are_copied_never_imported(tmp_path):
    """A helper from training/ (not only methods/) comes into the cell as code, and the cell runs
    where no module of the checkout can be imported, as on Kaggle."""
    code = nu.export_class_code(checkout_imports.CosineFinetune, "cosine_finetune")
    imported = {alias.name if isinstance(node, ast.Import) else node.module
                for node in ast.walk(ast.parse(code)) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert imported == {"math", "torch", "torch.nn.functional"}
    assert "def cosine_factor(step: int, total_steps: int)" in code and "def sgd(" in code
    run = code + """
import sys, torch, torchvision
torch.manual_seed(0)
net = torchvision.models.resnet18(num_classes=10)
before = net.fc.weight.clone()
batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
unlearning(net, [batch, batch, batch], [batch], [batch])
kit = sorted({m.split(".")[0] for m in sys.modules} & {"training", "methods", "data"})
print(not torch.equal(before, net.fc.weight), kit)
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", run], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "[]"], "it trains, and imports no module of the checkout"


@pytest.mark.parametrize("cls, message", [
    (checkout_imports.ModuleAttribute, r"uses the module training\.recipe as 'recipe'; the notebook cannot import it"),
    (checkout_imports.LocalImport, r"the exported code imports training\.recipe \(line \d+ of the cell\)"),
])
def test_an_import_of_the_checkout_that_cannot_be_copied_is_refused(cls, message):
    with pytest.raises(nu.ExportError, match=message):
        nu.export_class_code(cls)


def test_two_helpers_of_one_name_are_refused():
    with pytest.raises(nu.ExportError, match="two different 'train_epoch'"):
        nu.export_class_code(clashing_helpers.ClashingHelpers)


def test_empty_txt_gives_an_empty_submission(competition_input, tmp_path, monkeypatch):
    empty_input = tmp_path / "input"
    empty_input.mkdir()
    (empty_input / "empty.txt").write_text("")
    submission = execute(nu.build_notebook("finetune"), empty_input, tmp_path, monkeypatch)
    assert submission.exists() and submission.stat().st_size == 0
    assert not (tmp_path / "tmp").exists()


def test_template_is_in_sync_and_never_overwritten(tmp_path):
    before = nu.TEMPLATE.read_bytes()
    template = nbformat.read(str(nu.TEMPLATE), as_version=4)
    cell = next(c for c in template.cells if nu.METHOD_CELL_TAG in c.metadata.get("tags", []))
    assert cell.source == nu.export_method_code("finetune").rstrip("\n"), "regenerate the template's method cell"
    with pytest.raises(nu.ExportError, match="template"):
        nu.write_notebook("finetune", nu.TEMPLATE)
    nu.write_notebook("salun", tmp_path / "salun.ipynb")
    assert nu.TEMPLATE.read_bytes() == before


def test_cli_all_writes_one_notebook_per_method(tmp_path, capsys):
    assert nu.main(["--all", "--out-dir", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert written == sorted(f"run-unlearn-{n}.ipynb" for n in all_method_handlers())
    assert nu.main(["-m", "nope", "-o", str(tmp_path / "x.ipynb")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.ipynb").exists()

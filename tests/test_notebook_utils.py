"""notebook_utils.py: what the exporter copies, refuses and writes (the notebooks themselves run in
e2e/)."""

import ast
import json
import os
import subprocess
import sys

import pytest

import notebook_utils as nu
from methods import all_method_handlers
from tests.fixtures import checkout_imports, clashing_helpers, helper_method


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


def test_template_is_in_sync_and_never_overwritten(tmp_path):
    before = nu.TEMPLATE.read_bytes()
    cells = json.loads(before)["cells"]
    cell = next(c for c in cells if nu.METHOD_CELL_TAG in c["metadata"].get("tags", []))
    expected = nu.export_method_code("finetune").rstrip("\n")
    assert "".join(cell["source"]) == expected, "regenerate the template's method cell"
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

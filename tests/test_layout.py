"""The kit's layout: imports run one way, no cycles, checkpoints loaded with weights only."""

import ast
import re

from tests.helpers import REPO

PACKAGES = ("data", "training", "evaluation", "methods")


# What each package may import of the kit besides itself.
ALLOWED = {"data": set(), "training": {"data"}, "evaluation": {"data", "training"}, "methods": {"data", "training"}}


def _module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def kit_files() -> dict:
    files = {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}
    return files | {"main": REPO / "main.py", "notebook_utils": REPO / "notebook_utils.py"}


def imports_of(name: str, path, known) -> set[str]:
    """The kit modules ``path`` imports anywhere in it, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return {m for m in found if m in known and m != name}


def import_graph() -> dict:
    files = kit_files()
    return {name: imports_of(name, path, files) for name, path in files.items()}


def test_each_package_imports_only_what_lies_below_it():
    broken = []
    for name, imported in import_graph().items():
        package = name.split(".")[0]
        if package not in ALLOWED:
            continue  # main.py and notebook_utils.py sit on top
        for module in sorted(imported):
            target = module.split(".")[0]
            if target != package and target not in ALLOWED[package]:
                broken.append(f"{name} imports {module}")
    assert broken == []


def test_no_two_files_import_each_other_even_through_others():
    graph, cycles, state = import_graph(), [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_reader_sees_relative_imports_and_imports_inside_functions(tmp_path):
    # the rules above are only as good as the reader: it must catch both ways a rule is broken
    module = tmp_path / "judge.py"
    module.write_text("from .metric import x\n\ndef f():\n    from methods.hyperparameters import values\n")
    known = {"evaluation.metric", "methods.hyperparameters"}
    assert imports_of("evaluation.judge", module, known) == known


def test_checkpoints_are_only_loaded_with_weights_only():
    calls = []
    for path in list(REPO.glob("*.py")) + list(REPO.glob("*/*.py")) + list(REPO.glob("*.ipynb")):
        if path.parts[-2] == "tests":
            continue
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(([^\n]*)", text):
            calls.append((path.name, match.group(1)))
    assert calls, "no checkpoint loading found at all"
    for name, args in calls:
        assert "weights_only=True" in args, f"{name}: torch.load({args}"

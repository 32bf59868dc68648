"""Turn a registered method into the Kaggle submission notebook.

    python notebook_utils.py -m NAME [-o OUT.ipynb]    # default: notebooks/run-unlearn-NAME.ipynb
    python notebook_utils.py --all                     # one notebook per registered method

The notebook is the template ``run-unlearn-finetune.ipynb`` (read, never edited in
place) with its method cell replaced: ``run()``'s body becomes
``unlearning(net, retain_loader, forget_loader, val_loader)``, and everything it
needs comes along: the helper functions, classes and constants it uses from its own
file and from any other module of this checkout (``methods/``, ``training/``, ``data/``,
transitively), their library imports, and the constructor's default values in place of
``self.x``. Kaggle has none of the checkout's modules, so the cell never imports one: what
cannot be copied from them (a module used as a whole, ``import training.recipe``) is
refused. Attributes the method assigns
while running live in a ``STATE`` dict. What cannot be exported (``self`` used as a
value, ``super()``, a default that is not a literal) raises :class:`ExportError`
naming it, so no broken notebook is ever written.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib.util
import inspect
import pathlib
import symtable
import sys
import textwrap

REPO = pathlib.Path(__file__).resolve().parent
TEMPLATE = REPO / "run-unlearn-finetune.ipynb"
NOTEBOOK_DIR = REPO / "notebooks"
METHOD_CELL_TAG = "unlearning"
TITLE_CELL_TAG = "title"
ENTRY_POINT = "unlearning"
STATE = "STATE"


class ExportError(Exception):
    """The method cannot be turned into a notebook; the message says what and why."""


# ---------------------------------------------------------------------------
# Source analysis


def _free_names(node: ast.AST) -> set[str]:
    """The global names a definition reads, by Python's own scope analysis (``symtable``):
    a name assigned only inside a nested function is still a global for the code that
    reads it outside, and a name bound by the definition itself is not free."""
    top = symtable.symtable(ast.unparse(node), "<export>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    names = {s.get_name() for s in top.get_symbols() if s.is_referenced()}

    def nested(table) -> None:
        for child in table.get_children():
            names.update(s.get_name() for s in child.get_symbols() if s.is_global() and (s.is_referenced()
                                                                                         or s.is_declared_global()))
            nested(child)

    nested(top)
    return names - bound - set(dir(builtins))


def _top_level(tree: ast.Module, name: str):
    """The module-level statement that defines ``name``, if any."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return node
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return node
    return None


def _in_checkout(module_name: str | None) -> bool:
    """Whether ``module_name`` is code of this checkout (the kit's packages, a method file
    beside them) rather than an installed library, which a Kaggle notebook can import too.
    A library installed in a virtual environment inside the checkout is still a library."""
    if not module_name:
        return False
    top = module_name.split(".")[0]
    module = sys.modules.get(top)
    try:
        spec = getattr(module, "__spec__", None) or importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    locations = [spec.origin] if spec and spec.origin not in (None, "built-in", "frozen") else []
    locations += list(spec.submodule_search_locations or []) if spec else []  # a package without __init__.py
    for location in locations:
        path = pathlib.Path(location).resolve()
        if REPO in path.parents and not {"site-packages", "dist-packages"} & set(path.parts):
            return True
    return False


def _import_line(tree: ast.Module, name: str) -> str | None:
    """An import statement of a library (not of this checkout) that binds ``name``, or None."""
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if (a.asname or a.name.split(".")[0]) == name and not _in_checkout(a.name):
                    return f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__"
              and not _in_checkout(node.module)):
            for a in node.names:
                if (a.asname or a.name) == name:
                    return f"from {node.module} import {a.name}" + (f" as {a.asname}" if a.asname else "")
    return None


def _segment(source: str, node: ast.AST) -> str:
    """The node's source with its decorators."""
    lines = source.splitlines()
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[first - 1 : node.end_lineno])


class _Module:
    """A module's source, syntax tree and namespace, parsed once."""

    _cache: dict[str, "_Module"] = {}

    def __init__(self, module):
        self.module = module
        self.source = inspect.getsource(module)
        self.tree = ast.parse(self.source)

    @classmethod
    def of(cls, module) -> "_Module":
        if module.__name__ not in cls._cache:
            cls._cache[module.__name__] = cls(module)
        return cls._cache[module.__name__]


# ---------------------------------------------------------------------------
# Rewriting the method's class into functions


class _SelfRewriter(ast.NodeTransformer):
    """``self.method`` -> ``method``; ``self.attr`` -> its default value or ``STATE['attr']``."""

    def __init__(self, exporter: "_Exporter", where: str):
        self.exporter, self.where = exporter, where

    def visit_Attribute(self, node: ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            return self.exporter.resolve_self_attribute(node, self.where)
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name):
        if node.id == "self":
            raise ExportError(f"{self.exporter.name}: {self.where} uses `self` as a value, which a notebook "
                              "function cannot")
        return node

    def visit_Call(self, node: ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id == "super":
            raise ExportError(f"{self.exporter.name}: {self.where} calls super(), which cannot be exported")
        return self.generic_visit(node)


class _Exporter:
    def __init__(self, name: str, cls: type, settings: dict | None = None):
        from methods.hyperparameters import build

        self.name, self.cls, self.settings = name, cls, dict(settings or {})
        self.home = _Module.of(sys.modules[cls.__module__])
        self.class_node = next(
            (n for n in self.home.tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__), None
        )
        if self.class_node is None:
            raise ExportError(f"{name}: class {cls.__name__} is not defined at the top level of its module")
        # Properties are read like attributes: the notebook holds their value (resolve_self_attribute).
        self.methods = {n.name: n for n in self.class_node.body if isinstance(n, ast.FunctionDef)
                        and not any(isinstance(d, ast.Name) and d.id == "property" for d in n.decorator_list)}
        if "run" not in self.methods:
            raise ExportError(f"{name}: {cls.__name__} does not define run()")
        try:  # the values the notebook runs with: defaults, and --set where given
            self.instance = build(cls, name, settings)
        except (TypeError, ValueError) as e:
            raise ExportError(f"{name}: {cls.__name__} cannot be built from its defaults ({e})") from None
        self.defaults = vars(self.instance)
        # A list, dict or set the method mutates in place (self.log.append) must persist
        # between calls, as assigned attributes do: both live in STATE.
        mutable = {a for a, v in self.defaults.items() if isinstance(v, (list, dict, set))}
        self.state = self._assigned_attributes() | mutable
        self.sources: dict[str, object] = {}  # exported name -> the object it stands for
        self.functions: dict[str, str] = {}  # exported method name -> code
        self.pending = ["run"]
        self.definitions: dict[str, tuple[str, str]] = {}  # name -> (module, code), in dependency order
        self.imports: set[str] = set()

    def _assigned_attributes(self) -> set[str]:
        assigned = set()
        for fname, f in self.methods.items():
            if fname == "__init__":
                continue
            for n in ast.walk(f):
                if (isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                        and isinstance(n.value, ast.Name) and n.value.id == "self"):
                    assigned.add(n.attr)
        return assigned

    def resolve_self_attribute(self, node: ast.Attribute, where: str) -> ast.AST:
        attr = node.attr
        if attr in self.methods:
            if attr not in self.functions and attr not in self.pending:
                self.pending.append(attr)
            return ast.copy_location(ast.Name(id=attr, ctx=node.ctx), node)
        if attr in self.state:
            return ast.copy_location(
                ast.Subscript(value=ast.Name(id=STATE, ctx=ast.Load()), slice=ast.Constant(attr), ctx=node.ctx), node
            )
        if attr in self.defaults or hasattr(self.cls, attr):
            # A @property is evaluated on the built method: the notebook holds its value.
            value = self.defaults[attr] if attr in self.defaults else getattr(self.instance, attr)
            return ast.copy_location(self._literal(attr, value, where), node)
        raise ExportError(f"{self.name}: {where} reads self.{attr}, which has no default value")

    def _literal(self, attr: str, value, where: str) -> ast.AST:
        text = repr(value)
        try:
            if ast.literal_eval(text) != value:
                raise ValueError
        except (ValueError, SyntaxError):
            raise ExportError(
                f"{self.name}: {where} uses self.{attr} = {text[:60]}, which is not a literal a notebook can hold"
            ) from None
        return ast.parse(text, mode="eval").body

    def export(self) -> str:
        while self.pending:
            method = self.pending.pop(0)
            node = self.methods[method]
            where = f"{self.cls.__name__}.{method}()"
            code = self._function_source(node, ENTRY_POINT if method == "run" else method, where)
            self.functions[method] = code
            func = ast.parse(code).body[0]
            for free in sorted(_free_names(func) - set(self.methods) - {STATE}):
                self._require(free, self.home, where)
        return self._render()

    def _function_source(self, node: ast.FunctionDef, name: str, where: str) -> str:
        """The method as a plain function, edited in its own text so that its comments
        and layout survive: ``self.x`` replaced (``_SelfRewriter`` decides by what), the
        ``self`` parameter and ``@staticmethod`` dropped, the name changed."""
        checked = _SelfRewriter(self, where).visit(ast.parse(ast.unparse(node)).body[0])  # refuses what cannot go
        checked.name = name
        checked.args.args = [a for a in checked.args.args if a.arg != "self"]
        checked.decorator_list = [d for d in checked.decorator_list
                                  if not (isinstance(d, ast.Name) and d.id == "staticmethod")]
        body_start = node.body[0].lineno
        if body_start == node.lineno:  # a one-line def: no layout to keep, the rewritten tree will do
            return ast.unparse(checked)
        lines = [line.encode() for line in self.home.source.splitlines()]
        edits = []  # (line, start byte, end byte, text); one line each: a self.x never spans lines
        for n in ast.walk(node):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
                    and n.lineno == n.end_lineno):
                text = ast.unparse(self.resolve_self_attribute(n, where))
                edits.append((n.lineno, n.col_offset, n.end_col_offset, text))
        for line, start, end, text in sorted(edits, reverse=True):
            lines[line - 1] = lines[line - 1][:start] + text.encode() + lines[line - 1][end:]
        checked.body = [ast.Pass()]
        head = ast.unparse(checked).rsplit("\n", 1)[0]  # decorators and the def line, without the pass
        body = textwrap.dedent("\n".join(line.decode() for line in lines[body_start - 1 : node.end_lineno]))
        return head + "\n" + textwrap.indent(body, "    ")

    def _require(self, name: str, where_module: _Module, needed_by: str) -> None:
        """Bring ``name`` (as seen from ``where_module``) into the notebook, with what it needs."""
        namespace = vars(where_module.module)
        if name not in namespace:
            raise ExportError(f"{self.name}: {needed_by} uses {name!r}, which is not defined in "
                              f"{where_module.module.__name__}")
        obj = namespace[name]
        if self.sources.setdefault(name, obj) is not obj:  # one notebook namespace cannot hold both
            raise ExportError(f"{self.name}: two different {name!r} are needed ({needed_by} uses the one in "
                              f"{where_module.module.__name__}); rename one of them")
        if name in self.definitions:
            return
        line = _import_line(where_module.tree, name)
        if line is not None:
            self.imports.add(line)
            return
        node = _top_level(where_module.tree, name)
        if node is not None:
            if isinstance(node, ast.ClassDef) and node.name == self.cls.__name__:
                raise ExportError(f"{self.name}: {needed_by} refers to its own class {name}")
            self.definitions[name] = None  # placeholder: guards against cycles, keeps dependency order below
            for free in sorted(_free_names(node) - {name}):
                self._require(free, where_module, name)
            del self.definitions[name]
            self.definitions[name] = (where_module.module.__name__, _segment(where_module.source, node))
            return
        if inspect.ismodule(obj):  # a module of the checkout (a library's import line was found above)
            raise ExportError(f"{self.name}: {needed_by} uses the module {obj.__name__} as {name!r}; the notebook "
                              f"cannot import it (Kaggle has no {obj.__name__.split('.')[0]} package) and copies "
                              f"only names: import them instead, `from {obj.__name__} import ...`")
        # Imported from another module of the checkout: take its definition from there.
        home = sys.modules.get(getattr(obj, "__module__", "") or "")
        if home is None or not _in_checkout(home.__name__) or home is where_module.module:
            raise ExportError(f"{self.name}: {needed_by} uses {name!r} from {getattr(home, '__name__', '?')}, "
                              "which cannot be exported")
        source_module = _Module.of(home)
        if getattr(obj, "__name__", name) != name:
            raise ExportError(f"{self.name}: {name!r} is imported under another name, which cannot be exported")
        self._require(name, source_module, needed_by)

    def _render(self) -> str:
        which = "its default hyperparameters" if not self.settings else "hyperparameters set by --set: " + ", ".join(
            f"{k}={v!r}" for k, v in self.settings.items())
        header = [
            f"# Method {self.name!r} ({self.cls.__module__}.{self.cls.__name__}) with {which},",
            "# exported by notebook_utils.py. Edit the kit's method file, not this cell.",
        ]
        parts = ["\n".join(header), "\n".join(sorted(self.imports))]
        # Dependency order: a constant that refers to a function comes after it.
        parts += [code for _, code in self.definitions.values()]
        if self.state:
            initial = {a: self.defaults[a] for a in sorted(self.state) if a in self.defaults}
            for attr, value in initial.items():
                self._literal(attr, value, "the initial state")
            parts.append(f"# Attributes the method updates while it runs (e.g. logs).\n{STATE} = {initial!r}")
        helpers = [code for method, code in self.functions.items() if method != "run"]
        parts += helpers + [self.functions["run"]]
        return "\n\n\n".join(p for p in parts if p.strip()) + "\n"


def export_method_code(name: str, settings: list[str] | None = None) -> str:
    """The notebook code cell for the registered method ``name``, with ``settings``
    (``KEY=VALUE`` strings, as ``main.py --set`` takes them) in place of its defaults."""
    from methods import get_method
    from methods.hyperparameters import SettingError, parse_settings

    try:
        cls = get_method(name)
        typed = parse_settings(cls, settings or [])
    except KeyError as e:
        raise ExportError(str(e.args[0])) from None
    except SettingError as e:
        raise ExportError(f"{name}: {e}") from None
    return export_class_code(cls, name, typed)


def export_class_code(cls: type, name: str | None = None, settings: dict | None = None) -> str:
    """The notebook code cell for any BaseMethod subclass defined at the top level of a file."""
    name = name or cls.__name__
    code = _Exporter(name, cls, settings).export()
    try:
        tree = ast.parse(code, f"<{name} notebook cell>")
    except SyntaxError as e:  # a bug of the exporter, never a notebook that cannot run
        raise ExportError(f"{name}: the exported code does not compile ({e})") from None
    for node in ast.walk(tree):  # an import inside a function travels with its text
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
        for module in filter(_in_checkout, modules):
            raise ExportError(f"{name}: the exported code imports {module} (line {node.lineno} of the cell), which "
                              f"Kaggle does not have; import what it needs at the top of the method's file, "
                              f"`from {module} import ...`, and the exporter copies it")
    return code


# ---------------------------------------------------------------------------
# Notebooks


def build_notebook(name: str, template: pathlib.Path = TEMPLATE, code: str | None = None,
                   settings: list[str] | None = None):
    """A new notebook: the template with ``name``'s method cell. The template file is not touched."""
    import nbformat

    code = export_method_code(name, settings) if code is None else code
    notebook = nbformat.read(str(template), as_version=4)
    tagged = [c for c in notebook.cells if METHOD_CELL_TAG in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ExportError(f"template {template} must have exactly one cell tagged {METHOD_CELL_TAG!r}")
    tagged[0].source = code.rstrip("\n")
    for cell in notebook.cells:
        if TITLE_CELL_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = _title(name)
    nbformat.validate(notebook)
    return notebook


def _title(name: str) -> str:
    return (
        f"# Unlearning submission: `{name}`\n\n"
        "Generated from the unlearning starter kit by `notebook_utils.py`. It reads the competition's "
        "data, runs `unlearning()` once per checkpoint from the original model, and zips the checkpoints "
        "into `submission.zip`."
    )


def write_notebook(name: str, out_path: pathlib.Path | None = None, template: pathlib.Path = TEMPLATE,
                   out_dir: pathlib.Path = NOTEBOOK_DIR, settings: list[str] | None = None) -> pathlib.Path:
    import nbformat

    out_path = pathlib.Path(out_path) if out_path else pathlib.Path(out_dir) / f"run-unlearn-{name}.ipynb"
    if out_path.resolve() == pathlib.Path(template).resolve():
        raise ExportError(f"refusing to overwrite the template {template}: choose another -o")
    from evaluation.files import write_atomically

    notebook = build_notebook(name, template, settings=settings)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(notebook)
    return write_atomically(out_path, text if text.endswith("\n") else text + "\n")  # as nbformat.write ends it


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Export a registered method as the Kaggle submission notebook.")
    parser.add_argument("-m", "--method", help="registered method name")
    parser.add_argument("-o", "--out", help="output .ipynb (default: notebooks/run-unlearn-NAME.ipynb)")
    parser.add_argument("--all", action="store_true", help="one notebook per registered method")
    parser.add_argument("--out-dir", default=str(NOTEBOOK_DIR), help="folder for the notebooks (default: notebooks/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="with -m: a hyperparameter, as main.py --set takes it (repeatable)")
    args = parser.parse_args(argv)
    from methods import all_method_handlers

    if args.all == bool(args.method):
        print("error: pass -m NAME or --all", file=sys.stderr)
        return 2
    names = list(all_method_handlers()) if args.all else [args.method]
    if args.all and (args.out or args.set):
        print("error: -o and --set go with -m, not --all", file=sys.stderr)
        return 2
    from evaluation.files import PathUnusable, check_writable

    try:  # before any export: a folder that cannot be written is one line, not a traceback after the work
        check_writable(pathlib.Path(args.out).parent if args.out else args.out_dir, "-o" if args.out else "--out-dir")
    except PathUnusable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        try:
            path = write_notebook(name, args.out, out_dir=pathlib.Path(args.out_dir), settings=args.set)
        except ExportError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {path}")
    return 2 if failed and not args.all else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())

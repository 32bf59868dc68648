"""benchmarks/tune_method.py: its rows."""

import importlib.util

from tests.helpers import REPO


def _tool():
    spec = importlib.util.spec_from_file_location("tune_method", REPO / "benchmarks" / "tune_method.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rows_are_the_defaults_each_try_and_the_grid_product_once():
    rows = _tool().configurations(["a=1", "b=2,a=1", "a=1,b=2"], ["c=1,2", "d=3"])
    assert rows == [[], ["a=1"], ["b=2", "a=1"], ["c=1", "d=3"], ["c=2", "d=3"]]

"""The registry of unlearning methods.

Add a method by dropping a file in this folder with a ``BaseMethod`` subclass
decorated with ``@register("name")``; every module here is imported on first use,
so the name shows up in ``python main.py --list``. Or, as in the starter kit, import
the class at the bottom of this file and add it to ``METHODS``.
"""

from __future__ import annotations

import importlib
import pkgutil

from .BaseMethod import BaseMethod

_REGISTRY: dict[str, type[BaseMethod]] = {}
_NOT_METHODS = {"BaseMethod", "common", "hyperparameters"}
_BROKEN: dict[str, str] = {}  # module name -> its import error: one bad file must not hide the others


def register(name: str):
    """Class decorator: make ``cls`` available as ``name``."""

    def add(cls):
        if not (isinstance(cls, type) and issubclass(cls, BaseMethod)):
            raise TypeError(f"{cls!r} must be a BaseMethod subclass to be registered")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} is already registered by {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return add


def _import_all() -> None:
    _BROKEN.clear()  # a file fixed or removed since is no longer named
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_METHODS and not info.name.startswith("_"):
            try:
                importlib.import_module(f"{__name__}.{info.name}")
            except Exception as e:  # noqa: BLE001 - any error in a user's file, reported with its name
                _BROKEN[info.name] = f"{type(e).__name__}: {e}"


def broken_methods() -> dict[str, str]:
    """``{file: error}`` of the method files that failed to import (``methods/NAME.py``)."""
    _import_all()
    return {f"methods/{name}.py": error for name, error in sorted(_BROKEN.items())}


def all_method_handlers() -> dict[str, type[BaseMethod]]:
    """``{name: class}`` of every registered method, sorted by name: the decorated ones and
    those listed in ``METHODS`` below. Build one with ``all_method_handlers()[name](name)``
    (the starter kit's way) or ``hyperparameters.build``."""
    _import_all()
    return dict(sorted((_REGISTRY | METHODS).items()))


def get_method(name: str) -> type[BaseMethod]:
    handlers = all_method_handlers()
    if name not in handlers:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(handlers)}")
    return handlers[name]


# The starter kit's way to register, beside the decorator: import your class and add it
# here, e.g. ``from .my_method import MyMethod`` and ``"my_method": MyMethod``.
METHODS: dict[str, type] = {
}

__all__ = ["BaseMethod", "METHODS", "all_method_handlers", "broken_methods", "get_method", "register"]

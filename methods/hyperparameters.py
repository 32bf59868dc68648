"""A method's hyperparameters: declared once, set from the command line, recorded.

A shipped method declares them as dataclass fields (``BaseMethod``); a method written
another way declares them as constructor parameters with defaults. Either way
:func:`declared` reads them, :func:`parse_settings` types ``KEY=VALUE`` strings from
the declaration, and :func:`build` constructs the method the one way that serves both
the starter kit's ``MyMethod(name)`` and a constructor of keyword hyperparameters: the
name is passed when the constructor's first parameter is called ``name``.

Value syntax for ``--set``: numbers and words as written; ``true``/``false`` for
booleans; ``none`` for an optional value; comma-separated items for a tuple
(``full_lrs=2e-4,2e-4,1e-3``).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass


class SettingError(ValueError):
    """A ``--set`` key or value the method does not accept; the message lists the valid keys."""


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: object  # the declared annotation, resolved
    default: object


def _is_own_dataclass(cls: type) -> bool:
    """Declared with ``@dataclass`` itself, not merely inheriting ``BaseMethod``'s fields
    under a hand-written constructor."""
    return "__dataclass_fields__" in vars(cls)


def declared(cls: type) -> dict[str, Hyperparameter]:
    """``cls``'s hyperparameters in declaration order: init fields of a dataclass (but the
    name), else the constructor's parameters that have defaults."""
    hints = _hints(cls)
    if _is_own_dataclass(cls):
        return {f.name: Hyperparameter(f.name, hints.get(f.name, object), f.default)
                for f in dataclasses.fields(cls)
                if f.init and f.name != "name" and f.default is not dataclasses.MISSING}
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: Hyperparameter(p.name, hints.get(p.name, type(p.default)), p.default)
            for p in params if p.name != "name" and p.default is not inspect.Parameter.empty}


def _hints(cls: type) -> dict:
    target = cls if _is_own_dataclass(cls) else cls.__init__
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: the default's type stands in
        return {}


def takes_name(cls: type) -> bool:
    """True when ``cls(...)``'s first parameter is ``name`` (the starter kit's convention)."""
    params = list(inspect.signature(cls).parameters)
    return bool(params) and params[0] == "name"


def build(cls: type, name: str, settings: dict | None = None):
    """An instance of ``cls`` registered as ``name``, with ``settings`` overriding defaults."""
    settings = settings or {}
    return cls(name, **settings) if takes_name(cls) else cls(**settings)


def values(method) -> dict:
    """The hyperparameters a built method holds (what a report records)."""
    return {k: getattr(method, k, h.default) for k, h in declared(type(method)).items()}


def parse_settings(cls: type, items: list[str]) -> dict:
    """``["lr=0.002", "epochs=4"]`` as typed values for ``cls``; :class:`SettingError` for
    an unknown key or a value that does not fit its declaration."""
    params = declared(cls)
    valid = ", ".join(f"{h.name} ({_type_name(h.type)}, default {h.default!r})" for h in params.values()) or "none"
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in params:
            raise SettingError(f"{cls.__name__} has no hyperparameter {key!r}; valid: {valid}")
        try:
            out[key] = parse_value(params[key].type, text.strip())
        except ValueError as e:
            raise SettingError(f"{key}={text!r}: {e}; valid: {valid}") from None
    return out


def parse_value(annotation, text: str):
    """``text`` as a value of ``annotation`` (see the module docstring for the syntax)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if text.lower() == "none" and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(arg, text)
            except ValueError:
                continue
        raise ValueError(f"expected {_type_name(annotation)}")
    if origin is tuple or annotation is tuple:
        item_type = args[0] if args else float
        return tuple(parse_value(item_type, part.strip()) for part in text.split(",") if part.strip())
    if annotation is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError("expected true or false")
        return text.lower() == "true"
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number") from None
    return text


def _type_name(annotation) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def describe(cls: type) -> str:
    """One line of ``name=default`` pairs, for ``--list``."""
    return ", ".join(f"{h.name}={h.default!r}" for h in declared(cls).values()) or "(no hyperparameters)"

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

A field may also declare where ``tune.py`` searches it: ``lr: float = tuned(0.1, 0.01, 0.5,
log=True)`` (a range, on a log or linear scale, integer for an ``int`` field) or ``tuned("a",
choices=("a", "b"))``. A field without one is not tuned. :func:`parse_space` reads the same
from the command line (``--space KEY=LOW:HIGH[:log]``, ``--space KEY=a|b|c``) for a method
that declares none.
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
        if not sep:
            raise SettingError(f"{item!r} is not KEY=VALUE (for example lr=0.01); valid keys: {valid}")
        if key not in params:
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
    """One line of ``name=default`` pairs (with the range ``tune.py`` searches), for ``--list``."""
    ranges = spaces(cls)
    return ", ".join(f"{h.name}={h.default!r}" + (f" [{ranges[h.name]}]" if h.name in ranges else "")
                     for h in declared(cls).values()) or "(no hyperparameters)"


# ---------------------------------------------------------------------------
# Search spaces


@dataclass(frozen=True)
class Space:
    """Where ``tune.py`` searches one hyperparameter: ``low..high`` (``log``: on a log scale;
    ``integer``: whole numbers), or one of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None

    def __post_init__(self):
        if self.choices is not None:
            if len(self.choices) < 2 or len(set(self.choices)) < len(self.choices):
                raise ValueError(f"choices must be two or more different values, got {self.choices!r}")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a range needs low < high, got {self.low!r}:{self.high!r}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low!r}")

    def holds(self, value) -> bool:
        """Whether ``value`` lies in this space (a --try's value outside it is held fixed)."""
        if self.choices is not None:
            return value in self.choices
        if not isinstance(value, (int, float)) or isinstance(value, bool) or (self.integer and value != int(value)):
            return False
        return self.low <= value <= self.high

    def suggest(self, trial, name: str):
        """The value an Optuna ``trial`` draws for ``name``."""
        if self.choices is not None:
            return trial.suggest_categorical(name, list(self.choices))
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def __str__(self) -> str:
        if self.choices is not None:
            return "|".join(map(str, self.choices))
        return f"{self.low:g}:{self.high:g}" + (":log" if self.log else "")


def tuned(default, low=None, high=None, *, log: bool = False, choices: tuple | None = None):
    """A dataclass field with ``default`` that ``tune.py`` searches over ``low..high`` or ``choices``."""
    space = Space(low, high, log, isinstance(default, int) and not isinstance(default, bool) and choices is None,
                  None if choices is None else tuple(choices))
    return dataclasses.field(default=default, metadata={"space": space})


def spaces(cls: type) -> dict[str, Space]:
    """The search spaces ``cls`` declares, by field name (empty for a method declaring none)."""
    if not _is_own_dataclass(cls):
        return {}
    return {f.name: f.metadata["space"] for f in dataclasses.fields(cls) if f.init and "space" in f.metadata}


def parse_space(cls: type, items: list[str]) -> dict[str, Space]:
    """``["lr=1e-4:1e-1:log", "freeze=restore|gradients"]`` as spaces of ``cls``'s
    hyperparameters, typed from their declarations; :class:`SettingError` otherwise."""
    params = declared(cls)
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in params:
            raise SettingError(f"--space {item!r}: {cls.__name__} has no hyperparameter {key!r}; expected "
                               f"KEY=LOW:HIGH[:log] or KEY=a|b|c with KEY one of {', '.join(params) or 'none'}")
        annotation = params[key].type
        try:
            if "|" in text:
                out[key] = Space(choices=tuple(parse_value(annotation, c.strip()) for c in text.split("|")))
                continue
            parts = [part.strip() for part in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
                raise ValueError("expected LOW:HIGH, LOW:HIGH:log or a|b|c")
            low, high = (parse_value(annotation, part) for part in parts[:2])
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                raise ValueError(f"a range needs numbers, and {key} is {_type_name(annotation)}")
            out[key] = Space(low, high, len(parts) == 3, isinstance(low, int) and isinstance(high, int))
        except ValueError as e:
            raise SettingError(f"--space {item!r}: {e}") from None
    return out

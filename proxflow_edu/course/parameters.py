"""Checks of a notebook's papermill parameters against their defaults, so that a bad value fails at once.

Each notebook ends its ``parameters`` cell with ``DEFAULTS = parameter_defaults(globals())`` and checks the
values right after it (after the cell papermill injects) with ``check_parameters(globals(), DEFAULTS)``:

* the type must be the default's (an int is accepted for a float; a list or tuple must hold the default's
  element type);
* a number whose default is > 0 must be > 0, one whose default is 0 must be >= 0 (also inside lists).

``papermill -p name value`` passes numbers and booleans but leaves anything else as text: ``-p dims "[7]"``
passes the string "[7]". Lists need YAML, ``-y 'dims: [7]'``; the error says so.
"""
from __future__ import annotations

import types
from typing import Any

SIMPLE = (bool, int, float, str, list, tuple, type(None))


def parameter_defaults(namespace: dict[str, Any]) -> dict[str, Any]:
    """The public variables of simple type (numbers, text, lists, tuples, None) defined so far in ``namespace``."""
    return {name: value for name, value in namespace.items()
            if not name.startswith("_") and isinstance(value, SIMPLE) and not isinstance(value, types.ModuleType)}


def _kind(default: Any) -> str:
    return {bool: "a bool", int: "an integer", float: "a number", str: "a string", list: "a list",
            tuple: "a list"}.get(type(default), type(default).__name__)


def _check_value(name: str, value: Any, default: Any) -> None:
    if default is None:
        return
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    else:
        sequence = isinstance(default, (list, tuple)) and isinstance(value, (list, tuple))
        ok = isinstance(value, type(default)) or sequence
    if not ok:
        hint = ""
        if isinstance(value, str):
            example = (value if value.lstrip().startswith(("[", "("))
                       else list(default) if isinstance(default, tuple) else default)
            hint = f"; papermill's -p passes it as text: give it as YAML, e.g. papermill ... -y '{name}: {example}'"
        raise ValueError(f"parameter {name} must be {_kind(default)} like its default {default!r}, "
                         f"got {value!r} ({type(value).__name__}){hint}")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if default > 0 and not value > 0:
            raise ValueError(f"parameter {name} must be > 0 (default {default!r}), got {value!r}")
        if default == 0 and not value >= 0:
            raise ValueError(f"parameter {name} must be >= 0 (default {default!r}), got {value!r}")
    if isinstance(default, (list, tuple)) and default:
        if not value:
            raise ValueError(f"parameter {name} must not be empty (default {default!r})")
        for i, item in enumerate(value):
            _check_value(f"{name}[{i}]", item, default[0])


def check_parameters(namespace: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Raise ValueError naming the first parameter whose value does not fit its default (see the module docstring)."""
    for name, default in defaults.items():
        if name in namespace:
            _check_value(name, namespace[name], default)

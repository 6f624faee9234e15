"""Building blocks of config classes: field markers that say what a field holds, and validators.

A step type's config class is a frozen attrs class. Markers in a field's
metadata tell the parser, the validator and the graph renderer what the field
holds, so a step type declared outside flowkit gets the same checks:

- ``target()``: a step id (an edge of the graph, checked to exist);
- ``EXPR``: JSON with ``$references``, resolved when the step runs;
- ``PATH``: a reference path such as ``items`` or ``$order.lines``;
- ``OUTPUT``: the ctx key the step writes (defined for later steps);
- ``KEY``: the YAML key, when it differs from the field name (``as``);
- ``STEPS``: nested steps (a loop's ``do``, a parallel step's ``branches``).

Imports only :mod:`flowkit.frozen`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..frozen import FrozenDict, freeze

__all__ = [
    "EXPR",
    "KEY",
    "OUTPUT",
    "PATH",
    "STEPS",
    "TARGET",
    "frozen_mapping",
    "integer",
    "names",
    "non_empty",
    "number",
    "optional_non_empty",
    "optional_text",
    "target",
]

TARGET = "flowkit.target"
EXPR = "flowkit.expr"
PATH = "flowkit.path"
OUTPUT = "flowkit.output"
KEY = "flowkit.key"
STEPS = "flowkit.steps"

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def non_empty(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{attribute.name}' must be a non-empty string")


def optional_non_empty(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: None or a non-empty string."""
    if value is not None:
        non_empty(inst, attribute, value)


optional_text: Validator = attrs.validators.optional(attrs.validators.instance_of(str))
"""Validator: None or a string."""


def number(minimum: float, *, optional: bool = False, exclusive: bool = False) -> Validator:
    """Validator: a number (not a bool) of at least (or, ``exclusive``, more than) ``minimum``."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"'{attribute.name}' must be a number, got {value!r}")
        if value < minimum or (exclusive and value == minimum):
            bound = "greater than" if exclusive else "at least"
            raise ValueError(f"'{attribute.name}' must be {bound} {minimum:g}, got {value!r}")

    return check


def integer(minimum: int) -> Validator:
    """Validator: an integer (not a bool) of at least ``minimum``."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"'{attribute.name}' must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"'{attribute.name}' must be at least {minimum}, got {value!r}")

    return check


def names(value: Any) -> tuple[str, ...]:
    """Converter: one name or several, as a tuple."""
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def frozen_mapping(value: Any) -> FrozenDict[str, Any]:
    """Converter: a mapping of JSON data, frozen."""
    frozen = freeze(value)
    if not isinstance(frozen, FrozenDict):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    return frozen


def target() -> Any:
    """An optional field naming another step (``next``-like): an edge of the graph."""
    return attrs.field(default=None, validator=optional_non_empty, metadata={TARGET: True})

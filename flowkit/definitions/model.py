"""Typed, frozen workflow definitions (SPEC §3): a workflow, its inputs and its steps.

A step's ``config`` is an instance of the config class of its type; each step
type declares its config class in its own module (:mod:`flowkit.steps`). JSON
values inside a definition are frozen (see :mod:`flowkit.frozen`), so every
definition is hashable and compares structurally.

Imports only :mod:`flowkit.frozen` and :mod:`flowkit.definitions.fields`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import attrs

from ..frozen import FrozenDict, freeze
from .fields import EXPR, PATH, SECONDS, duration, non_empty, optional_text, target

__all__ = [
    "INPUT_TYPES",
    "Condition",
    "InputDef",
    "SourceLocation",
    "StepDef",
    "WorkflowDef",
    "as_steps",
]

INPUT_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")


@attrs.frozen(kw_only=True)
class SourceLocation:
    """Where a definition came from, for error messages (not part of equality)."""

    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file or "<unknown>"
        where = f"{self.file}:{self.line}" if self.file else f"line {self.line}"
        return where if self.column is None else f"{where}:{self.column}"


@attrs.frozen(kw_only=True)
class Condition:
    """``{field, op, value}``: ``field`` is a path without ``$``; ``value`` may hold references."""

    field: str = attrs.field(validator=non_empty, metadata={PATH: True})
    op: str = attrs.field(validator=non_empty)
    value: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})


@attrs.frozen(kw_only=True, cache_hash=True)
class StepDef:
    """One step: ``id``, ``type``, the typed ``config`` of that type, and its edges."""

    id: str = attrs.field(validator=non_empty)
    type: str = attrs.field(validator=non_empty)
    config: Any
    next: str | None = target()
    on_error: str | None = target()
    source: SourceLocation | None = attrs.field(default=None, eq=False, hash=False, repr=False)


def as_steps(value: Iterable[StepDef]) -> tuple[StepDef, ...]:
    """Converter: steps as a tuple (a loop's body, a parallel step's branches)."""
    return tuple(value)


def _input_type(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in INPUT_TYPES:
        close = difflib.get_close_matches(str(value), INPUT_TYPES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"'type' must be one of {', '.join(INPUT_TYPES)}, got {value!r}{hint}")


@attrs.frozen(kw_only=True)
class InputDef:
    """A declared workflow input."""

    name: str = attrs.field(validator=non_empty)
    type: str = attrs.field(default="string", validator=_input_type)
    required: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    default: Any = attrs.field(default=None, converter=freeze)
    description: str | None = attrs.field(default=None, validator=optional_text)


def _inputs(value: Iterable[InputDef]) -> tuple[InputDef, ...]:
    return tuple(value)


def _extensions(value: Mapping[str, Any]) -> FrozenDict[str, Any]:
    return FrozenDict(value)


@attrs.frozen(kw_only=True, cache_hash=True)
class WorkflowDef:
    """A whole workflow: metadata, inputs and steps (the first step is the entry point)."""

    id: str = attrs.field(validator=non_empty)
    steps: tuple[StepDef, ...] = attrs.field(converter=as_steps)
    name: str | None = attrs.field(default=None, validator=optional_text)
    version: str = attrs.field(default="1.0", validator=non_empty)
    description: str | None = attrs.field(default=None, validator=optional_text)
    timeout: Annotated[float | None, SECONDS] = duration(default=None, positive=True)
    inputs: tuple[InputDef, ...] = attrs.field(default=(), converter=_inputs)
    extensions: FrozenDict[str, Any] = attrs.field(factory=FrozenDict, converter=_extensions)
    source: SourceLocation | None = attrs.field(default=None, eq=False, hash=False, repr=False)
    _by_id: dict[str, StepDef] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        by_id: dict[str, StepDef] = {}
        for step in self.steps:
            by_id.setdefault(step.id, step)
        object.__setattr__(self, "_by_id", by_id)

    def step(self, step_id: str) -> StepDef | None:
        """The top-level step called ``step_id``, or None."""
        return self._by_id.get(step_id)

    @property
    def title(self) -> str:
        """The display name: ``name`` if set, else ``id``."""
        return self.name or self.id

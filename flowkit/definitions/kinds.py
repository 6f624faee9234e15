"""What the definitions layer knows of step types, and the registries it reads.

A step type (:class:`flowkit.abc.StepType`) says how a step of its type is
parsed, validated and drawn: its config class, where it may stand, the names it
defines, the graphs nested in it. :class:`StepKind` is that part of the
contract; the parser, the validator and the graph renderer read it through
:func:`kind`. Extensions also add top-level keys (:class:`Extension`) and
whole-workflow checks.

Plugins are modules named by ``flowkit.steps`` entry points; they are imported
the first time a name is looked up that nothing registered yet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol

import attrs

from .fields import OUTPUT
from .model import StepDef

__all__ = [
    "BODY",
    "BRANCHES",
    "Extension",
    "Nested",
    "ReferenceCheck",
    "StepKind",
    "checks",
    "defines_of",
    "extension",
    "extensions",
    "kind",
    "kinds",
    "output_schema",
    "outputs",
    "register_check",
    "register_extension",
    "register_kind",
]

BODY: Literal["body"] = "body"
"""A nested graph run as a sequence: a step without ``next`` continues with the one after it."""
BRANCHES: Literal["branches"] = "branches"
"""Nested single steps run side by side (each one a branch)."""


@attrs.frozen(kw_only=True)
class Nested:
    """A graph inside a step: a loop's body, a parallel step's branches.

    Attributes:
        steps: the nested steps.
        kind: :data:`BODY` or :data:`BRANCHES`.
        variables: names defined only inside (a loop's ``item`` and ``index``).
        title: how the graph renderer labels the group.
    """

    steps: tuple[StepDef, ...]
    kind: Literal["body", "branches"]
    variables: tuple[str, ...] = ()
    title: str = ""


class ReferenceCheck(Protocol):
    """What a step type's ``check_references`` uses to check the references of one step."""

    def fields(self, value: Any, defined: Iterable[str]) -> None:
        """Check every marked field of an attrs object (EXPR, PATH, nested objects)."""

    def value(self, value: Any, defined: Iterable[str]) -> None:
        """Check the references in a JSON value."""


class StepKind(Protocol):
    """The part of a step type that definitions need (see :class:`flowkit.abc.StepType`)."""

    name: str
    config: type[Any]
    in_loop: bool
    in_parallel: bool
    halts: bool
    terminal: bool
    falls_through: bool
    sets: tuple[str, ...]
    edge_sets: Mapping[str, tuple[str, ...]]
    shape: str

    def defines(self, step: StepDef) -> Iterable[str]:
        """The ctx names a step of this type sets when it finishes normally."""

    def check(self, step: StepDef) -> Iterable[str]:
        """Problems with the step's own config (messages without the location)."""

    def check_references(
        self, step: StepDef, defined: frozenset[str], refs: ReferenceCheck
    ) -> None:
        """Check what the step reads, knowing the names ``defined`` before it."""

    def nested(self, step: StepDef) -> Sequence[Nested]:
        """The graphs inside the step."""


@attrs.frozen(kw_only=True)
class Extension:
    """A top-level key that an extension adds to workflow definitions.

    Attributes:
        key: the top-level YAML key (``agents``).
        structure: turns the raw YAML/dict value into typed, hashable data;
            raises ``ValueError``/``TypeError`` with a readable message.
        unstructure: the inverse, back to plain JSON-compatible data.
        check: optional; returns problems for a whole workflow definition.
        defines: ctx names every step may read because of this extension.
    """

    key: str
    structure: Callable[[Any], Any]
    unstructure: Callable[[Any], Any]
    check: Callable[[Any], list[str]] | None = None
    defines: tuple[str, ...] = ()


_lock = threading.Lock()
_kinds: dict[str, StepKind] = {}
_extensions: dict[str, Extension] = {}
_checks: list[Callable[[Any], list[str]]] = []
_plugins_loaded = False
generation = 0
"""Counts registrations, so that what caches a lookup knows when to look again."""


def register_kind(step_kind: StepKind) -> None:
    """Add a step type; registering the same name again replaces it."""
    global generation
    with _lock:
        _kinds[step_kind.name] = step_kind
        generation += 1


def register_extension(ext: Extension) -> Extension:
    """Add a top-level key; registering the same key again replaces it."""
    with _lock:
        _extensions[ext.key] = ext
    return ext


def register_check(check: Callable[[Any], list[str]]) -> None:
    """Run ``check(workflow_def)`` in every validation (extensions check their steps).

    It returns problems (plain strings or :class:`flowkit.Problem`). Registering
    the same function again does nothing.
    """
    with _lock:
        if check not in _checks:
            _checks.append(check)


def _load_plugins() -> None:
    """Import every ``flowkit.steps`` entry point once (they register themselves)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for point in entry_points(group="flowkit.steps"):
        loaded = point.load()
        if callable(loaded):
            loaded()


def kind(name: str) -> StepKind | None:
    """The step type called ``name``, or None."""
    found = _kinds.get(name)
    if found is None and not _plugins_loaded:
        _load_plugins()
        found = _kinds.get(name)
    return found


def kinds(*, load_plugins: bool = True) -> Mapping[str, StepKind]:
    """Every registered step type, by name; without ``load_plugins``, only those
    registered so far (no ``flowkit.steps`` entry point is imported)."""
    if load_plugins:
        _load_plugins()
    return dict(_kinds)


def extension(key: str) -> Extension | None:
    """The extension that owns top-level ``key``, or None."""
    found = _extensions.get(key)
    if found is None and not _plugins_loaded:
        _load_plugins()
        found = _extensions.get(key)
    return found


def extensions() -> Mapping[str, Extension]:
    """Every registered extension, by key."""
    _load_plugins()
    return dict(_extensions)


def checks() -> list[Callable[[Any], list[str]]]:
    """The registered workflow checks."""
    _load_plugins()
    return list(_checks)


def defines_of(step: StepDef) -> list[str]:
    """The ctx names ``step`` sets when it finishes normally (none for an unknown type)."""
    found = kind(step.type)
    return [] if found is None else list(found.defines(step))


def outputs(config: Any) -> list[tuple[str, Mapping[str, Any] | None]]:
    """The ``OUTPUT`` fields of a config: each ctx key it writes, with its JSON Schema if any.

    An output field holds a name, or an object with ``key`` and ``schema``.
    """
    found: list[tuple[str, Mapping[str, Any] | None]] = []
    for field in attrs.fields(type(config)) if attrs.has(type(config)) else ():
        value = getattr(config, field.name)
        if field.metadata.get(OUTPUT) and value is not None:
            if isinstance(value, str):
                found.append((value, None))
            else:
                found.append((value.key, value.schema))
    return found


def output_schema(step: StepDef) -> Mapping[str, Any] | None:
    """The JSON Schema of what ``step`` stores, when it declares one."""
    return next((schema for _, schema in outputs(step.config) if schema is not None), None)

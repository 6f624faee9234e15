"""The registry that extensions use to add step types and top-level keys.

Core step types are registered by :mod:`flowkit._definitions`; plugins
register theirs with :func:`register_step_type` (directly, or from a module
named by a ``flowkit.steps`` entry point, which is imported the first time an
unknown step type is looked up). Nothing here is monkeypatched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import attrs

__all__ = [
    "Extension",
    "StepType",
    "executor",
    "extension",
    "extensions",
    "register_executor",
    "register_extension",
    "register_step_type",
    "step_type",
    "step_types",
]

# Field metadata keys describing what a config field holds. The validator and
# the graph renderer read them, so extension configs get the same checks.
TARGET = "flowkit.target"  # a step id (or None)
EXPR = "flowkit.expr"  # JSON with `$references`, resolved when the step runs
PATH = "flowkit.path"  # a reference path such as `items` or `$order.lines`
OUTPUT = "flowkit.output"  # the ctx key the step writes
KEY = "flowkit.key"  # the YAML key when it differs from the field name


def target(**kwargs: Any) -> Any:
    """An optional field naming another step (``next``-like)."""
    return attrs.field(default=None, metadata={TARGET: True}, **kwargs)


@attrs.frozen(kw_only=True)
class StepType:
    """A step type: its name, its config class and how validation treats it.

    Attributes:
        name: the ``type:`` value in YAML.
        config: the frozen attrs class holding the step's keys.
        in_parallel: the step may be a branch of a ``parallel`` step.
        in_loop: the step may appear in a loop body.
        halts: the step may halt; ``response`` is defined after it.
        defines: ctx names the step may set besides its ``output``.
        terminal: the workflow always ends after this step.
        edge_defines: ctx names set when the step leaves through a given
            target field (``{"on_fail": ("_guardrail_failure",)}``).
    """

    name: str
    config: type[Any]
    in_parallel: bool = True
    in_loop: bool = True
    halts: bool = False
    defines: tuple[str, ...] = ()
    terminal: bool = False
    edge_defines: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, hash=False)


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
_step_types: dict[str, StepType] = {}
_extensions: dict[str, Extension] = {}
_executors: dict[str, object] = {}
_checks: list[Callable[[Any], list[str]]] = []
_plugins_loaded = False


def register_check(check: Callable[[Any], list[str]]) -> None:
    """Run ``check(workflow_def)`` in every validation (extensions check their steps).

    It returns problems (plain strings or :class:`flowkit.Problem`). Registering
    the same function again does nothing.
    """
    with _lock:
        if check not in _checks:
            _checks.append(check)


def checks() -> list[Callable[[Any], list[str]]]:
    """The registered workflow checks."""
    _load_plugins()
    return list(_checks)


def register_executor(name: str, executor: object) -> None:
    """Make ``executor`` run steps of type ``name`` (see :mod:`flowkit._steps`)."""
    with _lock:
        _executors[name] = executor


def executor(name: str) -> object | None:
    """The executor registered for step type ``name``, or None."""
    found = _executors.get(name)
    if found is None and not _plugins_loaded:
        _load_plugins()
        found = _executors.get(name)
    return found


def register_step_type(step_type: StepType) -> StepType:
    """Add a step type; registering the same name again replaces it."""
    with _lock:
        _step_types[step_type.name] = step_type
    return step_type


def register_extension(ext: Extension) -> Extension:
    """Add a top-level key; registering the same key again replaces it."""
    with _lock:
        _extensions[ext.key] = ext
    return ext


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


def step_type(name: str) -> StepType | None:
    """The registered step type called ``name``, or None."""
    found = _step_types.get(name)
    if found is None and not _plugins_loaded:
        _load_plugins()
        found = _step_types.get(name)
    return found


def step_types() -> Mapping[str, StepType]:
    """Every registered step type, by name."""
    _load_plugins()
    return dict(_step_types)


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

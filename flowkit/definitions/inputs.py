"""Checking an execution's input against the inputs a workflow declares (SPEC §9)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ValidationError
from ..frozen import JsonTypeError, freeze, thaw
from .model import WorkflowDef
from .problems import did_you_mean

__all__ = ["validate_input"]

_INPUT_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, (list, tuple)),
    "object": lambda v: isinstance(v, Mapping),
    "any": lambda v: True,
}


def validate_input(wf: WorkflowDef, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check an input against the workflow's declared inputs and apply defaults.

    Returns:
        The input as plain JSON data, with defaults filled in.

    Raises:
        ValidationError: every problem at once (missing, wrong type, undeclared,
            not JSON data).
    """
    given = dict(data or {})
    problems = []
    try:
        freeze(given)
    except JsonTypeError as exc:
        problems.append(f"input {exc}")
    declared = {spec.name: spec for spec in wf.inputs}
    if declared:
        for name in given:
            if name not in declared:
                hint = did_you_mean(name, declared) or f" (declared: {', '.join(declared)})"
                problems.append(f"unknown input '{name}'{hint}")
    for spec in wf.inputs:
        if spec.name not in given or given[spec.name] is None:
            if spec.default is not None:
                given[spec.name] = thaw(spec.default)
            elif spec.required:
                what = f" ({spec.description})" if spec.description else ""
                problems.append(f"missing required input '{spec.name}' of type {spec.type}{what}")
            continue
        value = given[spec.name]
        if not _INPUT_CHECKS[spec.type](value):
            problems.append(
                f"input '{spec.name}' must be of type {spec.type}, got {type(value).__name__} "
                f"{value!r:.60}"
            )
    if problems:
        raise ValidationError(problems, subject=f"input for workflow '{wf.id}'")
    plain: dict[str, Any] = thaw(given)
    return plain

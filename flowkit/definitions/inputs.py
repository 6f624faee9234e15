"""Checking an execution's input against the inputs a workflow declares (SPEC §9)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ValidationError
from ..frozen import thaw
from ..limits import problem_in
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


def validate_input(
    wf: WorkflowDef, data: Mapping[str, Any] | None, *, check_declared: bool = True
) -> dict[str, Any]:
    """Check an input against the workflow's declared inputs and apply defaults.

    Args:
        wf: the workflow.
        data: the input.
        check_declared: check the input against the declared inputs; without it
            (``start`` with ``validate_input: false``) only that it is JSON data
            within the limits of :mod:`flowkit.limits`.

    Returns:
        The input as plain JSON data, with defaults filled in.

    Raises:
        ValidationError: every problem at once (missing, wrong type, undeclared,
            not JSON data, past a limit).
    """
    given = dict(data or {})
    subject = f"input for workflow '{wf.id}'"
    problem = problem_in(given, "input")
    if problem is not None:  # checked first: nothing below may recurse into such data
        raise ValidationError([problem], subject=subject)
    if not check_declared:
        plain_input: dict[str, Any] = thaw(given)
        return plain_input
    problems = []
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
        raise ValidationError(problems, subject=subject)
    plain: dict[str, Any] = thaw(given)
    return plain

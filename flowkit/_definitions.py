"""Typed, frozen workflow definitions (SPEC §3 and §4).

One config class per step type holds that type's keys. JSON values inside a
definition are frozen (see :mod:`flowkit.frozen`), so every definition is
hashable and compares structurally.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from ._registry import EXPR, KEY, OUTPUT, PATH, TARGET, StepType, register_step_type, target
from .frozen import FrozenDict, freeze

__all__ = [
    "INPUT_TYPES",
    "ApprovalConfig",
    "AssignConfig",
    "CallConfig",
    "Condition",
    "EndConfig",
    "HaltConfig",
    "InputDef",
    "LoopConfig",
    "OutputSpec",
    "ParallelConfig",
    "Route",
    "RouterConfig",
    "SourceLocation",
    "StartConfig",
    "StepDef",
    "TransformConfig",
    "TransformOp",
    "Wait",
    "WorkflowConfig",
    "WorkflowDef",
]

Wait = Literal["all", "any"] | int
"""How many parallel branches must succeed: ``all``, ``any`` or a number."""

INPUT_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")

_str = attrs.validators.instance_of(str)
_opt_str = attrs.validators.optional(_str)


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{attribute.name}' must be a non-empty string")


def _opt_non_empty(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _non_empty(inst, attribute, value)


def _number(minimum: float, *, optional: bool = False, exclusive: bool = False) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"'{attribute.name}' must be a number, got {value!r}")
        if value < minimum or (exclusive and value == minimum):
            bound = "greater than" if exclusive else "at least"
            raise ValueError(f"'{attribute.name}' must be {bound} {minimum:g}, got {value!r}")

    return check


def _integer(minimum: int) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"'{attribute.name}' must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"'{attribute.name}' must be at least {minimum}, got {value!r}")

    return check


def _steps(value: Iterable[StepDef]) -> tuple[StepDef, ...]:
    return tuple(value)


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _extensions(value: Mapping[str, Any]) -> FrozenDict[str, Any]:
    return FrozenDict(value)


def _frozen_mapping(value: Any) -> FrozenDict[str, Any]:
    frozen = freeze(value)
    if not isinstance(frozen, FrozenDict):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    return frozen


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

    field: str = attrs.field(validator=_non_empty, metadata={PATH: True})
    op: str = attrs.field(validator=_non_empty)
    value: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})


@attrs.frozen(kw_only=True)
class Route:
    """A router branch: go to ``then`` when the condition holds."""

    when: Condition = attrs.field(validator=attrs.validators.instance_of(Condition))
    then: str = attrs.field(validator=_non_empty, metadata={TARGET: True})


@attrs.frozen(kw_only=True)
class OutputSpec:
    """Where a ``call`` step stores its result, optionally checked by a JSON Schema."""

    key: str = attrs.field(validator=_non_empty)
    schema: FrozenDict[str, Any] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_frozen_mapping)
    )


def _output_spec(value: Any) -> OutputSpec | None:
    if value is None or isinstance(value, OutputSpec):
        return value
    if isinstance(value, str):
        return OutputSpec(key=value)
    raise TypeError(f"'output' must be a name or {{key, schema}}, got {value!r}")


@attrs.frozen(kw_only=True)
class TransformOp:
    """One operation of a transform expression, such as ``pluck: price``."""

    op: str = attrs.field(validator=_non_empty)
    arg: Any = attrs.field(default=None, converter=freeze)


def _transform_ops(value: Any) -> tuple[TransformOp, ...]:
    return tuple(value)


# --- step configs ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StartConfig:
    """``start``: the entry step; ``$input`` reads the execution's input.

    The input is checked against ``inputs`` (defaults applied) when the execution
    is created, unless ``validate_input`` is false; it is not copied into ctx.
    """

    validate_input: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))


@attrs.frozen(kw_only=True)
class EndConfig:
    """``end``: sets ctx ``result`` (default: a copy of ctx) and finishes."""

    result: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})


@attrs.frozen(kw_only=True)
class CallConfig:
    """``call``: invokes ``service.method`` with ``input`` and stores the result."""

    service: str = attrs.field(validator=_non_empty)
    method: str = attrs.field(validator=_non_empty)
    input: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    output: OutputSpec | None = attrs.field(
        default=None, converter=_output_spec, metadata={OUTPUT: True}
    )
    timeout: float | None = attrs.field(
        default=None, validator=_number(0, optional=True, exclusive=True)
    )
    retries: int = attrs.field(default=0, validator=_integer(0))
    retry_delay: float = attrs.field(default=1.0, validator=_number(0))
    retry_backoff: float = attrs.field(default=2.0, validator=_number(1))


@attrs.frozen(kw_only=True)
class AssignConfig:
    """``assign``: resolves each value of ``set`` and stores it in ctx, in order."""

    set: FrozenDict[str, Any] = attrs.field(converter=_frozen_mapping, metadata={EXPR: True})


def _routes(value: Iterable[Route]) -> tuple[Route, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class RouterConfig:
    """``router``: goes to the first route whose condition holds, else ``default``."""

    routes: tuple[Route, ...] = attrs.field(default=(), converter=_routes)
    default: str | None = target(validator=_opt_non_empty)


@attrs.frozen(kw_only=True)
class LoopConfig:
    """``loop``: runs ``do`` for each element of ``over`` or while ``while`` holds."""

    over: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    as_: str = attrs.field(default="item", validator=_non_empty, metadata={KEY: "as"})
    index_as: str = attrs.field(default="index", validator=_non_empty)
    while_: Condition | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(Condition)),
        metadata={KEY: "while"},
    )
    output: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={OUTPUT: True}
    )
    max: int = attrs.field(default=100, validator=_integer(1))
    on_exhausted: str | None = target(validator=_opt_non_empty)
    do: tuple[StepDef, ...] = attrs.field(converter=_steps)

    def __attrs_post_init__(self) -> None:
        if (self.over is None) == (self.while_ is None):
            raise ValueError("a loop needs exactly one of 'over' (foreach) or 'while'")


def _wait(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value in ("all", "any"):
        return
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return
    raise ValueError(f"'wait' must be 'all', 'any' or a positive integer, got {value!r}")


@attrs.frozen(kw_only=True)
class ParallelConfig:
    """``parallel``: runs single-step ``branches`` concurrently."""

    wait: Wait = attrs.field(default="all", validator=_wait)
    output: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={OUTPUT: True}
    )
    branches: tuple[StepDef, ...] = attrs.field(converter=_steps)


@attrs.frozen(kw_only=True)
class TransformConfig:
    """``transform``: applies ``expression`` ops in order to ``input`` (default: ctx)."""

    expression: tuple[TransformOp, ...] = attrs.field(converter=_transform_ops)
    output: str = attrs.field(validator=_non_empty, metadata={OUTPUT: True})
    input: str | None = attrs.field(default=None, validator=_opt_non_empty, metadata={PATH: True})


@attrs.frozen(kw_only=True)
class HaltConfig:
    """``halt``: stops with status halted until the execution is resumed."""

    reason: str | None = attrs.field(default=None, validator=_opt_str, metadata={EXPR: True})
    data: FrozenDict[str, Any] = attrs.field(
        factory=FrozenDict, converter=_frozen_mapping, metadata={EXPR: True}
    )
    resume_step: str | None = target(validator=_opt_non_empty)


@attrs.frozen(kw_only=True)
class ApprovalConfig:
    """``approval``: halts until someone approves or rejects."""

    prompt: str | None = attrs.field(default=None, validator=_opt_str, metadata={EXPR: True})
    context: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    approvers: tuple[str, ...] = attrs.field(
        default=(),
        converter=_str_tuple,
        validator=attrs.validators.deep_iterable(_non_empty),
    )
    on_reject: str | None = target(validator=_opt_non_empty)
    timeout: float | None = attrs.field(
        default=None, validator=_number(0, optional=True, exclusive=True)
    )
    on_timeout: str | None = target(validator=_opt_non_empty)


@attrs.frozen(kw_only=True)
class WorkflowConfig:
    """``workflow``: runs a registered workflow as a child execution."""

    workflow_id: str = attrs.field(validator=_non_empty)
    input: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    output: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={OUTPUT: True}
    )
    timeout: float | None = attrs.field(
        default=None, validator=_number(0, optional=True, exclusive=True)
    )


# --- workflow -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, cache_hash=True)
class StepDef:
    """One step: ``id``, ``type``, the typed ``config`` of that type, and its edges."""

    id: str = attrs.field(validator=_non_empty)
    type: str = attrs.field(validator=_non_empty)
    config: Any
    next: str | None = target(validator=_opt_non_empty)
    on_error: str | None = target(validator=_opt_non_empty)
    source: SourceLocation | None = attrs.field(default=None, eq=False, hash=False, repr=False)


def _input_type(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in INPUT_TYPES:
        close = difflib.get_close_matches(str(value), INPUT_TYPES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"'type' must be one of {', '.join(INPUT_TYPES)}, got {value!r}{hint}")


@attrs.frozen(kw_only=True)
class InputDef:
    """A declared workflow input."""

    name: str = attrs.field(validator=_non_empty)
    type: str = attrs.field(default="string", validator=_input_type)
    required: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    default: Any = attrs.field(default=None, converter=freeze)
    description: str | None = attrs.field(default=None, validator=_opt_str)


def _inputs(value: Iterable[InputDef]) -> tuple[InputDef, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True, cache_hash=True)
class WorkflowDef:
    """A whole workflow: metadata, inputs and steps (the first step is the entry point)."""

    id: str = attrs.field(validator=_non_empty)
    steps: tuple[StepDef, ...] = attrs.field(converter=_steps)
    name: str | None = attrs.field(default=None, validator=_opt_str)
    version: str = attrs.field(default="1.0", validator=_non_empty)
    description: str | None = attrs.field(default=None, validator=_opt_str)
    timeout: float | None = attrs.field(
        default=None, validator=_number(0, optional=True, exclusive=True)
    )
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


CORE_STEP_TYPES = (
    StepType(name="start", config=StartConfig, in_parallel=False, in_loop=False),
    StepType(name="end", config=EndConfig, in_parallel=False, in_loop=False, terminal=True),
    StepType(name="call", config=CallConfig),
    StepType(name="assign", config=AssignConfig),
    StepType(name="router", config=RouterConfig, in_parallel=False),
    StepType(name="loop", config=LoopConfig, in_parallel=False),
    StepType(name="parallel", config=ParallelConfig, in_parallel=False),
    StepType(name="transform", config=TransformConfig),
    StepType(name="halt", config=HaltConfig, in_parallel=False, halts=True),
    StepType(name="approval", config=ApprovalConfig, in_parallel=False, halts=True),
    StepType(name="workflow", config=WorkflowConfig),
)

for _core in CORE_STEP_TYPES:
    register_step_type(_core)

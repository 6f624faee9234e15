"""``call``: invokes a registered service's method and stores what it returns.

The calling convention (keyword arguments, one positional argument, or none),
timeouts and async callables are the runtime's (:meth:`Runtime.call`); the
output may be checked against a JSON Schema (``output: {key, schema}``).
Retries are the engine's: any config with ``retries`` is retried. A
``compensate`` call undoes a finished call when the execution unwinds (it
failed unhandled, or was cancelled); its input may read ``$output`` and
``$step_input``, what the call returned and what it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import attrs
from cattrs.gen import make_dict_structure_fn

from ..abc import IMPLICIT, Builder, Outcome, Runtime, StepType, register_step_type
from ..definitions import EXPR, OUTPUT, InvalidValue, ReferenceCheck, StepDef, converter
from ..definitions.fields import (
    SECONDS,
    Duration,
    duration,
    frozen_mapping,
    integer,
    non_empty,
    number,
)
from ..frozen import FrozenDict, freeze, thaw
from ..records import Entry
from ..services import validate_output

__all__ = ["COMPENSATION_LOCALS", "Call", "CallConfig", "Compensation", "OutputSpec", "call"]

#: The locals a compensation's input may read besides ctx: what the call returned and
#: what it was given.
COMPENSATION_LOCALS = frozenset({"output", "step_input"})


@attrs.frozen(kw_only=True)
class OutputSpec:
    """Where a ``call`` step stores its result, optionally checked by a JSON Schema."""

    key: str = attrs.field(validator=non_empty)
    schema: FrozenDict[str, Any] | None = attrs.field(
        default=None, converter=attrs.converters.optional(frozen_mapping)
    )


def _output_spec(value: Any) -> OutputSpec | None:
    if value is None or isinstance(value, OutputSpec):
        return value
    if isinstance(value, str):
        return OutputSpec(key=value)
    raise TypeError(f"'output' must be a name or {{key, schema}}, got {value!r}")


@attrs.frozen(kw_only=True)
class Compensation:
    """``compensate``: the call that undoes a finished ``call`` step."""

    service: str = attrs.field(validator=non_empty)
    method: str = attrs.field(validator=non_empty)
    input: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    timeout: Annotated[float | None, SECONDS] = duration(default=None, positive=True)


def _compensation(value: Any) -> Compensation | None:
    if value is None or isinstance(value, Compensation):
        return value
    if isinstance(value, Mapping):
        return Compensation(**value)
    raise TypeError(f"'compensate' must be a mapping {{service, method, input}}, got {value!r}")


@attrs.frozen(kw_only=True)
class CallConfig:
    """``call``: invokes ``service.method`` with ``input`` and stores the result."""

    service: str = attrs.field(validator=non_empty)
    method: str = attrs.field(validator=non_empty)
    input: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    output: OutputSpec | None = attrs.field(
        default=None, converter=_output_spec, metadata={OUTPUT: True}
    )
    timeout: Annotated[float | None, SECONDS] = duration(default=None, positive=True)
    retries: int = attrs.field(default=0, validator=integer(0))
    retry_delay: Annotated[float, SECONDS] = duration(default=1.0)
    retry_backoff: float = attrs.field(default=2.0, validator=number(1))
    compensate: Compensation | None = attrs.field(default=None, converter=_compensation)


_structure_output_mapping = make_dict_structure_fn(
    OutputSpec, converter, _cattrs_forbid_extra_keys=True
)


def _structure_output(value: Any, _type: Any) -> OutputSpec:
    if isinstance(value, str):
        return OutputSpec(key=value)
    if isinstance(value, Mapping):
        return _structure_output_mapping(value, OutputSpec)
    raise InvalidValue(f"expected a name or {{key, schema}}, got {value!r}")


converter.register_structure_hook(OutputSpec, _structure_output)
converter.register_unstructure_hook(
    OutputSpec,
    lambda spec: (
        spec.key if spec.schema is None else {"key": spec.key, "schema": thaw(spec.schema)}
    ),
)


def output_spec(output: str | OutputSpec | Mapping[str, Any] | None) -> OutputSpec | str | None:
    """An ``output`` option as given in Python: a name, an :class:`OutputSpec` or a mapping."""
    if isinstance(output, Mapping):
        return OutputSpec(key=output["key"], schema=output.get("schema"))
    return output


def call(
    graph: Builder,
    id: str,
    *,
    service: str,
    method: str,
    input: Any = None,
    output: str | OutputSpec | Mapping[str, Any] | None = None,
    timeout: Duration | None = None,
    retries: int = 0,
    retry_delay: Duration = 1.0,
    retry_backoff: float = 2.0,
    compensate: Compensation | Mapping[str, Any] | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``call`` step invoking a registered service's method; ``compensate``
    (``{service, method, input}``) undoes it when the execution unwinds."""
    config = graph.config(
        CallConfig,
        id,
        service=service,
        method=method,
        input=input,
        output=output_spec(output),
        timeout=timeout,
        retries=retries,
        retry_delay=retry_delay,
        retry_backoff=retry_backoff,
        compensate=compensate,
    )
    return graph.add_step(id, "call", config, next, on_error)


class Call(StepType):
    name = "call"
    config = CallConfig
    build = staticmethod(call)

    def check(self, step: StepDef) -> list[str]:
        config: CallConfig = step.config
        if config.output is None or config.output.schema is None:
            return []
        import jsonschema

        schema = thaw(config.output.schema)
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            return [f"output.schema is not a valid JSON Schema: {exc.message}"]
        return []

    def check_references(
        self, step: StepDef, defined: frozenset[str], refs: ReferenceCheck
    ) -> None:
        config: CallConfig = step.config
        if config.compensate is None:
            refs.fields(config, defined)
            return
        refs.fields(attrs.evolve(config, compensate=None), defined)
        # A compensation runs after the step finished: its own output is set too.
        refs.fields(config.compensate, defined | COMPENSATION_LOCALS | set(self.defines(step)))

    def compensates(self, step: StepDef) -> bool:
        config: CallConfig = step.config
        return config.compensate is not None

    def compensate(self, run: Runtime, done: Entry) -> Any:
        compensation: Compensation | None = run.step.config.compensate
        assert compensation is not None
        value = run.resolve(compensation.input)
        return run.call(
            compensation.service, compensation.method, value, timeout=compensation.timeout
        )

    def run(self, run: Runtime) -> Outcome:
        config: CallConfig = run.step.config
        value = run.resolve(config.input)
        result = run.call(config.service, config.method, value, timeout=config.timeout)
        output = config.output
        if output is None:
            return Outcome(target=run.step.next, output=result, input=value)
        if output.schema is not None:
            validate_output(result, output.schema, f"step '{run.path}'")
        return Outcome(
            target=run.step.next, updates={output.key: result}, output=result, input=value
        )


register_step_type(Call())

"""The call step: calling conventions, async services, output schemas, JSON conversion."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import pytest

import flowkit
from flowkit import Action

from .helpers import log, workflow


def _call_wf(input: Any = None, output: Any = "out", **call: Any) -> flowkit.WorkflowDef:
    step: dict[str, Any] = {"id": "c", "type": "call", "service": "S", "method": "m", **call}
    if input is not None:
        step["input"] = input
    if output is not None:
        step["output"] = output
    return workflow(
        {"id": "start", "type": "start", "next": "c"},
        {**step, "next": "done"},
        {"id": "done", "type": "end", "result": "$out" if output is not None else None},
        inputs={"a": {"type": "integer", "required": False, "default": 2}},
    )


def test_mapping_input_becomes_keyword_arguments(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    seen: list[tuple[int, int]] = []

    def m(a: int, b: int) -> int:
        seen.append((a, b))
        return a * 10 + b

    services.register("S", {"m": m})
    result = engine.run(_call_wf(input={"b": 3, "a": "$input.a"}))
    assert result.output == 23
    assert seen == [(2, 3)]
    entry = engine.store.entries(result.execution_id)[1]
    assert entry.step_id == "c"
    assert entry.step_type == "call"
    assert entry.input == {"b": 3, "a": 2}
    assert entry.output == 23
    assert engine.load(result.execution_id).ctx["out"] == 23


def test_non_mapping_input_is_one_positional_argument(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"m": lambda value: {"got": value}})
    assert engine.run(_call_wf(input=[1, "$input.a"])).output == {"got": [1, 2]}


def test_mapping_input_whose_keys_are_not_parameters_is_positional(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"m": lambda payload: payload["x"]})
    assert engine.run(_call_wf(input={"x": 5})).output == 5


def test_callable_without_parameters_is_called_without_arguments(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"m": lambda: "none"})
    assert engine.run(_call_wf()).output == "none"


def test_call_without_output_stores_nothing_but_records_the_output(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"m": lambda: {"v": 1}})
    result = engine.run(_call_wf(output=None))
    execution = engine.load(result.execution_id)
    assert set(execution.ctx) - {"input"} == {"result"}
    assert engine.store.entries(result.execution_id)[1].output == {"v": 1}


def test_async_services_are_awaited(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    async def m(a: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"double": a * 2}

    services.register("S", {"m": m})
    assert engine.run(_call_wf(input={"a": "$input.a"})).output == {"double": 4}


def test_class_services_are_instantiated_once_per_call(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    made: list[object] = []

    class S:
        def __init__(self) -> None:
            made.append(self)

        def m(self) -> int:
            return len(made)

    services.register("S", S)
    wf = workflow(
        {"id": "start", "type": "start", "next": "one"},
        {"id": "one", "type": "call", "service": "S", "method": "m", "output": "a", "next": "two"},
        {"id": "two", "type": "call", "service": "S", "method": "m", "output": "b"},
    )
    result = engine.run(wf)
    ctx = engine.load(result.execution_id).ctx
    assert (ctx["a"], ctx["b"]) == (1, 2)
    assert len(made) == 2


def test_output_schema_accepts_a_matching_output(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"m": lambda: {"total": 3.5}})
    schema = {
        "type": "object",
        "properties": {"total": {"type": "number"}},
        "required": ["total"],
    }
    result = engine.run(_call_wf(output={"key": "out", "schema": schema}))
    assert result.completed
    assert result.output == {"total": 3.5}


def test_output_schema_mismatch_fails_the_step(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"m": lambda: {"total": "abc"}})
    schema = {
        "type": "object",
        "properties": {"total": {"type": "number"}, "id": {"type": "string"}},
        "required": ["total", "id"],
    }
    result = engine.run(_call_wf(output={"key": "out", "schema": schema}))
    assert result.failed
    assert result.error is not None
    assert result.error.startswith("ExecutionError: step 'c': output does not match its schema: ")
    assert "total: 'abc' is not of type 'number'" in result.error
    assert "'id' is a required property" in result.error
    assert "out" not in engine.load(result.execution_id).ctx
    assert log(engine, result.execution_id) == [("start", "completed"), ("c", "failed")]


class Colour(enum.Enum):
    RED = "red"


@attrs.define
class Money:
    amount: Decimal
    currency: str


@dataclasses.dataclass
class Receipt:
    paid: Money
    at: datetime
    colours: tuple[Colour, ...]
    tags: set[str]


def test_returned_objects_are_converted_to_json(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    receipt = Receipt(
        paid=Money(amount=Decimal("12.50"), currency="EUR"),
        at=datetime(2030, 5, 1, 12, 0, tzinfo=UTC),
        colours=(Colour.RED,),
        tags={"b", "a"},
    )
    services.register("S", {"m": lambda: {"receipt": receipt, "count": Decimal("3")}})
    result = engine.run(_call_wf())
    expected = {
        "receipt": {
            "paid": {"amount": 12.5, "currency": "EUR"},
            "at": "2030-05-01T12:00:00+00:00",
            "colours": ["red"],
            "tags": ["a", "b"],
        },
        "count": 3,
    }
    assert result.output == expected
    assert engine.load(result.execution_id).ctx["out"] == expected
    assert engine.store.entries(result.execution_id)[1].output == expected


def test_an_unconvertible_value_fails_naming_the_step_and_the_path(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"m": lambda: {"items": [1, {"bad": object()}]}})
    result = engine.run(_call_wf())
    assert result.failed
    assert result.error is not None
    assert result.error.startswith("ExecutionError: step 'c': output.items[1].bad is an object")
    [_, failed] = engine.store.entries(result.execution_id)
    assert failed.action is Action.FAILED
    assert failed.error == result.error


def test_an_unknown_service_fails_the_step_naming_it(engine: flowkit.Engine) -> None:
    result = engine.run(_call_wf())
    assert result.failed
    assert result.error is not None
    assert result.error.startswith("NotFoundError: unknown service 'S'")


def test_an_unknown_method_fails_the_step_naming_it(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"other": lambda: 1})
    result = engine.run(_call_wf())
    assert result.failed
    assert result.error is not None
    assert "NotFoundError" in result.error
    assert "'m'" in result.error


def test_wrong_arguments_fail_the_step(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("S", {"m": lambda a, b: a + b})
    result = engine.run(_call_wf(input={"a": 1}))
    assert result.failed
    assert result.error is not None
    assert result.error.startswith("TypeError: ")
    assert "'b'" in result.error


def test_current_is_available_inside_a_service(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    seen: list[flowkit.StepContext] = []

    def m() -> None:
        seen.append(flowkit.current())

    services.register("S", {"m": m})
    result = engine.run(_call_wf(output=None))
    [ctx] = seen
    assert ctx.execution_id == result.execution_id
    assert ctx.workflow_id == "wf"
    assert ctx.step_id == "c"
    assert ctx.attempt == 1
    assert ctx.iteration is None
    assert result.execution_id in ctx.idempotency_key
    with pytest.raises(flowkit.FlowkitError, match="only available while a step runs"):
        flowkit.current()

"""Testing calculator: stub the Calculator service, check the router, run it all.

``stub_service(name, behaviour)`` replaces a registered service for one test
and records every call; a mapping gives each method a result, a function, or
an exception to raise.
"""

from __future__ import annotations

import pytest

from examples.calculator import workflow

NUMBERS = {"a": 7, "b": 2}


def test_add_calls_the_service_with_both_operands(run_step, stub_service):
    calculator = stub_service("Calculator", {"add": 9})
    result = run_step(workflow, "add", input={**NUMBERS, "operation": "add"})
    assert result.ctx["value"] == 9
    assert result.next == "done"
    [call] = calculator.calls
    assert call.method == "add"
    assert call.kwargs == {"a": 7, "b": 2}


def test_a_failing_divide_goes_to_its_error_handler(run_step, stub_service):
    stub_service("Calculator", {"divide": ZeroDivisionError("division by zero")})
    result = run_step(workflow, "divide", input={"a": 7, "b": 0, "operation": "divide"})
    assert result.next == "division_by_zero"
    assert result.ctx["_last_error"]["type"] == "ZeroDivisionError"


@pytest.mark.parametrize(
    ("operation", "step"),
    [("add", "add"), ("divide", "divide"), ("modulo", "unknown_operation")],
)
def test_dispatch_picks_the_step_for_the_operation(run_step, operation, step):
    assert run_step(workflow, "dispatch", input={**NUMBERS, "operation": operation}).next == step


@pytest.mark.parametrize(
    ("operation", "value"), [("add", 9), ("subtract", 5), ("multiply", 14), ("divide", 3.5)]
)
def test_the_whole_workflow(flowkit_engine, operation, value):
    result = flowkit_engine.run(workflow, {**NUMBERS, "operation": operation})
    assert result.output == {"operation": operation, "a": 7, "b": 2, "value": value}


def test_division_by_zero_ends_in_failed(flowkit_engine):
    result = flowkit_engine.run(workflow, {"a": 7, "b": 0, "operation": "divide"})
    assert result.completed  # the error was handled by the workflow
    assert result.output == {"operation": "divide", "error": "cannot divide 7 by zero"}

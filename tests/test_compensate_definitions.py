"""``compensate`` on call steps: YAML, validation and the Python DSL (SPEC §15)."""

from __future__ import annotations

from typing import Any

import pytest

import flowkit
from flowkit.steps.call import Compensation


def _saga(compensate: Any) -> dict[str, Any]:
    return {
        "id": "saga",
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            {
                "id": "book",
                "type": "call",
                "service": "Bookings",
                "method": "book",
                "input": {"room": "$input.room"},
                "output": "booking",
                "compensate": compensate,
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
    }


def test_compensate_reads_ctx_the_steps_own_output_and_what_it_got() -> None:
    wf = flowkit.load(
        _saga(
            {
                "service": "Bookings",
                "method": "cancel",
                "input": {"id": "$booking.id", "raw": "$output", "asked": "$step_input.room"},
                "timeout": "30s",
            }
        )
    )
    compensation = wf.step("book").config.compensate
    assert compensation == Compensation(
        service="Bookings",
        method="cancel",
        input={"id": "$booking.id", "raw": "$output", "asked": "$step_input.room"},
        timeout=30.0,
    )
    assert flowkit.load(flowkit.to_yaml(wf)) == wf


def test_compensate_is_checked_like_any_config() -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        flowkit.load(
            _saga({"service": "Bookings", "method": "cancel", "inptu": {"id": "$nowhere"}})
        )
    (problem,) = caught.value.problems
    assert "compensate" in problem
    assert "inptu" in problem
    with pytest.raises(flowkit.ValidationError) as caught:
        flowkit.load(_saga({"service": "Bookings", "method": "cancel", "input": "$nowhere"}))
    (problem,) = caught.value.problems
    assert "'$nowhere' reads 'nowhere'" in problem


def test_the_dsl_takes_a_function_or_a_mapping() -> None:
    wf = flowkit.Workflow("saga", inputs={"room": str})

    def cancel(output: dict[str, Any], step_input: dict[str, Any]) -> None:
        """Undo a booking."""

    @wf.step(output="booking", compensate=cancel)
    def book(room: str) -> dict[str, Any]:
        return {"id": 1, "room": room}

    wf.end()
    compensation = wf.definition.step("book").config.compensate
    assert compensation == Compensation(
        service="saga",
        method="cancel",
        input={"output": "$output", "step_input": "$step_input"},
    )
    assert wf.services["saga"]["cancel"] is not None

    mapped = flowkit.Workflow("mapped")
    mapped.call(
        "book",
        service="Bookings",
        method="book",
        output="booking",
        compensate={"service": "Bookings", "method": "cancel", "input": "$booking"},
    )
    mapped.end()
    assert mapped.definition.step("book").config.compensate == Compensation(
        service="Bookings", method="cancel", input="$booking"
    )

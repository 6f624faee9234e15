"""The ``wait`` step's definition: YAML, checks, the graph and the Python DSL (SPEC §15)."""

from __future__ import annotations

from typing import Any

import pytest

import flowkit
from flowkit.steps import WaitConfig


def _with(ask: dict[str, Any], after: str = "$payment") -> dict[str, Any]:
    late = [{"id": "late", "type": "end", "result": "late"}] if "on_timeout" in ask else []
    return {
        "id": "pay",
        "steps": [
            {"id": "start", "type": "start", "next": "ask"},
            {"id": "ask", "type": "wait", **ask, "next": "done"},
            {"id": "done", "type": "end", "result": after},
            *late,
        ],
    }


@pytest.mark.parametrize(
    ("ask", "config"),
    [
        ({"signal": "paid", "output": "payment"}, WaitConfig(signal="paid", output="payment")),
        (
            {"signal": "paid", "output": "payment", "timeout": "2h", "on_timeout": "late"},
            WaitConfig(signal="paid", output="payment", timeout=7200, on_timeout="late"),
        ),
        (
            {"signal": "paid", "output": "payment", "timeout": "PT30S"},
            WaitConfig(signal="paid", output="payment", timeout=30),
        ),
    ],
)
def test_signal_output_and_timeout(ask: dict[str, Any], config: WaitConfig) -> None:
    wf = flowkit.load(_with(ask))
    assert wf.step("ask").config == config
    assert flowkit.load(flowkit.to_yaml(wf)) == wf


@pytest.mark.parametrize(
    ("ask", "after", "problem"),
    [
        ({"output": "payment"}, "$payment", "signal"),
        ({"signal": "", "output": "payment"}, "$payment", "signal"),
        ({"signal": "paid", "output": "payment", "timeout": -1}, "$payment", "timeout"),
        (
            {"signal": "paid", "output": "payment", "timeout": 5, "on_timeout": "nowhere"},
            "$payment",
            "nowhere",
        ),
        (
            {"signal": "paid", "output": "payment", "on_timeout": "late"},
            "$payment",
            "'on_timeout' needs a 'timeout'",
        ),
        ({"signal": "paid", "output": "payment", "colour": "red"}, "$payment", "colour"),
    ],
)
def test_mistakes_are_reported_at_the_step(ask: dict[str, Any], after: str, problem: str) -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        flowkit.load(_with(ask, after))
    assert any(found.step_id == "ask" and problem in found for found in caught.value.problems), (
        caught.value.problems
    )


def test_the_output_is_defined_after_the_wait_only() -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        flowkit.load(
            {
                "id": "before",
                "steps": [
                    {"id": "start", "type": "start", "next": "use"},
                    {"id": "use", "type": "assign", "set": {"x": "$payment"}, "next": "ask"},
                    {
                        "id": "ask",
                        "type": "wait",
                        "signal": "paid",
                        "output": "payment",
                        "next": "end",
                    },
                    {"id": "end", "type": "end", "result": "$payment"},
                ],
            }
        )
    (found,) = caught.value.problems
    assert found.step_id == "use"
    assert "payment" in found


def test_a_wait_cannot_be_a_parallel_branch() -> None:
    with pytest.raises(flowkit.ValidationError, match="wait"):
        flowkit.load(
            {
                "id": "par",
                "steps": [
                    {"id": "start", "type": "start", "next": "all"},
                    {
                        "id": "all",
                        "type": "parallel",
                        "branches": [{"id": "ask", "type": "wait", "signal": "x"}],
                    },
                ],
            }
        )


def test_the_graph_draws_it_as_a_wait_with_its_timeout_edge() -> None:
    wf = flowkit.load(
        _with({"signal": "paid", "output": "payment", "timeout": 5, "on_timeout": "late"})
    )
    mermaid = flowkit.graph(wf, "mermaid")
    assert 's1{{"ask<br/>wait"}}' in mermaid
    assert 's1 -.->|"on_timeout"| s3' in mermaid


def test_the_dsl_builder() -> None:
    wf = flowkit.Workflow("pay")
    wf.wait("ask", signal="paid", output="payment", timeout="1h", on_timeout="late")
    wf.end("done", result="$payment")
    wf.end("late", result="late")
    assert wf.definition.step("ask").config == WaitConfig(
        signal="paid", output="payment", timeout=3600, on_timeout="late"
    )
    assert wf.definition == flowkit.load(flowkit.to_yaml(wf.definition))

"""Metrics: steps completed, failed and retried, step durations, executions by status."""

from __future__ import annotations

from typing import Any

import pytest

from tests.telemetry.conftest import Metrics, call, sums, workflow

STEP = ("flowkit.workflow_id", "flowkit.step_type")
STATUS = ("flowkit.workflow_id", "flowkit.status")


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_steps_are_counted_by_workflow_and_step_type(
    make_engine: Any, recorded: Metrics, executor: str
) -> None:
    wf = workflow(
        call("arm", "fail_next", x=1, next="flaky"),
        call("flaky", "flaky", retries=2, retry_delay=0.001, next="bad"),
        call("bad", "boom"),
    )
    result = make_engine(executor=executor).run(wf, {}, timeout=10)
    assert result.failed
    found = recorded.read()
    completed = {
        (p.attributes["flowkit.step_type"], p.value) for p in found["flowkit.steps.completed"]
    }
    assert completed == {("start", 1), ("call", 2)}
    assert [(dict(p.attributes), p.value) for p in found["flowkit.steps.failed"]] == [
        ({"flowkit.workflow_id": "wf", "flowkit.step_type": "call"}, 1)
    ]
    assert [p.value for p in found["flowkit.steps.retried"]] == [1]
    [durations] = [
        p for p in found["flowkit.step.duration"] if p.attributes["flowkit.step_type"] == "call"
    ]
    assert durations.count == 4  # arm, flaky twice, bad
    assert 0 < durations.sum < 5


def test_executions_are_counted_in_the_status_they_are_in(
    make_engine: Any, recorded: Metrics
) -> None:
    engine = make_engine()
    wf = workflow({"id": "ask", "type": "approval", "prompt": "ok?", "next": "done"}, call("done"))
    halted = engine.run(wf, {})
    assert recorded.sums("flowkit.executions", *STATUS) == {("wf", "halted"): 1}
    engine.resume(halted.execution_id, approved=True)
    assert recorded.sums("flowkit.executions", *STATUS) == {
        ("wf", "halted"): -1,
        ("wf", "completed"): 1,
    }
    engine.run(wf, {})
    engine.run(workflow(call("bad", "boom")), {})
    assert recorded.sums("flowkit.executions", *STATUS) == {
        ("wf", "halted"): 1,
        ("wf", "failed"): 1,
    }


def test_a_retried_execution_moves_from_failed_to_running(
    make_engine: Any, recorded: Metrics
) -> None:
    engine = make_engine()
    failed = engine.run(
        workflow(call("arm", "fail_next", x=1, next="flaky"), call("flaky", "flaky")), {}
    )
    assert failed.failed
    recorded.read()
    assert engine.retry(failed.execution_id).completed
    found = recorded.read()
    assert sums(found, "flowkit.executions", *STATUS) == {
        ("wf", "failed"): -1,
        ("wf", "completed"): 1,
    }
    assert sums(found, "flowkit.steps.completed", *STEP) == {("wf", "call"): 1}

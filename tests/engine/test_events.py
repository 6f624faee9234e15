"""Events: names, fields, filters, failing subscribers and the SSE form."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

import flowkit

from .conftest import FakeClock
from .helpers import workflow


def _collect(engine: flowkit.Engine, events: list[str] | None = None) -> list[flowkit.Event]:
    seen: list[flowkit.Event] = []
    engine.subscribe(seen.append, events)
    return seen


def _names(events: list[flowkit.Event]) -> list[tuple[str, str | None]]:
    return [(e.name, e.step_id) for e in events]


def _simple() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "set"},
        {"id": "set", "type": "assign", "set": {"x": 1}, "next": "done"},
        {"id": "done", "type": "end", "result": "$x"},
    )


def test_a_run_emits_workflow_and_step_events_in_order(
    engine: flowkit.Engine, clock: FakeClock
) -> None:
    seen = _collect(engine)
    result = engine.run(_simple(), execution_id="e1")
    assert _names(seen) == [
        ("workflow.started", None),
        ("step.started", "start"),
        ("step.completed", "start"),
        ("step.started", "set"),
        ("step.completed", "set"),
        ("step.started", "done"),
        ("step.completed", "done"),
        ("workflow.completed", None),
    ]
    for event in seen:
        assert event.execution_id == "e1"
        assert event.workflow_id == "wf"
        assert event.timestamp == clock.now()
    assert seen[0].payload == {"input": {}}
    assert seen[1].payload == {"attempt": 1}
    assert seen[4].payload == {"output": {"x": 1}}
    assert seen[-1].payload == {"output": 1}
    assert result.completed


def test_halts_resumes_failures_and_retries_have_events(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        raise RuntimeError(f"no {len(attempts)}")

    services.register("S", {"flaky": flaky})
    wf = workflow(
        {"id": "start", "type": "start", "next": "ask"},
        {"id": "ask", "type": "approval", "prompt": "go?", "next": "call"},
        {
            "id": "call",
            "type": "call",
            "service": "S",
            "method": "flaky",
            "retries": 1,
            "retry_delay": 2,
        },
    )
    seen = _collect(engine, ["workflow.*", "step.halted", "step.failed", "step.retrying"])
    halted = engine.run(wf, execution_id="e2")
    assert _names(seen) == [
        ("workflow.started", None),
        ("step.halted", "ask"),
        ("workflow.halted", None),
    ]
    assert seen[1].payload["halt"]["prompt"] == "go?"
    assert seen[2].payload["halt"] == halted.halt.data  # type: ignore[union-attr]
    seen.clear()
    engine.resume("e2", approved=True, by="ann")
    assert _names(seen) == [
        ("workflow.resumed", None),
        ("step.retrying", "call"),
        ("step.failed", "call"),
        ("workflow.failed", None),
    ]
    assert seen[0].payload == {"by": "ann", "approved": True}
    assert seen[1].payload == {"attempt": 1, "error": "RuntimeError: no 1", "delay": 2.0}
    assert seen[2].payload == {"attempt": 2, "error": "RuntimeError: no 2"}
    assert seen[3].payload == {"error": "RuntimeError: no 2"}


def test_step_prefix_selects_every_step_event(engine: flowkit.Engine) -> None:
    seen = _collect(engine, ["step.*"])
    engine.run(_simple())
    assert {e.name for e in seen} == {"step.started", "step.completed"}
    assert len(seen) == 6


def test_unknown_event_names_are_refused(engine: flowkit.Engine) -> None:
    with pytest.raises(ValueError, match=r"unknown event 'step\.finished'"):
        engine.subscribe(lambda e: None, ["step.finished"])
    with pytest.raises(ValueError, match=r"no events match 'job\.\*'"):
        engine.subscribe(lambda e: None, ["job.*"])


def test_a_failing_subscriber_does_not_break_the_run(
    engine: flowkit.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: flowkit.Event) -> None:
        raise RuntimeError("subscriber bug")

    engine.subscribe(broken)
    seen = _collect(engine, ["workflow.completed"])
    with caplog.at_level(logging.ERROR, logger="flowkit"):
        result = engine.run(_simple())
    assert result.completed
    assert len(seen) == 1  # later subscribers still get the events
    failures = [r for r in caplog.records if "subscriber" in r.getMessage()]
    assert failures
    assert failures[0].exc_info is not None
    assert "subscriber bug" in str(failures[0].exc_info[1])


def test_unsubscribe_stops_delivery(engine: flowkit.Engine) -> None:
    seen: list[flowkit.Event] = []
    unsubscribe = engine.subscribe(seen.append)
    engine.run(_simple())
    count = len(seen)
    unsubscribe()
    engine.run(_simple())
    assert len(seen) == count


def test_events_serialize_as_server_sent_events(engine: flowkit.Engine, clock: FakeClock) -> None:
    seen = _collect(engine, ["step.completed"])
    engine.run(_simple(), execution_id="e3")
    event = seen[1]
    text = event.to_sse()
    assert text.endswith("\n\n")
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "event: step.completed"
    assert lines[1].startswith("data: ")
    assert len(lines) == 2
    data: dict[str, Any] = json.loads(lines[1][len("data: ") :])
    assert data == {
        "event": "step.completed",
        "execution_id": "e3",
        "workflow_id": "wf",
        "step_id": "set",
        "timestamp": clock.now().isoformat(),
        "payload": {"output": {"x": 1}},
    }
    assert event.to_dict() == data

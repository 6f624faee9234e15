"""The workflow step: child executions, outputs, failures, halts, resumes and timeouts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import flowkit
from flowkit import Action, Status
from flowkit.definitions import WorkflowRegistry

from .conftest import EngineFactory, FakeClock
from .helpers import log, snapshot, workflow


class Crash(BaseException):
    """Stands for the process dying in the middle of a step."""


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def _child(*steps: dict[str, Any], **top: Any) -> flowkit.WorkflowDef:
    return workflow(*steps, id="child", **top)


def _parent(**sub: Any) -> flowkit.WorkflowDef:
    steps: list[dict[str, Any]] = [
        {"id": "start", "type": "start", "next": "sub"},
        {
            "id": "sub",
            "type": "workflow",
            "workflow_id": "child",
            "input": {"n": "$input.n"},
            "output": "child_out",
            "next": "done",
            **sub,
        },
        {"id": "done", "type": "end", "result": {"child": "$child_out"}},
    ]
    if sub.get("on_error") == "handle":
        steps.append({"id": "handle", "type": "end", "result": "$_last_error.message"})
    return workflow(*steps, id="parent", inputs={"n": {"type": "integer"}})


def _doubling_child(services: flowkit.ServiceRegistry) -> flowkit.WorkflowDef:
    services.register("C", {"double": lambda n: n * 2})
    return _child(
        {"id": "start", "type": "start", "next": "d"},
        {
            "id": "d",
            "type": "call",
            "service": "C",
            "method": "double",
            "input": {"n": "$input.n"},
            "output": "doubled",
            "next": "end",
        },
        {"id": "end", "type": "end", "result": {"doubled": "$doubled"}},
        inputs={"n": {"type": "integer"}},
    )


def test_a_child_runs_as_its_own_execution(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, workflows: WorkflowRegistry
) -> None:
    workflows.register(_doubling_child(services))
    result = engine.run(_parent(), {"n": 21}, execution_id="p")
    assert result.completed
    assert result.output == {"child": {"doubled": 42}}
    assert engine.load("p").ctx["child_out"] == {"doubled": 42}
    children = list(engine.store.find(workflow_id="child"))
    assert [c.id for c in children] == ["p.2"]
    child = children[0]
    assert child.parent_id == "p"
    assert child.status is Status.COMPLETED
    assert child.input == {"n": 21}
    assert child.result == {"doubled": 42}
    assert log(engine, "p.2") == [("start", "completed"), ("d", "completed"), ("end", "completed")]
    assert log(engine, "p") == [("start", "completed"), ("sub", "completed"), ("done", "completed")]
    assert engine.store.entries("p")[1].output == {"doubled": 42}


def test_a_failing_child_fails_the_step(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, workflows: WorkflowRegistry
) -> None:
    def explode(n: int) -> None:
        raise ValueError(f"bad {n}")

    services.register("C", {"explode": explode})
    workflows.register(
        _child(
            {"id": "start", "type": "start", "next": "x"},
            {
                "id": "x",
                "type": "call",
                "service": "C",
                "method": "explode",
                "input": {"n": "$input.n"},
            },
            inputs={"n": {"type": "integer"}},
        )
    )
    result = engine.run(_parent(), {"n": 1}, execution_id="p")
    assert result.failed
    assert result.error == (
        "ExecutionError: sub-workflow 'child' (execution 'p.2') failed: ValueError: bad 1"
    )
    assert engine.load("p.2").status is Status.FAILED
    assert log(engine, "p")[-1] == ("sub", "failed")

    handled = engine.run(_parent(on_error="handle"), {"n": 2}, execution_id="q")
    assert handled.completed
    assert handled.output == "sub-workflow 'child' (execution 'q.2') failed: ValueError: bad 2"


def test_an_unknown_workflow_id_fails_the_step(engine: flowkit.Engine) -> None:
    result = engine.run(_parent(), {"n": 1}, execution_id="p")
    assert result.failed
    assert result.error is not None
    assert result.error.startswith("NotFoundError: workflow 'child' is not known")
    assert engine.store.find(workflow_id="child") == []


def test_invalid_child_input_fails_the_step(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, workflows: WorkflowRegistry
) -> None:
    workflows.register(_doubling_child(services))
    wf = workflow(
        {"id": "start", "type": "start", "next": "sub"},
        {"id": "sub", "type": "workflow", "workflow_id": "child", "input": {"n": "text"}},
        id="parent",
    )
    result = engine.run(wf, execution_id="p")
    assert result.failed
    assert result.error is not None
    assert result.error.startswith("ValidationError: ")
    assert "'n'" in result.error


def _approving_child() -> flowkit.WorkflowDef:
    return _child(
        {"id": "start", "type": "start", "next": "ask"},
        {
            "id": "ask",
            "type": "approval",
            "prompt": "Approve ${input.n}?",
            "approvers": ["alice"],
            "next": "end",
        },
        {"id": "end", "type": "end", "result": {"ok": "$response"}},
        inputs={"n": {"type": "integer"}},
    )


def test_a_halting_child_halts_the_parent(
    engine: flowkit.Engine, workflows: WorkflowRegistry
) -> None:
    workflows.register(_approving_child())
    result = engine.run(_parent(), {"n": 5}, execution_id="p")
    assert result.halted
    assert result.halt is not None
    assert result.halt.prompt == "Approve 5?"
    assert result.halt.data["child_id"] == "p.2"
    assert result.halt.data["child_workflow"] == "child"
    assert result.halt.data["approvers"] == ["alice"]
    assert result.halt.resume_step == "sub"
    child = engine.load("p.2")
    assert child.status is Status.HALTED
    assert child.parent_id == "p"
    assert log(engine, "p") == [("start", "completed"), ("sub", "halted")]


def test_resuming_the_parent_resumes_the_child(
    engine: flowkit.Engine, workflows: WorkflowRegistry
) -> None:
    workflows.register(_approving_child())
    engine.run(_parent(), {"n": 5}, execution_id="p")
    result = engine.resume("p", approved=True, by="alice", response="yes")
    assert result.completed
    assert result.output == {"child": {"ok": "yes"}}
    assert engine.load("p.2").status is Status.COMPLETED
    assert log(engine, "p.2") == [
        ("start", "completed"),
        ("ask", "halted"),
        ("ask", "resumed"),
        ("end", "completed"),
    ]
    assert log(engine, "p")[-2:] == [("sub", "completed"), ("done", "completed")]


def test_approvers_are_enforced_through_the_parent(
    engine: flowkit.Engine, workflows: WorkflowRegistry
) -> None:
    workflows.register(_approving_child())
    engine.run(_parent(), {"n": 5}, execution_id="p")
    parent_before, child_before = snapshot(engine, "p"), snapshot(engine, "p.2")
    with pytest.raises(flowkit.ExecutionError, match="can only be decided by alice"):
        engine.resume("p", approved=True, by="mallory")
    with pytest.raises(flowkit.ExecutionError, match="needs a decision"):
        engine.resume("p", by="alice")
    assert snapshot(engine, "p") == parent_before
    assert snapshot(engine, "p.2") == child_before


def test_a_child_rejection_fails_the_parent_step(
    engine: flowkit.Engine, workflows: WorkflowRegistry
) -> None:
    workflows.register(_approving_child())
    engine.run(_parent(), {"n": 5}, execution_id="p")
    result = engine.resume("p", approved=False, by="alice")
    assert result.failed
    assert result.error == (
        "ExecutionError: sub-workflow 'child' (execution 'p.2') failed: "
        "ExecutionError: approval 'ask' was rejected by alice"
    )


def test_a_child_approval_timeout_moves_the_parent_on(
    engine: flowkit.Engine, workflows: WorkflowRegistry, clock: FakeClock
) -> None:
    workflows.register(
        _child(
            {"id": "start", "type": "start", "next": "ask"},
            {
                "id": "ask",
                "type": "approval",
                "prompt": "ok?",
                "timeout": 60,
                "on_timeout": "late",
                "next": "end",
            },
            {"id": "end", "type": "end", "result": "approved"},
            {"id": "late", "type": "end", "result": "late"},
            inputs={"n": {"type": "integer"}},
        )
    )
    halted = engine.run(_parent(), {"n": 1}, execution_id="p")
    assert halted.halted
    clock.advance(61)
    engine.wake_due()
    assert engine.load("p.2").status is Status.COMPLETED
    parent = engine.load("p")
    assert parent.status is Status.COMPLETED
    assert parent.result == {"child": "late"}


def test_a_child_timeout_fails_the_step(
    engine: flowkit.Engine,
    services: flowkit.ServiceRegistry,
    workflows: WorkflowRegistry,
    release: threading.Event,
) -> None:
    services.register("C", {"hang": lambda: release.wait(10)})
    workflows.register(
        _child(
            {"id": "start", "type": "start", "next": "hang"},
            {"id": "hang", "type": "call", "service": "C", "method": "hang"},
            inputs={"n": {"type": "integer"}},
        )
    )
    result = engine.run(_parent(timeout=0.1), {"n": 1}, execution_id="p")
    assert result.failed
    assert result.error == "ExecutionError: Step 'sub' timed out after 0.1s"
    assert engine.load("p.2").status is Status.FAILED


def test_a_multi_step_parallel_branch_is_a_child_workflow(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, workflows: WorkflowRegistry
) -> None:
    workflows.register(_doubling_child(services))
    wf = workflow(
        {"id": "start", "type": "start", "next": "par"},
        {
            "id": "par",
            "type": "parallel",
            "output": "outs",
            "branches": [
                {"id": "one", "type": "workflow", "workflow_id": "child", "input": {"n": 1}},
                {"id": "two", "type": "workflow", "workflow_id": "child", "input": {"n": 2}},
            ],
        },
        id="parent",
    )
    result = engine.run(wf, execution_id="p")
    assert result.completed
    assert engine.load("p").ctx["outs"] == [{"doubled": 2}, {"doubled": 4}]
    children = engine.store.find(workflow_id="child")
    assert len(children) == 2
    assert {c.parent_id for c in children} == {"p"}


def test_a_crash_in_a_child_continues_the_same_child_on_recovery(
    make_engine: EngineFactory,
    services: flowkit.ServiceRegistry,
    workflows: WorkflowRegistry,
    clock: FakeClock,
) -> None:
    calls: list[str] = []

    def step(name: str) -> str:
        calls.append(name)
        if name == "b" and calls.count("b") == 1:
            raise Crash
        return name

    services.register("C", {"step": step})
    workflows.register(
        _child(
            {"id": "start", "type": "start", "next": "a"},
            {
                "id": "a",
                "type": "call",
                "service": "C",
                "method": "step",
                "input": {"name": "a"},
                "next": "b",
            },
            {"id": "b", "type": "call", "service": "C", "method": "step", "input": {"name": "b"}},
            inputs={"n": {"type": "integer"}},
        )
    )
    first = make_engine()
    first.create(_parent(), {"n": 1}, execution_id="p")
    with pytest.raises(Crash):
        first.drive("p")
    assert first.load("p.2").status is Status.RUNNING

    clock.advance(3600)
    second = make_engine()
    recovered = second.recover()
    assert [r.execution_id for r in recovered] == ["p"]  # children go with their parent
    assert second.load("p").status is Status.COMPLETED
    assert calls == ["a", "b", "b"]
    assert [c.id for c in second.store.find(workflow_id="child")] == ["p.2"]
    assert [(e.step_id, e.action) for e in second.store.entries("p.2")] == [
        ("start", Action.COMPLETED),
        ("a", Action.COMPLETED),
        ("b", Action.COMPLETED),
    ]


def test_resuming_the_child_directly_moves_the_parent_on(
    engine: flowkit.Engine, workflows: WorkflowRegistry
) -> None:
    workflows.register(_approving_child())
    engine.run(_parent(), {"n": 5}, execution_id="p")
    child = engine.resume("p.2", approved=True, by="alice", response="direct")
    assert child.completed
    parent = engine.load("p")
    assert parent.status is Status.COMPLETED
    assert parent.result == {"child": {"ok": "direct"}}
    with pytest.raises(flowkit.ExecutionError, match="is completed"):
        engine.resume("p", approved=True, by="alice")

"""Halt and approval steps: halt data, resume targets, approvers, decisions, timers."""

from __future__ import annotations

from typing import Any

import pytest

import flowkit
from flowkit import Action, Status

from .conftest import FakeClock
from .helpers import log, snapshot, workflow


def _halt_wf(**halt: Any) -> flowkit.WorkflowDef:
    steps = [
        {"id": "start", "type": "start", "next": "wait"},
        {
            "id": "wait",
            "type": "halt",
            "reason": "need ${input.what}",
            "data": {"order": "$input.order"},
            "next": "after",
            **halt,
        },
        {"id": "after", "type": "end", "result": {"step": "after", "response": "$response"}},
    ]
    if halt.get("resume_step") == "other":
        steps.append(
            {"id": "other", "type": "end", "result": {"step": "other", "response": "$response"}}
        )
    return workflow(*steps, inputs={"what": {"type": "string"}, "order": {"type": "integer"}})


def test_halt_saves_halt_data_and_recover_to(engine: flowkit.Engine, clock: FakeClock) -> None:
    result = engine.run(_halt_wf(), {"what": "docs", "order": 7})
    assert result.status is Status.HALTED
    assert result.halted
    expected = {"reason": "need docs", "halted_at": clock.now().isoformat(), "order": 7}
    assert result.halt is not None
    assert result.halt.data == expected
    assert result.halt.prompt == "need docs"
    assert result.halt.resume_step == "after"
    execution = engine.load(result.execution_id)
    assert execution.status is Status.HALTED
    assert execution.halt_data == expected
    assert execution.recover_to == "after"
    assert execution.current_step == "wait"
    assert execution.lease_owner is None
    entries = engine.store.entries(result.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [
        ("start", Action.COMPLETED),
        ("wait", Action.HALTED),
    ]
    assert entries[-1].output == expected


def test_resume_after_halt_continues_at_next_with_response(engine: flowkit.Engine) -> None:
    halted = engine.run(_halt_wf(), {"what": "docs", "order": 7})
    result = engine.resume(halted.execution_id, response={"docs": ["a.pdf"]})
    assert result.completed
    assert result.output == {"step": "after", "response": {"docs": ["a.pdf"]}}
    execution = engine.load(result.execution_id)
    assert execution.ctx["response"] == {"docs": ["a.pdf"]}
    assert execution.halt_data is None
    assert log(engine, result.execution_id) == [
        ("start", "completed"),
        ("wait", "halted"),
        ("wait", "resumed"),
        ("after", "completed"),
    ]


def test_resume_after_halt_continues_at_resume_step(engine: flowkit.Engine) -> None:
    halted = engine.run(_halt_wf(resume_step="other"), {"what": "docs", "order": 7})
    assert halted.halt is not None
    assert halted.halt.resume_step == "other"
    result = engine.resume(halted.execution_id, response="hi")
    assert result.output == {"step": "other", "response": "hi"}


def test_a_halt_without_next_completes_on_resume(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "wait"},
        {"id": "wait", "type": "halt"},
    )
    halted = engine.run(wf)
    assert halted.halt is not None
    assert halted.halt.data["reason"] is None
    assert engine.resume(halted.execution_id).completed


def test_a_halted_execution_can_halt_again(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "one"},
        {"id": "one", "type": "halt", "reason": "first", "next": "two"},
        {"id": "two", "type": "halt", "reason": "second", "next": "done"},
        {"id": "done", "type": "end", "result": "$response"},
    )
    first = engine.run(wf)
    second = engine.resume(first.execution_id, response=1)
    assert second.halted
    assert second.halt is not None
    assert second.halt.prompt == "second"
    assert engine.resume(first.execution_id, response=2).output == 2


# --- approvals ----------------------------------------------------------------------------------


def _approval_wf(**approval: Any) -> flowkit.WorkflowDef:
    steps = [
        {"id": "start", "type": "start", "next": "ask"},
        {
            "id": "ask",
            "type": "approval",
            "prompt": "Approve ${input.amount}?",
            "context": {"amount": "$input.amount"},
            "next": "yes",
            **approval,
        },
        {"id": "yes", "type": "end", "result": "approved"},
    ]
    if "no" in approval.values():
        steps.append({"id": "no", "type": "end", "result": "rejected"})
    if "late" in approval.values():
        steps.append({"id": "late", "type": "end", "result": "timed out"})
    return workflow(*steps, inputs={"amount": {"type": "number"}})


def test_approval_halts_with_prompt_and_context(engine: flowkit.Engine, clock: FakeClock) -> None:
    result = engine.run(_approval_wf(approvers=["alice"], on_reject="no"), {"amount": 150})
    assert result.halted
    assert result.halt is not None
    assert result.halt.prompt == "Approve 150?"
    assert result.halt.resume_step == "ask"
    assert result.halt.data == {
        "prompt": "Approve 150?",
        "context": {"amount": 150},
        "approvers": ["alice"],
        "halted_at": clock.now().isoformat(),
    }
    assert engine.load(result.execution_id).wake_at is None


def test_approve_goes_to_next(engine: flowkit.Engine) -> None:
    halted = engine.run(_approval_wf(on_reject="no"), {"amount": 1})
    result = engine.resume(halted.execution_id, approved=True, by="bob", response={"n": 1})
    assert result.output == "approved"
    entries = engine.store.entries(result.execution_id)
    resumed = entries[2]
    assert (resumed.step_id, resumed.action) == ("ask", Action.RESUMED)
    assert resumed.output == {"approved": True, "by": "bob", "response": {"n": 1}}
    assert engine.load(result.execution_id).ctx["response"] == {"n": 1}


def test_reject_goes_to_on_reject(engine: flowkit.Engine) -> None:
    halted = engine.run(_approval_wf(on_reject="no"), {"amount": 1})
    result = engine.resume(halted.execution_id, approved=False)
    assert result.output == "rejected"
    assert log(engine, result.execution_id)[-2:] == [("ask", "resumed"), ("no", "completed")]


def test_reject_without_on_reject_fails_rejected(engine: flowkit.Engine) -> None:
    halted = engine.run(_approval_wf(approvers=["alice"]), {"amount": 1})
    result = engine.resume(halted.execution_id, approved=False, by="alice")
    assert result.failed
    assert result.error == "ExecutionError: approval 'ask' was rejected by alice"
    assert log(engine, result.execution_id)[-1] == ("ask", "failed")


def test_a_rejection_error_goes_to_on_error(engine: flowkit.Engine) -> None:
    halted = engine.run(_approval_wf(on_error="no"), {"amount": 1})
    result = engine.resume(halted.execution_id, approved=False)
    assert result.output == "rejected"
    ctx = engine.load(result.execution_id).ctx
    assert ctx["_last_error"]["step"] == "ask"
    assert "rejected" in ctx["_last_error"]["message"]


@pytest.mark.parametrize("by", ["mallory", None])
def test_approvers_are_enforced_and_nothing_changes(engine: flowkit.Engine, by: str | None) -> None:
    halted = engine.run(_approval_wf(approvers=["alice", "bob"], on_reject="no"), {"amount": 1})
    before = snapshot(engine, halted.execution_id)
    with pytest.raises(flowkit.ExecutionError) as caught:
        engine.resume(halted.execution_id, approved=True, by=by, response={"x": 1})
    message = str(caught.value)
    assert "can only be decided by alice, bob" in message
    assert ("'mallory' is not one of them" if by else "an anonymous caller") in message
    assert snapshot(engine, halted.execution_id) == before
    assert engine.resume(halted.execution_id, approved=True, by="bob").output == "approved"


def test_a_resume_without_decision_is_refused(engine: flowkit.Engine) -> None:
    halted = engine.run(_approval_wf(on_reject="no"), {"amount": 1})
    before = snapshot(engine, halted.execution_id)
    with pytest.raises(flowkit.ExecutionError, match="needs a decision"):
        engine.resume(halted.execution_id, response={"approved": True})
    assert snapshot(engine, halted.execution_id) == before


def test_a_stale_ctx_key_cannot_approve(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "set"},
        {
            "id": "set",
            "type": "assign",
            "set": {"approved": True, "response": {"approved": True}},
            "next": "ask",
        },
        {"id": "ask", "type": "approval", "prompt": "ok?", "next": "yes", "on_reject": "no"},
        {"id": "yes", "type": "end", "result": "approved"},
        {"id": "no", "type": "end", "result": "rejected"},
    )
    halted = engine.run(wf)
    with pytest.raises(flowkit.ExecutionError, match="needs a decision"):
        engine.resume(halted.execution_id)
    assert engine.resume(halted.execution_id, approved=False).output == "rejected"


def test_approval_timeout_moves_to_on_timeout(engine: flowkit.Engine, clock: FakeClock) -> None:
    halted = engine.run(_approval_wf(timeout=3600, on_timeout="late"), {"amount": 1})
    assert halted.halt is not None
    start = clock.now()
    assert halted.halt.data["expires_at"] == (start.replace() + _seconds(3600)).isoformat()
    execution = engine.load(halted.execution_id)
    assert execution.wake_at == start + _seconds(3600)

    clock.advance(3599)
    assert engine.wake_due() == []
    assert engine.load(halted.execution_id).status is Status.HALTED

    clock.advance(1)
    [woken] = engine.wake_due()
    assert woken.execution_id == halted.execution_id
    assert woken.completed
    assert woken.output == "timed out"
    execution = engine.load(halted.execution_id)
    assert execution.wake_at is None
    assert log(engine, halted.execution_id) == [
        ("start", "completed"),
        ("ask", "halted"),
        ("ask", "resumed"),
        ("late", "completed"),
    ]
    assert engine.store.entries(halted.execution_id)[2].output == {"timed_out": True}
    assert engine.wake_due() == []


def test_approval_timeout_without_on_timeout_fails(
    engine: flowkit.Engine, clock: FakeClock
) -> None:
    halted = engine.run(_approval_wf(timeout=60), {"amount": 1})
    clock.advance(61)
    [woken] = engine.wake_due()
    assert woken.failed
    assert woken.error == "ExecutionError: approval 'ask' timed out after 60s with no decision"
    assert engine.load(halted.execution_id).status is Status.FAILED


def test_an_approval_decided_before_its_timeout_never_fires(
    engine: flowkit.Engine, clock: FakeClock
) -> None:
    halted = engine.run(_approval_wf(timeout=60, on_timeout="late"), {"amount": 1})
    assert engine.resume(halted.execution_id, approved=True).output == "approved"
    assert engine.load(halted.execution_id).wake_at is None
    clock.advance(120)
    assert engine.wake_due() == []
    assert engine.load(halted.execution_id).result == "approved"


def test_fire_timer_before_it_is_due_is_dropped(engine: flowkit.Engine) -> None:
    halted = engine.run(_approval_wf(timeout=60, on_timeout="late"), {"amount": 1})
    advance = engine.fire_timer(halted.execution_id)
    assert advance.dropped
    assert engine.load(halted.execution_id).status is Status.HALTED


def _seconds(n: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)


# --- resume errors ------------------------------------------------------------------------------


def test_resuming_a_completed_or_failed_execution_is_refused(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    done = engine.run(workflow({"id": "start", "type": "start"}))
    with pytest.raises(flowkit.ExecutionError, match="is completed and cannot be resumed"):
        engine.resume(done.execution_id)

    def explode() -> None:
        raise RuntimeError("x")

    services.register("S", {"x": explode})
    failed = engine.run(
        workflow(
            {"id": "start", "type": "start", "next": "c"},
            {"id": "c", "type": "call", "service": "S", "method": "x"},
        )
    )
    before = snapshot(engine, failed.execution_id)
    with pytest.raises(flowkit.ExecutionError, match="is failed and cannot be resumed"):
        engine.resume(failed.execution_id)
    assert snapshot(engine, failed.execution_id) == before


def test_resuming_a_running_execution_raises_conflict(engine: flowkit.Engine) -> None:
    execution = engine.create(_halt_wf(), {"what": "x", "order": 1})
    assert execution.status is Status.RUNNING
    with pytest.raises(flowkit.ConflictError, match="not halted"):
        engine.resume(execution.id)


def test_resuming_an_unknown_execution_raises_not_found(engine: flowkit.Engine) -> None:
    with pytest.raises(flowkit.NotFoundError, match="no execution 'nope'"):
        engine.resume("nope")
    with pytest.raises(LookupError):
        engine.resume("nope")

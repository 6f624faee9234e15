"""Testing expense_approval: the router, the approval, and a three-day timeout in no time.

``flowkit_clock`` is the engine's clock: it only moves when the test says so,
so ``flowkit_clock.advance(...)`` followed by ``flowkit_engine.wake_due()``
plays out a deadline days away at once.
"""

from __future__ import annotations

import pytest

import flowkit
from examples.expense_approval import workflow

DAY = 24 * 60 * 60


def claim(engine, amount, **extra):
    return engine.run(workflow, {"amount": amount, "employee": "Ada", **extra})


@pytest.mark.parametrize(
    ("amount", "limit", "goes_to"),
    [
        (50, 100, "auto_approved"),
        (100, 100, "auto_approved"),
        (250, 100, "ask"),
        (250, 500, "auto_approved"),
    ],
)
def test_check_routes_on_the_limit(run_step, amount, limit, goes_to):
    result = run_step(workflow, "check", input={"amount": amount, "limit": limit})
    assert result.next == goes_to


def test_ask_halts_with_the_prompt_and_the_approvers(run_step):
    result = run_step(
        workflow, "ask", input={"amount": 250, "employee": "Ada", "note": "taxi", "limit": 100}
    )
    assert result.status is flowkit.Status.HALTED
    assert result.halt["prompt"] == "Approve an expense of 250 from Ada? taxi"
    assert result.halt["approvers"] == ["alice", "bob"]


def test_approved_by_a_listed_approver(flowkit_engine):
    halted = claim(flowkit_engine, 250)
    assert halted.halted
    done = flowkit_engine.resume(
        halted.execution_id, approved=True, by="alice", response={"comment": "fine"}
    )
    assert done.output == {
        "status": "approved",
        "employee": "Ada",
        "amount": 250,
        "comment": "fine",
    }


def test_someone_else_cannot_decide(flowkit_engine):
    halted = claim(flowkit_engine, 250)
    with pytest.raises(flowkit.ExecutionError):
        flowkit_engine.resume(halted.execution_id, approved=True, by="mallory")
    assert flowkit_engine.load(halted.execution_id).status is flowkit.Status.HALTED


def test_nobody_answers_for_three_days(flowkit_engine, flowkit_clock):
    halted = claim(flowkit_engine, 250)

    flowkit_clock.advance(3 * DAY - 1)
    assert flowkit_engine.wake_due() == []  # not yet

    flowkit_clock.advance(1)
    [expired] = flowkit_engine.wake_due()
    assert expired.execution_id == halted.execution_id
    assert expired.output == {"status": "expired", "employee": "Ada", "amount": 250}


def test_small_expenses_pass_at_once(flowkit_engine):
    result = claim(flowkit_engine, 20)
    assert result.completed
    assert result.output["status"] == "auto_approved"

"""The complete test file of docs/testing.md: a refund workflow and its tests.

It uses only the fixtures of flowkit's pytest plugin: one step run alone with
a stubbed service, the stub's calls, retries and a two-day approval timeout
on the fake clock, and the whole workflow from start to end.
"""

from __future__ import annotations

import flowkit
from flowkit.testing import Call

DAY = 24 * 60 * 60

# --- the workflow (in a project it lives in its own module) -------------------------------------

refunds = flowkit.Workflow("refunds", inputs={"order_id": str, "amount": float})


@refunds.step(output="policy")
def check_policy(amount: float) -> dict:
    return {"needs_approval": amount > 100}


refunds.router(
    "decide",
    routes=[flowkit.when("policy.needs_approval", "eq", True).then("approve")],
    default="pay",
)
refunds.approval(
    "approve",
    prompt="Refund $input.amount for order $input.order_id?",
    approvers=["finance"],
    timeout=2 * DAY,
    on_timeout="expired",
    on_reject="rejected",
)
refunds.call(
    "pay",
    service="Payments",  # registered elsewhere with @flowkit.service("Payments")
    method="refund",
    input={"order_id": "$input.order_id", "amount": "$input.amount"},
    output="payment",
    retries=2,
    retry_delay=5,
)
refunds.end("done", result={"status": "refunded", "payment_id": "$payment.id"})
refunds.end("rejected", result={"status": "rejected"})
refunds.end("expired", result={"status": "expired"})

# --- the tests ----------------------------------------------------------------------------------


def test_a_step_function_is_a_plain_function():
    assert check_policy(250.0) == {"needs_approval": True}


def test_pay_refunds_through_the_payment_service(run_step, stub_service):
    payments = stub_service("Payments", {"refund": {"id": "rf-1"}})

    result = run_step(refunds, "pay", input={"order_id": "o-1", "amount": 30.0})

    assert result.status is flowkit.Status.COMPLETED
    assert result.ctx == {"payment": {"id": "rf-1"}}
    assert result.next == "done"
    assert payments.calls == [
        Call(method="refund", args=(), kwargs={"order_id": "o-1", "amount": 30.0})
    ]


def test_a_failing_payment_is_retried_without_waiting(run_step, stub_service, flowkit_clock):
    payments = stub_service("Payments", {"refund": ConnectionError("bank unreachable")})

    result = run_step(refunds, "pay", input={"order_id": "o-1", "amount": 30.0})

    assert result.status is flowkit.Status.FAILED
    assert result.error == "ConnectionError: bank unreachable"
    assert len(payments.calls_to("refund")) == 3  # the first attempt and two retries
    assert flowkit_clock.sleeps == [5, 10]  # retry_delay, then doubled; no real waiting


def test_big_refunds_need_an_approval(run_step):
    result = run_step(refunds, "decide", ctx={"policy": {"needs_approval": True}})
    assert result.next == "approve"


def test_an_unanswered_approval_expires(flowkit_engine, flowkit_clock, stub_service):
    payments = stub_service("Payments", {"refund": {"id": "never"}})
    halted = flowkit_engine.run(refunds, {"order_id": "o-2", "amount": 500.0})
    assert halted.halted
    assert halted.halt.prompt == "Refund 500.0 for order o-2?"

    flowkit_clock.advance(2 * DAY - 1)
    assert flowkit_engine.wake_due() == []  # not yet

    flowkit_clock.advance(1)
    [expired] = flowkit_engine.wake_due()
    assert expired.execution_id == halted.execution_id
    assert expired.output == {"status": "expired"}
    assert not payments.called


def test_the_whole_workflow(flowkit_engine, flowkit_store, stub_service):
    def refund(order_id, amount):
        return {"id": f"rf-{order_id}"}

    payments = stub_service("Payments", {"refund": refund})

    small = flowkit_engine.run(refunds, {"order_id": "o-3", "amount": 20.0})
    assert small.completed
    assert small.output == {"status": "refunded", "payment_id": "rf-o-3"}

    halted = flowkit_engine.run(refunds, {"order_id": "o-4", "amount": 900.0})
    done = flowkit_engine.resume(halted.execution_id, approved=True, by="finance")
    assert done.output == {"status": "refunded", "payment_id": "rf-o-4"}

    assert [call.kwargs["order_id"] for call in payments.calls] == ["o-3", "o-4"]
    steps = [entry.step_id for entry in flowkit_store.entries(halted.execution_id)]
    assert steps == ["start", "check_policy", "decide", "approve", "approve", "pay", "done"]

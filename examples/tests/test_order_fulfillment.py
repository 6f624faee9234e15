"""Testing order_fulfillment: payment with a stub, its retries, the approval deadline.

The real example services keep stock and charges in memory; the conftest
resets them for every test.
"""

from __future__ import annotations

import pytest

from examples.order_fulfillment import workflow

DAY = 24 * 60 * 60
ORDER = {
    "order_id": "o-1",
    "customer": {"name": "Ada", "email": "ada@example.com", "address": "London"},
    "items": [{"sku": "WIDGET", "quantity": 2, "price": 25.0}],
    "payment": {"card_number": "4242424242424242"},
}
BIG_ORDER = {**ORDER, "items": [{"sku": "LAPTOP", "quantity": 2, "price": 1299.0}]}
TOTALS = {"subtotal": 50.0, "tax": 4.0, "shipping": 7.5, "total": 61.5}


def test_payment_charges_the_total(run_step, stub_service):
    payments = stub_service(
        "PaymentService", {"charge": {"payment_id": "pay-1", "status": "captured"}}
    )
    result = run_step(workflow, "process_payment", ctx={"totals": TOTALS}, input=ORDER)
    assert result.ctx["payment_result"] == {"payment_id": "pay-1", "status": "captured"}
    assert result.next == "reserve_inventory"
    [charge] = payments.calls_to("charge")
    assert charge.kwargs == {"order_id": "o-1", "payment": ORDER["payment"], "amount": 61.5}


def test_a_declined_payment_is_retried_then_handled(run_step, stub_service, flowkit_clock):
    payments = stub_service("PaymentService", {"charge": RuntimeError("card declined")})
    result = run_step(workflow, "process_payment", ctx={"totals": TOTALS}, input=ORDER)
    assert result.next == "payment_failed"
    assert len(payments.calls) == 3
    assert flowkit_clock.sleeps == [2, 4]  # retry_delay 2, doubled each time


@pytest.mark.parametrize(
    ("total", "goes_to"), [(999.0, "process_payment"), (1000.5, "require_approval")]
)
def test_orders_above_the_threshold_need_an_approval(run_step, total, goes_to):
    result = run_step(
        workflow,
        "check_approval",
        ctx={"totals": {"total": total}},
        input={"approval_threshold": 1000},
    )
    assert result.next == goes_to


def test_the_whole_order(flowkit_engine):
    result = flowkit_engine.run(workflow, ORDER)
    assert result.completed
    assert result.output["status"] == "completed"
    assert result.output["totals"]["total"] == 61.5
    assert result.output["tracking_number"].startswith("FP")


def test_a_big_order_waits_for_a_manager(flowkit_engine):
    halted = flowkit_engine.run(workflow, BIG_ORDER)
    assert halted.halted
    assert halted.halt.prompt == "Order o-1 totals 2805.84 (limit 1000). Approve?"
    done = flowkit_engine.resume(halted.execution_id, approved=True, by="finance")
    assert done.output["status"] == "completed"


def test_a_big_order_expires_after_a_day(flowkit_engine, flowkit_clock, stub_service):
    payments = stub_service("PaymentService", {"charge": {"payment_id": "never"}})
    halted = flowkit_engine.run(workflow, BIG_ORDER)
    flowkit_clock.advance(DAY + 1)
    [expired] = flowkit_engine.wake_due()
    assert expired.execution_id == halted.execution_id
    assert expired.output == {
        "order_id": "o-1",
        "status": "expired",
        "error": "nobody approved the order within a day",
    }
    assert not payments.called

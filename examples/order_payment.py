"""order_payment: an order that holds stock, waits for its payment, and gives the stock
back when the payment never comes or support cancels the order, written in Python.

The twin of ``order_payment.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: ``wf.wait(...)`` for a signal with a timeout, and ``compensate=`` on a
call step, which undoes it when the execution fails unhandled (the wait timed
out) or is cancelled.

Services: ``Warehouse`` (examples/services/warehouse.py). The payment
provider's webhook sends the signal, once per payment id:
    flowkit.signal(execution_id, "payment", {"amount": 42.0}, key="pay_123")
"""

from __future__ import annotations

import flowkit

__all__ = ["workflow"]

workflow = flowkit.Workflow(
    "order_payment",
    name="Order payment",
    description="Holds stock for an order until it is paid, then ships it.",
    inputs={
        "order_id": flowkit.Input(type=str, description="The shop's order number."),
        "items": flowkit.Input(type=list, description="Order lines, {sku, quantity}."),
    },
)

workflow.call(
    "hold",
    service="Warehouse",
    method="hold",
    input={"order_id": "$input.order_id", "items": "$input.items"},
    output="stock",
    compensate={"service": "Warehouse", "method": "release", "input": {"hold": "$output.id"}},
)
workflow.wait("payment", signal="payment", output="payment", timeout="30m")
workflow.call(
    "ship",
    service="Warehouse",
    method="ship",
    input={"hold": "$stock.id", "paid": "$payment.amount"},
    output="shipment",
)
workflow.end("done", result={"order_id": "$input.order_id", "tracking": "$shipment.tracking"})

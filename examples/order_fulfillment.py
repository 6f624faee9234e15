"""order_fulfillment: an e-commerce order from validation to shipment, written in Python.

The twin of ``order_fulfillment.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: call steps with retries, timeouts, ``on_error`` and outputs checked by
JSON Schemas (built once as Python values and reused); routers; an approval
with ``on_reject``/``on_timeout`` and ``$response``; a compensating refund when
stock cannot be reserved after payment; assign steps feeding a shared end.
Steps are declared in the order of the YAML file; a step whose ``next`` is not
the step declared after it says so with ``next=``.

Services (``examples.services.orders``; inputs are keyword arguments, and each
call may read ``flowkit.current().idempotency_key`` to make its side effects
idempotent):
    OrderService.validate_order(order_id, customer, items) -> {"valid", "errors"}
    OrderService.calculate_totals(items, options) -> {"subtotal", "tax", "shipping", "total"}
    InventoryService.check_availability(items) -> {"all_available", "missing"}
    InventoryService.reserve(order_id, items) -> {"reservation_id"}
    PaymentService.charge(order_id, payment, amount) -> {"payment_id", "status"}
    PaymentService.refund(payment_id, amount, reason) -> {"refund_id"}
    ShippingService.create_shipment(order_id, customer, items, reservation_id)
      -> {"shipment_id", "tracking_number"}
"""

from __future__ import annotations

from typing import Any

import flowkit

__all__ = ["workflow"]

DAY = 24 * 60 * 60  # seconds


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema for an object with these properties."""
    return {"type": "object", "required": required, "properties": properties}


STRING_LIST = {"type": "array", "items": {"type": "string"}}
NUMBER = {"type": "number"}

workflow = flowkit.Workflow(
    "order_fulfillment",
    name="Order Fulfillment",
    description="Validates, prices, approves, charges, reserves and ships an order.",
    timeout=3 * DAY,  # approvals included
    inputs={
        "order_id": flowkit.Input(type=str, description="Unique order identifier."),
        "customer": flowkit.Input(
            type=dict, description="Customer information: name, email, address."
        ),
        "items": flowkit.Input(type=list, description="Order lines: sku, quantity, price."),
        "payment": flowkit.Input(type=dict, description="Payment method details."),
        "options": flowkit.Input(
            type=dict,
            required=False,
            default={},
            description="Order options, such as express shipping or a coupon.",
        ),
        "approval_threshold": flowkit.Input(
            type=float,
            required=False,
            default=1000,
            description="Orders whose total is above this need a manager's approval.",
        ),
    },
)

# --- validation ---------------------------------------------------------------------------------

workflow.call(
    "validate",
    service="OrderService",
    method="validate_order",
    input={"order_id": "$input.order_id", "customer": "$input.customer", "items": "$input.items"},
    output={
        "key": "validation",
        "schema": _object(["valid"], valid={"type": "boolean"}, errors=STRING_LIST),
    },
    on_error="validation_error",
)

workflow.router(
    "check_validation",
    routes=[flowkit.when("validation.valid", "eq", True).then("check_inventory")],
    default="invalid",
)

workflow.assign(
    "invalid",
    set={"status": "invalid", "error": "order $input.order_id is invalid: $validation.errors"},
    next="failed",
)

workflow.assign(
    "validation_error",
    set={"status": "failed", "error": "could not validate the order: $_last_error.message"},
    next="failed",
)

# --- inventory and totals -----------------------------------------------------------------------

workflow.call(
    "check_inventory",
    service="InventoryService",
    method="check_availability",
    input={"items": "$input.items"},
    output={
        "key": "inventory",
        "schema": _object(
            ["all_available"], all_available={"type": "boolean"}, missing=STRING_LIST
        ),
    },
    retries=2,
)

workflow.router(
    "inventory_decision",
    routes=[flowkit.when("inventory.all_available", "eq", True).then("calculate_totals")],
    default="out_of_stock",
)

workflow.assign(
    "out_of_stock",
    set={"status": "out_of_stock", "error": "not in stock: $inventory.missing"},
    next="failed",
)

workflow.call(
    "calculate_totals",
    service="OrderService",
    method="calculate_totals",
    input={"items": "$input.items", "options": "$input.options"},
    output={
        "key": "totals",
        "schema": _object(["total"], subtotal=NUMBER, tax=NUMBER, shipping=NUMBER, total=NUMBER),
    },
)

# --- approval over the threshold ----------------------------------------------------------------

workflow.router(
    "check_approval",
    routes=[
        flowkit.when("totals.total", "gt", "$input.approval_threshold").then("require_approval")
    ],
    default="process_payment",
)

workflow.approval(
    "require_approval",
    prompt=(
        "Order $input.order_id totals $totals.total (limit $input.approval_threshold). Approve?"
    ),
    context={
        "order_id": "$input.order_id",
        "customer": "$input.customer.name",
        "total": "$totals.total",
        "items": "$input.items",
    },
    approvers=["sales_manager", "finance"],
    timeout=DAY,
    on_timeout="approval_expired",
    on_reject="rejected",
    next="process_payment",
)

workflow.assign(
    "rejected",
    set={"status": "rejected", "error": "rejected by a manager: $response.reason"},
    next="failed",
)

workflow.assign(
    "approval_expired",
    set={"status": "expired", "error": "nobody approved the order within a day"},
    next="failed",
)

# --- payment, reservation, shipment -------------------------------------------------------------

workflow.call(
    "process_payment",
    service="PaymentService",
    method="charge",
    input={"order_id": "$input.order_id", "payment": "$input.payment", "amount": "$totals.total"},
    output={
        "key": "payment_result",
        "schema": _object(["payment_id"], payment_id={"type": "string"}, status={"type": "string"}),
    },
    timeout=30,
    retries=2,
    retry_delay=2,
    on_error="payment_failed",
    next="reserve_inventory",
)

workflow.assign(
    "payment_failed",
    set={"status": "payment_failed", "error": "payment failed: $_last_error.message"},
    next="failed",
)

workflow.call(
    "reserve_inventory",
    service="InventoryService",
    method="reserve",
    input={"order_id": "$input.order_id", "items": "$input.items"},
    output="reservation",
    on_error="refund_payment",
    next="create_shipment",
)

# Compensation: the customer was charged but the stock is gone.
workflow.call(
    "refund_payment",
    service="PaymentService",
    method="refund",
    input={
        "payment_id": "$payment_result.payment_id",
        "amount": "$totals.total",
        "reason": "$_last_error.message",
    },
    output="refund",
    retries=5,
)

workflow.assign(
    "reservation_failed",
    set={
        "status": "reservation_failed",
        "error": "could not reserve the items (payment refunded): $_last_error.message",
    },
    next="failed",
)

workflow.call(
    "create_shipment",
    service="ShippingService",
    method="create_shipment",
    input={
        "order_id": "$input.order_id",
        "customer": "$input.customer",
        "items": "$input.items",
        "reservation_id": "$reservation.reservation_id",
    },
    output="shipment",
    retries=3,
)

# --- outcomes -----------------------------------------------------------------------------------

workflow.end(
    "completed",
    result={
        "order_id": "$input.order_id",
        "status": "completed",
        "totals": "$totals",
        "payment_id": "$payment_result.payment_id",
        "tracking_number": "$shipment.tracking_number",
        "error": None,
    },
)

workflow.end(
    "failed",
    result={"order_id": "$input.order_id", "status": "$status", "error": "$error"},
)

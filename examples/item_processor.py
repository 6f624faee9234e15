"""item_processor: one service call, and a result mapping built from references,
written in Python.

The twin of ``item_processor.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: a call step whose output is checked against a JSON Schema
(``output={"key": ..., "schema": ...}``), references into that output
(``$processed.total``, list indexing with ``$processed.items.0.sku``), the
braced form ``${...}`` next to other characters, and an end result that mixes
raw values and text.

Services (``examples.services.items``, registered as "Items"):
    Items.process(items: list[dict], batch_id: str) -> dict
      returns {"items": [{"sku", "quantity", "price", "line_total"}, ...],
               "count": int, "total": float}
"""

from __future__ import annotations

from typing import Any

import flowkit

__all__ = ["PROCESSED_SCHEMA", "workflow"]

PROCESSED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["items", "count", "total"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": {"type": "integer"},
                    "price": {"type": "number"},
                    "line_total": {"type": "number"},
                },
            },
        },
        "count": {"type": "integer"},
        "total": {"type": "number"},
    },
}
"""What ``Items.process`` returns; the validator also checks references into it."""

workflow = flowkit.Workflow(
    "item_processor",
    name="Item Processor",
    description="Prices a batch of items and reports totals.",
    inputs={
        "batch_id": flowkit.Input(
            type=str, description="Identifier of the batch, echoed in the result."
        ),
        "items": flowkit.Input(type=list, description="Items as {sku, quantity, price}."),
    },
)

workflow.call(
    "process",
    service="Items",
    method="process",
    input={"items": "$input.items", "batch_id": "$input.batch_id"},
    output={"key": "processed", "schema": PROCESSED_SCHEMA},
    timeout=30,
)

workflow.end(
    "done",
    result={
        "batch_id": "$input.batch_id",
        "count": "$processed.count",
        "total": "$processed.total",
        "first_sku": "$processed.items.0.sku",
        "items": "$processed.items",
        "summary": "Batch ${input.batch_id}: $processed.count items, total $processed.total",
    },
)

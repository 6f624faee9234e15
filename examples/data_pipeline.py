"""data_pipeline: enrich records one by one, then aggregate them without code,
written in Python.

The twin of ``data_pipeline.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: a foreach loop (``over``, ``as_``, ``index_as``, ``max``, ``output``)
whose body is declared in a ``with`` block and calls a service per record with
the loop variables; the loop output (the last output of every iteration, in
order); transform steps chaining select, sort, pluck, uniq, first, sum and
count (declarative ops, never evaluated code), given as a mapping or as a list
of ``(op, argument)`` pairs; and an end result.

Services (``examples.services.records``):
    Records.enrich(record: dict, position: int, source: str) -> dict
      the record with "customer": str, "amount": float, "score": float and
      "valid": bool added
"""

from __future__ import annotations

import flowkit

__all__ = ["workflow"]

workflow = flowkit.Workflow(
    "data_pipeline",
    name="Data Pipeline",
    description="Enriches input records, keeps the valid ones and reports totals.",
    inputs={
        "records": flowkit.Input(type=list, description="Raw records to enrich."),
        "source": flowkit.Input(
            type=str,
            required=False,
            default="import",
            description="Where the records come from, passed to the enrich service.",
        ),
    },
)

# A foreach over more elements than `max` fails (the default is 100).
with workflow.loop(
    "enrich_all",
    over="$input.records",
    as_="record",
    index_as="position",
    max=10_000,
    output="enriched",
) as body:
    body.call(
        "enrich",
        service="Records",
        method="enrich",
        input={"record": "$record", "position": "$position", "source": "$input.source"},
        output="enriched_record",
        timeout=10,
        retries=2,
    )

workflow.transform(
    "rank",
    input="enriched",
    expression={
        "select": {"field": "valid", "op": "eq", "value": True},
        "sort": {"by": "score", "order": "desc"},
    },
    output="ranked",
)

# The list form applies ops in the order written and allows an op twice.
workflow.transform(
    "top_customers",
    input="ranked",
    expression=[("pluck", "customer"), ("uniq", True), ("first", 3)],
    output="top_customers",
)

workflow.transform(
    "total_amount", input="ranked", expression={"sum": "amount"}, output="total_amount"
)

workflow.transform("count_valid", input="ranked", expression={"count": True}, output="valid_count")

workflow.transform(
    "count_invalid",
    input="enriched",
    expression={"count": {"field": "valid", "op": "falsy"}},
    output="invalid_count",
)

workflow.end(
    "done",
    result={
        "source": "$input.source",
        "valid_count": "$valid_count",
        "invalid_count": "$invalid_count",
        "total_amount": "$total_amount",
        "top_customers": "$top_customers",
        "records": "$ranked",
    },
)

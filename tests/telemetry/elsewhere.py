"""The other process of the halt-and-resume trace test: ``python -m tests.telemetry.elsewhere
STORE_URL EXECUTION_ID`` resumes the execution with an SDK tracer provider of its own and
prints the spans it finished as JSON."""

from __future__ import annotations

import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flowkit

APPROVAL = flowkit.load(
    {
        "id": "approval",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            {"id": "before", "type": "assign", "set": {"x": 1}, "next": "ask"},
            {"id": "ask", "type": "approval", "prompt": "ok?", "next": "after"},
            {"id": "after", "type": "assign", "set": {"y": 2}},
        ],
    }
)


def main(store_url: str, execution_id: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    with flowkit.Engine(store=store_url, executor="inline") as engine:
        engine.definition(APPROVAL)
        result = engine.resume(execution_id, approved=True)
    spans = [
        {
            "name": span.name,
            "trace_id": span.context.trace_id,
            "parent_id": span.parent.span_id if span.parent else None,
            "links": len(span.links),
        }
        for span in exporter.get_finished_spans()
        if span.context is not None
    ]
    print(json.dumps({"status": result.status.value, "spans": spans}))


if __name__ == "__main__":
    main(*sys.argv[1:])

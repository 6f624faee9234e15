"""Step spans: one per step run, in the execution's trace, with flowkit's attributes."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import flowkit
from tests.telemetry.conftest import Spans, call, workflow

tracer = trace.get_tracer("tests")


def _trace_id(traceparent: str | None) -> int:
    assert traceparent is not None
    return int(traceparent.split("-")[1], 16)


def _span_id(traceparent: str | None) -> int:
    assert traceparent is not None
    return int(traceparent.split("-")[2], 16)


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_each_step_run_is_a_span_under_the_executions_root(
    make_engine: Any, spans: Spans, executor: str
) -> None:
    engine = make_engine(executor=executor)
    result = engine.run(workflow(call("one", next="two"), call("two")), {}, timeout=10)
    assert result.completed
    record = engine.load(result.execution_id)
    root = spans.named("flowkit.start wf")
    assert root.context is not None
    assert _trace_id(record.traceparent) == root.context.trace_id
    assert _span_id(record.traceparent) == root.context.span_id
    steps = spans.steps()
    assert [span.name for span in steps] == [
        "flowkit.step start",
        "flowkit.step one",
        "flowkit.step two",
    ]
    for span in steps:
        assert span.context is not None
        assert span.parent is not None
        assert span.context.trace_id == root.context.trace_id
        assert span.parent.span_id == root.context.span_id
        assert span.status.status_code is StatusCode.UNSET
        assert span.links == ()
    assert dict(steps[1].attributes or {}) == {
        "flowkit.execution_id": result.execution_id,
        "flowkit.workflow_id": "wf",
        "flowkit.step_id": "one",
        "flowkit.step_type": "call",
        "flowkit.attempt": 1,
    }
    assert dict(root.attributes or {}) == {
        "flowkit.execution_id": result.execution_id,
        "flowkit.workflow_id": "wf",
    }


def test_an_execution_started_inside_a_span_joins_its_trace(make_engine: Any, spans: Spans) -> None:
    with tracer.start_as_current_span("request") as request:
        result = make_engine().run(workflow(call("one")), {})
    caller = request.get_span_context()
    root = spans.named("flowkit.start wf")
    assert root.parent is not None
    assert root.parent.span_id == caller.span_id
    assert {span.context.trace_id for span in spans.all() if span.context} == {caller.trace_id}
    assert _trace_id(make_engine().load(result.execution_id).traceparent) == caller.trace_id


def test_a_failed_step_is_an_error_span_with_the_exception(make_engine: Any, spans: Spans) -> None:
    result = make_engine().run(workflow(call("bad", "boom", x=7)), {})
    assert result.failed
    bad = spans.named("flowkit.step bad")
    assert bad.status.status_code is StatusCode.ERROR
    [event] = bad.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "no 7"


def test_each_attempt_of_a_retried_step_is_a_span(make_engine: Any, spans: Spans) -> None:
    wf = workflow(
        call("arm", "fail_next", x=2, next="flaky"),
        call("flaky", "flaky", retries=3, retry_delay=0.001),
    )
    assert make_engine().run(wf, {}).completed
    attempts = [span for span in spans.steps() if span.name == "flowkit.step flaky"]
    assert [(span.attributes or {})["flowkit.attempt"] for span in attempts] == [1, 2, 3]
    assert [span.status.status_code for span in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]


def test_a_step_that_reports_a_failure_is_an_error_span(make_engine: Any, spans: Spans) -> None:
    child = flowkit.load(
        {
            "id": "child",
            "steps": [
                {
                    "id": "bad",
                    "type": "call",
                    "service": "Stub",
                    "method": "boom",
                    "input": {"x": 1},
                }
            ],
        }
    )
    engine = make_engine()
    engine.definition(child)
    wf = workflow({"id": "sub", "type": "workflow", "workflow_id": "child"})
    assert engine.run(wf, {}).failed
    sub = spans.named("flowkit.step sub")
    assert sub.status.status_code is StatusCode.ERROR
    assert "no 1" in (sub.status.description or "")
    # The child execution was created inside the parent's step: it joined its trace.
    child_root = spans.named("flowkit.start child")
    assert child_root.context is not None
    assert sub.context is not None
    assert child_root.context.trace_id == sub.context.trace_id


def test_spans_of_services_nest_under_their_step(make_engine: Any, spans: Spans) -> None:
    def traced(x: int) -> int:
        with tracer.start_as_current_span("inside"):
            return x

    engine = make_engine()
    engine.services.register("Traced", {"run": traced})
    wf = workflow(
        {"id": "t", "type": "call", "service": "Traced", "method": "run", "input": {"x": 1}}
    )
    assert engine.run(wf, {}).completed
    inside, step = spans.named("inside"), spans.named("flowkit.step t")
    assert inside.parent is not None
    assert step.context is not None
    assert inside.parent.span_id == step.context.span_id


def test_steps_in_a_loop_are_named_by_their_path(make_engine: Any, spans: Spans) -> None:
    wf = workflow(
        {
            "id": "each",
            "type": "loop",
            "over": "$input.items",
            "as": "item",
            "do": [call("inner", x="$item")],
        },
        inputs={"items": {"type": "array"}},
    )
    assert make_engine().run(wf, {"items": [1, 2]}).completed
    inner = [span for span in spans.steps() if span.name == "flowkit.step each:inner"]
    assert len(inner) == 2
    assert {(span.attributes or {})["flowkit.step_id"] for span in inner} == {"each:inner"}


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_parallel_branches_are_spans_of_the_same_trace(
    make_engine: Any, spans: Spans, executor: str
) -> None:
    wf = workflow({"id": "fan", "type": "parallel", "branches": [call("left"), call("right", x=2)]})
    result = make_engine(executor=executor).run(wf, {}, timeout=10)
    assert result.completed
    branches = {
        span.name: span for span in spans.steps() if span.name.startswith("flowkit.step fan:")
    }
    assert set(branches) == {"flowkit.step fan:left", "flowkit.step fan:right"}
    root = spans.named("flowkit.start wf").context
    assert root is not None
    for span in branches.values():
        assert span.context is not None
        assert span.context.trace_id == root.trace_id
        assert span.parent is not None
        assert span.parent.span_id == root.span_id


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_a_resume_joins_the_trace_and_links_to_the_resuming_span(
    make_engine: Any, spans: Spans, executor: str
) -> None:
    wf = workflow(
        {"id": "ask", "type": "approval", "prompt": "ok?", "next": "after"},
        call("after"),
    )
    engine = make_engine(executor=executor)
    halted = engine.run(wf, {}, timeout=10)
    assert halted.halted
    stored = engine.load(halted.execution_id).traceparent
    with tracer.start_as_current_span("approve") as approve:  # a new trace: an HTTP request
        assert engine.resume(halted.execution_id, approved=True).completed
    resumed = [
        span for span in spans.steps() if span.name in ("flowkit.step ask", "flowkit.step after")
    ][-2:]
    assert [span.name for span in resumed] == ["flowkit.step ask", "flowkit.step after"]
    for span in resumed:
        assert span.context is not None
        assert span.parent is not None
        assert span.context.trace_id == _trace_id(stored)
        assert span.parent.span_id == _span_id(stored)
        [link] = span.links
        assert link.context.span_id == approve.get_span_context().span_id


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_a_signal_continues_the_trace_and_links_to_the_sender(
    make_engine: Any, spans: Spans, executor: str
) -> None:
    wf = workflow(
        {"id": "paid", "type": "wait", "signal": "payment", "output": "payment", "next": "ship"},
        call("ship"),
    )
    engine = make_engine(executor=executor)
    waiting = engine.run(wf, {}, timeout=10)
    assert waiting.waiting
    stored = engine.load(waiting.execution_id).traceparent
    with tracer.start_as_current_span("webhook") as webhook:  # the payment provider's call
        assert engine.signal(waiting.execution_id, "payment", {"amount": 5})
    assert engine.wait(waiting.execution_id, timeout=10).completed
    later = [span for span in spans.steps() if span.name == "flowkit.step ship"]
    [ship] = later
    assert ship.context is not None
    assert ship.context.trace_id == _trace_id(stored)
    [link] = ship.links
    assert link.context.span_id == webhook.get_span_context().span_id

"""Step spans on Dramatiq workers: every step message joins the execution's trace.

A real broker (Redis or RabbitMQ) and a Dramatiq worker in this process, so
that its spans reach the SDK's in-memory exporter; one message per step.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import flowkit
from flowkit.backends.dramatiq import DramatiqDriver, Runtime, make_broker
from flowkit.backends.memory import MemoryStore
from flowkit.definitions import WorkflowRegistry
from tests.distributed.cluster import (
    RABBITMQ_URL,
    REDIS_BROKER_URL,
    _delete_rabbitmq_queues,
    _delete_redis_keys,
    wait_for,
)
from tests.telemetry.conftest import Spans, call, workflow

pytestmark = pytest.mark.timeout(60)

tracer = trace.get_tracer("tests")


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.dramatiq_redis),
        pytest.param("rabbitmq", marks=pytest.mark.dramatiq_rabbitmq),
    ]
)
def engine(request: pytest.FixtureRequest, services: flowkit.ServiceRegistry) -> Iterator[Any]:
    tag = f"fkt-{uuid.uuid4().hex[:10]}"
    if request.param == "redis":
        broker = make_broker(f"{REDIS_BROKER_URL}?namespace={tag}")
    else:
        broker = make_broker(RABBITMQ_URL)
    runtime = Runtime(broker, queue=tag, slice_steps=1)
    made = flowkit.Engine(
        store=MemoryStore(warn=False),
        executor=DramatiqDriver(runtime=runtime),
        services=services,
        workflows=WorkflowRegistry(),
    )
    runtime.attach(made)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        yield made
    finally:
        with contextlib.ExitStack() as cleanup:
            if request.param == "redis":
                cleanup.callback(_delete_redis_keys, tag)
            else:
                cleanup.callback(_delete_rabbitmq_queues, tag)
            cleanup.callback(broker.close)
            cleanup.callback(made.store.close)
            cleanup.callback(made.close)
            cleanup.callback(worker.stop)


def test_each_step_message_joins_the_trace_and_links_to_the_caller(
    engine: flowkit.Engine, spans: Spans
) -> None:
    wf = workflow(
        call("one", next="two"),
        call("two", next="bad"),
        call("bad", "boom"),
    )
    with tracer.start_as_current_span("request") as request:
        handle = engine.start(wf, {})
    assert handle.result(timeout=30).failed
    caller = request.get_span_context()
    traceparent = engine.load(handle.execution_id).traceparent
    assert traceparent is not None
    root_span_id = int(traceparent.split("-")[2], 16)
    steps = spans.steps()
    assert [span.name for span in steps] == [
        "flowkit.step start",
        "flowkit.step one",
        "flowkit.step two",
        "flowkit.step bad",
    ]
    for span in steps:  # each ran from its own message
        assert span.context is not None
        assert span.context.trace_id == caller.trace_id
        assert span.parent is not None
        assert span.parent.span_id == root_span_id
        [link] = span.links  # the context the message carried
        assert link.context.span_id == caller.span_id
    assert steps[-1].status.status_code is StatusCode.ERROR


def test_a_signal_sent_to_a_worker_carries_the_senders_context(
    engine: flowkit.Engine, spans: Spans
) -> None:
    wf = workflow(
        {"id": "paid", "type": "wait", "signal": "payment", "output": "payment", "next": "ship"},
        call("ship"),
    )
    execution_id = engine.start(wf, {}).execution_id
    assert engine.wait(execution_id, timeout=30).waiting
    with tracer.start_as_current_span("webhook") as webhook:
        assert engine.signal(execution_id, "payment", {"amount": 5})
    wait_for(lambda: engine.load(execution_id).status.finished, "the signalled execution")
    assert engine.load(execution_id).status is flowkit.Status.COMPLETED
    [ship] = [span for span in spans.steps() if span.name == "flowkit.step ship"]
    [link] = ship.links
    assert link.context.span_id == webhook.get_span_context().span_id

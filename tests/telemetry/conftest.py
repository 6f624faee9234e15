"""Fixtures of the telemetry tests: the OpenTelemetry SDK, in memory, as the global providers.

The global tracer and meter providers can be set once per process, so they are
set once, when the first telemetry test runs; each test starts with no finished
span and no unread metric (the reader reports deltas). Spans are kept only while
this package's tests run: the rest of the suite would otherwise pile them up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flowkit
from flowkit.backends.memory import MemoryStore
from flowkit.definitions import WorkflowRegistry

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader(
    preferred_temporality={
        Counter: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
    }
)


class _Switch(SpanProcessor):
    """Passes spans on to the in-memory exporter while ``on``."""

    def __init__(self, processor: SpanProcessor) -> None:
        self.processor = processor
        self.on = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.on:
            self.processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            self.processor.on_end(span)


_SWITCH = _Switch(SimpleSpanProcessor(_EXPORTER))
_installed: list[bool] = []


@pytest.fixture(scope="package", autouse=True)
def _providers() -> Iterator[None]:
    if not _installed:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(_SWITCH)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
        _installed.append(True)
    _SWITCH.on = True
    yield
    _SWITCH.on = False
    _EXPORTER.clear()


class Spans:
    """The spans finished since the test started."""

    def all(self) -> list[ReadableSpan]:
        return list(_EXPORTER.get_finished_spans())

    def steps(self) -> list[ReadableSpan]:
        """The step spans, in the order they ended."""
        return [span for span in self.all() if span.name.startswith("flowkit.step ")]

    def named(self, name: str) -> ReadableSpan:
        found = [span for span in self.all() if span.name == name]
        assert len(found) == 1, [span.name for span in self.all()]
        return found[0]


@pytest.fixture
def spans() -> Spans:
    _EXPORTER.clear()
    return Spans()


class Metrics:
    """The metric points recorded since the test started (or since the last read)."""

    def read(self) -> dict[str, list[Any]]:
        """Each flowkit metric's data points, by metric name."""
        found: dict[str, list[Any]] = {}
        data = _READER.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                if scope.scope.name != "flowkit":
                    continue
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def sums(self, name: str, *keys: str) -> dict[tuple[Any, ...], int]:
        """A counter's values since the last read by the attributes ``keys`` (zeros left out)."""
        return sums(self.read(), name, *keys)


def sums(found: dict[str, list[Any]], name: str, *keys: str) -> dict[tuple[Any, ...], int]:
    """A counter's values in what :meth:`Metrics.read` found, by the attributes ``keys``."""
    totals: dict[tuple[Any, ...], int] = {}
    for point in found.get(name, []):
        key = tuple(point.attributes.get(k) for k in keys)
        totals[key] = totals.get(key, 0) + point.value
    return {key: value for key, value in totals.items() if value}


@pytest.fixture
def recorded() -> Metrics:
    made = Metrics()
    made.read()  # what earlier tests recorded is read and dropped
    return made


@pytest.fixture
def services() -> flowkit.ServiceRegistry:
    registry = flowkit.ServiceRegistry()
    failures = {"left": 0}

    def flaky(x: int) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("not yet")
        return x

    def set_failures(x: int) -> int:
        failures["left"] = x
        return x

    def boom(x: int) -> int:
        raise ValueError(f"no {x}")

    registry.register(
        "Stub",
        {"double": lambda x: 2 * x, "flaky": flaky, "boom": boom, "fail_next": set_failures},
    )
    return registry


@pytest.fixture
def make_engine(services: flowkit.ServiceRegistry) -> Iterator[Any]:
    made: list[flowkit.Engine] = []
    store = MemoryStore(warn=False)
    workflows = WorkflowRegistry()

    def make(**options: Any) -> flowkit.Engine:
        options.setdefault("store", store)
        options.setdefault("executor", "inline")
        options.setdefault("services", services)
        options.setdefault("workflows", workflows)
        engine = flowkit.Engine(**options)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()
    store.close()


def workflow(*steps: dict[str, Any], id: str = "wf", **top: Any) -> flowkit.WorkflowDef:
    """A definition: ``start``, then ``steps``."""
    first = {"id": "start", "type": "start", "next": steps[0]["id"]}
    return flowkit.load({"id": id, **top, "steps": [first, *steps]})


def call(step: str, method: str = "double", x: Any = 1, **more: Any) -> dict[str, Any]:
    return {
        "id": step,
        "type": "call",
        "service": "Stub",
        "method": method,
        "input": {"x": x},
        "output": step,
        **more,
    }

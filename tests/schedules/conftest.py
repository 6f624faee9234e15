"""Fixtures for the schedule tests: engines on one memory store, a clock the test moves,
and a ``report`` workflow that records its input."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import flowkit
from flowkit.backends.memory import MemoryStore
from flowkit.definitions import WorkflowRegistry
from flowkit.testing import FakeClock

#: 2030-01-01 was a Tuesday.
START = datetime(2030, 1, 1, tzinfo=UTC)

EngineFactory = Callable[..., flowkit.Engine]


def report_workflow() -> flowkit.Workflow:
    """A one-step workflow whose output says which region it ran for."""
    report = flowkit.Workflow(
        "report", inputs={"region": flowkit.Input(type="string", required=False, default="eu")}
    )

    @report.step(output="text")
    def build(region: str) -> str:
        return f"report for {region}"

    report.end(result="$text")
    return report


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    opened = MemoryStore(warn=False)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def workflows() -> WorkflowRegistry:
    return WorkflowRegistry()


@pytest.fixture
def make_engine(
    store: MemoryStore, workflows: WorkflowRegistry, clock: FakeClock
) -> Iterator[EngineFactory]:
    """Engines on the shared store (each one stands for a process), knowing ``report``."""
    made: list[flowkit.Engine] = []

    def make(**options: Any) -> flowkit.Engine:
        options.setdefault("store", store)
        options.setdefault("executor", "inline")
        options.setdefault("services", flowkit.ServiceRegistry())
        options.setdefault("workflows", workflows)
        options.setdefault("clock", clock)
        engine = flowkit.Engine(**options)
        engine.definition(report_workflow())
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture
def engine(make_engine: EngineFactory) -> flowkit.Engine:
    return make_engine()

"""Fixtures for the engine tests: a memory store, a private service registry, a clock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import flowkit
from flowkit.backends.memory import MemoryStore
from flowkit.definitions import WorkflowRegistry

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A hung engine test fails in seconds instead of blocking the suite."""
    for item in items:
        if _HERE in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


class FakeClock:
    """A clock the test controls: ``sleep`` records the wait and advances time at once."""

    def __init__(self, start: datetime = datetime(2030, 1, 1, tzinfo=UTC)) -> None:
        self._lock = threading.Lock()
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep."""
        with self._lock:
            self._now += timedelta(seconds=seconds)


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    opened = MemoryStore(warn=False)
    yield opened
    opened.close()


@pytest.fixture
def services() -> flowkit.ServiceRegistry:
    return flowkit.ServiceRegistry()


@pytest.fixture
def workflows() -> WorkflowRegistry:
    return WorkflowRegistry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


EngineFactory = Callable[..., flowkit.Engine]


@pytest.fixture
def make_engine(
    store: MemoryStore,
    services: flowkit.ServiceRegistry,
    workflows: WorkflowRegistry,
    clock: FakeClock,
) -> Iterator[EngineFactory]:
    """Build engines on the shared store (a "new process" is a new engine)."""
    made: list[flowkit.Engine] = []

    def make(**options: Any) -> flowkit.Engine:
        options.setdefault("store", store)
        options.setdefault("executor", "inline")
        options.setdefault("services", services)
        options.setdefault("workflows", workflows)
        options.setdefault("clock", clock)
        engine = flowkit.Engine(**options)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture
def engine(make_engine: EngineFactory) -> flowkit.Engine:
    return make_engine()

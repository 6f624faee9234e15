"""Schedules on every store: the engine starts each slot once and reads the records back
(SPEC §16). The store side alone is in flowkit.testing.conformance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import flowkit
from flowkit.abc import Store
from flowkit.definitions import WorkflowRegistry
from flowkit.testing import FakeClock
from tests.backends.conftest import BACKENDS
from tests.schedules.conftest import START, report_workflow


@pytest.fixture(
    params=[pytest.param(name, marks=marker, id=name) for name, (marker, _) in BACKENDS.items()]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    _, opener = BACKENDS[request.param]
    opened = opener(tmp_path, 0)
    yield opened
    opened.close()


def test_a_schedule_round_trips_and_starts_each_slot_once(store: Store) -> None:
    clock = FakeClock(START)
    engines = [
        flowkit.Engine(
            store=store,
            executor="inline",
            clock=clock,
            services=flowkit.ServiceRegistry(),
            workflows=WorkflowRegistry(),
        )
        for _ in range(2)
    ]
    for engine in engines:
        engine.definition(report_workflow())
    saved = engines[0].schedule(
        "nightly", "report", cron="30 2 * * *", input={"region": "us"}, timezone="Asia/Tokyo"
    )
    assert engines[1].schedules() == [saved]

    clock.advance(24 * 3600)  # 2030-01-02 00:00 UTC: 02:30 in Tokyo was 17:30 UTC on the 1st
    started = [r.execution_id for engine in engines for r in engine.wake_due()]
    assert started == ["nightly@2030-01-01T17:30:00Z"]
    result = engines[1].load("nightly@2030-01-01T17:30:00Z")
    assert result.status is flowkit.Status.COMPLETED
    assert result.result == "report for us"
    [schedule] = store.schedules()
    assert schedule.last_slot == datetime(2030, 1, 1, 17, 30, tzinfo=UTC)
    assert schedule.input == {"region": "us"}

    assert engines[1].unschedule("nightly") is True
    assert store.schedules() == []
    assert store.load("nightly@2030-01-01T17:30:00Z") is not None
    for engine in engines:
        engine.close()

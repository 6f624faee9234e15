"""Retention (SPEC §17): ``flowkit prune`` and the ``retention`` setting workers apply.

Only finished executions (completed, failed, cancelled) last updated before
the cut-off go; pending, running, waiting and halted ones are never touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_helpers import error_line, invoke, invoke_json
from dramatiq.brokers.stub import StubBroker

import flowkit
from flowkit.abc import Store
from flowkit.backends.dramatiq import DramatiqDriver, Runtime
from flowkit.backends.memory import MemoryStore
from flowkit.config import Settings
from flowkit.definitions import WorkflowRegistry
from flowkit.engine import Retention
from flowkit.records import Execution, Status
from flowkit.testing import FakeClock

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=2)


def fill(store: Store) -> None:
    """One execution of every status, last updated 40 days ago, and one 2 days ago."""
    for status in Status:
        for age, updated_at in (("old", OLD), ("recent", RECENT)):
            store.create(
                Execution(
                    id=f"{status.value}-{age}",
                    workflow_id="report",
                    status=status,
                    created_at=updated_at,
                    updated_at=updated_at,
                )
            )


def remaining(store: Store) -> list[str]:
    return sorted(execution.id for execution in store.find(limit=1000))


EVERY = sorted(f"{status.value}-{age}" for status in Status for age in ("old", "recent"))
KEPT = sorted(
    set(EVERY) - {"completed-old", "failed-old", "cancelled-old"},
)


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    opened = MemoryStore(warn=False)
    fill(opened)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store holding every status, old and recent."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = flowkit.connect(url)
    fill(store)
    store.close()
    return url


# --- the retention workers apply ----------------------------------------------------------------


def test_retention_prunes_only_old_finished_executions(store: MemoryStore) -> None:
    assert Retention(keep=30 * 86400).apply(store, NOW) == 3
    assert remaining(store) == KEPT


def test_retention_prunes_at_most_once_per_interval(store: MemoryStore) -> None:
    retention = Retention(keep=30 * 86400, every=3600)
    assert retention.apply(store, NOW) == 3
    store.create(
        Execution(
            id="late", workflow_id="report", status=Status.COMPLETED, created_at=OLD, updated_at=OLD
        )
    )
    assert retention.apply(store, NOW + timedelta(minutes=59)) is None  # not yet
    assert "late" in remaining(store)
    assert retention.apply(store, NOW + timedelta(hours=1)) == 1
    assert "late" not in remaining(store)


def test_retention_comes_from_the_settings() -> None:
    assert Retention.configured(Settings()) is None  # kept forever by default
    retention = Retention.configured(Settings(retention="30d", retention_interval="10m"))
    assert retention is not None
    assert (retention.keep, retention.every) == (timedelta(days=30), timedelta(minutes=10))


def test_a_workers_maintenance_prunes_and_starts_due_schedules() -> None:
    broker = StubBroker()
    runtime = Runtime(broker, retention=Retention(keep=30 * 86400))
    clock = FakeClock(NOW)
    engine = flowkit.Engine(
        store=MemoryStore(warn=False),
        executor=DramatiqDriver(runtime=runtime),
        services=flowkit.ServiceRegistry(),
        workflows=WorkflowRegistry(),
        clock=clock,
    )
    runtime.attach(engine)
    try:
        fill(engine.store)
        engine.definition({"id": "report", "steps": [{"id": "done", "type": "end"}]})
        engine.schedule("hourly", "report", cron="0 * * * *")
        clock.advance(3600)
        runtime.maintain()  # a StubBroker is private to this process: no lock to take
        slot = clock.now().replace(minute=0, second=0, microsecond=0)
        scheduled = f"hourly@{slot:%Y-%m-%dT%H:%M:%SZ}"
        assert remaining(engine.store) == sorted([*KEPT, scheduled])
        [message] = broker.queues["flowkit"].queue
        assert json.loads(message)["args"][0] == scheduled  # a worker runs its steps
    finally:
        engine.close()
        engine.store.close()
        broker.close()


# --- flowkit prune --------------------------------------------------------------------------------


def test_prune_deletes_old_finished_executions(sqlite_url: str) -> None:
    result = invoke("prune", "--older-than", "30d", "--store", sqlite_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "pruned 3 executions (completed, failed, cancelled) last updated before "
    )
    store = flowkit.connect(sqlite_url)
    try:
        assert remaining(store) == KEPT
    finally:
        store.close()


def test_prune_dry_run_counts_and_deletes_nothing(sqlite_url: str) -> None:
    result = invoke_json("prune", "--older-than", "1d", "--dry-run", "--store", sqlite_url)
    assert result["pruned"] == 6
    assert result["dry_run"] is True
    assert result["statuses"] == ["completed", "failed", "cancelled"]
    store = flowkit.connect(sqlite_url)
    try:
        assert remaining(store) == EVERY
    finally:
        store.close()


def test_prune_only_the_statuses_named(sqlite_url: str) -> None:
    result = invoke_json(
        "prune", "--older-than", "30d", "--status", "failed,cancelled", "--store", sqlite_url
    )
    assert result["pruned"] == 2
    store = flowkit.connect(sqlite_url)
    try:
        assert "completed-old" in remaining(store)
        assert "failed-old" not in remaining(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--status", "running"],
            "error: --status: running executions are never pruned (they are still in use); "
            "name completed, failed, cancelled",
        ),
        (
            ["--status", "completed,halted"],
            "error: --status: halted executions are never pruned (they are still in use); "
            "name completed, failed, cancelled",
        ),
        (
            ["--status", "complete"],
            "error: --status: unknown status 'complete' (did you mean 'completed'?); "
            "name completed, failed, cancelled",
        ),
    ],
)
def test_prune_refuses_statuses_that_are_not_finished(
    sqlite_url: str, args: list[str], message: str
) -> None:
    result = invoke("prune", "--older-than", "30d", *args, "--store", sqlite_url)
    assert error_line(result) == message
    store = flowkit.connect(sqlite_url)
    try:
        assert remaining(store) == EVERY
    finally:
        store.close()


@pytest.mark.parametrize(
    ("older_than", "message"),
    [
        (
            "a month",
            "error: --older-than: expected a number of seconds, a number with a unit (500ms, "
            "30s, 5m, 24h, 7d, 1h30m) or an ISO 8601 duration (PT1H, P1DT2H), got 'a month'",
        ),
        ("-5", "error: --older-than must not be negative, got '-5'"),
    ],
)
def test_prune_refuses_a_bad_age(sqlite_url: str, older_than: str, message: str) -> None:
    result = invoke("prune", "--older-than", older_than, "--store", sqlite_url)
    assert error_line(result) == message

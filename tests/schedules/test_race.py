"""Several processes calling ``wake_due`` at once start each slot exactly once, on SQLite
and PostgreSQL (SPEC §16): the slot's execution id is the only guard, no lock or leader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowkit
from flowkit.abc import Store
from flowkit.testing import FakeClock
from tests.backends.sql_helpers import POSTGRESQL_URL, scratch_store, with_prefix
from tests.schedules.racer import START, TICK

ROOT = Path(__file__).resolve().parents[2]
RACERS = 4
SLOTS = 12


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ]
)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, str]]:
    """A store, and the URL other processes open it with."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'race.db'}"
        store: Store = flowkit.connect(url)
    else:
        store = scratch_store(POSTGRESQL_URL)
        url = with_prefix(POSTGRESQL_URL, store.prefix)  # type: ignore[attr-defined]
    yield store, url
    store.close()


def test_racing_processes_start_each_slot_exactly_once(shared: tuple[Store, str]) -> None:
    store, url = shared
    engine = flowkit.Engine(store=store, executor="inline", clock=FakeClock(START))
    engine.definition(TICK)
    engine.schedule("minutely", "tick", cron="* * * * *")
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWKIT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.schedules.racer", url, str(SLOTS)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(RACERS)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline() == "ready\n"
        for racer in racers:  # go, all at once
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = [racer.communicate(timeout=120)[0] for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    assert [racer.returncode for racer in racers] == [0] * RACERS
    reported = [execution_id for output in outputs for execution_id in json.loads(output)]
    expected = [f"minutely@2030-01-01T00:{minute:02}:00Z" for minute in range(1, SLOTS + 1)]
    assert sorted(reported) == expected  # each slot reported by the one process that started it
    stored = store.find(workflow_id="tick", limit=100)
    assert sorted(execution.id for execution in stored) == expected
    assert all(execution.status is flowkit.Status.COMPLETED for execution in stored)
    [schedule] = store.schedules()
    assert schedule.last_slot == START.replace(minute=SLOTS)

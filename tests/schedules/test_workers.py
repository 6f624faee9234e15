"""On Dramatiq, ``flowkit worker`` processes start due schedules and apply the
``retention`` setting by themselves: no scheduler process, no cron job (SPEC §16, §17).

Real worker processes on the Redis broker and PostgreSQL (see tests/distributed).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowkit.records import Execution, Status
from tests.distributed import flows
from tests.distributed.cluster import Cluster, wait_for

pytestmark = [pytest.mark.dramatiq_redis, pytest.mark.timeout(120)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster("redis", tmp_path)
    try:
        yield made
    finally:
        logs = made.logs()
        made.close()
        print(logs)  # shown by pytest when the test failed


def test_workers_start_every_slot_of_a_schedule(cluster: Cluster) -> None:
    cluster.engine.schedule("each-second", flows.CHAIN.id, cron="* * * * * *")
    cluster.start_workers(processes=2)

    def three_completed() -> list[Execution]:
        found = [
            execution
            for execution in cluster.store.find(workflow_id=flows.CHAIN.id, limit=100)
            if execution.status is Status.COMPLETED
        ]
        return found if len(found) >= 3 else []

    wait_for(three_completed, "three slots of the schedule to complete")
    assert cluster.engine.unschedule("each-second")
    started = cluster.store.find(workflow_id=flows.CHAIN.id, limit=100)
    for execution in started:  # one execution per slot, named after it
        name, _, slot = execution.id.partition("@")
        assert name == "each-second"
        assert datetime.fromisoformat(slot).microsecond == 0
    # Each slot's steps ran once (the execution id is the slot's, so never twice).
    calls = cluster.calls()
    for execution in started:
        if execution.status is Status.COMPLETED:
            assert calls[("s0", execution.id)] == 1


def test_workers_prune_by_the_retention_setting(cluster: Cluster) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    for status in Status:
        cluster.store.create(
            Execution(
                id=f"old-{status.value}",
                workflow_id=flows.CHAIN.id,
                status=status,
                created_at=old,
                updated_at=old,
            )
        )
    cluster.start_workers(env={"FLOWKIT_RETENTION": "30d", "FLOWKIT_RETENTION_INTERVAL": "1h"})

    def pruned() -> bool:
        return cluster.store.load("old-completed") is None

    wait_for(pruned, "the workers to prune")
    left = sorted(execution.id for execution in cluster.store.find(limit=100))
    assert left == sorted(
        f"old-{status.value}"
        for status in Status
        if status not in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    )

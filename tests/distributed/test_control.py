"""Execution control on real Dramatiq workers (SPEC §15): retry, cancel, sleep.

Each test runs against the Redis broker and against RabbitMQ; the store is
PostgreSQL. The test process operates on executions through its own engine
(``cluster.engine``, the Dramatiq driver), as an operator's CLI would; the
steps run on the workers. What ran is read back from the entries and from the
services' own call log.
"""

from __future__ import annotations

import os
import time

import attrs
import pytest

from flowkit import Action, Execution, Status
from tests.distributed import flows
from tests.distributed.cluster import Cluster, wait_for
from tests.distributed.test_faults import assert_each_once, completed

pytestmark = pytest.mark.timeout(120)


def _status(cluster: Cluster, execution_id: str, status: Status) -> Execution | None:
    execution = cluster.engine.load(execution_id)
    return execution if execution.status is status else None


def _ran(cluster: Cluster, execution_id: str) -> dict[str, int]:
    return {step: n for (step, of), n in cluster.calls().items() if of == execution_id}


# --- retry ------------------------------------------------------------------------------------


def test_a_retry_continues_at_the_failed_step_on_the_workers(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    (cluster.directory / flows.BROKEN).touch()
    failed = cluster.engine.start(flows.BRITTLE).result(timeout=60)
    assert failed.status is Status.FAILED, failed.error

    (cluster.directory / flows.BROKEN).unlink()  # the fix is deployed
    retried = cluster.engine.retry(failed.execution_id)  # waits for the workers

    assert retried.status is Status.COMPLETED, retried.error
    assert _ran(cluster, failed.execution_id) == {"before": 1, "brittle": 2, "after": 1}
    assert os.getpid() not in cluster.pids()  # every step ran on the worker
    assert_each_once(
        cluster.entries(failed.execution_id),
        [
            *completed("start", "before"),
            ("brittle", Action.FAILED),
            ("brittle", Action.RETRIED),
            *completed("brittle", "after"),
        ],
    )


def test_a_retried_fan_out_runs_only_its_failed_branch_on_the_workers(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=4)
    (cluster.directory / flows.BROKEN).touch()
    failed = cluster.engine.start(flows.BRITTLE_FAN).result(timeout=60)
    assert failed.status is Status.FAILED, failed.error

    # A branch still running when b1 failed the step is not recorded; it runs again.
    recorded = {
        entry.step_id
        for entry in cluster.entries(failed.execution_id)
        if entry.action is Action.COMPLETED
    }
    before_retry = _ran(cluster, failed.execution_id)

    (cluster.directory / flows.BROKEN).unlink()
    retried = cluster.engine.retry(failed.execution_id)

    assert retried.status is Status.COMPLETED, retried.error
    assert retried.output == ["fan:b0", "fan:b1", "fan:b2"]
    ran = _ran(cluster, failed.execution_id)
    assert (ran["before"], ran["fan:b1"], ran["after"]) == (1, 2, 1)
    for branch in ("fan:b0", "fan:b2"):
        again = 0 if branch in recorded else 1
        assert ran.get(branch, 0) == before_retry.get(branch, 0) + again, (branch, recorded)


# --- cancel -----------------------------------------------------------------------------------


def test_an_execution_cancelled_before_a_worker_took_it_runs_no_step(cluster: Cluster) -> None:
    queued = cluster.engine.start(flows.CANCELLABLE)  # no worker yet: its message waits
    asked = cluster.engine.cancel(queued.execution_id, reason="not needed")
    assert asked.status is Status.RUNNING  # asked; the worker that takes it ends it

    cluster.start_workers(processes=1, threads=2)
    finished = cluster.wait_finished(queued.execution_id)
    assert (finished.status, finished.error) == (Status.CANCELLED, "not needed")
    assert _ran(cluster, queued.execution_id) == {}
    assert [entry.action for entry in cluster.entries(queued.execution_id)] == [Action.CANCELLED]


def test_a_pending_execution_is_cancelled_at_once_and_its_message_dropped(
    cluster: Cluster,
) -> None:
    cluster.start_workers(processes=1, threads=2, maintenance=3600)
    created = cluster.engine.create(flows.CHAIN)
    pending = cluster.engine.store.load(created.id)
    assert pending is not None
    # An execution nobody claimed yet, as an older flowkit stored it.
    cluster.engine.store.checkpoint(
        attrs.evolve(pending, status=Status.PENDING, version=pending.version + 1, lease_owner=None),
        (),
        pending.version,
        changed=(),
    )

    result = cluster.engine.cancel(created.id, reason="duplicate order")
    assert result.cancelled
    cluster.runtime.send_step(cluster.engine.load(created.id))
    cluster.assert_messages(created.id, {"flowkit_step": 1})  # processed, and dropped
    assert cluster.engine.load(created.id).status is Status.CANCELLED
    assert _ran(cluster, created.id) == {}


def test_a_sleeping_execution_is_cancelled_and_compensated_on_a_worker(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2, maintenance=3600)
    handle = cluster.engine.start(flows.NAPPING, {"seconds": 600})
    wait_for(lambda: _status(cluster, handle.execution_id, Status.WAITING), "the nap")

    cluster.engine.cancel(handle.execution_id, reason="support cancelled it", by="ops")

    finished = cluster.wait_finished(handle.execution_id, timeout=30)
    assert (finished.status, finished.error) == (Status.CANCELLED, "support cancelled it")
    assert finished.wake_at is None
    assert _ran(cluster, handle.execution_id) == {"before": 1, "undo_before": 1}
    assert cluster.pids("undo_before") == cluster.pids("before")  # on the worker
    assert_each_once(
        cluster.entries(handle.execution_id),
        [
            *completed("start", "before"),
            ("nap", Action.WAITING),
            ("nap", Action.CANCELLED),
            ("before", Action.COMPENSATED),
        ],
    )


def test_a_halted_execution_is_cancelled_at_once(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    halted = cluster.engine.run(flows.HALTING, timeout=60)
    assert halted.status is Status.HALTED, halted.error

    result = cluster.engine.cancel(halted.execution_id, reason="withdrawn")

    assert result.cancelled
    assert result.error == "withdrawn"
    actions = [(e.step_id, e.action) for e in cluster.entries(halted.execution_id)]
    assert actions[-2:] == [("wait", Action.HALTED), ("wait", Action.CANCELLED)]
    assert _ran(cluster, halted.execution_id) == {"before": 1}


def test_a_running_execution_stops_after_its_step_and_is_compensated(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.CANCELLABLE)
    started = cluster.directory / flows.STARTED
    wait_for(started.exists, "the slow step to start")

    asked = cluster.engine.cancel(handle.execution_id, reason="too slow")
    assert asked.status is Status.RUNNING  # the step is under way
    (cluster.directory / flows.RELEASE).touch()

    finished = cluster.wait_finished(handle.execution_id)
    assert (finished.status, finished.error) == (Status.CANCELLED, "too slow")
    assert _ran(cluster, handle.execution_id) == {"one": 1, "slow": 1, "undo_one": 1}
    assert_each_once(
        cluster.entries(handle.execution_id),
        [
            *completed("start", "one"),
            ("slow", Action.CANCELLED),
            ("one", Action.COMPENSATED),
        ],
    )


def test_a_cancelled_fan_out_drops_its_branches(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)  # two branches run, two wait in the queue
    handle = cluster.engine.start(flows.HELD_FAN)

    def held() -> bool:
        return (
            sum(n for step, n in _ran(cluster, handle.execution_id).items() if "fan:" in step) == 2
        )

    wait_for(held, "two branches to start")
    cluster.engine.cancel(handle.execution_id, reason="stop")
    (cluster.directory / flows.RELEASE).touch()

    finished = cluster.wait_finished(handle.execution_id)
    assert (finished.status, finished.error) == (Status.CANCELLED, "stop")
    ran = _ran(cluster, handle.execution_id)
    assert sum(n for step, n in ran.items() if "fan:" in step) == 2  # the others were dropped
    assert "after" not in ran
    assert ran["undo_before"] == 1
    actions = [(e.step_id, e.action) for e in cluster.entries(handle.execution_id)]
    assert actions.count(("before", Action.COMPENSATED)) == 1
    assert not any(action is Action.COMPLETED and "fan" in step for step, action in actions)


def test_a_cancel_stops_an_async_service_on_a_worker(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.ASYNC_HOLD)
    wait_for((cluster.directory / flows.STARTED).exists, "the async step to start")
    asked_at = time.monotonic()

    cluster.engine.cancel(handle.execution_id, reason="stop now")

    finished = cluster.wait_finished(handle.execution_id, timeout=30)
    # The lease keeper sees it within two thirds of the 2 s lease, not after the minute.
    assert time.monotonic() - asked_at < 15
    assert (finished.status, finished.error) == (Status.CANCELLED, "stop now")
    assert _ran(cluster, handle.execution_id) == {"before": 1, "hold": 1, "undo_before": 1}
    actions = [(e.step_id, e.action) for e in cluster.entries(handle.execution_id)]
    assert ("hold", Action.CANCELLED) in actions
    assert ("hold", Action.FAILED) not in actions


# --- sleep ------------------------------------------------------------------------------------


def test_a_sleep_holds_no_worker_thread(cluster: Cluster) -> None:
    # One thread, no wake_due(): the nap's delayed message alone wakes it, and the
    # thread serves other executions meanwhile.
    cluster.start_workers(processes=1, threads=1, maintenance=3600)
    napping = cluster.engine.start(flows.NAPPING, {"seconds": 8})
    wait_for(lambda: _status(cluster, napping.execution_id, Status.WAITING), "the nap")
    asleep = cluster.engine.load(napping.execution_id)

    chains = [cluster.engine.start(flows.CHAIN) for _ in range(3)]
    for chain in chains:
        assert chain.result(timeout=60).status is Status.COMPLETED
    assert cluster.engine.load(napping.execution_id).status is Status.WAITING  # still asleep

    finished = cluster.wait_finished(napping.execution_id, timeout=30)
    assert finished.status is Status.COMPLETED, finished.error
    assert asleep.wake_at is not None
    assert finished.updated_at >= asleep.wake_at
    # start, before, nap (waits); the timer; after.
    cluster.assert_messages(napping.execution_id, {"flowkit_step": 2, "flowkit_timer": 1})

"""Execution control on real Dramatiq workers (SPEC §15): retry, cancel, sleep.

Each test runs against the Redis broker and against RabbitMQ; the store is
PostgreSQL. What ran is read from the store (the entries) and from the
services' own call log, never from the broker.
"""

from __future__ import annotations

import time

import attrs
import pytest

from flowkit import Action, Status
from tests.distributed import flows
from tests.distributed.cluster import LEASE_SECONDS, Cluster, wait_for
from tests.distributed.test_faults import assert_each_once, completed

pytestmark = pytest.mark.timeout(120)


def _started(cluster: Cluster) -> int:
    """The pid of the worker process whose ``slow`` or ``hang`` call started."""
    started = cluster.directory / flows.STARTED
    return int(wait_for(lambda: started.exists() and started.read_text(), "the call to start"))


def _status(cluster: Cluster, execution_id: str, status: Status) -> None:
    wait_for(lambda: cluster.engine.load(execution_id).status is status, status.value)


def test_a_retried_execution_continues_at_the_failed_step_on_the_workers(
    cluster: Cluster,
) -> None:
    cluster.start_workers(processes=1, threads=2)
    failed = cluster.engine.run(flows.BROKEN, timeout=60)
    assert failed.status is Status.FAILED
    assert "broken is down" in str(failed.error)

    (cluster.directory / flows.FIXED).touch()  # the fix is deployed
    cluster.engine.retry(failed.execution_id)
    final = cluster.wait_finished(failed.execution_id)

    assert final.status is Status.COMPLETED, final.error
    execution_id = failed.execution_id
    ran = cluster.calls()
    assert ran[("before", execution_id)] == 1  # completed steps did not run again
    assert ran[("broken", execution_id)] == 2
    assert ran[("after", execution_id)] == 1
    assert_each_once(
        cluster.entries(execution_id),
        [
            *completed("start", "before"),
            ("broken", Action.FAILED),
            ("broken", Action.RETRIED),
            *completed("broken", "after"),
        ],
    )


def test_a_queued_execution_is_cancelled_by_its_own_message(cluster: Cluster) -> None:
    handle = cluster.engine.start(flows.CHAIN)  # no worker yet: its message waits
    queued = cluster.engine.load(handle.execution_id)
    assert (queued.seq, queued.lease_owner) == (0, None)

    asked = cluster.engine.cancel(handle.execution_id, reason="not needed", by="ops")
    assert asked.status is Status.RUNNING  # asked: the first worker to get it ends it

    cluster.start_workers(processes=1, threads=2)
    final = cluster.wait_finished(handle.execution_id)
    assert final.status is Status.CANCELLED
    assert final.error == "not needed"
    cluster.assert_messages(handle.execution_id, {"flowkit_step": 1})
    assert cluster.calls() == {}  # no step ran
    assert [(e.step_id, e.action) for e in cluster.entries(handle.execution_id)] == [
        ("start", Action.CANCELLED)
    ]


def test_a_waiting_execution_is_cancelled_at_once_with_its_compensations(
    cluster: Cluster,
) -> None:
    cluster.start_workers(processes=1, threads=2)
    waiting = cluster.engine.run(flows.DOZING, timeout=60)
    assert waiting.status is Status.WAITING, waiting.error

    # Its compensation runs on a worker first; the cancel does not wait for it.
    cluster.engine.cancel(waiting.execution_id, reason="customer left")
    execution_id = waiting.execution_id
    assert cluster.engine.load(execution_id).wake_at is None  # the timer is off

    final = cluster.wait_finished(execution_id, timeout=15)  # well before the 30 s nap
    assert final.status is Status.CANCELLED
    assert final.error == "customer left"
    ran = cluster.calls()
    assert ran[("unbook", execution_id)] == 1
    assert ran[("after", execution_id)] == 0
    assert_each_once(
        cluster.entries(execution_id),
        [
            *completed("start", "book"),
            ("nap", Action.WAITING),
            ("nap", Action.CANCELLED),
            ("book", Action.COMPENSATED),
        ],
    )


def test_a_halted_execution_is_cancelled_at_once(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    halted = cluster.engine.run(flows.HALTING, timeout=60)
    assert halted.status is Status.HALTED, halted.error

    result = cluster.engine.cancel(halted.execution_id, reason="withdrawn")

    assert result.cancelled
    assert cluster.calls()[("after", halted.execution_id)] == 0
    last = cluster.entries(halted.execution_id)[-1]
    assert (last.step_id, last.action) == ("wait", Action.CANCELLED)


def test_a_running_execution_stops_after_its_step_and_compensates(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.SAGA)
    _started(cluster)

    asked = cluster.engine.cancel(handle.execution_id, reason="too slow", by="support")
    assert asked.status is Status.RUNNING  # asked: the worker stops after the step
    (cluster.directory / flows.RELEASE).touch()
    final = cluster.wait_finished(handle.execution_id)

    assert final.status is Status.CANCELLED
    assert final.error == "too slow"
    execution_id = handle.execution_id
    ran = cluster.calls()
    assert (ran[("slow", execution_id)], ran[("unbook", execution_id)]) == (1, 1)
    assert ran[("after", execution_id)] == 0
    assert_each_once(
        cluster.entries(execution_id),
        [
            *completed("start", "book"),
            ("slow", Action.CANCELLED),
            ("book", Action.COMPENSATED),
        ],
    )


def test_a_cancelled_fan_out_drops_its_branches(cluster: Cluster) -> None:
    # One thread: the gate branch holds it, the other branches wait in the queue.
    cluster.start_workers(processes=1, threads=1)
    handle = cluster.engine.start(flows.GATED_FAN)
    _started(cluster)
    execution_id = handle.execution_id
    ran_before = sum(n for (step, of), n in cluster.calls().items() if step.startswith("fan:b"))

    cluster.engine.cancel(execution_id, reason="enough")
    (cluster.directory / flows.RELEASE).touch()
    final = cluster.wait_finished(execution_id)

    assert final.status is Status.CANCELLED, final.error
    ran = cluster.calls()
    branches = {step: n for (step, of), n in ran.items() if step.startswith("fan:b")}
    assert sum(branches.values()) == ran_before  # no branch started after the cancel
    assert ran[("after", execution_id)] == 0
    assert ran[("unbook", execution_id)] == 1
    actions = [(e.step_id, e.action) for e in cluster.entries(execution_id)]
    assert ("fan", Action.COMPLETED) not in actions
    assert actions[-1] == ("book", Action.COMPENSATED)


def test_an_async_service_in_flight_is_cancelled_on_the_worker(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.HANGING)
    _started(cluster)
    asked_at = time.monotonic()

    cluster.engine.cancel(handle.execution_id, reason="stop")
    final = cluster.wait_finished(handle.execution_id, timeout=30)

    assert final.status is Status.CANCELLED, final.error
    # The lease keeper noticed within a lease, not the minute the service awaits.
    assert time.monotonic() - asked_at < 5 * LEASE_SECONDS
    ran = cluster.calls()
    execution_id = handle.execution_id
    assert (ran[("hang", execution_id)], ran[("unbook", execution_id)]) == (1, 1)
    assert ran[("after", execution_id)] == 0


def test_a_sleep_wakes_by_its_delayed_message_and_holds_no_thread(cluster: Cluster) -> None:
    # No recover()/wake_due() while the test runs; one thread for both executions.
    cluster.start_workers(processes=1, threads=1, maintenance=3600)
    dozing = cluster.engine.start(flows.DOZING, {"seconds": 5})
    _status(cluster, dozing.execution_id, Status.WAITING)

    chain = cluster.engine.run(flows.CHAIN, timeout=60)  # runs while the other sleeps

    assert chain.status is Status.COMPLETED, chain.error
    assert cluster.engine.load(dozing.execution_id).status is Status.WAITING
    final = cluster.wait_finished(dozing.execution_id, timeout=30)
    assert final.status is Status.COMPLETED, final.error
    cluster.assert_messages(dozing.execution_id, {"flowkit_step": 2, "flowkit_timer": 1})
    assert_each_once(
        cluster.entries(dozing.execution_id),
        [
            *completed("start", "book"),
            ("nap", Action.WAITING),
            *completed("nap", "after"),
        ],
    )


def test_a_retried_fan_out_runs_again_only_what_was_not_recorded(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=4)
    failed = cluster.engine.run(flows.BROKEN_FAN, timeout=60)
    assert failed.status is Status.FAILED
    execution_id = failed.execution_id
    # A branch still running when b1 failed the step was not recorded: it runs again.
    recorded = {
        entry.step_id for entry in cluster.entries(execution_id) if entry.action is Action.COMPLETED
    }
    before_retry = {step: n for (step, of), n in cluster.calls().items() if of == execution_id}

    (cluster.directory / flows.FIXED).touch()
    retried = cluster.engine.retry(execution_id)  # waits for the workers

    assert retried.status is Status.COMPLETED, retried.error
    assert retried.output == ["fan:b0", "fan:b1", "fan:b2"]
    ran = {step: n for (step, of), n in cluster.calls().items() if of == execution_id}
    assert (ran["before"], ran["fan:b1"], ran["after"]) == (1, 2, 1)
    for branch in ("fan:b0", "fan:b2"):
        again = 0 if branch in recorded else 1
        assert ran.get(branch, 0) == before_retry.get(branch, 0) + again, (branch, recorded)


def test_a_pending_execution_is_cancelled_at_once_and_its_message_dropped(
    cluster: Cluster,
) -> None:
    cluster.start_workers(processes=1, threads=2, maintenance=3600)
    created = cluster.engine.create(flows.CHAIN)
    # An execution nobody claimed yet (status pending, no lease owner).
    pending = attrs.evolve(
        created, status=Status.PENDING, version=created.version + 1, lease_owner=None
    )
    cluster.engine.store.checkpoint(pending, (), created.version, changed=())

    result = cluster.engine.cancel(created.id, reason="duplicate order")

    assert result.cancelled
    cluster.runtime.send_step(cluster.engine.load(created.id))
    cluster.assert_messages(created.id, {"flowkit_step": 1})  # processed, and dropped
    assert cluster.engine.load(created.id).status is Status.CANCELLED
    assert not any(of == created.id for _, of in cluster.calls())

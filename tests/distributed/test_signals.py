"""Signals on real Dramatiq workers (SPEC §15): a signal to a waiting execution sends its
timer message at once, from any process, and a killed worker loses nothing.

Real workers on Redis and RabbitMQ brokers, PostgreSQL; what ran is read from the
entries (numbered without gaps, each once) and from the services' own call log.
"""

from __future__ import annotations

import os
import signal

import pytest

import flowkit
from flowkit import Action, Status
from flowkit.backends import dramatiq as fk_dramatiq
from flowkit.definitions import WorkflowRegistry
from tests.distributed import flows
from tests.distributed.cluster import LEASE_SECONDS, Cluster, wait_for
from tests.distributed.test_faults import assert_each_once, completed

pytestmark = pytest.mark.timeout(120)

PAID = [*completed("start", "book"), ("pay", Action.WAITING), *completed("pay", "after")]


def _waiting(cluster: Cluster, execution_id: str) -> None:
    wait_for(
        lambda: cluster.engine.load(execution_id).status is Status.WAITING, "the wait for 'paid'"
    )


def _paid(cluster: Cluster, execution_id: str, payload: object) -> None:
    final = cluster.wait_finished(execution_id)
    assert final.status is Status.COMPLETED, final.error
    assert_each_once(cluster.entries(execution_id), PAID)
    after = cluster.entries(execution_id)[-1]
    assert (after.step_id, after.output) == ("after", payload)
    ran = cluster.calls()
    assert (ran[("book", execution_id)], ran[("after", execution_id)]) == (1, 1)


def test_a_signal_sends_the_timer_message_at_once(cluster: Cluster) -> None:
    # No wake_due() on the workers while the test runs: only the message can deliver it.
    cluster.start_workers(processes=1, threads=2, maintenance=3600)
    execution_id = cluster.engine.start(flows.PAYING).execution_id
    _waiting(cluster, execution_id)

    assert cluster.engine.signal(execution_id, "paid", {"amount": 7}, key="pay-1") is True
    assert cluster.engine.signal(execution_id, "paid", {"amount": 7}, key="pay-1") is False

    _paid(cluster, execution_id, {"amount": 7})
    cluster.assert_messages(execution_id, {"flowkit_step": 2, "flowkit_timer": 1})


def test_a_sender_that_knows_no_workflow_still_wakes_it_at_once(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2, maintenance=3600)
    execution_id = cluster.engine.start(flows.PAYING).execution_id
    _waiting(cluster, execution_id)

    # A web handler, say: the store and the broker, no workflows registered.
    with flowkit.Engine(
        store=cluster.store_url,
        executor=fk_dramatiq.DramatiqDriver(runtime=cluster.runtime),
        workflows=WorkflowRegistry(),
        lease_seconds=LEASE_SECONDS,
    ) as sender:
        assert sender.signal(execution_id, "paid", "from a web handler") is True

    _paid(cluster, execution_id, "from a web handler")


def test_a_signal_sent_before_the_wait_is_taken_on_the_worker(cluster: Cluster) -> None:
    execution_id = cluster.engine.start(flows.PAYING).execution_id  # queued: no worker yet
    assert cluster.engine.signal(execution_id, "paid", "early") is True
    cluster.start_workers(processes=1, threads=2, maintenance=3600)

    final = cluster.wait_finished(execution_id)
    assert final.status is Status.COMPLETED, final.error
    assert_each_once(cluster.entries(execution_id), completed("start", "book", "pay", "after"))
    assert cluster.entries(execution_id)[-1].output == "early"


def test_a_waiting_execution_whose_worker_was_killed_takes_its_signal(
    cluster: Cluster,
) -> None:
    cluster.start_workers(processes=1, threads=2)
    execution_id = cluster.engine.start(flows.PAYING).execution_id
    _waiting(cluster, execution_id)
    (pid,) = cluster.pids("book")

    os.kill(pid, signal.SIGKILL)  # no worker is up when the signal comes
    assert cluster.engine.signal(execution_id, "paid", "after the kill") is True
    cluster.start_workers(processes=1, threads=2, ready=False)

    _paid(cluster, execution_id, "after the kill")

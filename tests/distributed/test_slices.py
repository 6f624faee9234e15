"""The time slice on real workers: how many messages an execution takes.

A step message drives its execution through consecutive sequential steps, and
hands it over through the broker at a fan-out, a retry's delay, a halt, or when
the slice (``FLOWKIT_SLICE_STEPS``, ``FLOWKIT_SLICE_SECONDS``) is used up. The
workers note every message they process (``flows.MessageLog``); each test runs
on the Redis broker and on RabbitMQ, with the store on PostgreSQL. The workers'
slices last 60 s unless a test says otherwise (``cluster.SLICE_SECONDS``), so a
slow machine does not change the counts. The fault tests (``test_faults.py``)
check the messages of fan-outs, halts, timers and a worker killed in the middle
of a slice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowkit import Action, Status
from flowkit.backends import dramatiq as fk_dramatiq
from tests.distributed import flows
from tests.distributed.cluster import Cluster
from tests.distributed.test_faults import assert_each_once, completed

pytestmark = pytest.mark.timeout(120)

CHAIN = ["start", *(f"s{i}" for i in range(flows.CHAIN_STEPS))]  # six steps


@pytest.mark.parametrize(
    ("env", "messages"),
    [
        pytest.param({}, 1, id="100-steps"),
        pytest.param({fk_dramatiq.SLICE_STEPS_VAR: "1"}, 6, id="1-step"),
        pytest.param({fk_dramatiq.SLICE_STEPS_VAR: "4"}, 2, id="4-steps"),
        pytest.param({fk_dramatiq.SLICE_SECONDS_VAR: "1e-9"}, 6, id="used-up-seconds"),
    ],
)
def test_a_chain_takes_one_message_per_slice(
    cluster: Cluster, env: dict[str, str], messages: int
) -> None:
    cluster.start_workers(processes=1, threads=2, env=env)
    handles = [cluster.engine.start(flows.CHAIN) for _ in range(3)]

    for handle in handles:
        result = handle.result(timeout=60)
        assert result.status is Status.COMPLETED, result.error
        assert_each_once(cluster.entries(handle.execution_id), completed(*CHAIN))
        cluster.assert_messages(handle.execution_id, {"flowkit_step": messages})
    assert all(count == 1 for count in cluster.calls().values())


def test_a_retry_delay_hands_over(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.RETRYING)

    result = handle.result(timeout=60)

    assert result.status is Status.COMPLETED, result.error
    assert_each_once(
        cluster.entries(handle.execution_id),
        [*completed("start", "before"), ("flaky", Action.RETRIED), *completed("flaky", "after")],
    )
    # start, before, flaky (fails); then the delayed message: flaky, after.
    cluster.assert_messages(handle.execution_id, {"flowkit_step": 2})


def test_a_sleep_hands_over_to_a_timer_message(cluster: Cluster) -> None:
    # No recover()/wake_due() while the test runs: only the timer message can wake it.
    cluster.start_workers(processes=1, threads=2, maintenance=3600)
    handle = cluster.engine.start(flows.SLEEPING)

    finished = cluster.wait_finished(handle.execution_id, timeout=30)

    assert finished.status is Status.COMPLETED, finished.error
    entries = cluster.entries(handle.execution_id)
    assert [entry.step_id for entry in entries] == ["start", "before", "nap", "nap", "after"]
    assert entries[-1].timestamp - entries[1].timestamp >= timedelta(seconds=0.5)
    # start, before, nap (waits); the timer; after.
    cluster.assert_messages(handle.execution_id, {"flowkit_step": 2, "flowkit_timer": 1})

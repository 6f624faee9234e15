"""Worker processes SIGKILLed while an execution sleeps, is being cancelled or compensates.

Like ``test_faults.py``: real workers on Redis and RabbitMQ brokers, PostgreSQL;
what ran is read from the entries (numbered without gaps, each once) and from
the services' own call log.
"""

from __future__ import annotations

import os
import signal

import pytest

from flowkit import Action, Status
from tests.distributed import flows
from tests.distributed.cluster import Cluster, wait_for
from tests.distributed.test_faults import assert_each_once, completed

pytestmark = pytest.mark.timeout(120)


def _started(cluster: Cluster) -> int:
    """The pid of the worker process whose blocking ``slow`` call started."""
    started = cluster.directory / flows.STARTED
    pid = int(wait_for(lambda: started.exists() and started.read_text(), "the slow call"))
    assert pid != os.getpid()
    return pid


def test_a_sleeping_execution_whose_worker_was_killed_wakes_once(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.DOZING, {"seconds": 2})
    execution_id = handle.execution_id
    wait_for(lambda: cluster.engine.load(execution_id).status is Status.WAITING, "the nap")
    (pid,) = cluster.pids("book")

    os.kill(pid, signal.SIGKILL)  # it may hold the delayed wake-up message
    cluster.start_workers(processes=1, threads=2, ready=False)
    final = cluster.wait_finished(execution_id)

    assert final.status is Status.COMPLETED, final.error
    ran = cluster.calls()
    assert (ran[("book", execution_id)], ran[("after", execution_id)]) == (1, 1)
    assert_each_once(
        cluster.entries(execution_id),
        [*completed("start", "book"), ("nap", Action.WAITING), *completed("nap", "after")],
    )


def test_a_worker_killed_while_its_execution_is_being_cancelled(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.SAGA)
    execution_id = handle.execution_id
    pid = _started(cluster)
    asked = cluster.engine.cancel(execution_id, reason="stop", by="support")
    assert asked.status is Status.RUNNING  # asked; the worker would stop after the step

    os.kill(pid, signal.SIGKILL)  # in the step: the cancel is only a request in the record
    (cluster.directory / flows.RELEASE).touch()
    cluster.start_workers(processes=1, threads=2, ready=False)
    final = cluster.wait_finished(execution_id)

    assert final.status is Status.CANCELLED, final.error
    assert final.error == "stop"
    ran = cluster.calls()
    assert ran[("slow", execution_id)] == 1  # the recovery ends it, never runs it again
    assert ran[("unbook", execution_id)] == 1
    assert ran[("after", execution_id)] == 0
    assert_each_once(
        cluster.entries(execution_id),
        [*completed("start", "book"), ("slow", Action.CANCELLED), ("book", Action.COMPENSATED)],
    )


def test_a_worker_killed_while_it_compensates(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.UNDOING)  # broken fails: book is undone by slow
    execution_id = handle.execution_id
    pid = _started(cluster)

    os.kill(pid, signal.SIGKILL)  # in the compensation
    (cluster.directory / flows.RELEASE).touch()
    cluster.start_workers(processes=1, threads=2, ready=False)
    final = cluster.wait_finished(execution_id)

    assert final.status is Status.FAILED
    assert "broken is down" in str(final.error)
    ran = cluster.calls()
    assert ran[("broken", execution_id)] == 1
    assert ran[("unbook", execution_id)] == 2  # at least once: killed once, then again
    assert_each_once(
        cluster.entries(execution_id),
        [*completed("start", "book"), ("broken", Action.FAILED), ("book", Action.COMPENSATED)],
    )

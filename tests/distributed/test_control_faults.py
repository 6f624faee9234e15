"""A worker process SIGKILLed in the middle of execution control (SPEC §15): while an
execution sleeps, while it is being cancelled, while it compensates.

Each test runs against the Redis broker and against RabbitMQ; the store is
PostgreSQL. The killed worker's lease runs out (2 s) and ``recover()`` on a new
worker takes the execution over; what ran is read back from the entries (each
exactly once, numbered without gaps) and from the services' call log (at least
once).
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


def _ran(cluster: Cluster, execution_id: str) -> dict[str, int]:
    return {step: n for (step, of), n in cluster.calls().items() if of == execution_id}


def _started_pid(cluster: Cluster) -> int:
    started = cluster.directory / flows.STARTED
    pid = int(wait_for(lambda: started.exists() and started.read_text(), "the slow call"))
    assert pid != os.getpid()
    return pid


def test_a_worker_killed_while_an_execution_sleeps(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.NAPPING, {"seconds": 3})

    def waiting() -> bool:
        return cluster.engine.load(handle.execution_id).status is Status.WAITING

    wait_for(waiting, "the nap")
    (pid,) = cluster.pids("before")
    os.kill(pid, signal.SIGKILL)
    cluster.start_workers(processes=1, threads=2, ready=False)

    finished = cluster.wait_finished(handle.execution_id)
    assert finished.status is Status.COMPLETED, finished.error
    assert _ran(cluster, handle.execution_id) == {"before": 1, "after": 1}  # woken once
    entries = cluster.entries(handle.execution_id)
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert [(entry.step_id, entry.action) for entry in entries] == [
        ("start", Action.COMPLETED),
        ("before", Action.COMPLETED),
        ("nap", Action.WAITING),
        ("nap", Action.COMPLETED),
        ("after", Action.COMPLETED),
    ]


def test_a_worker_killed_while_its_execution_is_being_cancelled(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.CANCELLABLE)
    pid = _started_pid(cluster)
    asked = cluster.engine.cancel(handle.execution_id, reason="stop it")
    assert asked.status is Status.RUNNING

    os.kill(pid, signal.SIGKILL)  # before the slow step ends and the cancel is taken up
    (cluster.directory / flows.RELEASE).touch()
    cluster.start_workers(processes=1, threads=2, ready=False)

    finished = cluster.wait_finished(handle.execution_id)
    assert (finished.status, finished.error) == (Status.CANCELLED, "stop it")
    ran = _ran(cluster, handle.execution_id)
    assert ran["one"] == 1
    assert "three" not in ran
    assert ran["undo_one"] >= 1
    assert_each_once(
        cluster.entries(handle.execution_id),
        [*completed("start", "one"), ("slow", Action.CANCELLED), ("one", Action.COMPENSATED)],
    )


def test_a_worker_killed_while_its_execution_compensates(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.SAGA)
    pid = _started_pid(cluster)  # undo_b is under way
    assert _ran(cluster, handle.execution_id) == {"a": 1, "b": 1, "boom": 1, "undo_b": 1}

    os.kill(pid, signal.SIGKILL)
    (cluster.directory / flows.RELEASE).touch()
    cluster.start_workers(processes=1, threads=2, ready=False)

    finished = cluster.wait_finished(handle.execution_id)
    assert finished.status is Status.FAILED
    assert finished.error is not None
    assert "boom failed" in finished.error
    ran = _ran(cluster, handle.execution_id)
    assert (ran["a"], ran["b"], ran["boom"]) == (1, 1, 1)
    assert ran["undo_b"] == 2  # killed once, then run again: at least once
    assert ran["undo_a"] >= 1
    entries = cluster.entries(handle.execution_id)
    assert_each_once(
        entries,
        [
            *completed("start", "a", "b"),
            ("boom", Action.FAILED),
            ("b", Action.COMPENSATED),
            ("a", Action.COMPENSATED),
        ],
    )
    undone = [entry.step_id for entry in entries if entry.action is Action.COMPENSATED]
    assert undone == ["b", "a"]  # in reverse order of completion

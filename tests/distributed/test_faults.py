"""Fault tests of the Dramatiq executor with real worker processes and live brokers.

Each test runs against the Redis broker and against RabbitMQ (``cluster`` is
parametrized; markers ``dramatiq_redis`` / ``dramatiq_rabbitmq``). The store is
PostgreSQL. What ran is read back from the store (the entries) and from the
services' own call log (``flows.calls``), never from the broker.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

import flowkit
from flowkit import Action, Entry, Status
from tests.distributed import flows
from tests.distributed.cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(120)


def assert_each_once(entries: list[Entry], expected: list[tuple[str, Action]]) -> None:
    """The entries are numbered 1..n without gaps and are exactly ``expected`` (in any order
    for steps that run at the same time, such as parallel branches)."""
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    found = Counter((entry.step_id, entry.action) for entry in entries)
    assert found == Counter(expected), [(e.seq, e.step_id, e.action.value) for e in entries]


def completed(*steps: str) -> list[tuple[str, Action]]:
    return [(step, Action.COMPLETED) for step in steps]


def test_a_worker_killed_in_the_middle_of_a_step(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    handle = cluster.engine.start(flows.SLOW)
    started = cluster.directory / flows.STARTED
    pid = int(wait_for(lambda: started.exists() and started.read_text(), "the slow step to start"))
    assert pid != os.getpid()
    # In the middle of a slice too: the first message checkpointed start and one,
    # and is still running.
    assert cluster.engine.load(handle.execution_id).seq == 2
    assert cluster.messages(handle.execution_id) == {}

    os.kill(pid, signal.SIGKILL)
    (cluster.directory / flows.RELEASE).touch()  # the re-run of the step does not block
    cluster.start_workers(processes=1, threads=2, ready=False)

    # Redelivered, the first message is stale and dropped; once the dead worker's lease
    # ran out, recover() sends the step message of the last checkpoint.
    result = handle.result(timeout=60)
    assert result.status is Status.COMPLETED, result.error
    assert_each_once(
        cluster.entries(handle.execution_id), completed("start", "one", "slow", "three")
    )
    ran = cluster.calls()
    execution_id = handle.execution_id
    assert ran[("one", execution_id)] == 1
    assert ran[("slow", execution_id)] == 2  # killed once, then run to the end
    assert 1 <= ran[("three", execution_id)] <= 2


def test_two_workers_never_advance_one_execution_twice(cluster: Cluster) -> None:
    first = cluster.start_workers(processes=1, threads=4, ready=False)
    cluster.start_workers(processes=1, threads=4)
    first.wait_ready()
    handles = [cluster.engine.start(flows.CHAIN) for _ in range(60)]
    for handle in handles[::2]:
        # A duplicate of the first message, as a redelivery would make one.
        cluster.runtime.send_step(cluster.engine.load(handle.execution_id))

    steps = ["start", *(f"s{i}" for i in range(flows.CHAIN_STEPS))]
    for handle in handles:
        result = handle.result(timeout=60)
        assert result.status is Status.COMPLETED, result.error
        assert_each_once(cluster.entries(handle.execution_id), completed(*steps))
    ran = cluster.calls()
    assert max(ran.values()) <= 2  # at-least-once: a duplicate may run, never checkpoint
    assert {step for step, _ in ran} == set(steps) - {"start"}
    assert len(cluster.pids()) == 2  # both processes did some of the work


def test_twenty_branches_on_four_threads_join_once(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=4)
    handle = cluster.engine.start(flows.FANOUT)

    result = handle.result(timeout=60)
    assert result.status is Status.COMPLETED, result.error
    assert result.output == list(range(flows.BRANCHES))
    branches = [f"fan:b{i:02d}" for i in range(flows.BRANCHES)]
    entries = cluster.entries(handle.execution_id)
    assert_each_once(entries, completed("start", "before", *branches, "fan", "after", "end"))
    fan = next(entry for entry in entries if entry.step_id == "fan")
    assert fan.output == list(range(flows.BRANCHES))
    assert fan.seq == 3 + flows.BRANCHES  # joined after every branch was recorded
    ran = cluster.calls()
    assert all(1 <= ran[(branch, handle.execution_id)] <= 2 for branch in branches)
    # start, before, fan (out); a message per branch; the join's: fan, after, end.
    cluster.assert_messages(
        handle.execution_id, {"flowkit_step": 2, "flowkit_branch": flows.BRANCHES}
    )


def test_a_halted_workflow_resumed_through_the_queue(configured: Cluster) -> None:
    cluster = configured
    cluster.start_workers(processes=1, threads=2)
    halted = flowkit.run(flows.HALTING, timeout=60)
    assert halted.status is Status.HALTED, halted.error
    cluster.assert_messages(halted.execution_id, {"flowkit_step": 1})  # start, before, wait

    resumed = flowkit.resume(halted.execution_id, response={"answer": 42})

    assert resumed.status is Status.COMPLETED, resumed.error
    assert resumed.output == {"answer": 42}
    assert_each_once(
        cluster.entries(halted.execution_id),
        [
            *completed("start", "before"),
            ("wait", Action.HALTED),
            ("wait", Action.RESUMED),
            *completed("after", "end"),
        ],
    )
    # The step after the resume ran on the worker, not in this process.
    assert cluster.pids("after") == cluster.pids("before") != {os.getpid()}
    cluster.assert_messages(halted.execution_id, {"flowkit_step": 2})  # after, end


def test_an_approval_timeout_fires_through_the_delayed_message(cluster: Cluster) -> None:
    # No recover()/wake_due() while the test runs: only the timer message can wake it.
    cluster.start_workers(processes=1, threads=2, maintenance=3600)
    halted = cluster.engine.run(flows.APPROVAL, timeout=60)
    assert halted.status is Status.HALTED, halted.error
    execution = cluster.engine.load(halted.execution_id)
    assert execution.wake_at is not None

    finished = cluster.wait_finished(halted.execution_id, timeout=30)

    assert finished.status is Status.COMPLETED, finished.error
    assert finished.result == ["start", "before", "ask", "expired"]
    # start, before, ask (halts); the timer; expired, end.
    cluster.assert_messages(halted.execution_id, {"flowkit_step": 2, "flowkit_timer": 1})
    assert finished.updated_at >= execution.wake_at
    assert_each_once(
        cluster.entries(halted.execution_id),
        [
            *completed("start", "before"),
            ("ask", Action.HALTED),
            ("ask", Action.RESUMED),
            *completed("expired", "end"),
        ],
    )


def test_a_poisoned_output_fails_its_execution_and_nothing_else(cluster: Cluster) -> None:
    cluster.start_workers(processes=1, threads=2)
    poisoned = cluster.engine.start(flows.POISONED)
    chains = [cluster.engine.start(flows.CHAIN) for _ in range(4)]

    failed = poisoned.result(timeout=60)
    assert failed.status is Status.FAILED
    assert failed.error == (
        "ExecutionError: step 'poison': output holds a lone surrogate ('\\ud800' at position 4) "
        "(UTF-8 cannot encode it; decode bytes with errors='replace', or drop the character)"
    )
    assert_each_once(
        cluster.entries(poisoned.execution_id),
        [*completed("start", "before"), ("poison", Action.FAILED)],
    )
    assert cluster.calls()[("poison", poisoned.execution_id)] == 1  # failed, not re-run
    for handle in chains:
        assert handle.result(timeout=60).status is Status.COMPLETED

"""Fast checks of the Dramatiq executor's messages, on Dramatiq's StubBroker.

The actors are called directly, in this process, on a memory store; a
middleware records every message they send (queue, actor, arguments, delay).
Most tests run one step per message (``slice_steps=1``) to see what follows
each kind of step; the time slice's own tests use the default slice. The fault
tests in ``test_faults.py`` run the same code on real workers and brokers.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import dramatiq
import pytest
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

import flowkit
from flowkit import Action, Status
from flowkit.backends.dramatiq import (
    DramatiqDriver,
    Runtime,
    close_runtimes,
    get_runtime,
    make_broker,
)
from flowkit.backends.memory import MemoryStore
from flowkit.config import reset
from flowkit.definitions import WorkflowRegistry
from tests.distributed.cluster import RABBITMQ_URL, REDIS_BROKER_URL

pytestmark = pytest.mark.timeout(30)

QUEUE = "q"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.moment = datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@attrs.frozen
class Sent:
    queue: str
    actor: str
    args: tuple[Any, ...]
    delay: int | None


class Recorder(dramatiq.Middleware):
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        queue = message.queue_name.removesuffix(".DQ")
        self.sent.append(Sent(queue, message.actor_name, tuple(message.args), delay))

    def take(self) -> list[Sent]:
        taken, self.sent = self.sent, []
        return taken


@attrs.define
class Setup:
    runtime: Runtime
    engine: flowkit.Engine
    recorder: Recorder
    clock: Clock
    services: flowkit.ServiceRegistry


@contextlib.contextmanager
def _setup(**runtime_options: Any) -> Iterator[Setup]:
    broker = StubBroker()
    recorder = Recorder()
    broker.add_middleware(recorder)
    runtime = Runtime(broker, queue=QUEUE, **runtime_options)
    clock = Clock()
    services = flowkit.ServiceRegistry()
    failures = {"left": 1}

    def flaky(x: int) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("not yet")
        return x

    services.register("Stub", {"double": lambda x: 2 * x, "flaky": flaky})
    engine = flowkit.Engine(
        store=MemoryStore(warn=False),
        executor=DramatiqDriver(runtime=runtime),
        services=services,
        workflows=WorkflowRegistry(),
        clock=clock,
        lease_seconds=30,
    )
    runtime.attach(engine)
    yield Setup(runtime, engine, recorder, clock, services)
    engine.close()
    engine.store.close()
    broker.close()


@pytest.fixture
def setup() -> Iterator[Setup]:
    """One message per step: each test sees what follows one kind of step."""
    with _setup(slice_steps=1) as made:
        yield made


@pytest.fixture
def sliced() -> Iterator[Setup]:
    """The default time slice: a step message drives its execution for many steps."""
    with _setup() as made:
        yield made


def workflow(*steps: dict[str, Any], id: str = "stub") -> flowkit.WorkflowDef:
    start = {"id": "start", "type": "start", "next": steps[0]["id"]}
    return flowkit.load({"id": id, "steps": [start, *steps]})


def call(step: str, x: Any = 1, method: str = "double", **more: Any) -> dict[str, Any]:
    return {
        "id": step,
        "type": "call",
        "service": "Stub",
        "method": method,
        "input": {"x": x},
        "output": step,
        **more,
    }


def step_message(execution: flowkit.Execution, delay: int | None = None) -> Sent:
    return Sent(QUEUE, "flowkit_step", (execution.id, execution.seq), delay)


# --- make_broker ------------------------------------------------------------------------------


def test_a_redis_url_makes_a_redis_broker_with_its_options() -> None:
    broker = make_broker(
        "redis://127.0.0.1:6379/3?heartbeat_timeout=5000&maintenance_chance=7"
        "&dead_message_ttl=60000&namespace=shop&socket_timeout=5"
    )
    try:
        assert isinstance(broker, RedisBroker)
        assert broker.heartbeat_timeout == 5000
        assert broker.maintenance_chance == 7
        assert broker.dead_message_ttl == 60000
        assert broker.namespace == "shop"
        # Other options stay in the URL, for redis-py.
        kwargs = broker.client.connection_pool.connection_kwargs
        assert kwargs["db"] == 3
        assert kwargs["socket_timeout"] == 5
    finally:
        broker.close()


def test_a_redis_url_without_options_keeps_dramatiqs_defaults() -> None:
    broker = make_broker("redis://127.0.0.1:6379/0")
    try:
        assert isinstance(broker, RedisBroker)
        assert broker.namespace == "dramatiq"
        assert broker.heartbeat_timeout == 60000
    finally:
        broker.close()


def test_an_amqp_url_makes_a_rabbitmq_broker() -> None:
    broker = make_broker("amqp://guest:guest@127.0.0.1:5672/%2F")
    try:
        assert isinstance(broker, RabbitmqBroker)
    finally:
        broker.close()


def test_an_unsupported_broker_url_is_a_config_error() -> None:
    with pytest.raises(flowkit.ConfigError) as caught:
        make_broker("kafka://127.0.0.1:9092")
    assert str(caught.value) == (
        "unsupported broker URL 'kafka://127.0.0.1:9092': use redis://host:port/db (Redis) "
        "or amqp://user:password@host:port/ (RabbitMQ)"
    )


def test_a_bad_broker_option_is_a_config_error() -> None:
    with pytest.raises(flowkit.ConfigError) as caught:
        make_broker("redis://127.0.0.1:6379/0?heartbeat_timeout=soon")
    assert str(caught.value) == "broker URL option heartbeat_timeout='soon' must be an integer"


def test_the_dramatiq_executor_without_a_broker_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWKIT_BROKER", raising=False)
    reset()
    try:
        message = (
            "the dramatiq executor needs a broker: set FLOWKIT_BROKER (e.g. "
            "redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672/) or "
            "flowkit.configure(broker=...)"
        )
        with pytest.raises(flowkit.ConfigError) as caught:
            DramatiqDriver()
        assert str(caught.value) == message
        with pytest.raises(flowkit.ConfigError) as caught:
            flowkit.Engine(store=MemoryStore(warn=False), executor="dramatiq")
        assert str(caught.value) == message
        with pytest.raises(flowkit.ConfigError):
            get_runtime()
    finally:
        reset()


def test_the_queue_comes_from_flowkit_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_QUEUE", "orders")
    url = "redis://127.0.0.1:6379/0?namespace=flowkit-test-queue"
    runtime = get_runtime(url)
    try:
        assert runtime.queue == "orders"
        assert runtime.step.queue_name == "orders"
        assert get_runtime(url, queue="orders") is runtime
        assert get_runtime(url, queue="other").queue == "other"
    finally:
        close_runtimes()


# --- what follows each kind of step -----------------------------------------------------------


def test_start_sends_the_first_step_and_each_step_the_next(setup: Setup) -> None:
    wf = workflow(call("a", 1, next="b"), call("b", "$a"))
    handle = setup.engine.start(wf)
    execution = setup.engine.load(handle.execution_id)
    assert execution.status is Status.RUNNING
    assert setup.recorder.take() == [step_message(execution)]  # no delay: not via the DQ

    for expected_step in ("start", "a", "b"):
        setup.runtime.step(execution.id, execution.seq)
        after = setup.engine.load(execution.id)
        assert after.seq == execution.seq + 1
        assert setup.engine.store.entries(execution.id)[-1].step_id == expected_step
        sent = setup.recorder.take()
        execution = after
        if after.status is Status.RUNNING:
            assert sent == [step_message(after)]
            assert after.lease_owner is None  # released: the next worker claims it
        else:
            assert sent == []  # completed: nothing follows
    assert execution.status is Status.COMPLETED
    assert execution.result is None
    assert execution.ctx["b"] == 4


def test_a_stale_or_duplicate_step_message_is_dropped(setup: Setup) -> None:
    wf = workflow(call("a", next="b"), call("b"))
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    setup.runtime.step(execution.id, execution.seq)
    after = setup.engine.load(execution.id)
    setup.recorder.take()

    setup.runtime.step(execution.id, execution.seq)  # the same message again

    assert setup.engine.load(execution.id) == after
    assert setup.recorder.take() == []
    assert [e.step_id for e in setup.engine.store.entries(execution.id)] == ["start"]


def test_a_step_message_is_dropped_while_another_worker_holds_the_lease(setup: Setup) -> None:
    wf = workflow(call("a"))
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    held = attrs.evolve(
        execution,
        version=execution.version + 1,
        lease_owner="elsewhere:1",
        lease_expires_at=setup.clock.now() + timedelta(seconds=10),
    )
    setup.engine.store.checkpoint(held, (), execution.version)
    setup.recorder.take()

    setup.runtime.step(execution.id, execution.seq)

    assert setup.engine.load(execution.id) == held
    assert setup.recorder.take() == []


def _worker_died_in_step_a(setup: Setup, recoveries: int) -> flowkit.Execution:
    """An execution at step ``a`` whose worker died in it, taken over ``recoveries`` times."""
    wf = workflow(call("a", method="peek"))
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    setup.runtime.step(execution.id, execution.seq)  # start
    execution = setup.engine.load(execution.id)
    died = attrs.evolve(
        execution,
        version=execution.version + 1,
        cursor={"recoveries": recoveries} if recoveries else {},
        lease_owner="dead-worker:1",
        lease_expires_at=setup.clock.now(),
    )
    setup.engine.store.checkpoint(died, (), execution.version)
    setup.recorder.take()
    setup.clock.sleep(1)
    return died


def test_a_step_message_after_its_worker_died_counts_a_recovery(setup: Setup) -> None:
    seen: list[int] = []

    def peek(x: int) -> int:
        record = setup.engine.load(flowkit.current().execution_id)
        seen.append(record.cursor.get("recoveries", 0))
        return x

    setup.services.register("Stub", {"peek": peek})
    died = _worker_died_in_step_a(setup, recoveries=2)

    setup.runtime.step(died.id, died.seq)  # the message, redelivered after the lease expired

    assert seen == [3]  # the step ran under a takeover counted in the cursor
    after = setup.engine.load(died.id)
    assert (after.status, after.cursor) == (Status.COMPLETED, {})  # the checkpoint reset it


def test_a_step_message_past_max_recoveries_fails_the_execution(setup: Setup) -> None:
    ran: list[int] = []
    setup.services.register("Stub", {"peek": ran.append})
    died = _worker_died_in_step_a(setup, recoveries=setup.engine.max_recoveries)

    setup.runtime.step(died.id, died.seq)

    assert ran == []  # the step did not run again
    after = setup.engine.load(died.id)
    assert after.status is Status.FAILED
    assert after.error == (
        f"ExecutionError: recovery gave up on execution '{died.id}' after 5 attempts: step "
        "'a' never reached its next checkpoint (each time, the process running it died or "
        f"could not write it; see that process's logs). Fix the cause, then retry it: "
        f"flowkit retry {died.id} (max_recoveries=5)"
    )
    assert (after.lease_owner, after.cursor) == (None, {})
    assert setup.recorder.take() == []  # nothing follows a failed execution


def test_a_branch_message_sent_before_a_retry_is_dropped(setup: Setup) -> None:
    branches = [call("x", method="flaky"), call("y", 2)]
    wf = workflow({"id": "fan", "type": "parallel", "branches": branches, "output": "all"})
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    setup.runtime.step(execution.id, execution.seq)  # start
    execution = setup.engine.load(execution.id)
    setup.runtime.step(execution.id, execution.seq)  # fan: out
    first = [sent for sent in setup.recorder.take() if sent.actor == "flowkit_branch"]
    assert [(sent.args[2], sent.args[4]) for sent in first] == [("x", 0), ("y", 0)]
    setup.runtime.branch(*first[0].args)  # x fails: the step fails
    [join] = setup.recorder.take()
    setup.runtime.step(*join.args)
    assert setup.engine.load(execution.id).status is Status.FAILED

    retried = setup.engine.retry_step(execution.id)
    setup.runtime.branch(*first[1].args)  # y's message of the failed run comes late
    assert setup.recorder.take() == []
    assert "fan:y" not in [entry.step_id for entry in setup.engine.store.entries(execution.id)]

    setup.runtime.step(retried.id, retried.seq)  # the retry fans out again
    again = setup.recorder.take()
    assert [(sent.args[2], sent.args[4]) for sent in again] == [("x", 1), ("y", 1)]
    for sent in again:
        setup.runtime.branch(*sent.args)
    [join] = setup.recorder.take()
    setup.runtime.step(*join.args)
    final = setup.engine.load(execution.id)
    assert final.status is Status.COMPLETED
    assert final.ctx["all"] == [1, 4]


def test_a_retry_is_a_delayed_step_message(setup: Setup) -> None:
    wf = workflow(call("a", method="flaky", retries=2, retry_delay=0.25))
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    setup.runtime.step(execution.id, execution.seq)  # start
    execution = setup.engine.load(execution.id)
    setup.recorder.take()

    setup.runtime.step(execution.id, execution.seq)  # a: fails once

    retried = setup.engine.load(execution.id)
    assert setup.engine.store.entries(execution.id)[-1].action is Action.RETRIED
    assert setup.recorder.take() == [step_message(retried, delay=250)]
    setup.runtime.step(retried.id, retried.seq)
    assert setup.engine.load(execution.id).status is Status.COMPLETED


def test_a_retry_longer_than_the_lease_is_not_recovered_before_it_is_due(setup: Setup) -> None:
    wf = workflow(call("a", method="flaky", retries=1, retry_delay=100))
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    for _ in range(2):  # start; a fails once
        setup.runtime.step(execution.id, execution.seq)
        execution = setup.engine.load(execution.id)
    assert setup.recorder.take()[-1] == step_message(execution, delay=100_000)
    assert execution.lease_expires_at == setup.clock.now() + timedelta(seconds=130)

    setup.clock.sleep(60)  # the lease (30 s) alone would have run out
    assert setup.engine.recover() == []
    assert setup.recorder.take() == []

    setup.clock.sleep(75)  # the retry's message was lost: recover() sends it again
    assert [r.execution_id for r in setup.engine.recover()] == [execution.id]
    assert setup.recorder.take() == [step_message(execution)]


def test_a_parallel_step_fans_out_and_the_last_branch_sends_the_join(setup: Setup) -> None:
    branches = [{**call(name, i), "output": name} for i, name in enumerate("xyz")]
    wf = workflow({"id": "fan", "type": "parallel", "branches": branches, "output": "all"})
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    setup.runtime.step(execution.id, execution.seq)  # start
    execution = setup.engine.load(execution.id)
    setup.recorder.take()

    setup.runtime.step(execution.id, execution.seq)  # fan: out

    sent = setup.recorder.take()
    visit = execution.seq + 1
    fanned = [(execution.id, "fan", branch, visit, 0) for branch in "xyz"]  # epoch 0
    assert sent == [Sent(QUEUE, "flowkit_branch", args, None) for args in fanned]
    for message in sent[:-1]:
        setup.runtime.branch(*message.args)
        assert setup.recorder.take() == []  # not joined yet
    setup.runtime.branch(*sent[-1].args)
    joined = setup.engine.load(execution.id)
    assert setup.recorder.take() == [step_message(joined)]  # exactly one join message
    for message in sent:  # late duplicates of the branches
        setup.runtime.branch(*message.args)
    assert setup.recorder.take() == []

    setup.runtime.step(joined.id, joined.seq)
    done = setup.engine.load(execution.id)
    assert done.status is Status.COMPLETED
    assert done.ctx["all"] == [0, 2, 4]
    steps = [e.step_id for e in setup.engine.store.entries(execution.id)]
    assert steps == ["start", "fan:x", "fan:y", "fan:z", "fan"]


def test_an_approval_timeout_is_a_delayed_timer_message(setup: Setup) -> None:
    wf = workflow(
        {"id": "ask", "type": "approval", "timeout": 1.5, "on_timeout": "late", "next": "ok"},
        {"id": "ok", "type": "end", "result": "approved"},
        {"id": "late", "type": "end", "result": "expired"},
    )
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    for _ in range(2):  # start, ask
        setup.runtime.step(execution.id, execution.seq)
        execution = setup.engine.load(execution.id)
    assert execution.status is Status.HALTED
    timer = Sent(QUEUE, "flowkit_timer", (execution.id,), 1500)
    assert setup.recorder.take()[-1] == timer

    setup.clock.sleep(1.0)
    setup.runtime.timer(execution.id)  # early: it waits again for what is left
    assert setup.recorder.take() == [Sent(QUEUE, "flowkit_timer", (execution.id,), 500)]
    assert setup.engine.load(execution.id) == execution

    setup.clock.sleep(0.5)
    setup.runtime.timer(execution.id)
    woken = setup.engine.load(execution.id)
    assert woken.status is Status.RUNNING
    assert setup.recorder.take() == [step_message(woken)]
    setup.runtime.step(woken.id, woken.seq)
    assert setup.engine.load(execution.id).result == "expired"

    setup.runtime.timer(execution.id)  # a late duplicate of the timer
    assert setup.recorder.take() == []


def test_a_halt_without_timeout_sends_nothing_and_resume_sends_the_next_step(
    setup: Setup,
) -> None:
    wf = workflow({"id": "wait", "type": "halt", "next": "done"}, call("done"))
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    for _ in range(2):
        setup.runtime.step(execution.id, execution.seq)
        execution = setup.engine.load(execution.id)
    assert execution.status is Status.HALTED
    assert setup.recorder.take()[-1].actor == "flowkit_step"  # the halt step's own message

    # What Engine.resume does before it waits: one checkpoint here, then the queue.
    resumed = setup.engine.resume_step(execution.id, flowkit.Decision()).execution
    setup.engine.driver.dispatch(setup.engine, execution.id)

    assert resumed.status is Status.RUNNING
    assert setup.recorder.take() == [step_message(resumed)]
    setup.runtime.step(resumed.id, resumed.seq)
    assert setup.engine.load(execution.id).status is Status.COMPLETED


# --- the time slice ---------------------------------------------------------------------------


def _steps(setup: Setup, execution_id: str) -> list[tuple[str, Action]]:
    return [(e.step_id, e.action) for e in setup.engine.store.entries(execution_id)]


def _started(setup: Setup, wf: flowkit.WorkflowDef) -> flowkit.Execution:
    """A new execution, its first message taken from the recorder."""
    execution = setup.engine.load(setup.engine.start(wf).execution_id)
    assert setup.recorder.take() == [step_message(execution)]
    return execution


def test_one_step_message_drives_a_chain_to_its_end(sliced: Setup) -> None:
    wf = workflow(call("a", 1, next="b"), call("b", "$a", next="c"), call("c", "$b"))
    execution = _started(sliced, wf)

    sliced.runtime.step(execution.id, execution.seq)

    done = sliced.engine.load(execution.id)
    assert (done.status, done.ctx["c"]) == (Status.COMPLETED, 8)
    assert [step for step, _ in _steps(sliced, execution.id)] == ["start", "a", "b", "c"]
    assert sliced.recorder.take() == []  # nothing followed: no message per step


def test_a_used_up_slice_hands_over_with_the_next_step_message() -> None:
    chain = [call(f"s{i}", next=f"s{i + 1}") for i in range(4)] + [call("s4")]
    with _setup(slice_steps=2) as setup:
        execution = _started(setup, workflow(*chain))
        messages = 1
        while execution.status is Status.RUNNING:
            setup.runtime.step(execution.id, execution.seq)
            after = setup.engine.load(execution.id)
            assert after.seq == min(execution.seq + 2, 6)  # two steps per message
            sent = setup.recorder.take()
            if after.status is Status.RUNNING:
                assert sent == [step_message(after)]
                assert after.lease_owner is None  # released: any worker may take it
                messages += 1
            else:
                assert sent == []
            execution = after
        assert execution.status is Status.COMPLETED
        assert messages == 3  # six steps


def test_a_slice_ends_after_the_step_that_used_up_its_seconds() -> None:
    with _setup(slice_seconds=1e-9) as setup:  # every step uses it up
        execution = _started(setup, workflow(call("a", next="b"), call("b")))
        for expected in ("start", "a", "b"):
            setup.runtime.step(execution.id, execution.seq)
            after = setup.engine.load(execution.id)
            assert _steps(setup, execution.id)[-1] == (expected, Action.COMPLETED)
            assert after.seq == execution.seq + 1
            assert setup.recorder.take() == ([step_message(after)] if expected != "b" else [])
            execution = after


def test_a_fan_out_ends_the_slice_and_the_join_starts_the_next(sliced: Setup) -> None:
    branches = [{**call(name, i), "output": name} for i, name in enumerate("xy")]
    wf = workflow(
        call("a", next="fan"),
        {"id": "fan", "type": "parallel", "branches": branches, "output": "all", "next": "b"},
        call("b"),
    )
    execution = _started(sliced, wf)

    sliced.runtime.step(execution.id, execution.seq)  # start, a, fan: out

    fanned = sliced.engine.load(execution.id)
    sent = sliced.recorder.take()
    assert [message.actor for message in sent] == ["flowkit_branch", "flowkit_branch"]
    assert [step for step, _ in _steps(sliced, execution.id)] == ["start", "a"]
    for message in sent:
        sliced.runtime.branch(*message.args)
    joined = sliced.engine.load(execution.id)
    assert joined.seq == fanned.seq + 2  # the two branches
    assert sliced.recorder.take() == [step_message(joined)]
    sliced.runtime.step(joined.id, joined.seq)  # fan: joined, then b, to the end
    assert sliced.engine.load(execution.id).ctx["all"] == [0, 2]
    steps = [step for step, _ in _steps(sliced, execution.id)]
    assert steps == ["start", "a", "fan:x", "fan:y", "fan", "b"]
    assert sliced.recorder.take() == []


def test_a_retry_delay_ends_the_slice_with_a_delayed_step_message(sliced: Setup) -> None:
    wf = workflow(
        call("a", next="f"),
        call("f", method="flaky", retries=1, retry_delay=0.25, next="b"),
        call("b"),
    )
    execution = _started(sliced, wf)

    sliced.runtime.step(execution.id, execution.seq)  # start, a, f: fails once

    retried = sliced.engine.load(execution.id)
    assert _steps(sliced, execution.id) == [
        ("start", Action.COMPLETED),
        ("a", Action.COMPLETED),
        ("f", Action.RETRIED),
    ]
    assert sliced.recorder.take() == [step_message(retried, delay=250)]
    sliced.runtime.step(retried.id, retried.seq)  # f, b
    assert sliced.engine.load(execution.id).status is Status.COMPLETED
    assert sliced.recorder.take() == []


def test_a_halt_ends_the_slice_and_a_resume_starts_the_next(sliced: Setup) -> None:
    wf = workflow(call("a", next="wait"), {"id": "wait", "type": "halt", "next": "b"}, call("b"))
    execution = _started(sliced, wf)

    sliced.runtime.step(execution.id, execution.seq)  # start, a, wait: halts

    halted = sliced.engine.load(execution.id)
    assert halted.status is Status.HALTED
    assert sliced.recorder.take() == []
    resumed = sliced.engine.resume_step(execution.id, flowkit.Decision()).execution
    sliced.engine.driver.dispatch(sliced.engine, execution.id)
    assert sliced.recorder.take() == [step_message(resumed)]
    sliced.runtime.step(resumed.id, resumed.seq)
    assert sliced.engine.load(execution.id).status is Status.COMPLETED


def test_a_sleep_ends_the_slice_with_a_delayed_timer_message(sliced: Setup) -> None:
    wf = workflow(
        call("a", next="nap"), {"id": "nap", "type": "sleep", "seconds": 2, "next": "b"}, call("b")
    )
    execution = _started(sliced, wf)

    sliced.runtime.step(execution.id, execution.seq)  # start, a, nap: waits

    waiting = sliced.engine.load(execution.id)
    assert waiting.status is Status.WAITING
    assert sliced.recorder.take() == [Sent(QUEUE, "flowkit_timer", (execution.id,), 2000)]
    sliced.clock.sleep(2)
    sliced.runtime.timer(execution.id)
    woken = sliced.engine.load(execution.id)
    assert sliced.recorder.take() == [step_message(woken)]
    sliced.runtime.step(woken.id, woken.seq)  # b
    assert sliced.engine.load(execution.id).status is Status.COMPLETED


def test_a_duplicate_of_a_message_that_drove_a_slice_is_dropped(sliced: Setup) -> None:
    wf = workflow(call("a", next="wait"), {"id": "wait", "type": "halt", "next": "b"}, call("b"))
    execution = _started(sliced, wf)
    sliced.runtime.step(execution.id, execution.seq)
    after = sliced.engine.load(execution.id)

    sliced.runtime.step(execution.id, execution.seq)  # redelivered: its seq is stale

    assert sliced.engine.load(execution.id) == after
    assert sliced.recorder.take() == []


def _failing_once(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, step: str, after: int = 0
) -> list[str]:
    """Make the store fail, once, to write ``step``'s checkpoint (``after`` successful
    writes of it first); returns the steps it failed."""
    store = setup.engine.store
    write = store.checkpoint
    failed: list[str] = []
    seen = {"writes": 0}

    def checkpoint(record: Any, entries: Any, expected: int, **options: Any) -> None:
        if not failed and any(entry.step_id == step for entry in entries):
            seen["writes"] += 1
            if seen["writes"] > after:
                failed.append(step)
                raise ConnectionError("the store went away")
        write(record, entries, expected, **options)

    monkeypatch.setattr(store, "checkpoint", checkpoint)
    return failed


def test_a_store_error_in_a_later_step_hands_over_from_the_last_checkpoint(
    sliced: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wf = workflow(call("a", next="b"), call("b", next="c"), call("c"))
    execution = _started(sliced, wf)
    failed = _failing_once(sliced, monkeypatch, "b")

    sliced.runtime.step(execution.id, execution.seq)  # start, a; b's checkpoint fails

    assert failed == ["b"]
    last = sliced.engine.load(execution.id)
    assert [step for step, _ in _steps(sliced, execution.id)] == ["start", "a"]
    assert sliced.recorder.take() == [step_message(last)]  # not stranded
    assert (
        f"execution {execution.id}: the step after entry 2 failed; it goes on from that checkpoint"
    ) in caplog.text
    assert "ConnectionError: the store went away" in caplog.text
    sliced.runtime.step(last.id, last.seq)  # the next message: b again, then c
    assert sliced.engine.load(execution.id).status is Status.COMPLETED
    assert [step for step, _ in _steps(sliced, execution.id)] == ["start", "a", "b", "c"]


def test_a_store_error_in_the_first_step_goes_to_dramatiq(
    sliced: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = _started(sliced, workflow(call("a")))
    _failing_once(sliced, monkeypatch, "start")

    with pytest.raises(ConnectionError):  # Dramatiq retries the message
        sliced.runtime.step(execution.id, execution.seq)

    assert sliced.recorder.take() == []
    sliced.runtime.step(execution.id, execution.seq)  # the retry: the same message
    assert sliced.engine.load(execution.id).status is Status.COMPLETED


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"slice_seconds": 0}, "slice_seconds must be a positive number of seconds, got 0"),
        (
            {"slice_seconds": float("inf")},
            "slice_seconds must be a positive number of seconds, got inf",
        ),
        ({"slice_seconds": True}, "slice_seconds must be a positive number of seconds, got True"),
        ({"slice_steps": 0}, "slice_steps must be an integer of at least 1, got 0"),
        ({"slice_steps": 2.5}, "slice_steps must be an integer of at least 1, got 2.5"),
    ],
)
def test_a_bad_slice_is_a_config_error(options: dict[str, Any], message: str) -> None:
    broker = StubBroker()
    try:
        with pytest.raises(flowkit.ConfigError) as caught:
            Runtime(broker, **options)
        assert str(caught.value) == message
    finally:
        broker.close()


# --- flowkit worker ---------------------------------------------------------------------------


def _worker_command(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FLOWKIT_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "flowkit"), "worker", "tests.distributed.flows"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**clean, **env},
        timeout=60,
        check=False,
    )


def test_flowkit_worker_without_a_broker_says_how_to_configure_one() -> None:
    done = _worker_command()
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: the dramatiq executor needs a broker: set FLOWKIT_BROKER (e.g. "
        "redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672/) or "
        "flowkit.configure(broker=...)"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "FLOWKIT_MAINTENANCE_SECONDS",
            "soon",
            "FLOWKIT_MAINTENANCE_SECONDS must be a positive number of seconds, got 'soon'",
        ),
        (
            "FLOWKIT_SLICE_SECONDS",
            "-1",
            "FLOWKIT_SLICE_SECONDS must be a positive number of seconds, got '-1'",
        ),
        (
            "FLOWKIT_SLICE_STEPS",
            "0",
            "FLOWKIT_SLICE_STEPS must be an integer of at least 1, got '0'",
        ),
        (
            "FLOWKIT_SLICE_STEPS",
            "many",
            "FLOWKIT_SLICE_STEPS must be an integer of at least 1, got 'many'",
        ),
    ],
)
def test_flowkit_worker_refuses_a_bad_setting(variable: str, value: str, message: str) -> None:
    done = _worker_command(FLOWKIT_BROKER="redis://127.0.0.1:6379/12", **{variable: value})
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {message}"


# --- the Redis consumer -----------------------------------------------------------------------


@pytest.fixture
def redis_broker() -> Iterator[dramatiq.Broker]:
    namespace = f"fkt-{uuid.uuid4().hex[:10]}"
    broker = make_broker(f"{REDIS_BROKER_URL}?namespace={namespace}")
    try:
        yield broker
    finally:
        keys = list(broker.client.scan_iter(match=f"{namespace}:*"))
        if keys:
            broker.client.delete(*keys)
        broker.close()


def _next_message(consumer: Any, timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            return message
    pytest.fail("no message")


@pytest.mark.dramatiq_redis
def test_an_idle_redis_consumer_wakes_up_when_a_message_is_sent(
    redis_broker: dramatiq.Broker,
) -> None:
    actor = dramatiq.actor(lambda: None, actor_name="wake", queue_name="q", broker=redis_broker)
    consumer = redis_broker.consume("q", prefetch=2, timeout=5000)  # idle waits up to 5 s
    sent_at: list[float] = []

    def send_later() -> None:
        time.sleep(0.3)
        sent_at.append(time.monotonic())
        actor.send()

    sender = threading.Thread(target=send_later)
    sender.start()
    message = _next_message(consumer)
    received_at = time.monotonic()
    sender.join()
    assert message.actor_name == "wake"
    assert received_at - sent_at[0] < 1.0  # not the 5 s idle timeout
    # The queue's list is as the message left it: it was fetched once.
    assert redis_broker.client.llen(f"{redis_broker.namespace}:q") == 0
    consumer.ack(message)
    consumer.close()


@pytest.mark.dramatiq_redis
def test_a_full_redis_consumer_fetches_again_as_soon_as_a_message_is_acknowledged(
    redis_broker: dramatiq.Broker,
) -> None:
    actor = dramatiq.actor(lambda: None, actor_name="full", queue_name="q", broker=redis_broker)
    actor.send()
    actor.send()
    consumer = redis_broker.consume("q", prefetch=1, timeout=5000)
    first = _next_message(consumer)
    threading.Timer(0.3, consumer.ack, args=(first,)).start()
    started = time.monotonic()
    second = _next_message(consumer)  # waits for the slot, not for 5 s
    assert time.monotonic() - started < 2.0
    consumer.ack(second)
    consumer.close()


def test_the_redis_consumer_falls_back_to_polling_without_blmove(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = make_broker("redis://127.0.0.1:6379/0?namespace=unused")
    try:
        consumer = broker.consume("q", prefetch=1, timeout=1000)

        def old_server(*args: Any) -> None:
            raise redis.ResponseError("unknown command 'BLMOVE'")

        monkeypatch.setattr(broker.client, "blmove", old_server)
        started = time.monotonic()
        consumer.idle()
        assert not consumer.blocking
        consumer.idle()
        assert time.monotonic() - started < 0.5
    finally:
        broker.close()


# --- maintenance ------------------------------------------------------------------------------


def test_maintenance_recovers_expired_leases_and_fires_due_timers(setup: Setup) -> None:
    stuck = setup.engine.load(setup.engine.start(workflow(call("a"))).execution_id)
    waiting = workflow(
        {"id": "ask", "type": "approval", "timeout": 60, "on_timeout": "late", "next": "ok"},
        {"id": "ok", "type": "end"},
        {"id": "late", "type": "end"},
        id="waiting",
    )
    halted = setup.engine.load(setup.engine.start(waiting).execution_id)
    for _ in range(2):
        setup.runtime.step(halted.id, halted.seq)
        halted = setup.engine.load(halted.id)
    assert halted.status is Status.HALTED
    setup.recorder.take()  # the first messages, "lost"

    setup.clock.sleep(61)
    setup.runtime.maintain()  # a StubBroker is private to this process: no lock to take

    woken = setup.engine.load(halted.id)
    assert woken.status is Status.RUNNING  # the timer fired
    assert sorted(setup.recorder.take(), key=lambda sent: sent.args[0] != stuck.id) == [
        step_message(stuck),
        step_message(woken),
    ]


@pytest.mark.dramatiq_redis
def test_one_process_at_a_time_holds_the_redis_maintenance_lock(
    redis_broker: dramatiq.Broker,
) -> None:
    runtime = Runtime(redis_broker, queue="q", maintenance_seconds=0.1)
    key = f"{redis_broker.namespace}:flowkit.q.maintenance"
    assert runtime._hold_lock()
    assert runtime._hold_lock()  # renewed by its holder
    redis_broker.client.set(key, "elsewhere:1", px=200)  # another process took it over
    assert not runtime._hold_lock()
    time.sleep(0.3)  # that process died: its lock expired
    assert runtime._hold_lock()


@pytest.mark.dramatiq_rabbitmq
def test_one_process_at_a_time_holds_the_rabbitmq_maintenance_lock() -> None:
    queue = f"fkt-{uuid.uuid4().hex[:10]}"
    first = Runtime(make_broker(RABBITMQ_URL), queue=queue)
    second = Runtime(make_broker(RABBITMQ_URL), queue=queue)
    try:
        assert first._hold_lock()
        assert first._hold_lock()  # still its exclusive queue
        assert not second._hold_lock()  # the queue is locked by another connection
        first.close()  # the holder goes away: its exclusive queue with it
        assert second._hold_lock()
    finally:
        first.close()
        second.close()

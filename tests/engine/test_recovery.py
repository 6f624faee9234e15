"""Leases and recovery, concurrent writers, and resume errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

import flowkit
from flowkit import Action, Status
from flowkit.backends.memory import MemoryStore

from .conftest import EngineFactory, FakeClock
from .helpers import log, snapshot, workflow


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def _counting(services: flowkit.ServiceRegistry) -> list[str]:
    calls: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> str:
        with lock:
            calls.append(name)
        return name

    services.register("S", {"work": work})
    return calls


def _three_steps() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "a"},
        {
            "id": "a",
            "type": "call",
            "service": "S",
            "method": "work",
            "input": {"name": "a"},
            "output": "a",
            "next": "b",
        },
        {
            "id": "b",
            "type": "call",
            "service": "S",
            "method": "work",
            "input": {"name": "b"},
            "output": "b",
            "next": "done",
        },
        {"id": "done", "type": "end", "result": ["$a", "$b"]},
    )


def _expire_lease(store: MemoryStore, execution_id: str, at: datetime) -> None:
    """What a dead process leaves behind: a running record whose lease ran out."""
    record = store.load(execution_id)
    assert record is not None
    expired = attrs.evolve(
        record, version=record.version + 1, lease_owner="dead-host:1", lease_expires_at=at
    )
    store.checkpoint(expired, (), record.version)


def _left_after_a(engine: flowkit.Engine) -> str:
    """An execution whose process died after checkpointing step `a`."""
    execution = engine.create(_three_steps())
    engine.step(execution.id)  # start
    engine.step(execution.id)  # a
    return execution.id


def test_recover_continues_an_execution_whose_lease_expired(
    make_engine: EngineFactory,
    services: flowkit.ServiceRegistry,
    store: MemoryStore,
    clock: FakeClock,
) -> None:
    calls = _counting(services)
    execution_id = _left_after_a(make_engine())
    _expire_lease(store, execution_id, clock.now() - timedelta(seconds=1))

    rescuer = make_engine(owner="rescuer")
    [result] = rescuer.recover()
    assert result.execution_id == execution_id
    assert result.completed
    assert result.output == ["a", "b"]
    assert calls == ["a", "b"]  # `a` was checkpointed: it does not run again
    assert log(rescuer, execution_id) == [
        ("start", "completed"),
        ("a", "completed"),
        ("b", "completed"),
        ("done", "completed"),
    ]
    assert rescuer.recover() == []


def test_recover_leaves_executions_with_a_live_lease_alone(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls = _counting(services)
    first = make_engine(lease_seconds=30)
    execution_id = _left_after_a(first)
    before = snapshot(first, execution_id)

    other = make_engine()
    clock.advance(29)
    assert other.recover() == []
    assert snapshot(other, execution_id) == before
    assert calls == ["a"]

    clock.advance(1)  # the lease expires at exactly now
    [result] = other.recover()
    assert result.completed
    assert calls == ["a", "b"]


def test_recover_ignores_halted_and_finished_executions(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    _counting(services)
    engine.run(_three_steps())
    engine.run(workflow({"id": "start", "type": "start", "next": "h"}, {"id": "h", "type": "halt"}))
    clock.advance(10**6)
    assert engine.recover() == []


class _StaleSnapshot:
    """A store whose ``stale()`` answers what it saw earlier: a recover that lost the race."""

    def __init__(self, store: MemoryStore, seen: Sequence[flowkit.Execution]) -> None:
        self._store = store
        self._seen = list(seen)

    def stale(self, now: datetime, *, limit: int = 100) -> list[flowkit.Execution]:
        return self._seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_only_one_of_two_racing_recovers_advances_an_execution(
    make_engine: EngineFactory,
    services: flowkit.ServiceRegistry,
    store: MemoryStore,
    clock: FakeClock,
) -> None:
    calls = _counting(services)
    execution_id = _left_after_a(make_engine())
    _expire_lease(store, execution_id, clock.now() - timedelta(seconds=1))
    seen = store.stale(clock.now())
    assert [e.id for e in seen] == [execution_id]

    winner = make_engine(owner="winner")
    loser = make_engine(owner="loser", store=_StaleSnapshot(store, seen))
    assert [r.execution_id for r in winner.recover()] == [execution_id]
    assert loser.recover() == []  # its claim is version-guarded and fails
    assert calls == ["a", "b"]
    assert [action for _, action in log(winner, execution_id)].count("completed") == 4


def test_two_threads_racing_recover_advance_it_once(
    make_engine: EngineFactory,
    services: flowkit.ServiceRegistry,
    store: MemoryStore,
    clock: FakeClock,
) -> None:
    calls = _counting(services)
    execution_id = _left_after_a(make_engine())
    _expire_lease(store, execution_id, clock.now() - timedelta(seconds=1))
    engines = [make_engine(owner="one"), make_engine(owner="two")]
    barrier = threading.Barrier(2, timeout=5)
    results: list[list[flowkit.Result]] = []

    def race(engine: flowkit.Engine) -> None:
        barrier.wait()
        results.append(engine.recover())

    threads = [threading.Thread(target=race, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(len(r) for r in results) == [0, 1]
    assert calls == ["a", "b"]
    assert store.load(execution_id).status is Status.COMPLETED  # type: ignore[union-attr]
    assert [e.step_id for e in store.entries(execution_id)] == ["start", "a", "b", "done"]


class _Renewals:
    """A store that reports lease renewals: record-only checkpoints of a running execution."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.renewed = threading.Event()

    def checkpoint(
        self,
        execution: flowkit.Execution,
        entries: Sequence[flowkit.Entry],
        expected: int,
        *,
        changed: Any = None,
        consumed: Any = (),
    ) -> None:
        self._store.checkpoint(execution, entries, expected, changed=changed, consumed=consumed)
        if not entries and execution.status is Status.RUNNING:
            self.renewed.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_long_step_keeps_its_lease_alive(
    make_engine: EngineFactory,
    services: flowkit.ServiceRegistry,
    store: MemoryStore,
    clock: FakeClock,
) -> None:
    lease = 0.3
    watched = _Renewals(store)
    engine = make_engine(lease_seconds=lease, store=watched)
    other = make_engine(lease_seconds=lease)
    seen: list[list[flowkit.Result]] = []

    def long_step() -> str:
        clock.advance(lease * 0.5)  # less than two thirds of the lease left: renew it
        assert watched.renewed.wait(5)
        clock.advance(lease * 0.6)  # past the first lease, within the renewed one
        seen.append(other.recover())
        return "done"

    services.register("S", {"long": long_step})
    wf = workflow(
        {"id": "start", "type": "start", "next": "long"},
        {"id": "long", "type": "call", "service": "S", "method": "long", "output": "out"},
    )
    result = engine.run(wf)
    assert seen == [[]]  # nobody took the execution over while its step ran
    assert result.completed
    assert engine.load(result.execution_id).ctx["out"] == "done"


def test_drive_stops_quietly_when_another_process_took_over(
    make_engine: EngineFactory,
    services: flowkit.ServiceRegistry,
    store: MemoryStore,
    clock: FakeClock,
) -> None:
    calls: list[str] = []
    slow_engine = make_engine(owner="slow")

    def work(name: str) -> str:
        calls.append(name)
        if name == "a" and calls.count("a") == 1:
            # while the first process is stuck in `a`, its lease expires and another takes over
            clock.advance(3600)
            [taken] = make_engine(owner="fast").recover()
            assert taken.completed
        return name

    services.register("S", {"work": work})
    execution = slow_engine.create(_three_steps())
    result = slow_engine.drive(execution.id)
    assert result.completed
    assert calls == ["a", "a", "b"]  # at-least-once: the in-flight step ran twice
    assert [e.step_id for e in store.entries(execution.id)] == ["start", "a", "b", "done"]


def test_step_with_a_stale_expected_seq_is_dropped(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls = _counting(services)
    execution = engine.create(_three_steps())
    advance = engine.step(execution.id, expected_seq=execution.seq)
    assert not advance.dropped
    duplicate = engine.step(execution.id, expected_seq=execution.seq)
    assert duplicate.dropped
    assert engine.load(execution.id).version == advance.execution.version
    assert calls == []
    nxt = engine.step(execution.id, expected_seq=advance.execution.seq)
    assert not nxt.dropped
    assert calls == ["a"]


# --- concurrent resumes -------------------------------------------------------------------------


def _approve_then_block(
    services: flowkit.ServiceRegistry, release: threading.Event
) -> tuple[flowkit.WorkflowDef, list[str]]:
    calls: list[str] = []

    def after() -> str:
        calls.append("after")
        assert release.wait(10)
        return "after"

    services.register("S", {"after": after})
    wf = workflow(
        {"id": "start", "type": "start", "next": "ask"},
        {"id": "ask", "type": "approval", "prompt": "ok?", "next": "after"},
        {"id": "after", "type": "call", "service": "S", "method": "after", "output": "out"},
    )
    return wf, calls


@pytest.mark.parametrize("engines", ["one engine", "two engines"])
def test_concurrent_resumes_one_wins_the_other_gets_conflict(
    make_engine: EngineFactory,
    services: flowkit.ServiceRegistry,
    release: threading.Event,
    engines: str,
) -> None:
    wf, calls = _approve_then_block(services, release)
    first = make_engine()
    second = first if engines == "one engine" else make_engine()
    halted = first.run(wf)
    barrier = threading.Barrier(2, timeout=5)
    outcomes: dict[str, Any] = {}
    lost = threading.Event()

    def resume(name: str, engine: flowkit.Engine) -> None:
        barrier.wait()
        try:
            outcomes[name] = engine.resume(halted.execution_id, approved=True, by=name)
        except flowkit.FlowkitError as exc:
            outcomes[name] = exc
            lost.set()

    threads = [
        threading.Thread(target=resume, args=("x", first)),
        threading.Thread(target=resume, args=("y", second)),
    ]
    for thread in threads:
        thread.start()
    assert lost.wait(10)  # the winner is still running `after`, so the loser saw a conflict
    release.set()
    for thread in threads:
        thread.join(10)
    errors = [o for o in outcomes.values() if isinstance(o, Exception)]
    results = [o for o in outcomes.values() if isinstance(o, flowkit.Result)]
    assert len(errors) == 1
    assert len(results) == 1
    assert isinstance(errors[0], flowkit.ConflictError)
    assert results[0].completed
    assert calls == ["after"]
    actions = [e.action for e in first.store.entries(halted.execution_id)]
    assert actions.count(Action.RESUMED) == 1
    winner = next(name for name, o in outcomes.items() if isinstance(o, flowkit.Result))
    resumed = next(
        e for e in first.store.entries(halted.execution_id) if e.action is Action.RESUMED
    )
    assert resumed.output["by"] == winner


def test_resuming_a_running_execution_raises_conflict_and_changes_nothing(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    _counting(services)
    execution_id = _left_after_a(engine)
    before = snapshot(engine, execution_id)
    with pytest.raises(flowkit.ConflictError, match="is running, not halted"):
        engine.resume(execution_id, approved=True)
    assert snapshot(engine, execution_id) == before

"""Errors, on_error, retries with backoff, idempotency keys and timeouts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import flowkit
from flowkit import Action, Status

from .conftest import EngineFactory, FakeClock
from .helpers import log, workflow


class Boom(Exception):
    pass


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, to let abandoned service threads finish."""
    event = threading.Event()
    yield event
    event.set()


def test_on_error_sets_last_error_and_continues_there(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def explode() -> None:
        raise Boom("card declined")

    services.register("S", {"explode": explode})
    wf = workflow(
        {"id": "start", "type": "start", "next": "pay"},
        {
            "id": "pay",
            "type": "call",
            "service": "S",
            "method": "explode",
            "on_error": "handle",
            "next": "done",
        },
        {"id": "done", "type": "end", "result": "paid"},
        {"id": "handle", "type": "end", "result": {"err": "$_last_error"}},
    )
    result = engine.run(wf)
    assert result.completed
    expected = {"step": "pay", "type": "Boom", "message": "card declined"}
    assert result.output == {"err": expected}
    assert engine.load(result.execution_id).ctx["_last_error"] == expected
    entries = engine.store.entries(result.execution_id)
    assert log(engine, result.execution_id) == [
        ("start", "completed"),
        ("pay", "failed"),
        ("handle", "completed"),
    ]
    assert entries[1].error == "Boom: card declined"


def test_an_error_without_on_error_fails_the_execution(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def explode() -> None:
        raise ValueError("no stock")

    services.register("S", {"explode": explode})
    wf = workflow(
        {"id": "start", "type": "start", "next": "pay"},
        {"id": "pay", "type": "call", "service": "S", "method": "explode", "next": "done"},
        {"id": "done", "type": "end"},
    )
    result = engine.run(wf)  # does not raise
    assert result.status is Status.FAILED
    assert result.failed
    assert result.error == "ValueError: no stock"
    assert result.output is None
    execution = engine.load(result.execution_id)
    assert execution.status is Status.FAILED
    assert execution.error == "ValueError: no stock"
    assert execution.lease_owner is None
    assert log(engine, result.execution_id) == [("start", "completed"), ("pay", "failed")]


def test_on_error_of_a_router_that_matches_nothing(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "route"},
        {
            "id": "route",
            "type": "router",
            "routes": [{"when": {"field": "input.n", "op": "eq", "value": 1}, "then": "done"}],
            "on_error": "fallback",
        },
        {"id": "done", "type": "end", "result": "routed"},
        {"id": "fallback", "type": "end", "result": "$_last_error.type"},
        inputs={"n": {"type": "integer"}},
    )
    assert engine.run(wf, {"n": 2}).output == "ExecutionError"


def _flaky(fails: int, calls: list[flowkit.StepContext]) -> Any:
    def flaky() -> str:
        calls.append(flowkit.current())
        if len(calls) <= fails:
            raise Boom(f"flake {len(calls)}")
        return "ok"

    return flaky


def _retry_wf(**call: Any) -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "c"},
        {"id": "c", "type": "call", "service": "S", "method": "flaky", "output": "out", **call},
    )


def test_retries_attempt_n_plus_one_times_with_backoff_on_the_clock(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls: list[flowkit.StepContext] = []
    services.register("S", {"flaky": _flaky(3, calls)})
    result = engine.run(_retry_wf(retries=3, retry_delay=0.5, retry_backoff=3))
    assert result.completed
    assert [c.attempt for c in calls] == [1, 2, 3, 4]
    assert clock.sleeps == [0.5, 1.5, 4.5]
    entries = engine.store.entries(result.execution_id)[1:]
    assert [(e.step_id, e.action, e.attempt) for e in entries] == [
        ("c", Action.RETRIED, 1),
        ("c", Action.RETRIED, 2),
        ("c", Action.RETRIED, 3),
        ("c", Action.COMPLETED, 4),
    ]
    assert [e.error for e in entries] == ["Boom: flake 1", "Boom: flake 2", "Boom: flake 3", None]
    assert engine.load(result.execution_id).ctx["out"] == "ok"


def test_retry_defaults_are_one_second_doubling(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls: list[flowkit.StepContext] = []
    services.register("S", {"flaky": _flaky(2, calls)})
    assert engine.run(_retry_wf(retries=2)).completed
    assert clock.sleeps == [1.0, 2.0]


def test_no_retries_by_default(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls: list[flowkit.StepContext] = []
    services.register("S", {"flaky": _flaky(1, calls)})
    result = engine.run(_retry_wf())
    assert result.error == "Boom: flake 1"
    assert len(calls) == 1
    assert clock.sleeps == []


def test_exhausted_retries_fail_the_step(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls: list[flowkit.StepContext] = []
    services.register("S", {"flaky": _flaky(10, calls)})
    result = engine.run(_retry_wf(retries=2, retry_delay=0.1))
    assert result.failed
    assert result.error == "Boom: flake 3"
    assert len(calls) == 3
    assert clock.sleeps == pytest.approx([0.1, 0.2])
    assert [(e.action, e.attempt) for e in engine.store.entries(result.execution_id)[1:]] == [
        (Action.RETRIED, 1),
        (Action.RETRIED, 2),
        (Action.FAILED, 3),
    ]


def test_exhausted_retries_go_to_on_error(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls: list[flowkit.StepContext] = []
    services.register("S", {"flaky": _flaky(10, calls)})
    wf = workflow(
        {"id": "start", "type": "start", "next": "c"},
        {
            "id": "c",
            "type": "call",
            "service": "S",
            "method": "flaky",
            "retries": 1,
            "retry_delay": 0,
            "on_error": "h",
        },
        {"id": "h", "type": "end", "result": "$_last_error.message"},
    )
    result = engine.run(wf)
    assert result.output == "flake 2"
    assert len(calls) == 2


def test_idempotency_key_is_stable_across_attempts(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls: list[flowkit.StepContext] = []
    services.register("S", {"flaky": _flaky(2, calls)})
    engine.run(_retry_wf(retries=2, retry_delay=0))
    assert len(calls) == 3
    assert len({c.idempotency_key for c in calls}) == 1
    assert [c.attempt for c in calls] == [1, 2, 3]


def test_idempotency_key_differs_per_loop_iteration(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls: list[flowkit.StepContext] = []
    services.register("S", {"m": lambda: calls.append(flowkit.current())})
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2, 3],
            "do": [{"id": "c", "type": "call", "service": "S", "method": "m"}],
        },
    )
    engine.run(wf)
    assert [c.iteration for c in calls] == [0, 1, 2]
    assert [c.step_id for c in calls] == ["each:c"] * 3
    assert len({c.idempotency_key for c in calls}) == 3


def test_idempotency_key_differs_per_visit_through_a_router_cycle(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls: list[flowkit.StepContext] = []

    def count() -> int:
        calls.append(flowkit.current())
        return len(calls)

    services.register("S", {"count": count})
    wf = workflow(
        {"id": "start", "type": "start", "next": "c"},
        {
            "id": "c",
            "type": "call",
            "service": "S",
            "method": "count",
            "output": "n",
            "next": "again",
        },
        {
            "id": "again",
            "type": "router",
            "routes": [{"when": {"field": "n", "op": "lt", "value": 3}, "then": "c"}],
            "default": "done",
        },
        {"id": "done", "type": "end", "result": "$n"},
    )
    result = engine.run(wf)
    assert result.output == 3
    assert [c.step_id for c in calls] == ["c", "c", "c"]
    assert len({c.idempotency_key for c in calls}) == 3


# --- timeouts -----------------------------------------------------------------------------------


def test_a_sync_call_that_times_out_is_abandoned(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, release: threading.Event
) -> None:
    finished = threading.Event()

    def slow() -> str:
        release.wait(10)
        finished.set()
        return "late"

    services.register("S", {"slow": slow})
    wf = workflow(
        {"id": "start", "type": "start", "next": "x"},
        {
            "id": "x",
            "type": "call",
            "service": "S",
            "method": "slow",
            "timeout": 0.05,
            "output": "out",
        },
    )
    result = engine.run(wf)
    assert result.failed
    assert result.error == "ExecutionError: Step 'x' timed out after 0.05s"
    before = engine.load(result.execution_id)
    release.set()
    assert finished.wait(5)
    after = engine.load(result.execution_id)
    assert after == before  # the late result is discarded
    assert "out" not in after.ctx


def test_an_async_call_that_times_out_is_cancelled(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    cancelled = threading.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    services.register("S", {"slow": slow})
    wf = workflow(
        {"id": "start", "type": "start", "next": "x"},
        {"id": "x", "type": "call", "service": "S", "method": "slow", "timeout": 0.05},
    )
    result = engine.run(wf)
    assert result.error == "ExecutionError: Step 'x' timed out after 0.05s"
    assert cancelled.is_set()
    [_, entry] = engine.store.entries(result.execution_id)
    assert (entry.step_id, entry.action) == ("x", Action.FAILED)


def test_a_timed_out_step_can_be_retried(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, release: threading.Event
) -> None:
    calls: list[int] = []

    def sometimes_slow() -> str:
        calls.append(1)
        if len(calls) == 1:
            release.wait(10)
        return "fast"

    services.register("S", {"m": sometimes_slow})
    wf = workflow(
        {"id": "start", "type": "start", "next": "x"},
        {
            "id": "x",
            "type": "call",
            "service": "S",
            "method": "m",
            "timeout": 0.05,
            "retries": 1,
            "retry_delay": 0,
            "output": "out",
        },
    )
    result = engine.run(wf)
    assert result.completed
    assert engine.load(result.execution_id).ctx["out"] == "fast"
    entries = engine.store.entries(result.execution_id)
    assert entries[1].action is Action.RETRIED
    assert entries[1].error == "ExecutionError: Step 'x' timed out after 0.05s"


def test_workflow_timeout_is_checked_between_steps(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls: list[str] = []

    def slow_step() -> None:
        calls.append("slow")
        clock.advance(61)

    services.register("S", {"slow": slow_step, "after": lambda: calls.append("after")})
    wf = workflow(
        {"id": "start", "type": "start", "next": "slow"},
        {"id": "slow", "type": "call", "service": "S", "method": "slow", "next": "after"},
        {"id": "after", "type": "call", "service": "S", "method": "after"},
        timeout=60,
    )
    result = engine.run(wf)
    assert result.failed
    assert result.error == "ExecutionError: workflow 'wf' timed out after 60s"
    assert calls == ["slow"]
    assert log(engine, result.execution_id) == [("start", "completed"), ("slow", "completed")]


def test_workflow_timeout_bounds_step_timeouts(
    engine: flowkit.Engine,
    services: flowkit.ServiceRegistry,
    clock: FakeClock,
    release: threading.Event,
) -> None:
    services.register(
        "S", {"first": lambda: clock.advance(59.95), "hang": lambda: release.wait(10)}
    )
    wf = workflow(
        {"id": "start", "type": "start", "next": "first"},
        {"id": "first", "type": "call", "service": "S", "method": "first", "next": "hang"},
        {"id": "hang", "type": "call", "service": "S", "method": "hang", "timeout": 30},
        timeout=60,
    )
    result = engine.run(wf)
    assert result.failed
    assert result.error is not None
    assert result.error.startswith("ExecutionError: Step 'hang' timed out after 0.0")


class Crash(BaseException):
    """Stands for the process dying in the middle of a step."""


def test_a_crash_during_a_retry_resumes_at_that_attempt(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls: list[flowkit.StepContext] = []

    def flaky() -> str:
        calls.append(flowkit.current())
        if len(calls) == 1:
            raise Boom("flake")
        if len(calls) == 2:
            raise Crash
        return "ok"

    services.register("S", {"flaky": flaky})
    first = make_engine()
    execution = first.create(_retry_wf(retries=3, retry_delay=1))
    with pytest.raises(Crash):
        first.drive(execution.id)
    clock.advance(3600)
    [result] = make_engine().recover()
    assert result.completed
    assert [c.attempt for c in calls] == [1, 2, 2]
    assert len({c.idempotency_key for c in calls}) == 1
    assert [(e.action, e.attempt) for e in first.store.entries(execution.id)[1:]] == [
        (Action.RETRIED, 1),
        (Action.COMPLETED, 2),
    ]

"""The ``sleep`` step, on every store (SPEC §15): the execution waits with its wake-up time in
the checkpoint, and ``wake_due`` moves it on once the time has come."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import invoke, invoke_json

import flowkit
from flowkit import Status, Store
from flowkit.definitions import WorkflowRegistry

START = datetime(2020, 1, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves; the engine never sleeps on it in these tests."""

    def __init__(self) -> None:
        self._now = START
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


def _flow(wf_id: str, nap: dict[str, Any], **more: Any) -> flowkit.WorkflowDef:
    return flowkit.load(
        {
            "id": wf_id,
            **more,
            "steps": [
                {"id": "start", "type": "start", "next": "nap"},
                {"id": "nap", "type": "sleep", **nap, "next": "done"},
                {"id": "done", "type": "end", "result": "rested"},
            ],
        }
    )


NAP = _flow("nap", {"seconds": "30m"})
UNTIL = _flow("until", {"until": "$input.at"}, inputs={"at": {"type": "string"}})
DELAY = _flow("delay", {"seconds": "$input.wait"}, inputs={"wait": {"type": "string"}})
EACH = flowkit.load(
    {
        "id": "each",
        "inputs": {"items": {"type": "array"}},
        "steps": [
            {"id": "start", "type": "start", "next": "init"},
            {"id": "init", "type": "assign", "set": {"last": None}, "next": "each"},
            {
                "id": "each",
                "type": "loop",
                "over": "$input.items",
                "output": "seen",
                "do": [
                    {"id": "nap", "type": "sleep", "seconds": "$item", "next": "note"},
                    {"id": "note", "type": "assign", "set": {"last": "$item"}},
                ],
                "next": "done",
            },
            {"id": "done", "type": "end", "result": "$last"},
        ],
    }
)
PARENT = flowkit.load(
    {
        "id": "parent",
        "steps": [
            {"id": "start", "type": "start", "next": "sub"},
            {"id": "sub", "type": "workflow", "workflow_id": "nap", "output": "got", "next": "end"},
            {"id": "end", "type": "end", "result": "$got"},
        ],
    }
)
FLOWS = (NAP, UNTIL, DELAY, EACH, PARENT)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["inline", "thread"])
def engine(
    request: pytest.FixtureRequest, store_factory: Callable[[], Store], clock: Clock
) -> Iterator[flowkit.Engine]:
    workflows = WorkflowRegistry()
    for wf in FLOWS:
        workflows.register(wf)
    with flowkit.Engine(
        store=store_factory(), workflows=workflows, clock=clock, executor=request.param
    ) as opened:
        yield opened


def _actions(engine: flowkit.Engine, execution_id: str) -> list[tuple[str, str]]:
    return [(e.step_id, e.action.value) for e in engine.store.entries(execution_id)]


def test_a_sleep_waits_until_its_time_then_goes_on(engine: flowkit.Engine, clock: Clock) -> None:
    waiting = engine.run(NAP)
    assert waiting.waiting
    stored = engine.load(waiting.execution_id)
    assert stored.status is Status.WAITING
    assert stored.wake_at == START + timedelta(minutes=30)
    assert stored.halt_data == {"until": "2020-01-01T09:30:00+00:00", "since": START.isoformat()}
    assert [e.id for e in engine.store.find(status="waiting")] == [waiting.execution_id]

    clock.advance(29 * 60)
    assert list(engine.wake_due()) == []
    clock.advance(60)
    (woken,) = engine.wake_due()
    assert woken.execution_id == waiting.execution_id
    assert engine.wait(waiting.execution_id, timeout=30).output == "rested"
    assert _actions(engine, waiting.execution_id)[1:] == [
        ("nap", "waiting"),
        ("nap", "completed"),
        ("done", "completed"),
    ]


def test_until_a_time_or_a_referenced_duration(engine: flowkit.Engine, clock: Clock) -> None:
    past = engine.run(UNTIL, {"at": "2019-12-31T23:00:00Z"})
    assert past.completed  # a time already past goes on at once
    later = engine.run(UNTIL, {"at": "2020-01-01T10:00:00"})  # no offset: UTC
    assert engine.load(later.execution_id).wake_at == START + timedelta(hours=1)
    referenced = engine.run(DELAY, {"wait": "PT2M"})
    assert engine.load(referenced.execution_id).wake_at == START + timedelta(minutes=2)
    bad = engine.run(DELAY, {"wait": "soon"})
    assert bad.failed
    assert "step 'nap': 'seconds' is expected a number of seconds" in (bad.error or "")


def test_a_sleep_in_a_loop_waits_in_each_iteration(engine: flowkit.Engine, clock: Clock) -> None:
    result = engine.run(EACH, {"items": [10, 20]})
    assert result.waiting
    clock.advance(10)
    engine.wake_due()
    assert engine.wait(result.execution_id, timeout=30).waiting  # the second nap
    assert engine.load(result.execution_id).wake_at == START + timedelta(seconds=30)
    clock.advance(20)
    engine.wake_due()
    final = engine.wait(result.execution_id, timeout=30)
    assert final.completed
    assert final.output == 20


def test_a_parent_waits_while_its_sub_workflow_sleeps(engine: flowkit.Engine, clock: Clock) -> None:
    done = threading.Event()
    engine.subscribe(lambda event: done.set(), ["workflow.completed"])
    parent = engine.run(PARENT)
    assert parent.waiting
    assert engine.load(parent.execution_id).wake_at is None  # its sub-workflow has the timer
    done.clear()
    clock.advance(30 * 60)
    (woken,) = engine.wake_due()  # the sub-workflow
    assert woken.execution_id != parent.execution_id
    while engine.load(parent.execution_id).status is not Status.COMPLETED:
        assert done.wait(30), "the parent never completed"
        done.clear()
    assert engine.load(parent.execution_id).result == "rested"


def test_a_waiting_execution_is_not_resumed_but_can_be_cancelled(engine: flowkit.Engine) -> None:
    waiting = engine.run(NAP)
    with pytest.raises(flowkit.ExecutionError, match=r"is waiting .* it cannot be resumed"):
        engine.resume(waiting.execution_id, response=1)
    cancelled = engine.cancel(waiting.execution_id, reason="not needed")
    assert cancelled.cancelled
    assert engine.load(waiting.execution_id).wake_at is None
    assert list(engine.wake_due()) == []


def test_flowkit_wake_and_list_on_a_sleeping_execution(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/naps.db"
    with flowkit.Engine(store=url, clock=Clock()) as engine:  # it slept in 2020
        execution_id = engine.run(NAP).execution_id
    (listed,) = invoke_json("list", "--status", "waiting", "--store", url)
    assert listed["id"] == execution_id
    woken = invoke("wake", "--store", url)
    assert woken.exit_code == 0, woken.output
    shown = invoke_json("show", execution_id, "--store", url)
    assert shown["execution"]["status"] == "completed"

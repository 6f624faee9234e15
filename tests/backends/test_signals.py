"""``wait`` steps and signals, on every store (SPEC §15): a durable mailbox per execution,
each signal consumed once and in order, idempotent by key, with timeouts."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import flowkit
from flowkit import Execution, Status, Store
from flowkit.definitions import WorkflowRegistry
from flowkit.records import Signal
from flowkit.testing import FakeClock

from .threads import at_once

START = datetime(2020, 1, 1, 9, 0, tzinfo=UTC)

PAY = flowkit.load(
    {
        "id": "pay",
        "steps": [
            {"id": "start", "type": "start", "next": "ask"},
            {
                "id": "ask",
                "type": "wait",
                "signal": "paid",
                "output": "payment",
                "timeout": "1h",
                "on_timeout": "late",
                "next": "done",
            },
            {"id": "done", "type": "end", "result": "$payment"},
            {"id": "late", "type": "end", "result": "late"},
        ],
    }
)
STRICT = flowkit.load(
    {
        "id": "strict",
        "steps": [
            {"id": "start", "type": "start", "next": "ask"},
            {"id": "ask", "type": "wait", "signal": "paid", "timeout": 60, "next": "done"},
            {"id": "done", "type": "end", "result": "paid"},
        ],
    }
)
COLLECT = flowkit.load(
    {
        "id": "collect",
        "inputs": {"slots": {"type": "array"}},
        "steps": [
            {"id": "start", "type": "start", "next": "each"},
            {
                "id": "each",
                "type": "loop",
                "over": "$input.slots",
                "output": "got",
                "do": [{"id": "take", "type": "wait", "signal": "item", "output": "one"}],
                "next": "done",
            },
            {"id": "done", "type": "end", "result": "$got"},
        ],
    }
)
APPROVE_THEN_WAIT = flowkit.load(
    {
        "id": "approve_then_wait",
        "steps": [
            {"id": "start", "type": "start", "next": "ok"},
            {"id": "ok", "type": "approval", "prompt": "go?", "next": "ask"},
            {"id": "ask", "type": "wait", "signal": "paid", "output": "payment", "next": "done"},
            {"id": "done", "type": "end", "result": "$payment"},
        ],
    }
)
FLOWS = (PAY, STRICT, COLLECT, APPROVE_THEN_WAIT)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(store_factory: Callable[[], Store]) -> Store:
    return store_factory()


def _engine(store: Store, clock: FakeClock, executor: str, *, known: bool = True) -> flowkit.Engine:
    workflows = WorkflowRegistry()
    if known:
        for wf in FLOWS:
            workflows.register(wf)
    return flowkit.Engine(store=store, workflows=workflows, clock=clock, executor=executor)


@pytest.fixture(params=["inline", "thread"])
def engine(
    request: pytest.FixtureRequest, store: Store, clock: FakeClock
) -> Iterator[flowkit.Engine]:
    with _engine(store, clock, request.param) as opened:
        yield opened


class Watch:
    """Waits, without sleeping, for an execution to reach a state: woken by every event
    of the engine (a signal delivered on the thread executor goes on in another thread,
    and may wait again on its way)."""

    def __init__(self, engine: flowkit.Engine) -> None:
        self._engine = engine
        self._changed = threading.Condition()
        engine.subscribe(self._notify)

    def _notify(self, event: flowkit.Event) -> None:
        with self._changed:
            self._changed.notify_all()

    def until(
        self, execution_id: str, ready: Callable[[Execution], bool], timeout: float = 30
    ) -> Execution:
        deadline = time.monotonic() + timeout
        with self._changed:  # held while reading: no event is missed in between
            while True:
                execution = self._engine.load(execution_id)
                if ready(execution):
                    return execution
                left = deadline - time.monotonic()
                assert left > 0, f"{execution!r} never got there"
                self._changed.wait(left)

    def ended(self, execution_id: str) -> Execution:
        return self.until(execution_id, lambda execution: execution.status.finished)

    def waiting_at(self, execution_id: str, seq: int) -> Execution:
        """Waiting again, after entry ``seq``."""
        return self.until(execution_id, lambda e: e.status is Status.WAITING and e.seq > seq)


@pytest.fixture
def watch(engine: flowkit.Engine) -> Watch:
    return Watch(engine)


def _actions(engine: flowkit.Engine, execution_id: str) -> list[tuple[str, str]]:
    return [(e.step_id, e.action.value) for e in engine.store.entries(execution_id)]


def test_a_signal_moves_a_waiting_execution_on(engine: flowkit.Engine, watch: Watch) -> None:
    events: list[str] = []
    engine.subscribe(lambda event: events.append(event.name))
    waiting = engine.run(PAY)
    assert waiting.waiting
    stored = engine.load(waiting.execution_id)
    assert stored.halt_data == {
        "signal": "paid",
        "since": START.isoformat(),
        "until": (START + timedelta(hours=1)).isoformat(),
    }
    assert stored.wake_at == START + timedelta(hours=1)
    assert engine.signal(waiting.execution_id, "paid", {"amount": 12}) is True
    final = watch.ended(waiting.execution_id)
    assert final.status is Status.COMPLETED
    assert final.result == {"amount": 12}
    assert _actions(engine, waiting.execution_id)[1:] == [
        ("ask", "waiting"),
        ("ask", "completed"),
        ("done", "completed"),
    ]
    assert engine.store.signals(waiting.execution_id) == []
    for name in ("workflow.waiting", "signal.received"):
        assert name in events


def test_a_signal_sent_before_the_wait_is_kept_for_it(engine: flowkit.Engine, watch: Watch) -> None:
    halted = engine.run(APPROVE_THEN_WAIT)
    assert halted.halted
    # A halted execution keeps the signal, and a signal never resumes a halt.
    assert engine.signal(halted.execution_id, "paid", "early") is True
    assert engine.load(halted.execution_id).status is Status.HALTED
    (kept,) = engine.store.signals(halted.execution_id)
    assert kept.payload == "early"
    engine.resume(halted.execution_id, approved=True)
    final = watch.ended(halted.execution_id)
    assert final.result == "early"
    assert ("ask", "waiting") not in _actions(engine, halted.execution_id)


def test_signals_are_consumed_once_each_in_the_order_sent(
    engine: flowkit.Engine, watch: Watch
) -> None:
    waiting = engine.run(COLLECT, {"slots": [0, 1, 2, 3]})
    assert waiting.waiting
    for n in range(3):
        engine.signal(waiting.execution_id, "item", n)
    engine.signal(waiting.execution_id, "other", "not for this wait")
    fourth = watch.until(
        waiting.execution_id,
        lambda e: (
            e.status is Status.WAITING
            and len(e.cursor) > 0
            and [x.action.value for x in engine.store.entries(e.id)].count("completed") == 4
        ),
    )
    assert fourth.status is Status.WAITING  # start and three waits completed: the fourth waits
    engine.signal(waiting.execution_id, "item", 3)
    final = watch.ended(waiting.execution_id)
    assert final.result == [0, 1, 2, 3]
    assert [s.name for s in engine.store.signals(waiting.execution_id)] == ["other"]


def test_a_key_makes_sending_idempotent(engine: flowkit.Engine, watch: Watch) -> None:
    waiting = engine.run(COLLECT, {"slots": [0, 1]})
    assert engine.signal(waiting.execution_id, "item", "a", key="pay-1") is True
    assert engine.signal(waiting.execution_id, "item", "again", key="pay-1") is False
    assert engine.signal(waiting.execution_id, "item", "b", key="pay-2") is True
    assert watch.ended(waiting.execution_id).result == ["a", "b"]


def test_the_timeout_goes_to_on_timeout_or_fails(
    engine: flowkit.Engine, watch: Watch, clock: FakeClock
) -> None:
    late = engine.run(PAY)
    strict = engine.run(STRICT)
    clock.advance(61)
    engine.wake_due()
    failed = watch.ended(strict.execution_id)
    assert failed.status is Status.FAILED
    assert failed.error == (
        "ExecutionError: step 'ask' timed out after 60s waiting for signal 'paid'"
    )
    assert engine.load(late.execution_id).status is Status.WAITING
    clock.advance(3600)
    engine.wake_due()
    assert watch.ended(late.execution_id).result == "late"
    with pytest.raises(flowkit.ExecutionError, match="completed"):
        engine.signal(late.execution_id, "paid", 1)


def test_a_signal_already_there_when_the_timer_fires_wins(
    engine: flowkit.Engine, watch: Watch, store: Store, clock: FakeClock
) -> None:
    waiting = engine.run(PAY)
    # Sent behind the engine's back, as a sender that saw the execution running would.
    store.send_signal(
        Signal(execution_id=waiting.execution_id, seq=0, name="paid", payload=1, sent_at=START)
    )
    clock.advance(7200)
    engine.wake_due()
    assert watch.ended(waiting.execution_id).result == 1


def test_unknown_and_finished_executions_refuse_signals(engine: flowkit.Engine) -> None:
    with pytest.raises(flowkit.NotFoundError, match="no-such"):
        engine.signal("no-such", "paid")
    done = engine.run(APPROVE_THEN_WAIT)
    engine.cancel(done.execution_id, reason="test")
    with pytest.raises(flowkit.ExecutionError, match="cancelled"):
        engine.signal(done.execution_id, "paid")
    with pytest.raises(flowkit.ValidationError, match="name"):
        engine.signal(done.execution_id, "")
    with pytest.raises(flowkit.ValidationError, match="at most 255 characters"):
        engine.signal(done.execution_id, "paid", key="k" * 256)
    with pytest.raises(flowkit.ValidationError, match="payload"):
        engine.signal(done.execution_id, "paid", {"bad": float("nan")})


def test_a_sender_that_does_not_know_the_workflow_leaves_it_to_a_worker(
    store: Store, clock: FakeClock
) -> None:
    with _engine(store, clock, "inline") as worker:
        waiting = worker.run(PAY)
        with _engine(store, clock, "inline", known=False) as sender:
            assert sender.signal(waiting.execution_id, "paid", "via worker") is True
        stored = worker.load(waiting.execution_id)
        assert stored.status is Status.WAITING
        assert stored.wake_at == START  # due now
        (woken,) = worker.wake_due()
        assert woken.execution_id == waiting.execution_id
        assert worker.wait(waiting.execution_id, timeout=30).output == "via worker"


class _LateMailbox:
    """A real store whose first empty mailbox read is followed by a signal from another
    sender: the signal lands between the wait step's look and its waiting checkpoint."""

    def __init__(self, store: Store, send: Callable[[str], None]) -> None:
        self._store = store
        self._send = send
        self._sent = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def signals(self, execution_id: str, *, name: str | None = None) -> list[Signal]:
        found = self._store.signals(execution_id, name=name)
        if not found and not self._sent:
            self._sent = True
            self._send(execution_id)
        return found


def test_a_signal_that_lands_while_the_wait_step_checkpoints_is_not_lost(
    store: Store, clock: FakeClock
) -> None:
    def send(execution_id: str) -> None:
        with _engine(store, clock, "inline") as sender:
            assert sender.signal(execution_id, "paid", "raced") is True
            # The sender saw it running, so it only left the signal in the mailbox.
            assert store.load(execution_id).status is Status.RUNNING  # type: ignore[union-attr]

    racy: Any = _LateMailbox(store, send)
    with _engine(racy, clock, "inline") as engine:
        final = engine.run(PAY)
    assert final.completed
    assert final.output == "raced"


def test_eight_senders_with_one_key_deliver_once(engine: flowkit.Engine, watch: Watch) -> None:
    waiting = engine.run(COLLECT, {"slots": [0, 1]})

    def send() -> bool:
        return engine.signal(waiting.execution_id, "item", "once", key="same")

    sent = at_once([send] * 8)
    assert sorted(sent) == [False] * 7 + [True]
    assert watch.waiting_at(waiting.execution_id, 3).status is Status.WAITING  # the second
    assert [e.output for e in engine.store.entries(waiting.execution_id)].count("once") == 1


def _race_signal_and_timeout(engine: flowkit.Engine, execution_id: str, payload: int) -> None:
    def send() -> None:
        with contextlib.suppress(flowkit.ExecutionError):  # the timeout finished it first
            engine.signal(execution_id, "paid", payload)

    at_once([send, engine.wake_due])


def test_a_signal_racing_the_timeout_has_exactly_one_winner(store: Store, clock: FakeClock) -> None:
    with _engine(store, clock, "inline") as engine:
        for round in range(5):
            waiting = engine.run(PAY)
            clock.advance(3600)  # the timeout is due now
            _race_signal_and_timeout(engine, waiting.execution_id, round)
            final = engine.wait(waiting.execution_id, timeout=30)
            assert final.output in (round, "late")
            moved = [
                e.step_id
                for e in store.entries(waiting.execution_id)
                if e.step_id == "ask" and e.action.value != "waiting"
            ]
            assert moved == ["ask"]  # one of them moved it on, once

"""How executions describe themselves: the reprs of Handle, Result, Execution and Entry
(short, never the data), and what a wait that timed out says."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pytest

import flowkit
from flowkit import Action, Entry, Execution, Result, Status
from flowkit.abc import Drivable

from .conftest import EngineFactory
from .helpers import workflow

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MEGABYTE = "x" * 1_000_000
LONG_ERROR = "ValueError: " + ", ".join(f"row {n} is invalid" for n in range(1, 21))


# --- reprs ----------------------------------------------------------------------------------------


def test_a_result_shows_its_status_and_ids_not_its_output() -> None:
    result = Result(
        execution_id="o-1", workflow_id="order", status=Status.COMPLETED, output=MEGABYTE
    )

    assert repr(result) == "<Result completed execution_id='o-1' workflow_id='order'>"


def test_a_halted_result_shows_where_a_resume_continues(make_engine: EngineFactory) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "ask"},
        {"id": "ask", "type": "approval", "prompt": "Ship it?", "next": "done"},
        {"id": "done", "type": "end"},
        id="ship",
    )

    result = make_engine().run(wf, execution_id="s-1")

    assert repr(result) == "<Result halted execution_id='s-1' workflow_id='ship' resume_step='ask'>"


def test_a_failed_result_shows_its_error_cut_short() -> None:
    short = Result(
        execution_id="o-1", workflow_id="order", status=Status.FAILED, error="KeyError: 'sku'"
    )
    long = Result(execution_id="o-1", workflow_id="order", status=Status.FAILED, error=LONG_ERROR)

    assert repr(short) == (
        "<Result failed execution_id='o-1' workflow_id='order' error=\"KeyError: 'sku'\">"
    )
    assert repr(long) == (
        "<Result failed execution_id='o-1' workflow_id='order' "
        "error='ValueError: row 1 is invalid, row 2 i..., row 19 is invalid, row 20 is invalid'>"
    )


def test_an_execution_shows_its_status_and_step_never_its_ctx() -> None:
    running = Execution(
        id="o-1",
        workflow_id="order",
        status=Status.RUNNING,
        input={"blob": MEGABYTE},
        ctx={"blob": MEGABYTE},
        current_step="charge",
        created_at=T0,
        updated_at=T0,
    )
    completed = Execution(
        id="o-2",
        workflow_id="order",
        status=Status.COMPLETED,
        result=MEGABYTE,
        created_at=T0,
        updated_at=T0,
    )
    failed = Execution(
        id="o-3",
        workflow_id="order",
        status=Status.FAILED,
        current_step="charge",
        error=LONG_ERROR,
        created_at=T0,
        updated_at=T0,
    )

    assert repr(running) == "<Execution running id='o-1' workflow_id='order' current_step='charge'>"
    assert repr(completed) == "<Execution completed id='o-2' workflow_id='order'>"
    assert repr(failed) == (
        "<Execution failed id='o-3' workflow_id='order' current_step='charge' "
        "error='ValueError: row 1 is invalid, row 2 i..., row 19 is invalid, row 20 is invalid'>"
    )


def test_an_entry_shows_its_action_and_step_never_its_data() -> None:
    completed = Entry(
        id="o-1:2",
        execution_id="o-1",
        seq=2,
        step_id="charge",
        step_type="call",
        action=Action.COMPLETED,
        input={"blob": MEGABYTE},
        output=MEGABYTE,
        timestamp=T0,
    )
    retried = Entry(
        id="o-1:5",
        execution_id="o-1",
        seq=5,
        step_id="each:price",
        step_type="call",
        action=Action.RETRIED,
        attempt=2,
        iteration=3,
        error="TimeoutError: no reply",
        timestamp=T0,
    )

    assert repr(completed) == "<Entry completed id='o-1:2' step_id='charge'>"
    assert repr(retried) == (
        "<Entry retried id='o-1:5' step_id='each:price' attempt=2 iteration=3 "
        "error='TimeoutError: no reply'>"
    )


def test_a_handle_shows_its_ids_without_reading_the_store(make_engine: EngineFactory) -> None:
    engine = make_engine()
    wf = workflow({"id": "start", "type": "start", "next": "done"}, {"id": "done", "type": "end"})
    handle = engine.start(wf, execution_id="h-1")
    engine.store.close()

    assert repr(handle) == "<Handle execution_id='h-1' workflow_id='wf'>"


# --- what a wait that timed out says --------------------------------------------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def entered(services: flowkit.ServiceRegistry, release: threading.Event) -> threading.Event:
    """Service ``S.block``: sets the event returned, then waits for ``release``."""
    event = threading.Event()

    def block() -> str:
        event.set()
        assert release.wait(10)
        return "released"

    services.register("S", {"block": block})
    return event


class Unserved(flowkit.Driver):
    """A queue that no worker reads: each execution waits for its next step."""

    name = "unserved"
    hands_off = True

    def dispatch(self, engine: Drivable, execution_id: str) -> Future[Any] | None:
        return None


def _timeout_of(handle: flowkit.Handle) -> tuple[str, str]:
    """What ``result(0.05)`` and ``result_async(0.05)`` raise."""
    with pytest.raises(TimeoutError) as waited:
        handle.result(timeout=0.05)
    with pytest.raises(TimeoutError) as awaited:
        asyncio.run(handle.result_async(timeout=0.05))
    return str(waited.value), str(awaited.value)


def _blocking_call(**step: Any) -> dict[str, Any]:
    return {"id": "b", "type": "call", "service": "S", "method": "block", **step}


def test_a_running_execution_is_at_a_step(
    make_engine: EngineFactory, entered: threading.Event
) -> None:
    engine = make_engine(executor="thread")
    wf = workflow(
        {"id": "start", "type": "start", "next": "b"},
        _blocking_call(next="done"),
        {"id": "done", "type": "end"},
    )
    handle = engine.start(wf, execution_id="t-1")
    assert entered.wait(10)

    message = "execution 't-1' is still running after 0.05s, at step 'b'"
    assert _timeout_of(handle) == (message, message)


def test_a_step_in_a_loop_is_named_by_its_path(
    make_engine: EngineFactory, entered: threading.Event
) -> None:
    engine = make_engine(executor="thread")
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2],
            "as": "n",
            "do": [
                {"id": "a", "type": "assign", "set": {"seen": "$n"}, "next": "b"},
                _blocking_call(),
            ],
        },
    )
    handle = engine.start(wf, execution_id="t-2")
    assert entered.wait(10)

    message = "execution 't-2' is still running after 0.05s, at step 'each:b'"
    assert _timeout_of(handle) == (message, message)


def test_an_execution_no_worker_took_is_queued(make_engine: EngineFactory) -> None:
    engine = make_engine(executor=Unserved())
    wf = workflow({"id": "start", "type": "start", "next": "done"}, {"id": "done", "type": "end"})
    handle = engine.start(wf, execution_id="q-1")

    message = "execution 'q-1' is still running after 0.05s, queued for a worker at step 'start'"
    assert _timeout_of(handle) == (message, message)


def test_a_pending_execution_is_queued(make_engine: EngineFactory) -> None:
    engine = make_engine(executor=Unserved())
    engine.store.create(
        Execution(
            id="p-1",
            workflow_id="wf",
            status=Status.PENDING,
            current_step="start",
            created_at=T0,
            updated_at=T0,
        )
    )
    handle = flowkit.Handle(engine, "p-1", None, workflow_id="wf")

    message = "execution 'p-1' is still pending after 0.05s, queued for a worker at step 'start'"
    assert _timeout_of(handle) == (message, message)
    with pytest.raises(TimeoutError, match=f"^{message}$"):
        engine.wait("p-1", timeout=0.05)


def test_an_execution_that_ended_as_the_wait_timed_out_gives_its_result(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    wf = workflow({"id": "start", "type": "start", "next": "done"}, {"id": "done", "type": "end"})
    engine.run(wf, execution_id="e-1")
    late = flowkit.Handle(engine, "e-1", Future(), workflow_id="wf")  # its driver never says

    assert late.result(timeout=0.01).completed
    assert asyncio.run(late.result_async(timeout=0.01)).completed

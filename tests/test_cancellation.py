"""``invoke`` with a :class:`Cancellation`: an async call in flight stops when a cancel is
requested from another thread; nothing else does."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from flowkit import ExecutionError
from flowkit.services import StepContext, invoke
from flowkit.services.cancellation import Cancellation


class Source:
    def context(self) -> StepContext:
        return StepContext(
            execution_id="e",
            workflow_id="w",
            step_id="s",
            attempt=1,
            iteration=None,
            idempotency_key="e:s:1",
        )


def _call(function: Any, cancellation: Cancellation, timeout: float | None = None) -> Any:
    return invoke(
        function, {}, source=Source(), timeout=timeout, where="step 's'", cancellation=cancellation
    )


def test_a_request_stops_an_async_call_in_flight() -> None:
    cancellation = Cancellation()
    entered = threading.Event()
    cleaned_up: list[bool] = []

    async def wait_long() -> str:
        entered.set()
        try:
            await asyncio.sleep(60)
        finally:
            cleaned_up.append(True)
        return "done"

    threading.Thread(target=lambda: (entered.wait(10), cancellation.request())).start()
    started = time.monotonic()
    with pytest.raises(
        ExecutionError, match=r"^Step 's' was cancelled: its execution is being cancelled$"
    ):
        _call(wait_long, cancellation, timeout=120)
    assert time.monotonic() - started < 10
    assert cleaned_up == [True]
    assert cancellation.requested


def test_a_call_started_after_the_request_stops_at_its_first_await() -> None:
    cancellation = Cancellation()
    cancellation.request()
    reached: list[str] = []

    async def two_parts() -> str:
        reached.append("before")
        await asyncio.sleep(0)
        reached.append("after")
        return "done"

    with pytest.raises(ExecutionError, match="was cancelled: its execution"):
        _call(two_parts, cancellation)
    assert reached == ["before"]


def test_a_sync_call_is_never_stopped_and_nothing_runs_without_a_request() -> None:
    def sync() -> str:
        return "sync"

    async def quick() -> str:
        await asyncio.sleep(0.01)
        return "async"

    assert _call(quick, Cancellation()) == "async"
    cancellation = Cancellation()
    cancellation.request()
    assert _call(sync, cancellation) == "sync"


def test_an_async_call_made_inside_an_event_loop_stops_too() -> None:
    cancellation = Cancellation()
    entered = threading.Event()

    async def wait_long() -> str:
        entered.set()
        await asyncio.sleep(60)
        return "done"

    async def caller() -> None:
        threading.Thread(target=lambda: (entered.wait(10), cancellation.request())).start()
        with pytest.raises(ExecutionError, match="was cancelled: its execution"):
            _call(wait_long, cancellation)

    asyncio.run(caller())


def test_a_cancel_that_is_not_a_request_goes_on_up() -> None:
    """A ``CancelledError`` the service raises itself is not mistaken for the request."""
    cancellation = Cancellation()

    async def gives_up() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        _call(gives_up, cancellation)

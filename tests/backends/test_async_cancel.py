"""A cancel reaches an async service while it runs (SPEC §15): the lease keeper sees the
request, the service's task is cancelled, and the execution ends cancelled promptly,
after the compensations of the steps that completed (which are not stopped)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import flowkit
from flowkit import Action, Status, Store

#: Short, so that the lease keeper looks at the store every 0.2 s.
LEASE = 0.6


class Shop:
    """Books a slot, then waits for a warehouse that never answers (until cancelled)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.waiting = threading.Event()
        self.saw_cancel: list[bool] = []

    def book(self) -> str:
        self.calls.append("book")
        return "slot-1"

    async def release(self, slot: str) -> str:
        await asyncio.sleep(0.05)  # an async compensation runs to its end
        self.calls.append(f"release {slot}")
        return "released"

    async def ship(self) -> str:
        self.calls.append("ship")
        self.waiting.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.saw_cancel.append(flowkit.current().cancel_requested)
            raise
        return "shipped"

    def notify(self) -> str:
        self.calls.append("notify")
        return "sent"


ORDER = flowkit.load(
    {
        "id": "order",
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            {
                "id": "book",
                "type": "call",
                "service": "Shop",
                "method": "book",
                "output": "slot",
                "compensate": {
                    "service": "Shop",
                    "method": "release",
                    "input": {"slot": "$output"},
                },
                "next": "ship",
            },
            {"id": "ship", "type": "call", "service": "Shop", "method": "ship", "next": "notify"},
            {"id": "notify", "type": "call", "service": "Shop", "method": "notify", "next": "end"},
            {"id": "end", "type": "end"},
        ],
    }
)


#: book (undone by release) → both (two async ship branches) → notify.
FANNED = flowkit.load(
    {
        "id": "fanned",
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            {
                "id": "book",
                "type": "call",
                "service": "Shop",
                "method": "book",
                "compensate": {
                    "service": "Shop",
                    "method": "release",
                    "input": {"slot": "$output"},
                },
                "next": "both",
            },
            {
                "id": "both",
                "type": "parallel",
                "branches": [
                    {"id": branch, "type": "call", "service": "Shop", "method": "ship"}
                    for branch in ("east", "west")
                ],
                "next": "notify",
            },
            {"id": "notify", "type": "call", "service": "Shop", "method": "notify", "next": "end"},
            {"id": "end", "type": "end"},
        ],
    }
)


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    from flowkit.backends.sqlalchemy import SQLStore

    from .sql_helpers import POSTGRESQL_URL, scratch_store

    opened = (
        SQLStore(f"sqlite:///{tmp_path}/orders.db")
        if request.param == "sqlite"
        else scratch_store(POSTGRESQL_URL)
    )
    yield opened
    opened.close()


@pytest.fixture(params=["inline", "thread"])
def make_engine(
    request: pytest.FixtureRequest, store: Store
) -> Iterator[Callable[[Shop], flowkit.Engine]]:
    made: list[flowkit.Engine] = []

    def make(shop: Shop) -> flowkit.Engine:
        services = flowkit.ServiceRegistry()
        services.register("Shop", shop)
        engine = flowkit.Engine(
            store=store, services=services, executor=request.param, lease_seconds=LEASE
        )
        engine.workflows.register(ORDER)
        engine.workflows.register(FANNED)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


def test_a_cancel_stops_the_async_service_under_way(
    make_engine: Callable[[Shop], flowkit.Engine],
) -> None:
    shop = Shop()
    engine = make_engine(shop)
    runner = threading.Thread(target=engine.run, args=(ORDER,))
    started = time.monotonic()
    runner.start()
    assert shop.waiting.wait(30)
    (running,) = engine.store.find(status="running")
    asked = make_engine(Shop()).cancel(running.id, reason="customer changed their mind")
    assert asked.status is Status.RUNNING  # asked: the process running it notices

    runner.join(30)
    assert not runner.is_alive()
    assert time.monotonic() - started < 30  # the 60 s call did not run out
    final = engine.wait(running.id, timeout=30)
    assert final.cancelled
    assert final.error == "customer changed their mind"
    assert shop.saw_cancel == [True]  # the flag was set before the task was cancelled
    assert shop.calls == ["book", "ship", "release slot-1"]  # no notify; the undo ran whole
    actions = [(e.step_id, e.action) for e in engine.store.entries(running.id)]
    assert ("ship", Action.CANCELLED) in actions
    assert actions[-1] == ("book", Action.COMPENSATED)
    assert ("ship", Action.COMPLETED) not in actions
    assert ("ship", Action.FAILED) not in actions


def test_a_cancel_stops_async_branches_and_lets_async_compensations_run(
    make_engine: Callable[[Shop], flowkit.Engine],
) -> None:
    shop = Shop()
    engine = make_engine(shop)
    runner = threading.Thread(target=engine.run, args=(FANNED,))
    runner.start()
    wait_until = time.monotonic() + 30
    while shop.calls.count("ship") < 2:  # both branches are under way
        assert time.monotonic() < wait_until, shop.calls
        time.sleep(0.01)
    (running,) = engine.store.find(status="running")

    make_engine(Shop()).cancel(running.id, reason="stop")

    runner.join(30)
    assert not runner.is_alive()
    final = engine.wait(running.id, timeout=30)
    assert (final.status, final.error) == (Status.CANCELLED, "stop")
    assert shop.saw_cancel == [True, True]
    assert shop.calls == ["book", "ship", "ship", "release slot-1"]
    actions = [(e.step_id, e.action) for e in engine.store.entries(running.id)]
    assert ("both:east", Action.COMPLETED) not in actions
    assert ("both:west", Action.COMPLETED) not in actions
    assert actions[-1] == ("book", Action.COMPENSATED)


def test_a_long_async_service_that_nobody_cancels_is_recorded(
    make_engine: Callable[[Shop], flowkit.Engine],
) -> None:
    """The lease keeper renews the lease meanwhile and stops nothing."""
    shop = Shop()
    engine = make_engine(shop)

    async def quick() -> str:
        shop.waiting.set()
        await asyncio.sleep(3 * LEASE)  # long enough for several lease renewals
        return "shipped"

    shop.ship = quick  # type: ignore[method-assign]
    result = engine.run(ORDER)
    assert result.completed
    assert shop.calls == ["book", "notify"]

"""A cancel reaches an async service in flight (SPEC §15): its task is cancelled at once.

The lease keeper learns of the cancel request from its next renewal (it
conflicts), so these engines hold short leases; the service would otherwise
await for a minute, which the elapsed time rules out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flowkit
from flowkit import Status, Store
from flowkit.definitions import WorkflowRegistry
from flowkit.engine.fanout import Fanout

from .conftest import BACKENDS

LEASE_SECONDS = 0.6


class Shop:
    """``reserve`` and its async undo ``release``; ``pack`` awaits until it is cancelled."""

    def __init__(self) -> None:
        self.packing = threading.Event()
        self.calls: list[str] = []
        self.saw_cancel: list[bool] = []

    def reserve(self) -> str:
        self.calls.append("reserve")
        return "R-1"

    async def release(self, reservation: str) -> str:
        await asyncio.sleep(0)  # an async compensation runs to the end, cancel or not
        self.calls.append(f"release {reservation}")
        return "released"

    async def pack(self) -> str:
        self.calls.append("pack")
        self.packing.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.saw_cancel.append(flowkit.current().cancel_requested)
            raise
        return "packed"

    def ship(self) -> str:
        self.calls.append("ship")
        return "shipped"


RESERVE = {
    "id": "reserve",
    "type": "call",
    "service": "Shop",
    "method": "reserve",
    "output": "reservation",
    "compensate": {"service": "Shop", "method": "release", "input": {"reservation": "$output"}},
}

ORDER = flowkit.load(
    {
        "id": "order",
        "steps": [
            {"id": "start", "type": "start", "next": "reserve"},
            {**RESERVE, "next": "pack"},
            {"id": "pack", "type": "call", "service": "Shop", "method": "pack", "next": "ship"},
            {"id": "ship", "type": "call", "service": "Shop", "method": "ship", "next": "end"},
            {"id": "end", "type": "end"},
        ],
    }
)

FANNED = flowkit.load(
    {
        "id": "fanned",
        "steps": [
            {"id": "start", "type": "start", "next": "reserve"},
            {**RESERVE, "next": "prepare"},
            {
                "id": "prepare",
                "type": "parallel",
                "branches": [
                    {"id": "pack", "type": "call", "service": "Shop", "method": "pack"},
                    {"id": "label", "type": "call", "service": "Shop", "method": "ship"},
                ],
                "next": "ship",
            },
            {"id": "ship", "type": "call", "service": "Shop", "method": "ship", "next": "end"},
            {"id": "end", "type": "end"},
        ],
    }
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    _, opener = BACKENDS[request.param]
    opened = opener(tmp_path, 0)
    yield opened
    opened.close()


@pytest.fixture(params=["inline", "thread"])
def make_engine(store: Store, request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    made: list[flowkit.Engine] = []
    shop = Shop()
    services = flowkit.ServiceRegistry()
    services.register("Shop", shop)
    workflows = WorkflowRegistry()
    workflows.register(ORDER)
    workflows.register(FANNED)

    def make() -> flowkit.Engine:
        engine = flowkit.Engine(
            store=store,
            services=services,
            workflows=workflows,
            executor=request.param,
            lease_seconds=LEASE_SECONDS,
        )
        made.append(engine)
        return engine

    make.shop = shop  # type: ignore[attr-defined]
    yield make
    for engine in made:
        engine.close()


def test_an_async_service_in_flight_is_cancelled_and_the_execution_ends_cancelled(
    make_engine: Callable[[], flowkit.Engine],
) -> None:
    shop: Shop = make_engine.shop  # type: ignore[attr-defined]
    engine = make_engine()
    runner = threading.Thread(target=engine.start, args=(ORDER,))  # inline: runs it all
    runner.start()
    assert shop.packing.wait(30)
    (running,) = engine.store.find(status="running")
    asked_at = time.monotonic()
    asked = make_engine().cancel(running.id, reason="customer changed their mind", by="support")
    assert asked.status is Status.RUNNING  # asked; the process running it notices
    final = engine.wait(running.id, timeout=30)
    runner.join(30)
    assert not runner.is_alive()

    assert final.cancelled
    assert final.error == "customer changed their mind"
    assert time.monotonic() - asked_at < 10  # not the minute the service would await
    assert shop.saw_cancel == [True]
    assert shop.calls == ["reserve", "pack", "release R-1"]  # ship never ran
    actions = [(e.step_id, e.action.value) for e in engine.store.entries(running.id)]
    assert ("pack", "completed") not in actions
    assert actions[-2:] == [("pack", "cancelled"), ("reserve", "compensated")]


def test_an_async_service_in_a_parallel_branch_is_cancelled(
    make_engine: Callable[[], flowkit.Engine],
) -> None:
    shop: Shop = make_engine.shop  # type: ignore[attr-defined]
    engine = make_engine()
    runner = threading.Thread(target=engine.start, args=(FANNED,))
    runner.start()
    assert shop.packing.wait(30)
    (running,) = engine.store.find(status="running")
    asked_at = time.monotonic()
    make_engine().cancel(running.id, reason="stop")
    final = engine.wait(running.id, timeout=30)
    runner.join(30)

    assert final.cancelled, final.error
    assert time.monotonic() - asked_at < 10
    assert shop.saw_cancel == [True]
    assert shop.calls.count("ship") <= 1  # the label branch at most; the ship step never
    assert shop.calls[-1] == "release R-1"
    actions = [(e.step_id, e.action.value) for e in engine.store.entries(running.id)]
    assert ("prepare", "completed") not in actions
    assert actions[-1] == ("reserve", "compensated")


def test_a_branch_that_sees_the_cancel_first_has_the_async_service_cancelled(
    make_engine: Callable[[], flowkit.Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The label branch records its result only once the cancel was asked for: its
    # checkpoint conflicts and it adopts the record with the request, before the lease
    # keeper's next renewal could. The pack branch's service is cancelled all the same.
    shop: Shop = make_engine.shop  # type: ignore[attr-defined]
    asked = threading.Event()
    record = Fanout._record

    def after_the_cancel(self: Fanout, *args: Any) -> Any:
        if args[6].id == "label":
            assert asked.wait(timeout=30)
        return record(self, *args)

    monkeypatch.setattr(Fanout, "_record", after_the_cancel)
    engine = make_engine()
    runner = threading.Thread(target=engine.start, args=(FANNED,))
    runner.start()
    assert shop.packing.wait(30)
    (running,) = engine.store.find(status="running")
    make_engine().cancel(running.id, reason="stop")
    asked.set()
    final = engine.wait(running.id, timeout=30)
    runner.join(30)

    assert final.cancelled, final.error
    assert shop.saw_cancel == [True]
    assert shop.calls[-1] == "release R-1"

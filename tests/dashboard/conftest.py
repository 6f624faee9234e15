"""Fixtures of the dashboard tests: workflows, engines on every real store, signed-in clients.

The stores are those of ``tests/backends`` (one opener per backend, each marked
with its backend's marker, so ``pytest -m redis tests/dashboard`` runs one).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import flowkit
from flowkit.dashboard import Users, create_app
from flowkit.definitions import WorkflowRegistry
from tests.backends.conftest import BACKENDS

#: Every test user's password is their name followed by "-pw".
USERS = Users.from_env_text("alice:alice-pw,bob:bob-pw,carol:carol-pw")

EXPENSE = flowkit.load(
    {
        "id": "expense",
        "inputs": {"amount": {"type": "number"}, "note": {"required": False, "default": ""}},
        "steps": [
            {"id": "start", "type": "start", "next": "remember"},
            {"id": "remember", "type": "assign", "set": {"note": "$input.note"}, "next": "ask"},
            {
                "id": "ask",
                "type": "approval",
                "prompt": "Approve $input.amount?",
                "context": {"note": "$input.note"},
                "approvers": ["alice", "carol"],
                "on_reject": "rejected",
                "next": "ship",
            },
            {"id": "ship", "type": "call", "service": "Shop", "method": "ship", "next": "done"},
            {"id": "done", "type": "end", "result": {"approved": True}},
            {"id": "rejected", "type": "end", "result": {"approved": False}},
        ],
    }
)
"""Halts at ``ask`` for alice or carol; approved, it calls ``Shop.ship`` and completes."""

PAUSE = flowkit.load(
    {
        "id": "pause",
        "steps": [
            {"id": "wait_here", "type": "halt", "reason": "paused for a look", "next": "finish"},
            {"id": "finish", "type": "end"},
        ],
    }
)
"""Halts with no approvers: anyone signed in may resume it."""

WAITER = flowkit.load(
    {
        "id": "waiter",
        "steps": [
            {"id": "start", "type": "start", "next": "wait_go"},
            {"id": "wait_go", "type": "wait", "signal": "go", "output": "go", "next": "done"},
            {"id": "done", "type": "end", "result": "$go"},
        ],
    }
)
"""Waits for the signal ``go`` and ends with its payload."""


class Shop:
    """The service ``ship`` calls: fails while ``broken``, blocks while ``gate`` is closed."""

    def __init__(self) -> None:
        self.broken = False
        self.gate = threading.Event()
        self.gate.set()
        self.shipped = 0

    def ship(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("the shipping service is down")
        assert self.gate.wait(30), "the test never opened the gate"
        self.shipped += 1
        return {"shipped": True}


def on_backends(*names: str) -> pytest.MarkDecorator:
    """Run a test on these backends only (instead of every one)."""
    params = [pytest.param(name, marks=BACKENDS[name][0], id=name) for name in names]
    return pytest.mark.parametrize("store", params, indirect=True)


def basic(name: str, password: str | None = None) -> dict[str, str]:
    """HTTP Basic headers for a test user (their right password unless one is given)."""
    token = f"{name}:{password if password is not None else name + '-pw'}".encode()
    return {"Authorization": "Basic " + base64.b64encode(token).decode()}


@pytest.fixture(
    params=[pytest.param(name, marks=marker, id=name) for name, (marker, _) in BACKENDS.items()]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[flowkit.Store]:
    """A fresh store of each backend."""
    _, opener = BACKENDS[request.param]
    opened = opener(tmp_path, 0)
    yield opened
    opened.close()


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
def engine(store: flowkit.Store, shop: Shop) -> Iterator[flowkit.Engine]:
    """An inline engine on ``store`` that knows EXPENSE and PAUSE and calls ``shop``."""
    services = flowkit.ServiceRegistry()
    services.register("Shop", shop)
    engine = flowkit.Engine(
        store=store, executor="inline", services=services, workflows=WorkflowRegistry()
    )
    engine.definition(EXPENSE)
    engine.definition(PAUSE)
    engine.definition(WAITER)
    yield engine
    engine.close()


@pytest.fixture
def client(engine: flowkit.Engine) -> Iterator[TestClient]:
    """A client of a dashboard with users (alice, bob, carol)."""
    with TestClient(create_app(engine, users=USERS, poll_seconds=0.05)) as test_client:
        yield test_client


@pytest.fixture
def read_only_client(engine: flowkit.Engine) -> Iterator[TestClient]:
    """A client of a dashboard without users."""
    with TestClient(create_app(engine, poll_seconds=0.05)) as test_client:
        yield test_client


def halted(engine: flowkit.Engine, amount: float = 120.0, note: str = "") -> str:
    """The id of a new EXPENSE execution, halted at its approval."""
    result = engine.run(EXPENSE, input={"amount": amount, "note": note})
    assert result.halted, result
    return result.execution_id

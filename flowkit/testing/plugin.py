"""The flowkit pytest plugin (registered through the ``pytest11`` entry point).

Fixtures: ``flowkit_clock``, ``flowkit_store``, ``flowkit_engine``,
``run_step`` and ``stub_service``. Run the same tests on a real store with
``pytest --flowkit-store URL`` (e.g. ``sqlite:///test.db``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from ..abc import Store
from ..adapters import connect
from ..backends.memory import DurabilityWarning, MemoryStore
from ..engine import Engine
from ..services import default_registry
from ._helpers import FakeClock, StepResult, Stub, run_step, stub

__all__ = [
    "flowkit_clock",
    "flowkit_engine",
    "flowkit_store",
    "pytest_addoption",
    "run_step_fixture",
    "stub_service",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flowkit")
    group.addoption(
        "--flowkit-store",
        metavar="URL",
        default=None,
        help="run flowkit_store/flowkit_engine tests on this store (default: memory://)",
    )


@pytest.fixture
def flowkit_clock() -> FakeClock:
    """A clock that moves only when a retry sleeps or the test calls ``advance(seconds)``."""
    return FakeClock()


@pytest.fixture
def flowkit_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store for one test: in memory, or the ``--flowkit-store`` URL.

    On a real store, the executions a test created are deleted afterwards.
    """
    url = request.config.getoption("--flowkit-store")
    if url is None or url.startswith("memory:"):
        yield MemoryStore(warn=False)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DurabilityWarning)
        store = connect(url)
    before = {execution.id for execution in store.find(limit=100_000)}
    try:
        yield store
    finally:
        for execution in store.find(limit=100_000):
            if execution.id not in before:
                store.delete(execution.id)
        store.close()


@pytest.fixture
def flowkit_engine(flowkit_store: Store, flowkit_clock: FakeClock) -> Iterator[Engine]:
    """An engine on ``flowkit_store`` with the inline executor and ``flowkit_clock``."""
    engine = Engine(store=flowkit_store, executor="inline", clock=flowkit_clock)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(name="run_step")
def run_step_fixture(flowkit_engine: Engine) -> Callable[..., StepResult]:
    """Run one step in isolation: ``run_step(wf, "charge", ctx={...}, input={...})``.

    Returns a :class:`flowkit.testing.StepResult` (status, ctx, next, output,
    halt, error, entries).
    """

    def run(workflow: Any, step_id: str, **options: Any) -> StepResult:
        return run_step(flowkit_engine, workflow, step_id, **options)

    return run


@pytest.fixture
def stub_service() -> Iterator[Callable[[str, Any], Stub]]:
    """Replace a service for this test: ``stub_service("Payments", {"charge": {...}})``.

    Returns the :class:`flowkit.testing.Stub`, whose ``calls`` record every
    call; the real service is restored after the test.
    """
    with ExitStack() as stack:

        def replace(name: str, behaviour: Any) -> Stub:
            return stack.enter_context(stub(default_registry, name, behaviour))

        yield replace

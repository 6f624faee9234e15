"""Fixtures for the AI extension's tests: a scripted provider, an engine, a private cache.

Every test gets its own file-search cache directory and starts with no model
provider configured, so nothing leaks between tests and nothing reaches the
network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import flowkit
import flowkit.ai as ai
from flowkit.backends.memory import MemoryStore
from flowkit.testing import FakeClock

DATA = Path(__file__).parent / "data"

EngineFactory = Callable[..., flowkit.Engine]


@pytest.fixture(autouse=True)
def _isolated_ai(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A private index cache; no provider, no provider environment variables and
    the default file_search settings."""
    monkeypatch.setenv("FLOWKIT_AI_CACHE_DIR", str(tmp_path_factory.mktemp("ai-cache")))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "FLOWKIT_AI_BASE_URL", "FLOWKIT_AI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    ai.configure()
    ai.configure_file_search()
    yield
    ai.configure()
    ai.configure_file_search()


@pytest.fixture
def services() -> flowkit.ServiceRegistry:
    """An empty service registry of the test's own."""
    return flowkit.ServiceRegistry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_engine(services: flowkit.ServiceRegistry, clock: FakeClock) -> Iterator[EngineFactory]:
    """``make_engine(provider, store=None)``: an inline engine using ``provider``."""
    engines: list[flowkit.Engine] = []

    def make(provider: ai.Provider | None = None, *, store: object = None) -> flowkit.Engine:
        engine = flowkit.Engine(
            store=store if store is not None else MemoryStore(warn=False),
            executor="inline",
            services=services,
            clock=clock,
        )
        if provider is not None:
            ai.set_provider(provider, engine=engine)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def gem_support_agent() -> flowkit.WorkflowDef:
    """The durable_workflow gem's ``support_agent.yml`` (a byte-for-byte copy)."""
    return flowkit.load(DATA / "gem_support_agent.yml")

"""Helpers for tests/test_examples.py: a clock the test controls, engines, entry trails."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import flowkit
from flowkit.backends.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# `examples` is not part of the installed distribution: make it importable when
# pytest runs without the repository root on sys.path (e.g. the `pytest` script).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import examples.services  # noqa: E402  (needs the path above)


class ManualClock:
    """A clock that only moves when told to; ``sleep`` advances it at once."""

    def __init__(self, start: datetime = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)


def load_example(name: str) -> flowkit.WorkflowDef:
    """The validated definition of ``examples/<name>.yml``."""
    return flowkit.load(EXAMPLES / f"{name}.yml")


def make_engine(clock: ManualClock, *modules: ModuleType) -> flowkit.Engine:
    """An engine on a fresh memory store whose fresh registry holds only ``modules``' services."""
    registry = flowkit.ServiceRegistry()
    if modules:
        examples.services.register(registry, *modules)
    return flowkit.Engine(store=MemoryStore(warn=False), services=registry, clock=clock)


def steps(engine: flowkit.Engine, execution_id: str) -> list[str]:
    """The step id of every entry, in order."""
    return [entry.step_id for entry in engine.store.entries(execution_id)]


def trail(engine: flowkit.Engine, execution_id: str) -> list[tuple[str, str]]:
    """``(step_id, action)`` of every entry, in order."""
    return [(entry.step_id, entry.action.value) for entry in engine.store.entries(execution_id)]


def snapshot(engine: flowkit.Engine, execution_id: str) -> tuple[Any, list[Any]]:
    """The stored record and entries, to check that nothing changed."""
    return engine.load(execution_id), engine.store.entries(execution_id)

"""Executors: who drives executions forward (SPEC §10 "Executors").

Every executor calls the same engine functions (:meth:`Engine.drive`, or
:meth:`Engine.step` and :meth:`Engine.run_branch` one step at a time), so the
semantics have exactly one implementation.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["Executor", "InlineExecutor", "ThreadExecutor", "make_executor"]


class Executor:
    """Drives executions for an engine; this base runs them in the calling thread."""

    name = "inline"
    #: Whether steps are handed to other processes (a queue): the engine then
    #: releases the lease after each step and claims it before the next.
    hands_off = False

    def dispatch(self, engine: Engine, execution_id: str) -> Future[Any] | None:
        """Start advancing an execution; may return a future that ends with it."""
        engine.drive(execution_id)
        return None

    def close(self) -> None:
        """Release what the executor holds."""


class InlineExecutor(Executor):
    """Runs each execution until it ends or halts, inside ``run``/``start``/``resume``."""


class ThreadExecutor(Executor):
    """Runs executions on a pool of background threads; ``start`` returns at once.

    Args:
        max_workers: how many executions advance at the same time.
    """

    name = "thread"

    def __init__(self, max_workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="flowkit")

    def dispatch(self, engine: Engine, execution_id: str) -> Future[Any] | None:
        return self._pool.submit(engine.drive, execution_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


_BUILTIN_EXECUTORS = {
    "inline": "flowkit._executors:InlineExecutor",
    "thread": "flowkit._executors:ThreadExecutor",
    "dramatiq": "flowkit.backends.dramatiq:DramatiqExecutor",
}


def make_executor(spec: str | Executor) -> Executor:
    """The executor named by ``spec`` (through the ``flowkit.executors`` entry points).

    Raises:
        ConfigError: no executor has that name, or its dependency is missing.
    """
    if isinstance(spec, Executor):
        return spec
    from ._store import _load_adapter

    factory = _load_adapter("flowkit.executors", spec, _BUILTIN_EXECUTORS)
    made = factory()
    if not isinstance(made, Executor):
        raise ConfigError(f"executor '{spec}' is a {type(made).__name__}, not an Executor")
    return made

"""The drivers that move executions in this process: inline and on a thread pool.

A driver is chosen by the ``executor`` setting (``inline``, ``thread``, or
``dramatiq`` from :mod:`flowkit.backends.dramatiq`). Every driver calls the same
engine functions, so the semantics have exactly one implementation.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..abc import Drivable, Driver

__all__ = ["InlineDriver", "ThreadDriver"]


class InlineDriver(Driver):
    """Runs each execution until it ends or halts, inside ``run``/``start``/``resume``."""

    name = "inline"

    def dispatch(self, engine: Drivable, execution_id: str) -> Future[Any] | None:
        engine.drive(execution_id)
        return None


class ThreadDriver(Driver):
    """Runs executions on a pool of background threads; ``start`` returns at once.

    Args:
        max_workers: how many executions advance at the same time.
    """

    name = "thread"

    def __init__(self, max_workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="flowkit")

    def dispatch(self, engine: Drivable, execution_id: str) -> Future[Any] | None:
        # The caller's context goes along: step spans link to the span that resumed them.
        return self._pool.submit(contextvars.copy_context().run, engine.drive, execution_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

"""The default engine, made from the settings, behind ``flowkit.run``, ``flowkit.resume`` and
their async twins."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from ..config import on_change
from .engine import Engine
from .results import Result

__all__ = ["default_engine", "resume", "resume_async", "run", "run_async", "signal"]

_lock = threading.Lock()
_engine: Engine | None = None


def _forget() -> None:
    global _engine
    with _lock:
        engine, _engine = _engine, None
    if engine is not None:
        engine.close()


on_change(_forget)


def default_engine() -> Engine:
    """The engine ``flowkit.run``/``flowkit.resume`` use, built from the configuration.

    It is rebuilt after :func:`flowkit.configure` changes anything.
    """
    global _engine
    with _lock:
        if _engine is None:
            _engine = Engine()
        return _engine


def run(workflow: Any, input: Mapping[str, Any] | None = None, **options: Any) -> Result:
    """Run a workflow with the configured store and executor; wait for its result.

    Args:
        workflow: a definition, a Python ``Workflow``, or anything :func:`flowkit.load` accepts.
        input: the workflow's input.
        **options: ``execution_id=`` and ``timeout=``, as for :meth:`Engine.run`.

    Raises:
        ValidationError: the definition or the input is invalid; nothing is created.
        ConfigError: the configuration is wrong (e.g. a store URL without its driver).
    """
    return default_engine().run(workflow, input, **options)


async def run_async(
    workflow: Any, input: Mapping[str, Any] | None = None, **options: Any
) -> Result:
    """:func:`run` for asyncio; never blocks the event loop (see :meth:`Engine.run_async`).

    Raises:
        ValidationError: the definition or the input is invalid; nothing is created.
        ConfigError: the configuration is wrong (e.g. a store URL without its driver).
    """
    engine = await asyncio.to_thread(default_engine)  # the first call opens the store
    return await engine.run_async(workflow, input, **options)


def resume(execution_id: str, **options: Any) -> Result:
    """Resume a halted execution with the configured store (see :meth:`Engine.resume`).

    Raises:
        NotFoundError: no such execution, or its workflow is not known here.
        ExecutionError: it cannot be resumed (finished, refused decision…); nothing changed.
        ConflictError: it is running, or another resume won the race.
    """
    return default_engine().resume(execution_id, **options)


def signal(execution_id: str, name: str, payload: Any = None, *, key: str | None = None) -> bool:
    """Send a signal with the configured store (see :meth:`Engine.signal`); False when
    ``key`` was sent before.

    Raises:
        NotFoundError: no such execution.
        ExecutionError: it completed, failed or was cancelled.
        ValidationError: the name, payload or key cannot be stored; nothing was sent.
    """
    return default_engine().signal(execution_id, name, payload, key=key)


async def resume_async(execution_id: str, **options: Any) -> Result:
    """:func:`resume` for asyncio; never blocks the event loop (see :meth:`Engine.resume_async`).

    Raises:
        NotFoundError: no such execution, or its workflow is not known here.
        ExecutionError: it cannot be resumed (finished, refused decision…); nothing changed.
        ConflictError: it is running, or another resume won the race.
    """
    engine = await asyncio.to_thread(default_engine)
    return await engine.resume_async(execution_id, **options)

"""Calling a service: the calling convention, timeouts, async callables and :func:`current`.

Async callables are awaited (and cancelled on timeout, or when the execution is
being cancelled); sync callables with a timeout run in a helper thread that is
abandoned on timeout, its late result discarded. What the call returns is made
JSON data (:func:`to_json`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ExecutionError
from .calling import prepare_call
from .cancellation import Cancellation
from .context import ContextSource, running
from .outputs import to_json

__all__ = ["invoke"]


def invoke(
    function: Callable[..., Any],
    value: Any,
    *,
    source: ContextSource,
    timeout: float | None,
    where: str,
    cancellation: Cancellation | None = None,
) -> Any:
    """Call ``function`` with ``value`` as its input; return its result as JSON data.

    Args:
        function: the service callable.
        value: the step's resolved input (see :func:`~flowkit.services.bind_arguments`).
        source: what :func:`flowkit.current` reports while the call runs.
        timeout: seconds the call may take, or None.
        where: the step, for messages (``step 'charge'``).
        cancellation: when it is requested, an async callable's task is cancelled.

    Raises:
        ExecutionError: the call timed out or was cancelled, or its result is not
            JSON data.
        TypeError: the input does not fit the callable's parameters.
    """
    args, kwargs, is_async = prepare_call(function, value)
    token = running.set(source)
    try:
        if is_async:
            result = _run_async(function(*args, **kwargs), timeout, where, cancellation)
        elif timeout is None:
            result = function(*args, **kwargs)
        else:
            result = _run_with_timeout(function, args, kwargs, timeout, where)
    finally:
        running.reset(token)
    return to_json(result, where)


def _timed_out(where: str, timeout: float) -> ExecutionError:
    return ExecutionError(f"{where[0].upper()}{where[1:]} timed out after {timeout:g}s")


class _Runner:
    """This thread's asyncio runner for async services, closed with the thread's locals
    (a loop left open is a ResourceWarning, and leaks its sockets)."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()

    def __del__(self) -> None:
        self.runner.close()


_loops = threading.local()


def _run_async(
    coroutine: Any, timeout: float | None, where: str, cancellation: Cancellation | None
) -> Any:
    async def bounded() -> Any:
        if cancellation is None:
            return await _awaited(coroutine, timeout, where)
        task = asyncio.ensure_future(coroutine)
        loop = asyncio.get_running_loop()
        with cancellation.watch(lambda: _cancel_soon(loop, task)):
            try:
                return await _awaited(task, timeout, where)
            except asyncio.CancelledError:
                if not cancellation.requested:
                    raise
        raise ExecutionError(
            f"{where[0].upper()}{where[1:]} was cancelled: its execution is being cancelled"
        )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        holder = getattr(_loops, "holder", None)
        if holder is None:
            holder = _loops.holder = _Runner()
        return holder.runner.run(bounded())
    # Called from inside an event loop: run the coroutine on a loop of its own.
    box: dict[str, Any] = {}
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=lambda: context.run(_store_result, box, lambda: asyncio.run(bounded()))
    )
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _cancel_soon(loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed: the call is over
        loop.call_soon_threadsafe(task.cancel)


async def _awaited(awaitable: Awaitable[Any], timeout: float | None, where: str) -> Any:
    if timeout is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise _timed_out(where, timeout) from None


def _store_result(box: dict[str, Any], function: Callable[[], Any]) -> None:
    try:
        box["value"] = function()
    except BaseException as exc:
        box["error"] = exc


def _run_with_timeout(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float,
    where: str,
) -> Any:
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        context.run(_store_result, box, lambda: function(*args, **kwargs))
        done.set()

    threading.Thread(target=target, daemon=True, name=f"flowkit-call {where}").start()
    if not done.wait(timeout):
        raise _timed_out(where, timeout)  # the thread is abandoned; its result is discarded
    if "error" in box:
        raise box["error"]
    return box.get("value")

"""A cancel request that reaches the service calls of an execution from another thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["Cancellation"]


class Cancellation:
    """Set once, from any thread, when the execution is being cancelled.

    Calls in flight subscribe with :meth:`watch`; an async service's task is
    cancelled that way (see :func:`flowkit.services.invoke`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._callbacks: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        """Whether the cancel was requested."""
        return self._requested

    def request(self) -> None:
        """Record the request and tell every call in flight (once)."""
        with self._lock:
            if self._requested:
                return
            self._requested = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    @contextlib.contextmanager
    def watch(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` if the cancel is requested within the block (or was already)."""
        with self._lock:
            requested = self._requested
            if not requested:
                self._callbacks.append(callback)
        if requested:
            callback()
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

"""A cancel request that reaches a service call while it is in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Cancellation"]


class Cancellation:
    """Set once when the execution running here is asked to stop.

    Whoever notices the request (the lease keeper) calls :meth:`request`; a
    call in flight registers what stops it (an async service's task) with
    :meth:`on_request`. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._callbacks: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        """Whether a cancel request was noticed (and not cleared since)."""
        return self._requested

    def request(self) -> None:
        """Note the request and stop the calls in flight."""
        with self._lock:
            if self._requested:
                return
            self._requested = True
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def clear(self) -> None:
        """Forget the request: the engine took it up (compensations must still run)."""
        with self._lock:
            self._requested = False

    @contextmanager
    def on_request(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` on a request made while the block runs (or made already)."""
        with self._lock:
            self._callbacks.append(callback)
            requested = self._requested
        if requested:
            callback()
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)

"""Group commit: writes that arrive together from several threads share one round trip.

A store wraps its batch writer in :class:`GroupCommit` and calls it once per
write. The first caller writes at once, alone; callers that arrive while a
batch is being written queue up, and the first of them writes everything
queued as the next batch when the current one is done (leader and followers,
as databases do it for their own commits). A lone thread pays one lock and no
waiting; eight threads checkpointing at once pay one transaction, one commit
(one fsync) or one pipeline per batch instead of one each.

Each write keeps its own outcome: the batch writer returns a result or an
exception per item, so a version conflict fails only its own execution. If the
batch writer itself raises, every write of that batch gets the exception.

Imports only the standard library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class _Waiter(Generic[T, R]):
    """One queued write: its item, then its outcome (or the call to lead the next batch)."""

    __slots__ = ("done", "error", "event", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.event = threading.Event()
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Write items in batches: one batch at a time, each holding what queued meanwhile.

    Args:
        write: writes a batch of items and returns one outcome per item, in
            order: its result, or the exception its caller gets.
        max_batch: the most items one batch holds.

    Raises:
        ValueError: ``max_batch`` is less than 1.
    """

    def __init__(
        self, write: Callable[[Sequence[T]], Sequence[R | BaseException]], *, max_batch: int = 64
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiter[T, R]] = []
        self._busy = False

    def __call__(self, item: T) -> R:
        """Write ``item``, alone or in a batch, and return its result.

        Raises:
            BaseException: the exception the batch writer gave for this item, or
                raised for its whole batch.
        """
        waiter: _Waiter[T, R] = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            leads = not self._busy
            self._busy = True
        if not leads:
            waiter.event.wait()
            if not waiter.done:  # handed the lead: write the next batch
                self._lead()
        else:
            self._lead()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]

    def _lead(self) -> None:
        """Write the queued items as one batch, then hand the lead to the next in line."""
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            try:
                outcomes: Sequence[R | BaseException] = self._write([w.item for w in batch])
            except BaseException as exc:  # it belongs to the batch's callers
                outcomes = [exc] * len(batch)
            if len(outcomes) != len(batch):
                error = RuntimeError(
                    f"a batch writer returned {len(outcomes)} outcomes for {len(batch)} items"
                )
                outcomes = [error] * len(batch)
            for waiter, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    waiter.error = outcome
                else:
                    waiter.result = outcome
                waiter.done = True
                waiter.event.set()
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].event.set()  # not done: it leads the next batch
                else:
                    self._busy = False

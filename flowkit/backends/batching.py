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

With ``gather``, a caller that finds nobody writing, right after a batch that
held others, waits for as many others to queue up before it writes (at most
twice as long as the last batch took to write, and never more than
:data:`MAX_GATHER`). Threads released together by one batch then share the
next one, instead of the first of them paying a commit alone: worth it where a
commit is what costs (SQLite's fsync). A caller that wrote alone last time, or
the first, never waits.

Imports only the standard library.
"""

from __future__ import annotations

import threading
import time
from _thread import allocate_lock as _allocate_lock
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["MAX_GATHER", "GroupCommit"]

#: The longest a caller with ``gather`` waits for others before it writes, in seconds.
MAX_GATHER = 0.005

T = TypeVar("T")
R = TypeVar("R")


class _Waiter(Generic[T, R]):
    """One write: its item, then its outcome. A follower parks on ``gate`` (a plain lock
    taken at once, released by whoever has its outcome or hands it the lead)."""

    __slots__ = ("done", "error", "gate", "item", "result")

    def __init__(self, item: T, *, parked: bool) -> None:
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None
        self.gate: Any = None
        if parked:
            self.gate = _allocate_lock()
            self.gate.acquire()

    def wake(self) -> None:
        if self.gate is not None:
            self.gate.release()

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit(Generic[T, R]):
    """Write items in batches: one batch at a time, each holding what queued meanwhile.

    Args:
        write: writes a batch of items and returns one outcome per item, in
            order: its result, or the exception its caller gets.
        max_batch: the most items one batch holds.
        gather: wait for others before writing, as the last batch suggests (see
            the module's docs).

    Raises:
        ValueError: ``max_batch`` is less than 1.
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        max_batch: int = 64,
        gather: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._write = write
        self._max_batch = max_batch
        self._gather = gather
        self._lock = threading.Lock()
        self._queue: list[_Waiter[T, R]] = []
        self._busy = False
        self._others = 0  # how many others the last batch held
        self._took = 0.0  # how long its write took, in seconds
        self._full: Any = None  # released when as many others queued (a gathering leader)

    def __call__(self, item: T) -> R:
        """Write ``item``, alone or in a batch, and return its result.

        Raises:
            BaseException: the exception the batch writer gave for this item, or
                raised for its whole batch.
        """
        full = None
        with self._lock:
            if self._busy:
                waiter: _Waiter[T, R] = _Waiter(item, parked=True)
                self._queue.append(waiter)
                if self._full is not None and len(self._queue) >= self._others:
                    self._full.release()
                    self._full = None
            else:
                self._busy = True
                waiter = _Waiter(item, parked=False)
                if self._gather and self._others:
                    full = self._full = _allocate_lock()
                    full.acquire()
        if waiter.gate is None:  # nobody was writing
            if full is None:
                self._lead(waiter)
            else:
                try:
                    full.acquire(timeout=min(2 * self._took, MAX_GATHER))
                finally:  # interrupted or not, the queue must move on
                    with self._lock:
                        self._full = None
                    self._lead(waiter)
        else:
            waiter.gate.acquire()
            if not waiter.done:  # handed the lead: write the next batch
                self._lead(None)
        return waiter.outcome()

    def _lead(self, own: _Waiter[T, R] | None) -> None:
        """Write ``own`` (if it is not queued) and the queued items as one batch, then
        hand the lead to the next in line."""
        with self._lock:
            room = self._max_batch - (own is not None)
            batch = self._queue[:room]
            del self._queue[:room]
        if own is not None:
            batch.insert(0, own)
        self._others = len(batch) - 1
        try:
            started = time.perf_counter()
            try:
                outcomes: Sequence[R | BaseException] = self._write([w.item for w in batch])
            except BaseException as exc:  # it belongs to the batch's callers
                outcomes = [exc] * len(batch)
            self._took = time.perf_counter() - started
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
                waiter.wake()
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].wake()  # not done: it leads the next batch
                else:
                    self._busy = False

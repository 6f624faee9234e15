"""Executions an engine is advancing right now, and the leases that protect them.

A running execution carries a lease (owner, expiry). Every checkpoint renews
it; for a step that runs longer than a third of the lease, a background
keeper renews it with a record-only checkpoint, so :meth:`Engine.recover` in
another process only takes over executions whose process really died.

A renewal that conflicts is how the keeper learns that a cancel was asked for
while a step runs: it adopts that record. Whoever adopts a record with a cancel
request (the keeper, or a parallel branch whose checkpoint conflicted) requests
the execution's :class:`~flowkit.services.cancellation.Cancellation`, which
cancels the async services in flight and answers
``flowkit.current().cancel_requested``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Any

import attrs

from ..abc import Clock, Store
from ..cursor import Cursor
from ..errors import ConflictError, FlowkitError
from ..records import Entry, Execution, Status
from ..services.cancellation import Cancellation
from .control import cancel_requested

__all__ = ["InFlight", "LeaseKeeper", "Leases", "Tracker"]

log = logging.getLogger("flowkit")


class InFlight:
    """The latest stored record of an execution being advanced, guarded by a lock.

    ``content_version`` is the version of the last write that changed more
    than the lease: a change computed from an older record is stale.

    It lives as long as a run of the execution in this process: once the last
    user leaves, it is ``released`` and refuses writes, so a parallel branch
    still running from that run cannot write into a later one (after a retry,
    say), which tracks its own record.
    """

    def __init__(self, record: Execution) -> None:
        self.record = record
        self.content_version = record.version
        self.lock = threading.RLock()
        self.users = 0
        self.released = False
        # Requested once the lease keeper sees a cancel request in the store.
        self.cancellation = Cancellation()
        # The outputs of the iterations of loops that started in this process, by
        # loop path: (the loop's start seq, {iteration: output}), so that a loop's
        # end need not read its entries back.
        self.child_outputs: dict[str, tuple[int, dict[int, Any]]] = {}
        # The typed cursor of the last record written here, and the JSON it wrote, so
        # the next step need not read the JSON again.
        self._cursor: tuple[dict[str, Any], Cursor] | None = None

    def cursor_of(self, record: Execution) -> Cursor:
        """The typed cursor of ``record`` (read once per record written here)."""
        known = self._cursor
        if known is not None and known[0] is record.cursor:
            return known[1]
        cursor = Cursor.of(record)
        self._cursor = (record.cursor, cursor)
        return cursor

    def remember_cursor(self, written: dict[str, Any], cursor: Cursor) -> None:
        """The cursor just written, as JSON and typed (lease renewals keep the same JSON)."""
        self._cursor = (written, cursor)

    def refresh(self, record: Execution) -> None:
        """Adopt a record read back from the store (after a conflict), unless this
        process wrote a newer one meanwhile (a late parallel branch reads the store
        while the execution goes on).

        A record with a cancel request requests the :attr:`cancellation`: whoever
        adopts it (a branch's checkpoint, the lease keeper, the driver) may be the
        only one here to see the request.
        """
        with self.lock:
            if record.version > self.record.version and not self.released:
                self.record = record
                self.content_version = record.version
                if cancel_requested(record):
                    self.cancellation.request()

    def write(
        self,
        store: Store,
        build: Callable[[Execution], Execution],
        entries: Sequence[Entry],
        base_version: int,
        changed: Collection[str] = (),
        consumed: Collection[int] = (),
    ) -> Execution:
        """Write a change computed from the record at ``base_version``, with its entries.

        ``build`` gets the latest record (which may differ from the base only
        by lease renewals, which never change ctx) and returns the new one;
        ``changed`` names the ctx values it sets and ``consumed`` the signals it
        consumes (see ``Store.checkpoint``).

        Raises:
            ConflictError: the record changed since ``base_version`` (besides
                lease renewals), here or in the store; or this run ended.
        """
        with self.lock:
            latest = self.record
            if self.released:
                raise ConflictError(f"execution '{latest.id}' is no longer advanced by this run")
            if base_version < self.content_version:
                raise ConflictError(
                    f"execution '{latest.id}' changed since this step started "
                    f"(version {base_version}, now {latest.version})"
                )
            record = build(latest)
            store.checkpoint(record, entries, latest.version, changed=changed, consumed=consumed)
            self.record = record
            self.content_version = record.version
            return record


@attrs.frozen(kw_only=True)
class Leases:
    """How an engine holds the executions it advances.

    Attributes:
        store: where leases are written.
        clock: the engine's clock.
        duration: how long a lease lasts without a checkpoint.
        owner: the engine's name in leases.
    """

    store: Store
    clock: Clock
    duration: timedelta
    owner: str


class Tracker:
    """Registers executions an engine advances, so the lease keeper can see them."""

    def __init__(self, leases: Leases) -> None:
        self._leases = leases
        self._lock = threading.Lock()
        self._items: dict[str, InFlight] = {}
        self._keeper: LeaseKeeper | None = None
        self._closed = False

    def enter(self, execution: Execution) -> InFlight:
        with self._lock:
            found = self._items.get(execution.id)
            if found is None or found.record.version < execution.version:
                found = InFlight(execution)
                self._items[execution.id] = found
            found.users += 1
            if self._keeper is None and not self._closed:
                self._keeper = LeaseKeeper(self._leases, self)
            return found

    def leave(self, item: InFlight) -> None:
        with self._lock:
            item.users -= 1
            if item.users > 0:
                return
            if self._items.get(item.record.id) is item:
                del self._items[item.record.id]
        with item.lock:
            item.released = True

    def items(self) -> list[InFlight]:
        with self._lock:
            return list(self._items.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._keeper is not None:
                self._keeper.stop()


class LeaseKeeper:
    """Renews the leases of executions whose current step runs for a long time."""

    def __init__(self, leases: Leases, tracker: Tracker) -> None:
        self._leases = leases
        self._tracker = tracker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flowkit-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        interval = max(self._leases.duration.total_seconds() / 3, 0.05)
        while not self._stop.wait(interval):
            for item in self._tracker.items():
                self._renew(item)

    def _renew(self, item: InFlight) -> None:
        leases = self._leases
        if not item.lock.acquire(blocking=False):
            return  # a checkpoint is being written, and it renews the lease
        try:
            record = item.record
            now = leases.clock.now()
            expires = record.lease_expires_at
            if record.status is not Status.RUNNING or expires is None:
                return
            if expires - now > leases.duration * (2 / 3):
                return
            renewed = attrs.evolve(
                record,
                version=record.version + 1,
                lease_owner=leases.owner,
                lease_expires_at=now + leases.duration,
            )
            try:
                leases.store.checkpoint(renewed, (), record.version, changed=())
            except ConflictError:
                self._notice_cancel(item)
                return
            except FlowkitError as exc:
                log.warning("cannot renew the lease of %s: %s", record.id, exc)
                return
            item.record = renewed  # content_version stays: only the lease changed
        finally:
            item.lock.release()

    def _notice_cancel(self, item: InFlight) -> None:
        """After a conflicting renewal: if a cancel was asked for, adopt that record
        (the step's own checkpoint then conflicts, and the engine ends the execution),
        which tells the calls in flight."""
        try:
            latest = self._leases.store.load(item.record.id)
        except FlowkitError as exc:
            log.warning("cannot read %s after a lease conflict: %s", item.record.id, exc)
            return
        if latest is None or latest.status is not Status.RUNNING or not cancel_requested(latest):
            return  # another process took it over: its step's checkpoint will conflict
        item.refresh(latest)  # which requests the cancellation

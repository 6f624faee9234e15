"""Retention: finished executions pruned from a store periodically (SPEC §17).

The ``retention`` setting (e.g. ``"30d"``) says how long completed, failed
and cancelled executions are kept; :class:`Retention` applies it from a
worker's maintenance loop, at most once per ``retention_interval``. The
store deletes in small batches (:meth:`flowkit.abc.Store.prune`), so other
executions keep checkpointing meanwhile. Running, waiting, halted and pending
executions are never pruned.

Imports the records, abc and config layers only.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from ..abc import Store
from ..config import Settings
from ..records import Status

__all__ = ["FINISHED", "Retention"]

log = logging.getLogger("flowkit")

#: The statuses of executions that may be pruned.
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class Retention:
    """Prunes finished executions last updated more than ``keep`` seconds ago, at most
    once per ``every`` seconds.

    Args:
        keep: how long finished executions are kept, in seconds.
        every: the least time between two prunes, in seconds.
    """

    def __init__(self, keep: float, every: float = 3600.0) -> None:
        self.keep = timedelta(seconds=keep)
        self.every = timedelta(seconds=every)
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Retention keep={self.keep} every={self.every}>"

    @classmethod
    def configured(cls, config: Settings) -> Retention | None:
        """The retention the settings ask for (``retention``, ``retention_interval``),
        or None when finished executions are kept forever."""
        if config.retention is None:
            return None
        return cls(config.retention, config.retention_interval)

    def apply(self, store: Store, now: datetime) -> int | None:
        """Prune the store if the last prune is ``every`` ago (or there was none).

        Returns:
            How many executions went, or None when it was not time yet.
        """
        with self._lock:
            if self._last is not None and now - self._last < self.every:
                return None
            self._last = now
        before = now - self.keep
        pruned = store.prune(before=before, statuses=FINISHED)
        if pruned:
            log.info(
                "pruned %d finished executions last updated before %s",
                pruned,
                before.isoformat(),
            )
        return pruned

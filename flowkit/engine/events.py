"""Events the engine emits while it runs executions (SPEC §6)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import attrs

from ..records import encode_json

__all__ = ["EVENT_NAMES", "Event", "EventBus"]

log = logging.getLogger("flowkit")

EVENT_NAMES = frozenset(
    {
        "workflow.started",
        "workflow.resumed",
        "workflow.completed",
        "workflow.halted",
        "workflow.failed",
        "workflow.retried",
        "workflow.cancelling",
        "workflow.cancelled",
        "workflow.compensating",
        "step.started",
        "step.completed",
        "step.failed",
        "step.halted",
        "step.waiting",
        "step.retrying",
        "step.compensated",
    }
)


@attrs.frozen(kw_only=True)
class Event:
    """Something that happened to an execution.

    Attributes:
        name: one of :data:`EVENT_NAMES`, e.g. ``step.completed``.
        execution_id: the execution.
        workflow_id: its workflow.
        step_id: the step (``loop:inner`` when nested), None for workflow events.
        timestamp: when it happened (UTC).
        payload: details as JSON data (output, error, attempt, duration…).
    """

    name: str
    execution_id: str
    workflow_id: str
    step_id: str | None
    timestamp: datetime
    payload: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON data."""
        return {
            "event": self.name,
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "step_id": self.step_id,
            "timestamp": self.timestamp.isoformat(),
            "payload": self.payload,
        }

    def to_sse(self) -> str:
        """The event as one Server-Sent Events message."""
        return f"event: {self.name}\ndata: {encode_json(self.to_dict())}\n\n"


Callback = Callable[[Event], object]


class EventBus:
    """Delivers events to subscribers; a failing subscriber is logged, never raised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[tuple[Callback, frozenset[str] | None], ...] = ()

    @property
    def active(self) -> bool:
        """Whether anyone listens (lets the engine skip building events)."""
        return bool(self._subscribers)

    def subscribe(
        self, callback: Callback, events: Iterable[str] | None = None
    ) -> Callable[[], None]:
        """Call ``callback`` for every event, or only for the ``events`` named.

        Returns:
            A function that unsubscribes.

        Raises:
            ValueError: an unknown event name (prefixes such as ``step.*`` are accepted).
        """
        names = None
        if events is not None:
            names = frozenset(_expand(events))
        entry = (callback, names)
        with self._lock:
            self._subscribers = (*self._subscribers, entry)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not entry)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every interested subscriber."""
        for callback, names in self._subscribers:
            if names is not None and event.name not in names:
                continue
            try:
                callback(event)
            except Exception:
                log.exception("flowkit event subscriber %r failed on %s", callback, event.name)


def _expand(events: Iterable[str]) -> Iterable[str]:
    for name in events:
        if name.endswith(".*"):
            prefix = name[:-1]
            matched = [known for known in EVENT_NAMES if known.startswith(prefix)]
            if not matched:
                raise ValueError(f"no events match {name!r}")
            yield from matched
        elif name in EVENT_NAMES:
            yield name
        else:
            raise ValueError(f"unknown event {name!r} (known: {', '.join(sorted(EVENT_NAMES))})")

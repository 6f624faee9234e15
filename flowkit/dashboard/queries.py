"""What the dashboard reads from the store: pages of executions, one execution, change marks.

Pages use the store's cursor pagination (``find(..., after=(updated_at, id))``);
the cursor a page hands out is that position as opaque URL-safe text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from datetime import datetime

import attrs

from ..abc import Store
from ..definitions import WorkflowDef
from ..engine import Engine
from ..errors import NotFoundError
from ..records import Action, Entry, Execution, Status

__all__ = [
    "TIMELINE_ROWS",
    "BadRequest",
    "ExecutionPage",
    "ExecutionView",
    "Filters",
    "decode_cursor",
    "encode_cursor",
    "find_page",
    "list_mark",
    "view_execution",
]


class BadRequest(ValueError):
    """A query parameter that cannot be used; the message says which and why."""


@attrs.frozen(kw_only=True)
class Filters:
    """What the executions list shows: a status, a workflow, an exact id (all optional)."""

    status: Status | None = None
    workflow_id: str | None = None
    execution_id: str | None = None

    @classmethod
    def parse(
        cls, status: str | None, workflow_id: str | None, execution_id: str | None
    ) -> Filters:
        """Filters from query parameters; empty ones are ignored.

        Raises:
            BadRequest: an unknown status.
        """
        if status:
            try:
                parsed: Status | None = Status(status)
            except ValueError:
                known = ", ".join(member.value for member in Status)
                raise BadRequest(f"unknown status '{status}' (use one of: {known})") from None
        else:
            parsed = None
        return cls(
            status=parsed, workflow_id=workflow_id or None, execution_id=execution_id or None
        )

    def matches(self, execution: Execution) -> bool:
        """Whether an execution passes the status and workflow filters."""
        return (self.status is None or execution.status is self.status) and (
            self.workflow_id is None or execution.workflow_id == self.workflow_id
        )


def encode_cursor(execution: Execution) -> str:
    """The cursor of the page that follows ``execution``."""
    text = f"{execution.updated_at.isoformat()}|{execution.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(updated_at, id)`` position a cursor stands for.

    Raises:
        BadRequest: it is not a cursor this dashboard handed out.
    """
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, sep, execution_id = text.partition("|")
        position = datetime.fromisoformat(when)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        position = None
    if position is None or not sep or position.tzinfo is None:
        raise BadRequest(f"cursor '{cursor}' is not one this dashboard handed out")
    return position, execution_id


@attrs.frozen(kw_only=True)
class ExecutionPage:
    """One page of the executions list; ``next`` is the cursor of the following one."""

    executions: Sequence[Execution]
    next: str | None


def find_page(store: Store, filters: Filters, *, limit: int, cursor: str | None) -> ExecutionPage:
    """A page of executions, most recently updated first.

    Raises:
        BadRequest: a bad cursor.
    """
    if filters.execution_id is not None:  # an exact id: at most one, never a next page
        found = store.load(filters.execution_id)
        shown = [found] if found is not None and filters.matches(found) else []
        return ExecutionPage(executions=shown, next=None)
    # One more than shown, to know whether a next page exists. The first page passes no
    # ``after``, so it works on any store, also one that cannot turn pages yet.
    workflow_id, status = filters.workflow_id, filters.status
    if cursor:
        after = decode_cursor(cursor)
        found_page = store.find(
            workflow_id=workflow_id, status=status, limit=limit + 1, after=after
        )
    else:
        found_page = store.find(workflow_id=workflow_id, status=status, limit=limit + 1)
    shown = found_page[:limit]
    more = len(found_page) > limit
    return ExecutionPage(executions=shown, next=encode_cursor(shown[-1]) if more else None)


def list_mark(executions: Sequence[Execution]) -> str:
    """A short mark that changes whenever a listed execution changes."""
    text = ",".join(f"{execution.id}:{execution.version}" for execution in executions)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


TIMELINE_ROWS = 500
"""How many entries an execution's page lists, the latest ones (the API returns all)."""


@attrs.frozen(kw_only=True)
class ExecutionView:
    """An execution with what its page shows.

    Attributes:
        execution: the record.
        entries: its log, in order.
        definition: its workflow, or None when this process does not know it.
        done: the top-level steps it completed.
    """

    execution: Execution
    entries: Sequence[Entry]
    definition: WorkflowDef | None
    done: frozenset[str]

    @property
    def timeline(self) -> Sequence[Entry]:
        """The entries the page lists: the latest :data:`TIMELINE_ROWS`."""
        return self.entries[-TIMELINE_ROWS:]

    @property
    def approvers(self) -> list[str]:
        """Who may decide the approval it is halted at (empty: anyone signed in)."""
        halt = self.execution.halt_data or {}
        approvers = halt.get("approvers") if self.execution.status is Status.HALTED else None
        return [str(name) for name in approvers] if isinstance(approvers, list) else []


_DONE = frozenset({Action.COMPLETED, Action.RESUMED})


def view_execution(engine: Engine, execution_id: str) -> ExecutionView:
    """An execution, its entries and its definition.

    Raises:
        NotFoundError: there is no such execution.
    """
    execution = engine.load(execution_id)
    entries = engine.store.entries(execution_id)
    try:
        definition: WorkflowDef | None = engine.definition_of(execution)
    except NotFoundError:
        definition = None
    done = frozenset(  # nested steps (loop:inner) are inside their top-level step's box
        entry.step_id for entry in entries if entry.action in _DONE and ":" not in entry.step_id
    )
    return ExecutionView(execution=execution, entries=entries, definition=definition, done=done)

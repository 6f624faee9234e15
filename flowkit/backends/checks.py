"""Checks and conversions every store adapter makes, kept in one place.

Adapters call these before they touch their database, so that every store
refuses the same bad arguments with the same errors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

import attrs

from ..errors import ExecutionError, NotFoundError
from ..records import Entry, Execution, Schedule, Signal, Status, encode_json

__all__ = [
    "PRUNABLE",
    "check_after",
    "check_checkpoint",
    "check_limit",
    "check_prunable",
    "check_status",
    "signal_refused",
    "utc",
    "utc_entry",
    "utc_execution",
    "utc_schedule",
    "utc_signal",
]

#: The statuses :meth:`flowkit.Store.prune` may delete.
PRUNABLE = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


def utc(value: datetime, field: str) -> datetime:
    """``value`` in UTC; naive datetimes are refused."""
    if value.tzinfo is UTC:
        return value
    if value.utcoffset() is None:
        raise ValueError(
            f"{field} is a naive datetime ({value.isoformat()}): stores keep timezone-aware "
            "times; use e.g. datetime.now(UTC)"
        )
    return value.astimezone(UTC)


def utc_execution(execution: Execution) -> Execution:
    """The execution with every time in UTC (the same object when they already are).

    Raises:
        ValueError: a time is naive.
    """
    wake_at, lease = execution.wake_at, execution.lease_expires_at
    if (
        execution.created_at.tzinfo is UTC
        and execution.updated_at.tzinfo is UTC
        and (wake_at is None or wake_at.tzinfo is UTC)
        and (lease is None or lease.tzinfo is UTC)
    ):
        return execution
    return attrs.evolve(
        execution,
        created_at=utc(execution.created_at, "created_at"),
        updated_at=utc(execution.updated_at, "updated_at"),
        wake_at=None if wake_at is None else utc(wake_at, "wake_at"),
        lease_expires_at=None if lease is None else utc(lease, "lease_expires_at"),
    )


def utc_entry(entry: Entry) -> Entry:
    """The entry with its timestamp in UTC (the same object when it already is).

    Raises:
        ValueError: the timestamp is naive.
    """
    if entry.timestamp.tzinfo is UTC:
        return entry
    return attrs.evolve(entry, timestamp=utc(entry.timestamp, f"entry {entry.id!r} timestamp"))


def _where(execution: Execution) -> str:
    """Where a checkpoint's arguments went wrong, for messages (made only then)."""
    return f"checkpoint of execution {execution.id!r}"


def check_checkpoint(
    execution: Execution,
    entries: Sequence[Entry],
    expected_version: int,
    changed: Collection[str] | None = None,
) -> None:
    """The checks on a checkpoint's arguments alone, made before the store is touched.

    Raises:
        ValueError: ``execution.version`` is not ``expected_version + 1``; a
            name in ``changed`` is not in ``execution.ctx``; an entry belongs
            to another execution, or its id is not ``"<execution_id>:<seq>"``;
            the entries' seqs are not consecutive from 1 or more;
            ``execution.seq`` is not the seq of the last entry.
    """
    if execution.version != expected_version + 1:
        raise ValueError(
            f"{_where(execution)}: execution.version must be expected_version + 1 = "
            f"{expected_version + 1}, got {execution.version}"
        )
    if changed:
        missing = [name for name in changed if name not in execution.ctx]
        if missing:
            raise ValueError(
                f"{_where(execution)}: changed names {missing[0]!r}, which is not in ctx "
                "(a checkpoint that removes ctx keys passes changed=None)"
            )
    if not entries:
        return
    first = entries[0].seq
    if first < 1:
        raise ValueError(f"{_where(execution)}: entry seqs start at 1, got {first}")
    for offset, entry in enumerate(entries):
        if entry.execution_id != execution.id:
            raise ValueError(
                f"{_where(execution)}: entry {entry.id!r} belongs to execution "
                f"{entry.execution_id!r}"
            )
        if entry.seq != first + offset:
            raise ValueError(
                f"{_where(execution)}: entry seqs must be consecutive, got "
                f"{', '.join(str(e.seq) for e in entries)}"
            )
        if entry.id != f"{execution.id}:{entry.seq}":
            raise ValueError(
                f"{_where(execution)}: entry id must be '<execution_id>:<seq>' = "
                f"{execution.id + ':' + str(entry.seq)!r}, got {entry.id!r}"
            )
    if execution.seq != entries[-1].seq:
        raise ValueError(
            f"{_where(execution)}: execution.seq must be the seq of its last entry "
            f"({entries[-1].seq}), got {execution.seq}"
        )


def check_limit(limit: int) -> None:
    """Refuse a negative query limit.

    Raises:
        ValueError: ``limit`` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")


def check_status(status: Status | str | None) -> Status | None:
    """A query's status filter as a :class:`Status`.

    Raises:
        ValueError: the status is unknown.
    """
    if status is None or isinstance(status, Status):
        return status
    try:
        return Status(status)
    except ValueError:
        known = ", ".join(member.value for member in Status)
        raise ValueError(f"unknown status {status!r} (expected one of: {known})") from None


def check_after(after: tuple[datetime, str] | None) -> tuple[datetime, str] | None:
    """A ``find`` page position with its time in UTC.

    Raises:
        ValueError: the time is naive.
    """
    if after is None:
        return None
    updated_at, execution_id = after
    return utc(updated_at, "after"), execution_id


def check_prunable(
    before: datetime, statuses: Iterable[Status | str]
) -> tuple[datetime, list[Status]]:
    """``prune``'s arguments: ``before`` in UTC and the statuses, each finished.

    Raises:
        ValueError: ``before`` is naive, or a status is unknown or not finished.
    """
    wanted: list[Status] = []
    for status in statuses:
        checked = check_status(status)
        assert checked is not None
        if checked not in PRUNABLE:
            raise ValueError(
                f"prune deletes only finished executions (completed, failed, cancelled), "
                f"not {checked.value!r} ones: those are still in use"
            )
        if checked not in wanted:
            wanted.append(checked)
    return utc(before, "before"), wanted


def utc_signal(signal: Signal) -> tuple[Signal, str]:
    """The signal with ``sent_at`` in UTC, and its payload as JSON text.

    Raises:
        ValueError: ``sent_at`` is naive, or the payload holds NaN or an infinity.
        TypeError: the payload is not JSON data.
    """
    return (
        attrs.evolve(signal, sent_at=utc(signal.sent_at, "sent_at"), consumed=None),
        encode_json(signal.payload),
    )


def signal_refused(signal: Signal, status: Status | str | None) -> Exception:
    """The error for a signal sent to a missing (``status`` None) or finished execution."""
    if status is None:
        return NotFoundError(
            f"cannot send signal {signal.name!r}: no execution {signal.execution_id!r}"
        )
    return ExecutionError(
        f"cannot send signal {signal.name!r} to execution {signal.execution_id!r}: it is "
        f"{Status(status).value}, and a finished execution takes no signals"
    )


def utc_schedule(schedule: Schedule) -> Schedule:
    """The schedule with its times in UTC.

    Raises:
        ValueError: a time is naive.
    """
    last = schedule.last_slot
    return attrs.evolve(
        schedule,
        created_at=utc(schedule.created_at, "created_at"),
        last_slot=None if last is None else utc(last, "last_slot"),
    )

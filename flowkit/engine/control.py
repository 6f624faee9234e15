"""Operating on executions from outside their run: retry a failed one, cancel one (SPEC §15).

Each operation is one version-checked checkpoint built here from the stored
record; :class:`~flowkit.engine.engine.Engine` loads, checks and writes it and
hands the execution to its driver.

A failed execution keeps the position of the step that failed (its top-level
step, the frames of the loops and parallel steps around it, and its visit),
so a retry runs that step again where it was: iterations and branches that
completed keep their results, and the step keeps its idempotency key and its
sub-workflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from ..cursor import Cursor, Frame, ParallelFrame
from ..errors import ExecutionError
from ..records import Action, Entry, Execution, Status

__all__ = ["cancel_requested", "check_cancellable", "check_retryable", "child_of", "retried"]


def check_retryable(execution: Execution) -> None:
    """Refuse anything but a failed execution.

    Raises:
        ExecutionError: it is not failed.
    """
    if execution.status is not Status.FAILED:
        raise ExecutionError(
            f"execution '{execution.id}' is {execution.status.value}; only a failed "
            "execution can be retried"
        )


def check_cancellable(execution: Execution) -> None:
    """Refuse a finished execution.

    Raises:
        ExecutionError: it completed, failed or was cancelled.
    """
    if execution.status.finished:
        raise ExecutionError(
            f"execution '{execution.id}' is {execution.status.value}; only an execution "
            "that has not finished can be cancelled"
        )


def cancel_requested(execution: Execution) -> bool:
    """Whether a cancel was asked for while the execution ran."""
    return Cursor.of(execution).cancel is not None


def child_of(execution: Execution) -> str | None:
    """The id of the sub-workflow the step at the execution's position runs (or ran),
    if it is a ``workflow`` step; the execution may not exist."""
    cursor = Cursor.of(execution)
    visit = cursor.visit
    if visit is None and execution.status is Status.RUNNING:
        visit = execution.seq + 1  # the step under way started after the last entry
    return None if visit is None else f"{execution.id}.{visit}"


def retried(
    execution: Execution,
    last: Entry | None,
    *,
    now: datetime,
    lease: timedelta,
    definition_hash: str | None,
    workflow_version: str,
) -> tuple[Execution, Entry]:
    """The record and the ``retried`` entry that take a failed execution up again.

    The execution is running again at the step that failed, queued for any
    worker (no lease owner), with a fresh set of attempts for that step.
    Parallel steps around it forget the branches that failed, so that those
    run again and the others keep their results, and start a new epoch, so
    that a branch still on its way from the failed run is dropped.

    Args:
        execution: the failed execution.
        last: its last entry (the failure), which names the step.
        now: the time of the retry.
        lease: how long the queued execution waits for a worker before recovery.
        definition_hash: the definition it runs from now on.
        workflow_version: that definition's version.
    """
    cursor = Cursor.of(execution)
    position = attrs.evolve(
        cursor,
        frames=tuple(_without_failed_branches(frame) for frame in cursor.frames),
        attempt=None,
        recoveries=0,
    )
    seq = execution.seq + 1
    entry = Entry(
        id=f"{execution.id}:{seq}",
        execution_id=execution.id,
        seq=seq,
        step_id=last.step_id if last is not None else execution.current_step or "",
        step_type=last.step_type if last is not None else "unknown",
        action=Action.RETRIED,
        iteration=last.iteration if last is not None else None,
        input={"retry_of": execution.error},
        timestamp=now,
    )
    record = attrs.evolve(
        execution,
        status=Status.RUNNING,
        cursor=position.to_json(),
        error=None,
        version=execution.version + 1,
        seq=seq,
        updated_at=now,
        wake_at=None,
        lease_owner=None,
        lease_expires_at=now + lease,
        definition_hash=definition_hash,
        workflow_version=workflow_version,
    )
    return record, entry


def _without_failed_branches(frame: Frame) -> Frame:
    if not isinstance(frame, ParallelFrame):
        return frame
    done = {branch: result for branch, result in frame.done.items() if result.ok}
    attempts = {branch: n for branch, n in frame.attempts.items() if branch in done}
    return attrs.evolve(frame, done=done, attempts=attempts, joined=None, epoch=frame.epoch + 1)

"""What stores keep: executions and their audit-log entries (SPEC §3)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

__all__ = ["Action", "Entry", "Execution", "Status"]


class Status(enum.StrEnum):
    """The status of an execution."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    HALTED = "halted"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Completed or failed: the execution can never run again."""
        return self in (Status.COMPLETED, Status.FAILED)


class Action(enum.StrEnum):
    """What an entry records about a step."""

    COMPLETED = "completed"
    HALTED = "halted"
    FAILED = "failed"
    RETRIED = "retried"
    RESUMED = "resumed"


@attrs.frozen(kw_only=True)
class Execution:
    """One run of a workflow, as a store keeps it.

    Every write bumps ``version``; a store accepts a checkpoint only when the
    version it holds is the one the writer read (optimistic concurrency).

    Attributes:
        id: the execution id.
        workflow_id: the workflow's id.
        workflow_version: the workflow's ``version``.
        status: where the execution is in its life.
        input: the input it was started with (defaults applied).
        ctx: the workflow variables (JSON data).
        current_step: the top-level step to run next (or halted at).
        cursor: the position inside loops, parallel steps and sub-workflows,
            plus retry bookkeeping (JSON data; empty at the top level).
        result: the output, once completed.
        recover_to: the step a resume continues at.
        halt_data: what a halt or approval asked for.
        error: ``"<ExceptionType>: <message>"`` once failed.
        parent_id: the parent execution, for sub-workflows.
        version: bumped by every write.
        seq: the ``seq`` of the last entry written (entries are numbered 1, 2, 3…).
        created_at: when the execution was created (UTC).
        updated_at: when it was last written (UTC).
        wake_at: when a timer (an approval timeout) fires, if any.
        definition_hash: a hash of the definition it was started with.
        lease_owner: the process advancing it while running.
        lease_expires_at: until when that process holds it.
    """

    id: str
    workflow_id: str
    workflow_version: str = "1.0"
    status: Status = Status.PENDING
    input: dict[str, Any] = attrs.field(factory=dict)
    ctx: dict[str, Any] = attrs.field(factory=dict)
    current_step: str | None = None
    cursor: dict[str, Any] = attrs.field(factory=dict)
    result: Any = None
    recover_to: str | None = None
    halt_data: dict[str, Any] | None = None
    error: str | None = None
    parent_id: str | None = None
    version: int = 1
    seq: int = 0
    created_at: datetime
    updated_at: datetime
    wake_at: datetime | None = None
    definition_hash: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Entry:
    """One line of an execution's audit log.

    Attributes:
        id: ``"<execution_id>:<seq>"``.
        execution_id: the execution it belongs to.
        seq: 1, 2, 3… per execution, in the order written.
        step_id: the step (``loop_id:inner_id`` for nested steps).
        step_type: the step's type.
        action: completed, halted, failed, retried or resumed.
        attempt: 1 for the first attempt, 2 for the first retry…
        duration_ms: how long the step ran.
        input: the resolved input of the step, when it has one.
        output: what the step produced.
        error: ``"<ExceptionType>: <message>"`` for failed and retried entries.
        timestamp: when the entry was written (UTC).
        iteration: the index of the innermost enclosing loop's iteration, for
            steps inside loop bodies; None elsewhere.
    """

    id: str
    execution_id: str
    seq: int
    step_id: str
    step_type: str
    action: Action
    attempt: int = 1
    duration_ms: float = 0.0
    input: Any = None
    output: Any = None
    error: str | None = None
    timestamp: datetime
    iteration: int | None = None

"""What the engine gives back: a :class:`Result` to callers, an :class:`Advance` to drivers."""

from __future__ import annotations

import reprlib
from typing import Any

import attrs

from ..records import Execution, Status

__all__ = ["Advance", "FanOut", "HaltInfo", "Result", "Sweep"]

# A repr shows the start and the end of a long error, never all of it.
_brief = reprlib.Repr()
_brief.maxstring = 80


@attrs.frozen(kw_only=True)
class HaltInfo:
    """Why an execution halted and where a resume continues.

    Attributes:
        data: the halt data (``reason`` or ``prompt``, ``context``, ``approvers``…).
        prompt: the approval prompt or the halt reason, if any.
        resume_step: the step a resume continues at (``recover_to``).
    """

    data: dict[str, Any]
    prompt: str | None
    resume_step: str | None


@attrs.frozen(kw_only=True)
class Result:
    """The state of an execution when ``run``/``resume`` returned.

    Attributes:
        execution_id: the execution.
        workflow_id: its workflow.
        status: completed, halted or failed (running only for ``start`` handles
            read before the end).
        output: the workflow's output once completed.
        error: ``"<ExceptionType>: <message>"`` once failed.
        halt: why it halted, when halted.
    """

    execution_id: str
    workflow_id: str
    status: Status
    output: Any = None
    error: str | None = None
    halt: HaltInfo | None = None

    def __repr__(self) -> str:
        text = f"<Result {self.status} execution_id={self.execution_id!r}"
        text += f" workflow_id={self.workflow_id!r}"
        if self.halt is not None and self.halt.resume_step is not None:
            text += f" resume_step={self.halt.resume_step!r}"
        if self.error is not None:
            text += f" error={_brief.repr(self.error)}"
        return text + ">"

    @property
    def completed(self) -> bool:
        """Whether the execution completed."""
        return self.status is Status.COMPLETED

    @property
    def halted(self) -> bool:
        """Whether the execution halted (it waits for a resume)."""
        return self.status is Status.HALTED

    @property
    def failed(self) -> bool:
        """Whether the execution failed."""
        return self.status is Status.FAILED

    @property
    def waiting(self) -> bool:
        """Whether the execution waits for time or a signal (no person is needed)."""
        return self.status is Status.WAITING

    @property
    def cancelled(self) -> bool:
        """Whether the execution was cancelled."""
        return self.status is Status.CANCELLED

    @classmethod
    def of(cls, execution: Execution) -> Result:
        """The result an execution record shows."""
        halt = None
        if execution.status is Status.HALTED:
            data = execution.halt_data or {}
            prompt = data.get("prompt") or data.get("reason")
            halt = HaltInfo(
                data=data,
                prompt=prompt if isinstance(prompt, str) else None,
                resume_step=execution.recover_to,
            )
        return cls(
            execution_id=execution.id,
            workflow_id=execution.workflow_id,
            status=execution.status,
            output=execution.result,
            error=execution.error,
            halt=halt,
        )


class Sweep(list[Result]):
    """What :meth:`Engine.recover` or :meth:`Engine.wake_due` did.

    It is the list of the results of the executions it moved on, in order;
    ``stuck`` maps each execution it found but could not move on to the reason
    (its workflow is not known here, its step raised, the store failed…).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stuck: dict[str, str] = {}


@attrs.frozen(kw_only=True)
class FanOut:
    """Branches of a parallel step to run now.

    Run each with ``engine.run_branch(execution_id, fanout.path, branch, fanout.visit,
    epoch=fanout.epoch)``.

    Attributes:
        path: the path of the parallel step (``each:fetch`` inside a loop).
        visit: the parallel step's visit; a late branch of an earlier visit is dropped.
        branches: the ids of the branches to run.
        epoch: the step's epoch (see :class:`~flowkit.cursor.ParallelFrame`); a
            late branch from before a retry of the execution is dropped.
    """

    path: str
    visit: int
    branches: tuple[str, ...]
    epoch: int = 0


@attrs.frozen(kw_only=True)
class Advance:
    """What one call of :meth:`Engine.step` (or ``run_branch``) did, and what comes next.

    Attributes:
        execution: the execution as stored after the step.
        delay: wait this many seconds before the next step (a retry's backoff).
        fanout: parallel branches to run now, if any.
        joined: a branch run was recorded and the parallel step joined: its
            next step may run.
        dropped: nothing was done (the execution was not where the caller
            expected, e.g. a duplicate message).
    """

    execution: Execution
    delay: float = 0.0
    fanout: FanOut | None = None
    joined: bool = False
    dropped: bool = False

    @property
    def branches(self) -> tuple[str, ...]:
        """The ids of the branches to run now (none without a fan-out)."""
        return () if self.fanout is None else self.fanout.branches

    @property
    def running(self) -> bool:
        """Whether the execution needs more steps."""
        return self.execution.status is Status.RUNNING

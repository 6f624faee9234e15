"""What ``run``, ``resume`` and ``start`` give back."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import attrs

from .records import Execution, Status

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["Advance", "HaltInfo", "Handle", "Result"]


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


@attrs.frozen(kw_only=True)
class Advance:
    """What one call of :meth:`Engine.step` did and what should happen next.

    Attributes:
        execution: the execution as stored after the step.
        delay: wait this many seconds before the next step (a retry's backoff).
        branches: parallel branches to run now (fan-out), by id.
        dropped: nothing was done (the execution was not where the caller
            expected, e.g. a duplicate message).
    """

    execution: Execution
    delay: float = 0.0
    branches: tuple[str, ...] = ()
    dropped: bool = False

    @property
    def running(self) -> bool:
        """Whether the execution needs more steps."""
        return self.execution.status is Status.RUNNING


class Handle:
    """A started execution: ask its status, or wait for its result."""

    def __init__(self, engine: Engine, execution_id: str, future: Future[Any] | None) -> None:
        self.engine = engine
        self.execution_id = execution_id
        self._future = future

    def status(self) -> Status:
        """The execution's current status."""
        return self.engine.load(self.execution_id).status

    def result(self, timeout: float | None = None) -> Result:
        """Wait until the execution completes, fails or halts; return its result.

        Raises:
            TimeoutError: it was still running after ``timeout`` seconds.
        """
        if self._future is not None:
            try:
                self._future.result(timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"execution '{self.execution_id}' is still running after {timeout}s"
                ) from None
            return Result.of(self.engine.load(self.execution_id))
        return self.engine.wait(self.execution_id, timeout)

"""The ``workflow`` step: a registered workflow run as a child execution.

The child's id is derived from the parent's id and the position of the step's
visit, so a parent re-running the step after a crash finds the same child
instead of starting another. A halting child halts the parent; resuming the
parent resumes the child.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from ._definitions import WorkflowConfig
from ._expressions import resolve
from ._steps import Decision, Outcome, StepExecutor, StepRun, register_executor
from .errors import ConflictError, ExecutionError
from .records import Action

__all__ = ["SubWorkflow"]


def child_id(run: StepRun) -> str:
    """The id of the child execution for this visit of the step.

    Parallel branches share their visit, so a branch's id is added to it.
    """
    if run.branch is not None:
        return f"{run.execution.id}.{run.visit}.{run.branch}"
    return f"{run.execution.id}.{run.visit}"


class SubWorkflow(StepExecutor):
    """Runs, resumes and follows child executions."""

    def run(self, run: StepRun) -> Outcome:
        config: WorkflowConfig = run.step.config
        engine = run.engine
        child = child_id(run)
        if engine.store.load(child) is None:
            wf = engine.workflows.get(config.workflow_id)
            data = resolve(config.input, run.scope)
            # An earlier attempt may have created it, then crashed before its checkpoint.
            with contextlib.suppress(ConflictError):
                engine.create(wf, data, execution_id=child, parent_id=run.execution.id)
        return self._follow(run, child)

    def check_resume(self, run: StepRun, decision: Decision) -> None:
        run.engine.check_resume(child_id(run), decision)

    def resume(self, run: StepRun, decision: Decision) -> Outcome:
        child = child_id(run)
        if run.engine.load(child).status.value == "halted":
            run.engine.resume_step(child, decision)
        return self._follow(run, child)

    def _follow(self, run: StepRun, child: str) -> Outcome:
        config: WorkflowConfig = run.step.config
        limit = run.remaining(config.timeout)
        deadline = None if limit is None else time.monotonic() + limit
        result = run.engine.drive(child, deadline=deadline, notify=False)
        if result.completed:
            updates = {config.output: result.output} if config.output else {}
            return Outcome(target=run.step.next, updates=updates, output=result.output)
        if result.halted:
            assert result.halt is not None
            data: dict[str, Any] = {
                **result.halt.data,
                "child_id": child,
                "child_workflow": config.workflow_id,
            }
            return Outcome(stay=True, halt=data, output=data, action=Action.HALTED)
        if deadline is not None and time.monotonic() >= deadline:
            raise ExecutionError(f"Step '{run.path}' timed out after {limit:g}s")
        raise ExecutionError(
            f"sub-workflow '{config.workflow_id}' (execution '{child}') failed: {result.error}"
        )


register_executor("workflow", SubWorkflow())

"""``workflow``: runs a registered workflow as a child execution (a sub-workflow).

The child's id is derived from the parent's id and the position of the step's
visit (:attr:`Runtime.child_id`), so a parent re-running the step after a crash
finds the same child instead of starting another. A halting child halts the
parent; resuming the parent resumes the child.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import attrs

from ..abc import IMPLICIT, Builder, Decision, Outcome, Runtime, StepType, register_step_type
from ..definitions import EXPR, OUTPUT, StepDef, register
from ..definitions.fields import SECONDS, Duration, duration, non_empty, optional_non_empty
from ..errors import ExecutionError
from ..frozen import freeze
from ..records import Action, Status

__all__ = ["SubWorkflow", "WorkflowConfig", "subworkflow"]


@attrs.frozen(kw_only=True)
class WorkflowConfig:
    """``workflow``: runs a registered workflow as a child execution."""

    workflow_id: str = attrs.field(validator=non_empty)
    input: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    output: str | None = attrs.field(
        default=None, validator=optional_non_empty, metadata={OUTPUT: True}
    )
    timeout: Annotated[float | None, SECONDS] = duration(default=None, positive=True)


def subworkflow(
    graph: Builder,
    id: str,
    *,
    workflow: Any,
    input: Any = None,
    output: str | None = None,
    timeout: Duration | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``workflow`` step running another workflow as a child execution.

    ``workflow`` is an id, or a Python ``Workflow`` or :class:`WorkflowDef`,
    which is then registered so that the engine finds it by id.
    """
    if not isinstance(workflow, str):
        workflow = register(workflow).id
    config = graph.config(
        WorkflowConfig, id, workflow_id=workflow, input=input, output=output, timeout=timeout
    )
    return graph.add_step(id, "workflow", config, next, on_error)


class SubWorkflow(StepType):
    name = "workflow"
    config = WorkflowConfig
    shape = "subroutine"
    dsl_name = "subworkflow"
    build = staticmethod(subworkflow)

    def run(self, run: Runtime) -> Outcome:
        config: WorkflowConfig = run.step.config
        child = run.start_child(config.workflow_id, config.input)
        return self._follow(run, child)

    def check_resume(self, run: Runtime, decision: Decision) -> None:
        run.check_resume_child(run.child_id, decision)

    def resume(self, run: Runtime, decision: Decision) -> Outcome:
        run.resume_child(run.child_id, decision)
        return self._follow(run, run.child_id)

    def _follow(self, run: Runtime, child: str) -> Outcome:
        config: WorkflowConfig = run.step.config
        limit = run.remaining(config.timeout)
        deadline = None if limit is None else time.monotonic() + limit
        execution = run.follow_child(child, limit)
        if execution.status is Status.COMPLETED:
            updates = {config.output: execution.result} if config.output else {}
            return Outcome(target=run.step.next, updates=updates, output=execution.result)
        if execution.status in (Status.HALTED, Status.WAITING):
            data: dict[str, Any] = {
                **(execution.halt_data or {}),
                "child_id": child,
                "child_workflow": config.workflow_id,
            }
            if execution.status is Status.WAITING:  # it goes on by itself, and this with it
                return Outcome(stay=True, wait=data, output=data, action=Action.WAITING)
            return Outcome(stay=True, halt=data, output=data, action=Action.HALTED)
        if deadline is not None and time.monotonic() >= deadline:
            raise ExecutionError(f"Step '{run.path}' timed out after {limit:g}s")
        raise ExecutionError(
            f"sub-workflow '{config.workflow_id}' (execution '{child}') "
            f"{execution.status.value}: {execution.error}"
        )


register_step_type(SubWorkflow())

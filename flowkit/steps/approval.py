"""``approval``: halts until someone approves or rejects; optionally times out.

The decision comes from the resume call (``approved=``, ``by=``), never from
ctx, so a stale ctx key cannot approve anything. When ``approvers`` is set,
only they may decide. After ``timeout`` the execution moves to ``on_timeout``
(or fails) without anyone resuming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any

import attrs

from ..abc import IMPLICIT, Builder, Decision, Outcome, Runtime, StepType, register_step_type
from ..definitions import EXPR, StepDef
from ..definitions.fields import (
    SECONDS,
    Duration,
    duration,
    names,
    non_empty,
    optional_text,
    target,
)
from ..errors import ExecutionError
from ..frozen import freeze
from ..records import Action

__all__ = ["Approval", "ApprovalConfig", "approval"]


@attrs.frozen(kw_only=True)
class ApprovalConfig:
    """``approval``: halts until someone approves or rejects."""

    prompt: str | None = attrs.field(default=None, validator=optional_text, metadata={EXPR: True})
    context: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    approvers: tuple[str, ...] = attrs.field(
        default=(), converter=names, validator=attrs.validators.deep_iterable(non_empty)
    )
    on_reject: str | None = target()
    timeout: Annotated[float | None, SECONDS] = duration(default=None, positive=True)
    on_timeout: str | None = target()


def approval(
    graph: Builder,
    id: str,
    *,
    prompt: str | None = None,
    context: Any = None,
    approvers: Sequence[str] = (),
    on_reject: str | None = None,
    timeout: Duration | None = None,
    on_timeout: str | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """An ``approval`` step: halt until someone approves or rejects."""
    config = graph.config(
        ApprovalConfig,
        id,
        prompt=prompt,
        context=context,
        approvers=tuple(approvers),
        on_reject=on_reject,
        timeout=timeout,
        on_timeout=on_timeout,
    )
    return graph.add_step(id, "approval", config, next, on_error)


class Approval(StepType):
    name = "approval"
    config = ApprovalConfig
    in_parallel = False
    halts = True
    edge_sets = MappingProxyType({"on_reject": ("response",)})
    shape = "wait"
    build = staticmethod(approval)

    def run(self, run: Runtime) -> Outcome:
        config: ApprovalConfig = run.step.config
        now = run.now()
        data: dict[str, Any] = {
            "prompt": run.resolve(config.prompt),
            "context": run.resolve(config.context),
            "approvers": list(config.approvers),
            "halted_at": now.isoformat(),
        }
        if config.timeout is not None:
            data["expires_at"] = (now + timedelta(seconds=config.timeout)).isoformat()
        return Outcome(
            stay=True,
            halt=data,
            output=data,
            action=Action.HALTED,
            wake_at_seconds=config.timeout,
        )

    def check_resume(self, run: Runtime, decision: Decision) -> None:
        config: ApprovalConfig = run.step.config
        if decision.approved is None:
            raise ExecutionError(
                f"approval '{run.path}' of execution '{run.execution_id}' needs a decision: "
                "resume with approved=True or approved=False (CLI: --approve or --reject)"
            )
        if config.approvers and decision.by not in config.approvers:
            who = f"'{decision.by}'" if decision.by else "an anonymous caller"
            raise ExecutionError(
                f"approval '{run.path}' of execution '{run.execution_id}' can only be decided "
                f"by {', '.join(config.approvers)}; {who} is not one of them (pass by=<approver>)"
            )

    def resume(self, run: Runtime, decision: Decision) -> Outcome:
        config: ApprovalConfig = run.step.config
        output = {"approved": decision.approved, "by": decision.by, "response": decision.response}
        updates = {"response": decision.response}
        if decision.approved:
            return Outcome(
                target=run.step.next, output=output, updates=updates, action=Action.RESUMED
            )
        if config.on_reject is not None:
            return Outcome(
                target=config.on_reject, output=output, updates=updates, action=Action.RESUMED
            )
        by = f" by {decision.by}" if decision.by else ""
        raise ExecutionError(f"approval '{run.path}' was rejected{by}")

    def timeout(self, run: Runtime) -> Outcome:
        config: ApprovalConfig = run.step.config
        if config.on_timeout is not None:
            return Outcome(
                target=config.on_timeout, output={"timed_out": True}, action=Action.RESUMED
            )
        raise ExecutionError(
            f"approval '{run.path}' timed out after {config.timeout:g}s with no decision"
        )


register_step_type(Approval())

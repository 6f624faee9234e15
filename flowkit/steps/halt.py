"""``halt``: stops the execution (status ``halted``) until someone resumes it.

The halt data is ``{reason, halted_at, **data}``; a resume continues at
``resume_step``, else at ``next``, with its response in ctx ``response``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..abc import IMPLICIT, Builder, Decision, Outcome, Runtime, StepType, register_step_type
from ..definitions import EXPR, StepDef
from ..definitions.fields import frozen_mapping, optional_text, target
from ..frozen import FrozenDict
from ..records import Action

__all__ = ["Halt", "HaltConfig", "halt"]


@attrs.frozen(kw_only=True)
class HaltConfig:
    """``halt``: stops with status halted until the execution is resumed."""

    reason: str | None = attrs.field(default=None, validator=optional_text, metadata={EXPR: True})
    data: FrozenDict[str, Any] = attrs.field(
        factory=FrozenDict, converter=frozen_mapping, metadata={EXPR: True}
    )
    resume_step: str | None = target()


def halt(
    graph: Builder,
    id: str,
    *,
    reason: str | None = None,
    data: Mapping[str, Any] | None = None,
    resume_step: str | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``halt`` step: stop until the execution is resumed."""
    config = graph.config(HaltConfig, id, reason=reason, data=data or {}, resume_step=resume_step)
    return graph.add_step(id, "halt", config, next, on_error)


class Halt(StepType):
    name = "halt"
    config = HaltConfig
    in_parallel = False
    halts = True
    shape = "stop"
    build = staticmethod(halt)

    def resumes_at(self, step: StepDef) -> str | None:
        config: HaltConfig = step.config
        return config.resume_step or step.next

    def run(self, run: Runtime) -> Outcome:
        config: HaltConfig = run.step.config
        data = {
            "reason": run.resolve(config.reason),
            "halted_at": run.now().isoformat(),
            **run.resolve(config.data),
        }
        return Outcome(stay=True, halt=data, output=data, action=Action.HALTED)

    def resume(self, run: Runtime, decision: Decision) -> Outcome:
        config: HaltConfig = run.step.config
        return Outcome(
            target=config.resume_step or run.step.next,
            output=decision.response,
            updates={"response": decision.response},
            action=Action.RESUMED,
        )


register_step_type(Halt())

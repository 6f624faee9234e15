"""``start``: the entry step. The input was checked when the execution was created.

``$input`` reads the input from the execution record, so it is not copied
into ctx (and never rewritten by a checkpoint).
"""

from __future__ import annotations

from typing import Any

import attrs

from ..abc import IMPLICIT, Builder, Outcome, Runtime, StepType, register_step_type
from ..definitions import StepDef

__all__ = ["Start", "StartConfig", "start"]


@attrs.frozen(kw_only=True)
class StartConfig:
    """``start``: the entry step; ``$input`` reads the execution's input.

    The input is checked against ``inputs`` (defaults applied) when the execution
    is created, unless ``validate_input`` is false; it is not copied into ctx.
    """

    validate_input: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))


def start(
    graph: Builder,
    id: str = "start",
    *,
    validate_input: bool = True,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``start`` step: validates the input (added automatically when not declared)."""
    config = graph.config(StartConfig, id, validate_input=validate_input)
    return graph.add_step(id, "start", config, next, on_error)


class Start(StepType):
    name = "start"
    config = StartConfig
    in_loop = False
    in_parallel = False
    shape = "start"
    build = staticmethod(start)

    def defines(self, step: StepDef) -> list[str]:
        return ["input"]

    def run(self, run: Runtime) -> Outcome:
        return Outcome(target=run.step.next, output=run.input)


register_step_type(Start())

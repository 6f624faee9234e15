"""``end``: sets the workflow's result (ctx ``result``) and finishes the workflow."""

from __future__ import annotations

from typing import Any

import attrs

from ..abc import IMPLICIT, Builder, Outcome, Runtime, StepType, register_step_type
from ..definitions import EXPR, StepDef
from ..frozen import freeze, thaw

__all__ = ["End", "EndConfig", "end"]


@attrs.frozen(kw_only=True)
class EndConfig:
    """``end``: sets ctx ``result`` (default: a copy of ctx) and finishes."""

    result: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})


def end(
    graph: Builder, id: str = "end", *, result: Any = None, on_error: str | None = None
) -> StepDef:
    """An ``end`` step: sets the workflow's result and finishes."""
    config = graph.config(EndConfig, id, result=result)
    return graph.add_step(id, "end", config, IMPLICIT, on_error)


class End(StepType):
    name = "end"
    config = EndConfig
    in_loop = False
    in_parallel = False
    terminal = True
    shape = "end"
    build = staticmethod(end)

    def run(self, run: Runtime) -> Outcome:
        config: EndConfig = run.step.config
        result = thaw(dict(run.scope.ctx)) if config.result is None else run.resolve(config.result)
        return Outcome(finish=True, updates={"result": result}, output=result)


register_step_type(End())

"""``assign``: resolves each value of ``set`` and stores it in ctx, in order.

Later keys see earlier ones, both when the step runs and when the validator
checks which names are defined. Without ``set`` (as in the Ruby gem) the step
assigns nothing and only moves on.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, MutableMapping
from typing import Any, cast

import attrs

from ..abc import IMPLICIT, Builder, Outcome, ReferenceCheck, Runtime, StepType, register_step_type
from ..definitions import EXPR, StepDef
from ..definitions.fields import frozen_mapping
from ..expressions import resolve
from ..frozen import FrozenDict

__all__ = ["Assign", "AssignConfig", "assign"]


@attrs.frozen(kw_only=True)
class AssignConfig:
    """``assign``: resolves each value of ``set`` and stores it in ctx, in order."""

    set: FrozenDict[str, Any] = attrs.field(
        factory=FrozenDict, converter=frozen_mapping, metadata={EXPR: True}
    )


def assign(
    graph: Builder,
    id: str,
    *,
    set: Mapping[str, Any] | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """An ``assign`` step storing each value of ``set`` in ctx, in order (none: only moves on)."""
    config = graph.config(AssignConfig, id, set={} if set is None else set)
    return graph.add_step(id, "assign", config, next, on_error)


class Assign(StepType):
    name = "assign"
    config = AssignConfig
    shape = "data"
    build = staticmethod(assign)

    def defines(self, step: StepDef) -> list[str]:
        config: AssignConfig = step.config
        return list(config.set)

    def check_references(
        self, step: StepDef, defined: frozenset[str], refs: ReferenceCheck
    ) -> None:
        config: AssignConfig = step.config
        seen = set(defined)
        for key, value in config.set.items():
            refs.value(value, seen)
            seen.add(key)

    def run(self, run: Runtime) -> Outcome:
        config: AssignConfig = run.step.config
        assigned: dict[str, Any] = {}
        ctx = cast("MutableMapping[str, Any]", run.scope.ctx)  # ChainMap only reads it
        scope = run.scope.with_ctx(ChainMap(assigned, ctx))
        for key, value in config.set.items():
            assigned[key] = resolve(value, scope)
        return Outcome(target=run.step.next, updates=assigned, output=assigned)


register_step_type(Assign())

"""``router``: goes to the first route whose condition holds, else to ``default``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..abc import IMPLICIT, Builder, Outcome, Runtime, StepType, register_step_type
from ..definitions import Condition, StepDef
from ..definitions.fields import TARGET, non_empty, target
from ..errors import ExecutionError
from ..expressions import ConditionError, evaluate

__all__ = ["Route", "Router", "RouterConfig", "When", "router", "when"]


@attrs.frozen(kw_only=True)
class Route:
    """A router branch: go to ``then`` when the condition holds."""

    when: Condition = attrs.field(validator=attrs.validators.instance_of(Condition))
    then: str = attrs.field(validator=non_empty, metadata={TARGET: True})


def _routes(value: Iterable[Route]) -> tuple[Route, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class RouterConfig:
    """``router``: goes to the first route whose condition holds, else ``default``."""

    routes: tuple[Route, ...] = attrs.field(default=(), converter=_routes)
    default: str | None = target()


@attrs.frozen
class When:
    """The start of a route in the DSL: ``flowkit.when(field, op, value).then(step)``."""

    condition: Condition

    def then(self, target: str) -> Route:
        """The route: go to ``target`` when the condition holds."""
        return Route(when=self.condition, then=target)


def when(field: str, op: str, value: Any = None) -> When:
    """Start a router route: ``flowkit.when("order.total", "gt", 100).then("approve")``."""
    return When(Condition(field=field, op=op, value=value))


def router(
    graph: Builder,
    id: str,
    *,
    routes: Sequence[Route] = (),
    default: str | None = None,
    on_error: str | None = None,
    next: str | None = None,
) -> StepDef:
    """A ``router`` step: the first route whose condition holds, else ``default``.

    A router never continues to the step declared after it. ``next`` exists
    only because YAML allows the key on every step; the router ignores it.
    """
    config = graph.config(RouterConfig, id, routes=tuple(routes), default=default)
    return graph.add_step(id, "router", config, IMPLICIT if next is None else next, on_error)


class Router(StepType):
    name = "router"
    config = RouterConfig
    in_parallel = False
    falls_through = False
    shape = "decision"
    build = staticmethod(router)

    def check(self, step: StepDef) -> list[str]:
        config: RouterConfig = step.config
        if not config.routes and config.default is None:
            return ["a router needs at least one route or a default"]
        return []

    def run(self, run: Runtime) -> Outcome:
        config: RouterConfig = run.step.config
        errors: list[str] = []
        for route in config.routes:
            cond = route.when
            try:
                if evaluate(cond.field, cond.op, cond.value, run.scope):
                    return _routed(route.then, errors)
            except ConditionError as exc:
                errors.append(f"{cond.field} {cond.op}: {exc}")
        if config.default is not None:
            return _routed(config.default, errors)
        detail = f" (conditions that could not be evaluated: {'; '.join(errors)})" if errors else ""
        raise ExecutionError(
            f"router '{run.path}': no route matched and there is no default{detail}"
        )


def _routed(target: str, errors: list[str]) -> Outcome:
    payload = {"condition_errors": errors} if errors else {}
    return Outcome(target=target, output={"route": target}, payload=payload)


register_step_type(Router())

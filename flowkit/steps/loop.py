"""``loop``: runs its body for each element of ``over``, or while a condition holds.

The engine keeps the position in a :class:`~flowkit.cursor.LoopFrame` (the
iteration and the body step to run next) and checkpoints after every body
step, so a halt or a crash inside iteration k resumes at that body step of
iteration k. Each iteration's last output is read back from the entries when
the loop ends (the runtime keeps them in memory while it can), so a loop of
10,000 iterations costs the same per step as one of 100.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from ..abc import (
    IMPLICIT,
    Builder,
    Outcome,
    ReferenceCheck,
    Runtime,
    StepType,
    register_step_type,
    step_type,
)
from ..cursor import LoopFrame
from ..definitions import (
    BODY,
    EXPR,
    KEY,
    OUTPUT,
    STEPS,
    Condition,
    Nested,
    StepDef,
    condition_text,
)
from ..definitions.fields import integer, non_empty, optional_non_empty, target
from ..definitions.model import as_steps
from ..errors import ExecutionError
from ..expressions import (
    ConditionError,
    Scope,
    evaluate,
    is_reference,
    parse_path,
    references,
    walk,
)
from ..expressions import resolve as resolve_value
from ..frozen import freeze, thaw
from ..records import Action
from .router import When

__all__ = ["Loop", "LoopConfig", "loop", "over_items"]


@attrs.frozen(kw_only=True)
class LoopConfig:
    """``loop``: runs ``do`` for each element of ``over`` or while ``while`` holds."""

    over: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    as_: str = attrs.field(default="item", validator=non_empty, metadata={KEY: "as"})
    index_as: str = attrs.field(default="index", validator=non_empty)
    while_: Condition | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(Condition)),
        metadata={KEY: "while"},
    )
    output: str | None = attrs.field(
        default=None, validator=optional_non_empty, metadata={OUTPUT: True}
    )
    max: int = attrs.field(default=100, validator=integer(1))
    on_exhausted: str | None = target()
    do: tuple[StepDef, ...] = attrs.field(converter=as_steps, metadata={STEPS: True})

    def __attrs_post_init__(self) -> None:
        if (self.over is None) == (self.while_ is None):
            raise ValueError("a loop needs exactly one of 'over' (foreach) or 'while'")

    @property
    def variables(self) -> tuple[str, ...]:
        """The names each iteration defines inside the body."""
        if self.while_ is not None:
            return (self.index_as,)
        return (self.as_, self.index_as)


@contextmanager
def loop(
    graph: Builder,
    id: str,
    *,
    over: Any = None,
    while_: Condition | When | None = None,
    as_: str = "item",
    index_as: str = "index",
    output: str | None = None,
    max: int = 100,
    on_exhausted: str | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> Iterator[Builder]:
    """A ``loop`` step; declare its body on the builder this yields.

    ``with wf.loop("each", over="$input.items") as body: body.call(...)``
    """
    source = graph.caller()
    condition = while_.condition if isinstance(while_, When) else while_
    options = {
        "over": over,
        "as_": as_,
        "index_as": index_as,
        "while_": condition,
        "output": output,
        "max": max,
        "on_exhausted": on_exhausted,
    }
    graph.config(LoopConfig, id, source, do=(), **options)  # fail at the `with` line
    body = graph.nested()
    yield body
    config = graph.config(LoopConfig, id, source, do=body.compiled(), **options)
    graph.add_step(id, "loop", config, next, on_error, source)


def over_items(value: Any, scope: Scope) -> Any:
    """The list a foreach loop iterates over, read without copying when it is a reference."""
    if is_reference(value):
        ref = parse_path(value)
        if ref is not None:
            return walk(scope.root(ref.root), ".".join(ref.path))
    return resolve_value(value, scope)


class _Exhausted(ExecutionError):
    """The loop ran out of iterations (``max``); ``fix`` says how to give it more.

    Attributes:
        fix: what to change in the loop, shown when it has no ``on_exhausted``.
    """

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class Loop(StepType):
    name = "loop"
    config = LoopConfig
    in_parallel = False
    holds_steps = True
    build = staticmethod(loop)

    # --- definitions ---------------------------------------------------------------------------

    def nested(self, step: StepDef) -> tuple[Nested, ...]:
        config: LoopConfig = step.config
        if config.while_ is not None:
            title = f"while {condition_text(config.while_)}"
        else:
            over = config.over
            shown = over if isinstance(over, str) else json.dumps(thaw(over), ensure_ascii=False)
            title = f"for {config.as_} in {shown}"
        return (Nested(steps=config.do, kind=BODY, variables=config.variables, title=title),)

    def check(self, step: StepDef) -> list[str]:
        config: LoopConfig = step.config
        problems = []
        if config.over is not None and not (
            isinstance(config.over, tuple)
            or (isinstance(config.over, str) and any(references(config.over)))
        ):
            problems.append("over: expected a reference such as '$items' or a list")
        if config.as_ == config.index_as:
            problems.append("'as' and 'index_as' must be different names")
        if not config.do:
            problems.append("a loop needs at least one step in 'do'")
        return problems

    def check_references(
        self, step: StepDef, defined: frozenset[str], refs: ReferenceCheck
    ) -> None:
        config: LoopConfig = step.config
        if config.while_ is not None:
            refs.fields(config.while_, defined | {config.index_as})
        refs.value(config.over, defined)

    # --- running -------------------------------------------------------------------------------

    def run(self, run: Runtime) -> Outcome:
        config: LoopConfig = run.step.config
        frame = run.frame
        if not isinstance(frame, LoopFrame):
            try:
                entered = self._enter(run, config)
            except _Exhausted as exc:
                return self._exhausted(config, exc)
            if entered is None:
                return self._done(run, config, [])
            frame = entered
        variables = self._variables(run, config, frame)
        body = next(child for child in config.do if child.id == frame.at)
        inner = run.descend(body, variables, frame.index)
        if inner.frames is not None:
            return Outcome(inside=(frame, *inner.frames))
        target = inner.target
        if target is None:
            # A body step without a next continues with the step listed after it.
            position = next(i for i, child in enumerate(config.do) if child.id == body.id)
            body_type = step_type(body.type)
            if position + 1 < len(config.do) and (body_type is None or body_type.falls_through):
                target = config.do[position + 1].id
        if target is not None:
            return Outcome(inside=(frame.moved(at=target),))
        return self._next_iteration(run, config, frame)

    def _enter(self, run: Runtime, config: LoopConfig) -> LoopFrame | None:
        """The frame of a loop that starts now, or None when it has no iterations."""
        first = config.do[0].id
        if config.while_ is not None:
            if not self._holds(run, config, 0):
                return None
            return LoopFrame(step=run.step.id, at=first, index=0, start=run.seq)
        items = over_items(config.over, run.scope)
        if not isinstance(items, list):
            raise ExecutionError(
                f"loop '{run.path}': 'over' must give a list, got {type(items).__name__}"
            )
        if len(items) > config.max:
            raise _Exhausted(
                f"loop '{run.path}' has {len(items)} items, more than its max of {config.max}",
                fix=f"raise its 'max' to at least {len(items)}, or set 'on_exhausted' "
                "to go to another step instead",
            )
        if not items:
            return None
        return LoopFrame(step=run.step.id, at=first, index=0, start=run.seq, count=len(items))

    def _variables(self, run: Runtime, config: LoopConfig, frame: LoopFrame) -> dict[str, Any]:
        index = frame.index
        if config.while_ is not None:
            return {config.index_as: index}
        items = over_items(config.over, run.scope)
        if not isinstance(items, list) or len(items) != frame.count:
            raise ExecutionError(
                f"loop '{frame.step}': the list in 'over' changed during the loop "
                f"(it had {frame.count} items); don't modify the list a loop iterates over"
            )
        return {config.as_: items[index], config.index_as: index}

    def _holds(self, run: Runtime, config: LoopConfig, index: int) -> bool:
        cond = config.while_
        assert cond is not None
        scope = run.scope.child({config.index_as: index})
        try:
            return evaluate(cond.field, cond.op, cond.value, scope)
        except ConditionError as exc:
            raise ExecutionError(f"while condition cannot be evaluated: {exc}") from None

    def _next_iteration(self, run: Runtime, config: LoopConfig, frame: LoopFrame) -> Outcome:
        index = frame.index + 1
        if run.scope.ctx.get("break_loop") is True:
            return self._done(run, config, self._outputs(run, frame), {"break_loop": False})
        if config.while_ is None:
            if frame.count is not None and index >= frame.count:
                return self._done(run, config, self._outputs(run, frame))
        else:
            if not self._holds(run, config, index):
                return self._done(run, config, self._outputs(run, frame))
            if index >= config.max:
                exhausted = _Exhausted(
                    f"loop '{run.path}' ran {config.max} iterations, its max, and was not done",
                    fix="raise its 'max' if it needs more, or set 'on_exhausted' "
                    "to go to another step instead",
                )
                return self._exhausted(config, exhausted)
        return Outcome(inside=(frame.moved(at=config.do[0].id, index=index),))

    def _outputs(self, run: Runtime, frame: LoopFrame) -> list[Any]:
        """Each iteration's last output, in order."""
        last = run.child_outputs(frame.start)
        return [last.get(index) for index in range(frame.index + 1)]

    def _done(
        self,
        run: Runtime,
        config: LoopConfig,
        outputs: list[Any],
        updates: Mapping[str, Any] | None = None,
    ) -> Outcome:
        changed = dict(updates or {})
        if config.output:
            changed[config.output] = outputs
        return Outcome(target=run.step.next, updates=changed, output=outputs)

    def _exhausted(self, config: LoopConfig, exc: _Exhausted) -> Outcome:
        # Users see (and `_last_error` names) the public type.
        if config.on_exhausted is None:
            raise ExecutionError(f"{exc}: {exc.fix}")
        return Outcome(
            target=config.on_exhausted,
            action=Action.FAILED,
            error=f"ExecutionError: {exc}",
        )


register_step_type(Loop())

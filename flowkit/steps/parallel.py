"""``parallel``: runs single-step branches side by side and joins them.

The engine fans the branches out (threads in process, messages on Dramatiq),
records each finished branch in the step's :class:`~flowkit.cursor.ParallelFrame`
(one checkpoint per branch, so after a crash only unfinished branches run
again), and asks this step type whether enough of them are done
(:meth:`Parallel.join`). Then the step runs once more and completes: its
``output`` is the list of branch outputs in branch order, and the branches'
ctx changes are merged in branch order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import attrs

from ..abc import IMPLICIT, Builder, Outcome, Runtime, StepType, register_step_type
from ..cursor import BranchResult, Joined, ParallelFrame
from ..definitions import (
    BRANCHES,
    OUTPUT,
    STEPS,
    InvalidValue,
    Nested,
    StepDef,
    converter,
    defines_of,
)
from ..definitions.fields import optional_non_empty
from ..definitions.model import as_steps
from ..errors import ExecutionError

__all__ = ["Parallel", "ParallelConfig", "Wait", "parallel"]

Wait = Literal["all", "any"] | int
"""How many parallel branches must succeed: ``all``, ``any`` or a number."""


def _wait(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value in ("all", "any"):
        return
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return
    raise ValueError(f"'wait' must be 'all', 'any' or a positive integer, got {value!r}")


@attrs.frozen(kw_only=True)
class ParallelConfig:
    """``parallel``: runs single-step ``branches`` concurrently."""

    wait: Wait = attrs.field(default="all", validator=_wait)
    output: str | None = attrs.field(
        default=None, validator=optional_non_empty, metadata={OUTPUT: True}
    )
    branches: tuple[StepDef, ...] = attrs.field(converter=as_steps, metadata={STEPS: True})


def _structure_wait(value: Any, _type: Any) -> Any:
    if value in ("all", "any") or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 1
    ):
        return value
    raise InvalidValue(f"expected 'all', 'any' or a positive number of branches, got {value!r}")


converter.register_structure_hook_func(lambda t: t == Wait, _structure_wait)


@contextmanager
def parallel(
    graph: Builder,
    id: str,
    *,
    wait: str | int = "all",
    output: str | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> Iterator[Builder]:
    """A ``parallel`` step; declare each branch (one step) on the builder this yields."""
    source = graph.caller()
    graph.config(ParallelConfig, id, source, branches=(), wait=wait, output=output)
    branches = graph.nested(branches=True)
    yield branches
    config = graph.config(
        ParallelConfig, id, source, branches=branches.compiled(), wait=wait, output=output
    )
    graph.add_step(id, "parallel", config, next, on_error, source)


class Parallel(StepType):
    name = "parallel"
    config = ParallelConfig
    in_parallel = False
    holds_steps = True
    build = staticmethod(parallel)

    # --- definitions ---------------------------------------------------------------------------

    def nested(self, step: StepDef) -> tuple[Nested, ...]:
        config: ParallelConfig = step.config
        title = f"parallel (wait {config.wait})"
        return (Nested(steps=config.branches, kind=BRANCHES, title=title),)

    def defines(self, step: StepDef) -> list[str]:
        config: ParallelConfig = step.config
        names = list(super().defines(step))
        if config.wait == "all":  # only then does every branch's output exist afterwards
            for branch in config.branches:
                names.extend(defines_of(branch))
        return names

    def check(self, step: StepDef) -> list[str]:
        config: ParallelConfig = step.config
        problems = []
        if not config.branches:
            problems.append("a parallel step needs at least one branch")
        if isinstance(config.wait, int) and config.wait > len(config.branches):
            problems.append(
                f"wait: {config.wait} branches cannot succeed; there are only "
                f"{len(config.branches)}"
            )
        return problems

    # --- running -------------------------------------------------------------------------------

    def run(self, run: Runtime) -> Outcome:
        config: ParallelConfig = run.step.config
        frame = run.frame
        if not isinstance(frame, ParallelFrame) or frame.joined is None:
            # Entering, or the branches are out (a crash may have lost some): the
            # engine runs those that have not finished.
            return Outcome(branches=tuple(branch.id for branch in config.branches))
        joined = frame.joined
        if not joined.ok:
            raise ExecutionError(f"parallel step '{run.path}': {joined.error}")
        updates = dict(joined.updates)
        if config.output:
            updates[config.output] = joined.outputs
        return Outcome(target=run.step.next, updates=updates, output=joined.outputs)

    def join(self, step: StepDef, done: Mapping[str, BranchResult]) -> Joined | None:
        """The joined result once enough branches are done (or too many failed), else None."""
        config: ParallelConfig = step.config
        names = [branch.id for branch in config.branches]
        succeeded = [name for name in names if name in done and done[name].ok]
        failed = [name for name in names if name in done and not done[name].ok]
        if config.wait == "all":
            needed = len(names)
            if failed:
                first = failed[0]
                return Joined(ok=False, error=f"branch '{first}' failed: {done[first].error}")
        else:
            needed = 1 if config.wait == "any" else int(config.wait)
        if len(succeeded) >= needed:
            updates: dict[str, Any] = {}
            for name in succeeded:
                updates.update(done[name].updates)
            outputs = [done[name].output if name in succeeded else None for name in names]
            return Joined(ok=True, outputs=outputs, updates=updates)
        if len(failed) > len(names) - needed:
            errors = "; ".join(f"{name}: {done[name].error}" for name in failed)
            return Joined(
                ok=False,
                error=f"only {len(succeeded)} of {len(names)} branches succeeded and "
                f"{needed} were needed ({errors})",
            )
        return None


register_step_type(Parallel())

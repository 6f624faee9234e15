"""``quorum``: a step type written outside flowkit, in one file.

A quorum step halts the execution until ``needed`` of its ``voters`` voted
yes; one "no" sends it to ``on_veto`` (or fails it). Each vote is a resume
(``flowkit resume ID --approve --by ana``); the votes so far are kept in ctx
under ``output``.

Everything about the step type is declared here, on flowkit's public
step-type API (:class:`flowkit.abc.StepType`): its config class (its YAML
keys), its checks, how it is drawn, how it runs and resumes, and its
Python-DSL builder (``wf.quorum(...)``). Importing this module registers it,
for YAML and Python workflows alike (``flowkit run -m examples.extending.quorum``).

    - id: vote
      type: quorum
      prompt: "Release $input.version?"
      voters: [ana, ben, cy]
      needed: 2
      on_veto: held
      next: released
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from flowkit import ExecutionError
from flowkit.abc import (
    IMPLICIT,
    Builder,
    Decision,
    Outcome,
    Runtime,
    StepType,
    register_step_type,
)
from flowkit.definitions import EXPR, OUTPUT, StepDef, target
from flowkit.definitions.fields import integer, names, non_empty, optional_text
from flowkit.records import Action

__all__ = ["Quorum", "QuorumConfig", "quorum"]


@attrs.frozen(kw_only=True)
class QuorumConfig:
    """The keys of a ``quorum`` step (the YAML keys are the field names)."""

    voters: tuple[str, ...] = attrs.field(
        converter=names, validator=attrs.validators.deep_iterable(non_empty)
    )
    needed: int = attrs.field(validator=integer(1))
    prompt: str | None = attrs.field(default=None, validator=optional_text, metadata={EXPR: True})
    on_veto: str | None = target()  # an edge of the graph: checked, drawn, followed
    output: str = attrs.field(default="votes", validator=non_empty, metadata={OUTPUT: True})


def quorum(
    graph: Builder,
    id: str,
    *,
    voters: Sequence[str],
    needed: int,
    prompt: str | None = None,
    on_veto: str | None = None,
    output: str = "votes",
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """``wf.quorum("vote", voters=[...], needed=2, on_veto="held")`` in the Python DSL."""
    config = graph.config(
        QuorumConfig,
        id,
        voters=tuple(voters),
        needed=needed,
        prompt=prompt,
        on_veto=on_veto,
        output=output,
    )
    return graph.add_step(id, "quorum", config, next, on_error)


class Quorum(StepType):
    """Halt until enough voters said yes."""

    name = "quorum"
    config = QuorumConfig
    halts = True
    in_parallel = False  # a halting step cannot be a parallel branch
    shape = "wait"
    build = staticmethod(quorum)

    def check(self, step: StepDef) -> Iterator[str]:
        config: QuorumConfig = step.config
        if config.needed > len(config.voters):
            yield (f"needed: {config.needed} votes can never come from {len(config.voters)} voters")
        if len(set(config.voters)) != len(config.voters):
            yield "voters: someone is listed twice"

    def run(self, run: Runtime) -> Outcome:
        return self._ask(run, {}, Action.HALTED)

    def check_resume(self, run: Runtime, decision: Decision) -> None:
        config: QuorumConfig = run.step.config
        if decision.by not in config.voters:
            raise ExecutionError(
                f"quorum '{run.path}': only {', '.join(config.voters)} may vote "
                f"(resume with by=<voter>), not {decision.by!r}"
            )
        if decision.approved is None:
            raise ExecutionError(f"quorum '{run.path}': vote with approved=True or False")
        if decision.by in self._votes(run):
            raise ExecutionError(f"quorum '{run.path}': {decision.by} has voted already")

    def resume(self, run: Runtime, decision: Decision) -> Outcome:
        config: QuorumConfig = run.step.config
        assert decision.by is not None
        votes = {**self._votes(run), decision.by: decision.approved}
        if not decision.approved:
            if config.on_veto is None:
                raise ExecutionError(f"quorum '{run.path}' was vetoed by {decision.by}")
            return self._moved(config, votes, config.on_veto)
        if sum(1 for vote in votes.values() if vote) >= config.needed:
            return self._moved(config, votes, run.step.next)
        return self._ask(run, votes, Action.RESUMED)  # not enough yet: halt again

    def _votes(self, run: Runtime) -> dict[str, bool]:
        config: QuorumConfig = run.step.config
        return dict(run.scope.ctx.get(config.output) or {})

    def _ask(self, run: Runtime, votes: dict[str, bool], action: Action) -> Outcome:
        config: QuorumConfig = run.step.config
        waiting = [voter for voter in config.voters if voter not in votes]
        data = {
            "prompt": run.resolve(config.prompt),
            "approvers": waiting,
            "votes": votes,
            "needed": config.needed,
        }
        return Outcome(
            stay=True, halt=data, output=data, updates={config.output: votes}, action=action
        )

    def _moved(self, config: QuorumConfig, votes: dict[str, bool], target: str | None) -> Outcome:
        return Outcome(
            target=target, updates={config.output: votes}, output=votes, action=Action.RESUMED
        )


register_step_type(Quorum())

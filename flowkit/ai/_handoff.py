"""The ``handoff`` step: hand the conversation to another agent and store its reply.

``to`` (or the gem's ``target_agent``) names the agent, an id or a reference;
without either, as in the gem, the agent is the one ctx ``_handoff_to`` names,
set by an ``agent`` step whose model called ``transfer_to_<agent>``. The step
fails when that names no agent of the workflow. The target agent runs the
same checkpointed loop as an ``agent`` step, on a message built from
``prompt`` (optional), ``reason`` (default: the reason the model gave when it
called ``transfer_to_<agent>``, ``$_handoff_reason``) and ``context``.

Afterwards ctx holds the reply under ``output``, ``_current_agent`` (the
target), ``_handoff_context`` (``{from, to, reason, context}``), and
``_handoff_to``/``_handoff_reason`` (set again if the target handed off in
turn, else null).
"""

from __future__ import annotations

from typing import Any

from flowkit.abc import Outcome, Runtime, StepType
from flowkit.errors import ExecutionError

from ._agent import AgentFinal, advance, agent_named, conversation, first_user_message, prompt_text
from ._definitions import HandoffConfig
from ._dsl import build_handoff

__all__ = ["HandoffStep"]


class HandoffStep(StepType):
    """The ``handoff`` step type."""

    name = "handoff"
    config = HandoffConfig
    in_parallel = False  # it checkpoints progress, like an agent
    sets = ("_handoff_to", "_handoff_reason", "_current_agent", "_handoff_context")
    build = staticmethod(build_handoff)

    def run(self, run: Runtime) -> Outcome:
        config: HandoffConfig = run.step.config
        if run.state is not None and isinstance(run.state.get("handoff"), dict):
            handoff = dict(run.state["handoff"])  # resolved on the first run of this visit
        else:
            handoff = {
                "from": run.scope.ctx.get("_current_agent"),
                "to": run.resolve(config.agent),
                "reason": run.resolve(config.reason)
                if config.reason is not None
                else run.scope.ctx.get("_handoff_reason"),
                "context": run.resolve(config.context),
            }
        if handoff["to"] is None and config.target_key == "_handoff_to":
            raise ExecutionError(
                f"step '{run.path}': no agent to hand over to: the step has no 'to' and ctx "
                "'_handoff_to' is not set (an agent step sets it when its model calls "
                "transfer_to_<agent>)"
            )
        agent = agent_named(run, handoff["to"], config.target_key)
        if run.state is None:
            intro = run.resolve(config.prompt)
            if intro is None:
                origin = f" from agent '{handoff['from']}'" if handoff["from"] else ""
                intro = f"You are taking over this conversation{origin}."
                if handoff["reason"]:
                    intro += f"\nReason for the handoff: {handoff['reason']}"
            user = prompt_text(intro, handoff["context"])
        else:
            user = ""
        state = conversation(run, agent, user)
        state["handoff"] = handoff
        done = advance(run, agent, state, config.max_turns or agent.max_turns)
        if not isinstance(done, AgentFinal):
            return Outcome(progress=done)
        updates: dict[str, Any] = {
            "_current_agent": agent.id,
            "_handoff_context": handoff,
            "_handoff_to": done.handoff_to,
            "_handoff_reason": done.handoff_reason,
        }
        if config.output is not None:
            updates[config.output] = done.value
        return Outcome(
            target=run.step.next,
            updates=updates,
            output={**done.record, "handoff": handoff},
            input={"agent": agent.id, "prompt": first_user_message(state)},
            payload={"usage": done.usage, "agent": agent.id},
        )

"""The ``agent`` step: a tool-calling loop with a model, checkpointed turn by turn.

One run of the step does *one* thing and returns: a model call, or one
tool call. Anything short of the final reply is returned as
``Outcome(progress=state)``, which the engine checkpoints (without an entry)
before running the step again with that state. The state is the conversation
so far, so after a crash, a halt or a retry the step continues exactly where
it stopped: a model call or a tool call whose result was checkpointed is never
made again. (A tool call that was running when the process died runs again:
tools are at-least-once, like every step; each call gets a stable idempotency
key, ``flowkit.current().idempotency_key``, to deduplicate its effects.)

The state (JSON, in the execution's cursor)::

    {"agent": "billing", "messages": [...], "turns": 2,
     "usage": {"prompt_tokens": ..., "completion_tokens": ..., "total_tokens": ...}}

A reply that calls ``transfer_to_<agent>`` ends the step: ctx gets
``_handoff_to`` (the agent) and ``_handoff_reason`` (the reason the model
gave, if any); both are null after a step that did not hand off.

The step's entry records ``{"reply", "agent", "model", "turns", "usage",
"handoff_to"}`` as its output (the token usage of all its model calls), and
``step.completed`` events carry ``usage`` in their payload; ctx gets only the
reply under ``output``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from flowkit.abc import Outcome, Runtime, StepType
from flowkit.errors import ExecutionError, NotFoundError
from flowkit.frozen import thaw
from flowkit.services import validate_output

from ._definitions import AgentConfig, AgentDef, ToolDef, agents_of, tools_of
from ._dsl import build_agent
from ._providers import ToolCall, Usage, provider_for

__all__ = ["AgentFinal", "AgentStep", "advance", "agent_named", "start_state"]

HANDOFF_PREFIX = "transfer_to_"


@attrs.frozen(kw_only=True)
class AgentFinal:
    """How an agent's conversation ended.

    Attributes:
        value: the reply: the parsed object for a JSON object (or with an
            ``output_schema``), else the text.
        handoff_to: the agent it transferred to, or None.
        handoff_reason: the ``reason`` the model gave for the transfer, or None.
        record: what the step's entry records as its output.
        usage: the tokens of every model call of the step.
    """

    value: Any
    handoff_to: str | None
    handoff_reason: str | None
    record: dict[str, Any]
    usage: dict[str, int]


def agent_named(run: Runtime, agent_id: Any, key: str = "agent_id") -> AgentDef:
    """The agent ``agent_id`` of the running workflow.

    Raises:
        ExecutionError: there is no such agent.
    """
    agents = agents_of(run.workflow)
    if agent_id is None:
        raise ExecutionError(f"step '{run.path}': {key} resolved to null: there is no agent to run")
    if not isinstance(agent_id, str) or agent_id not in agents:
        known = ", ".join(agents) or "none"
        raise ExecutionError(
            f"step '{run.path}': {key} {agent_id!r} names no agent of workflow "
            f"'{run.workflow.id}' (agents: {known})"
        )
    return agents[agent_id]


def start_state(agent: AgentDef, user: str) -> dict[str, Any]:
    """The conversation before the first model call."""
    messages: list[dict[str, Any]] = []
    if agent.instructions:
        messages.append({"role": "system", "content": agent.instructions.strip()})
    messages.append({"role": "user", "content": user})
    return {"agent": agent.id, "messages": messages, "turns": 0, "usage": Usage().to_json()}


def tool_schemas(run: Runtime, agent: AgentDef) -> list[dict[str, Any]]:
    """The agent's tools and one ``transfer_to_<agent>`` tool per handoff, as the model sees them.

    Raises:
        ExecutionError: the agent names a tool the workflow does not declare.
    """
    tools = tools_of(run.workflow)
    agents = agents_of(run.workflow)
    schemas = []
    for tool_id in agent.tools:
        tool = tools.get(tool_id)
        if tool is None:
            raise ExecutionError(
                f"step '{run.path}': agent '{agent.id}' names tool '{tool_id}', which the "
                "workflow's top-level 'tools' does not declare"
            )
        function: dict[str, Any] = {"name": tool.id, "parameters": tool.json_schema()}
        if tool.description:
            function["description"] = tool.description
        schemas.append({"type": "function", "function": function})
    for handoff in agent.handoffs:
        target = agents.get(handoff.agent_id)
        title = target.title if target is not None else handoff.agent_id
        description = handoff.description or f"Transfer the conversation to {title}"
        schemas.append(
            {
                "type": "function",
                "function": {
                    "name": f"{HANDOFF_PREFIX}{handoff.agent_id}",
                    "description": description,
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "reason": {
                                "type": "string",
                                "description": "Why the conversation is transferred",
                            }
                        },
                        "required": [],
                    },
                },
            }
        )
    return schemas


def advance(
    run: Runtime, agent: AgentDef, state: dict[str, Any], max_turns: int
) -> dict[str, Any] | AgentFinal:
    """Do the next thing of the conversation in ``state``: one tool call or one model call.

    Returns:
        The new state (to checkpoint as progress), or how the conversation ended.

    Raises:
        ExecutionError: past ``max_turns``, an unusable final reply, or a
            tool whose service cannot be found.
        ProviderError: the model could not be reached.
    """
    messages: list[dict[str, Any]] = state["messages"]
    pending = _pending_call(messages)
    if pending is not None:
        assistant, call = pending
        if call.name.startswith(HANDOFF_PREFIX):
            target = call.name.removeprefix(HANDOFF_PREFIX)
            if any(handoff.agent_id == target for handoff in agent.handoffs):
                return _final(run, agent, state, assistant, handoff=(target, call))
        result = _run_tool(run, agent, call)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        return state
    turns = int(state.get("turns", 0))
    if turns >= max_turns:
        raise ExecutionError(
            f"step '{run.path}': agent '{agent.id}' did not give a final reply within "
            f"max_turns={max_turns} model calls (its last reply still called tools); "
            "raise max_turns on the agent or the step, or give clearer instructions"
        )
    provider = provider_for(run.resources)
    response_format = None
    if agent.output_schema is not None:
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(agent.id), "schema": thaw(agent.output_schema)},
        }
    reply = provider.complete(
        model=agent.model,
        messages=messages,
        tools=tool_schemas(run, agent),
        response_format=response_format,
    )
    usage = Usage.from_json(state.get("usage")) + reply.usage
    state["turns"] = turns + 1
    state["usage"] = usage.to_json()
    if reply.model:
        state["model"] = reply.model
    messages.append(reply.to_message())
    if reply.tool_calls:
        return state
    return _final(run, agent, state, reply.to_message(), handoff=None)


def _schema_name(agent_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", agent_id)[:64] or "reply"


def _pending_call(messages: list[dict[str, Any]]) -> tuple[dict[str, Any], ToolCall] | None:
    """The first tool call of the last assistant message that has no result yet."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") != "assistant":
            continue
        calls = message.get("tool_calls") or []
        answered = sum(1 for later in messages[index + 1 :] if later.get("role") == "tool")
        if answered >= len(calls):
            return None
        raw = calls[answered]
        function = raw.get("function") or {}
        call = ToolCall(
            id=str(raw.get("id")),
            name=str(function.get("name")),
            arguments=function.get("arguments") or "{}",
        )
        return message, call
    return None


def _run_tool(run: Runtime, agent: AgentDef, call: ToolCall) -> str:
    """Run one tool call; the result (or the error) as the text the model reads.

    Raises:
        ExecutionError: the tool's service or method is not registered (a
            configuration mistake the model cannot fix).
    """
    tools = tools_of(run.workflow)
    tool: ToolDef | None = tools.get(call.name) if call.name in agent.tools else None
    if tool is None:
        offered = [*agent.tools, *(f"{HANDOFF_PREFIX}{h.agent_id}" for h in agent.handoffs)]
        return _error(f"unknown tool '{call.name}' (available: {', '.join(offered) or 'none'})")
    try:
        arguments = call.parsed_arguments()
    except ValueError as exc:
        return _error(f"tool '{call.name}': {exc}")
    if tool.service is None or tool.method is None:
        raise ExecutionError(
            f"step '{run.path}': tool '{tool.id}' names no service and method to run"
        )
    where = f"tool '{tool.id}' of step '{run.path}'"
    try:
        function = run.service(tool.service, tool.method)
    except NotFoundError as exc:
        raise ExecutionError(f"{where}: {exc}") from None
    try:
        # Each tool call gets its own stable idempotency key (the call id is checkpointed).
        result = run.invoke(
            _with_keywords(function, arguments), None, key=f"{run.key}:{call.id}", where=where
        )
    except Exception as exc:  # the model is told, and may try something else
        return _error(f"{type(exc).__name__}: {exc}")
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False)


def _with_keywords(function: Callable[..., Any], arguments: dict[str, Any]) -> Callable[[], Any]:
    """``function`` bound to the model's arguments, always as keywords (sync or async)."""
    if inspect.iscoroutinefunction(function):

        async def call_async() -> Any:
            return await function(**arguments)

        return call_async

    def call() -> Any:
        return function(**arguments)

    return call


def _error(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


def _final(
    run: Runtime,
    agent: AgentDef,
    state: dict[str, Any],
    assistant: Mapping[str, Any],
    *,
    handoff: tuple[str, ToolCall] | None,
) -> AgentFinal:
    content = assistant.get("content")
    handoff_to = reason = None
    if handoff is not None:
        handoff_to, call = handoff
        try:
            given = call.parsed_arguments().get("reason")
        except ValueError:
            given = None
        reason = given if isinstance(given, str) and given else None
        value: Any = content or reason or f"Transferred to {handoff_to}"
    else:
        value = final_value(run, agent, content)
    usage = Usage.from_json(state.get("usage")).to_json()
    record = {
        "reply": value,
        "agent": agent.id,
        "model": state.get("model") or agent.model,
        "turns": state.get("turns", 0),
        "usage": usage,
        "handoff_to": handoff_to,
    }
    return AgentFinal(
        value=value, handoff_to=handoff_to, handoff_reason=reason, record=record, usage=usage
    )


_FENCE = re.compile(r"\A```(?:json)?\s*\n(.*)\n```\s*\Z", re.DOTALL)


def _json_of(text: str) -> Any:
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    return json.loads(stripped)


def final_value(run: Runtime, agent: AgentDef, content: str | None) -> Any:
    """The step's output for a final reply: the parsed JSON object, or the text.

    Raises:
        ExecutionError: the agent has an ``output_schema`` and the reply is not
            JSON, or does not match it.
    """
    where = f"step '{run.path}'"
    text = content or ""
    if agent.output_schema is not None:
        try:
            value = _json_of(text)
        except ValueError:
            raise ExecutionError(
                f"{where}: agent '{agent.id}' has an output_schema, so its reply must be JSON; "
                f"it replied {text[:200]!r}"
            ) from None
        validate_output(value, thaw(agent.output_schema), f"{where} (agent '{agent.id}')")
        return value
    if text.strip().startswith(("{", "```")):
        try:
            value = _json_of(text)
        except ValueError:
            return content
        if isinstance(value, dict):
            return value
    return content


def conversation(run: Runtime, agent: AgentDef, user: str) -> dict[str, Any]:
    """The state saved by an earlier run of this visit, or a new conversation.

    Raises:
        ExecutionError: the saved state belongs to another agent (the
            definition changed under a running execution).
    """
    if run.state is None:
        return start_state(agent, user)
    state: dict[str, Any] = json.loads(json.dumps(dict(run.state)))  # a private, mutable copy
    if state.get("agent") != agent.id:
        raise ExecutionError(
            f"step '{run.path}': the saved conversation belongs to agent "
            f"'{state.get('agent')}', not '{agent.id}'"
        )
    return state


def prompt_text(prompt: Any, context: Any) -> str:
    """The user message: the prompt, then the context as JSON."""
    parts = []
    if prompt is not None:
        parts.append(prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False))
    if context is not None:
        parts.append(f"Context:\n{json.dumps(context, ensure_ascii=False, indent=2)}")
    return "\n\n".join(part.strip() for part in parts)


class AgentStep(StepType):
    """The ``agent`` step type."""

    name = "agent"
    config = AgentConfig
    # The engine checkpoints progress (model turns) only outside parallel
    # branches; a branch that needs an agent runs a sub-workflow.
    in_parallel = False
    sets = ("_handoff_to", "_handoff_reason", "_current_agent")
    build = staticmethod(build_agent)

    def run(self, run: Runtime) -> Outcome:
        config: AgentConfig = run.step.config
        agent = agent_named(run, config.agent_id)
        if run.state is None:
            user = prompt_text(run.resolve(config.prompt), run.resolve(config.context))
        else:
            user = ""
        state = conversation(run, agent, user)
        done = advance(run, agent, state, config.max_turns or agent.max_turns)
        if not isinstance(done, AgentFinal):
            return Outcome(progress=done)
        updates: dict[str, Any] = {
            "_handoff_to": done.handoff_to,
            "_handoff_reason": done.handoff_reason,
            "_current_agent": agent.id,
        }
        if config.output is not None:
            updates[config.output] = done.value
        return Outcome(
            target=run.step.next,
            updates=updates,
            output=done.record,
            input={"agent": agent.id, "prompt": first_user_message(state)},
            payload={"usage": done.usage, "agent": agent.id},
        )


def first_user_message(state: Mapping[str, Any]) -> Any:
    """The prompt the conversation started with (the entry records it as the input)."""
    for message in state["messages"]:
        if message.get("role") == "user":
            return message.get("content")
    return None

"""The ``handoff`` step: runs the target agent with the context and stores its reply."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import flowkit
from flowkit.ai import ScriptedProvider, reply, tool_call

EngineFactory = Callable[..., flowkit.Engine]


def workflow(handoff: dict[str, Any]) -> flowkit.WorkflowDef:
    return flowkit.load(
        {
            "id": "handoffs",
            "inputs": {
                "message": {"type": "string"},
                "target": {"type": "string", "required": False},
            },
            "agents": [
                {"id": "front", "name": "Front Desk", "handoffs": [{"agent_id": "expert"}]},
                {
                    "id": "expert",
                    "name": "Expert",
                    "instructions": "You are the expert.",
                    "handoffs": [{"agent_id": "front"}],
                },
            ],
            "steps": [
                {"id": "start", "type": "start", "next": "first"},
                {
                    "id": "first",
                    "type": "agent",
                    "agent_id": "front",
                    "prompt": "$input.message",
                    "output": "first_reply",
                    "next": "hand_over",
                },
                {"id": "hand_over", "type": "handoff", "output": "reply", **handoff},
            ],
        }
    )


def test_the_gems_target_agent_reads_handoff_to(make_engine: EngineFactory) -> None:
    provider = ScriptedProvider(
        [
            reply("One moment.", tool_calls=[tool_call("transfer_to_expert", reason="too hard")]),
            reply("The expert answer."),
        ]
    )
    engine = make_engine(provider)
    wf = workflow(
        {
            "target_agent": "$_handoff_to",
            "context": {"question": "$input.message", "so_far": "$first_reply"},
        }
    )
    result = engine.run(wf, {"message": "Why is the sky blue?"})
    assert result.completed, result.error
    ctx = engine.load(result.execution_id).ctx
    assert ctx["reply"] == "The expert answer."
    assert ctx["_current_agent"] == "expert"
    assert ctx["_handoff_to"] is None
    assert ctx["_handoff_context"] == {
        "from": "front",
        "to": "expert",
        "reason": "too hard",
        "context": {"question": "Why is the sky blue?", "so_far": "One moment."},
    }
    expert = provider.calls[1]
    assert expert.messages[0] == {"role": "system", "content": "You are the expert."}
    assert expert.messages[1]["content"] == (
        "You are taking over this conversation from agent 'front'.\n"
        "Reason for the handoff: too hard\n\n"
        "Context:\n"
        + json.dumps({"question": "Why is the sky blue?", "so_far": "One moment."}, indent=2)
    )
    provider.assert_tools_offered("transfer_to_front", call=1)
    [entry] = [e for e in engine.store.entries(result.execution_id) if e.step_id == "hand_over"]
    assert entry.output["agent"] == "expert"
    assert entry.output["handoff"]["to"] == "expert"
    assert entry.output["usage"]["total_tokens"] == 15


def test_to_with_an_explicit_prompt_and_reason(make_engine: EngineFactory) -> None:
    provider = ScriptedProvider([reply("hello"), reply("expert says hi")])
    engine = make_engine(provider)
    wf = workflow({"to": "expert", "reason": "escalation", "prompt": "Handle: $input.message"})
    result = engine.run(wf, {"message": "help"})
    assert result.completed, result.error
    assert provider.calls[1].messages[1]["content"] == "Handle: help"
    assert engine.load(result.execution_id).ctx["_handoff_context"]["reason"] == "escalation"


def test_a_target_that_hands_off_again_sets_handoff_to(make_engine: EngineFactory) -> None:
    provider = ScriptedProvider(
        [reply("hi"), reply(tool_calls=[tool_call("transfer_to_front", reason="billing")])]
    )
    engine = make_engine(provider)
    result = engine.run(workflow({"to": "expert"}), {"message": "x"})
    ctx = engine.load(result.execution_id).ctx
    assert ctx["_handoff_to"] == "front"
    assert ctx["_handoff_reason"] == "billing"
    assert ctx["reply"] == "billing"


def test_a_reference_to_an_unknown_agent_fails_naming_the_key(make_engine: EngineFactory) -> None:
    engine = make_engine(ScriptedProvider([reply("hi"), reply("hi")]))
    result = engine.run(workflow({"to": "$input.target"}), {"message": "x", "target": "sales"})
    assert result.failed
    assert result.error == (
        "ExecutionError: step 'hand_over': to 'sales' names no agent of workflow 'handoffs' "
        "(agents: front, expert)"
    )
    result = engine.run(workflow({"target_agent": "$_handoff_to"}), {"message": "x"})
    assert result.error == (
        "ExecutionError: step 'hand_over': target_agent resolved to null: there is no agent to run"
    )


def test_without_to_it_hands_over_to_the_agent_in_handoff_to(make_engine: EngineFactory) -> None:
    provider = ScriptedProvider(
        [
            reply("One moment.", tool_calls=[tool_call("transfer_to_expert", reason="too hard")]),
            reply("The expert answer."),
        ]
    )
    engine = make_engine(provider)
    result = engine.run(workflow({"context": {"q": "$input.message"}}), {"message": "Why?"})
    assert result.completed, result.error
    ctx = engine.load(result.execution_id).ctx
    assert ctx["reply"] == "The expert answer."
    assert ctx["_current_agent"] == "expert"
    assert ctx["_handoff_context"]["to"] == "expert"
    assert provider.calls[1].messages[0] == {"role": "system", "content": "You are the expert."}


def test_without_to_and_without_handoff_to_it_fails_naming_the_step(
    make_engine: EngineFactory,
) -> None:
    provider = ScriptedProvider([reply("Answered it myself.")])
    engine = make_engine(provider)
    result = engine.run(workflow({}), {"message": "x"})
    assert result.failed
    assert result.error == (
        "ExecutionError: step 'hand_over': no agent to hand over to: the step has no 'to' and "
        "ctx '_handoff_to' is not set (an agent step sets it when its model calls "
        "transfer_to_<agent>)"
    )
    provider.assert_called(1)  # the handoff called no model


def test_without_to_a_handoff_to_naming_no_agent_fails_naming_the_step(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(ScriptedProvider([]))
    wf = flowkit.load(
        {
            "id": "handoffs",
            "agents": [{"id": "front"}, {"id": "expert"}],
            "steps": [
                {"id": "start", "type": "start", "next": "pick"},
                {
                    "id": "pick",
                    "type": "assign",
                    "set": {"_handoff_to": "sales"},
                    "next": "hand_over",
                },
                {"id": "hand_over", "type": "handoff"},
            ],
        }
    )
    result = engine.run(wf)
    assert result.failed
    assert result.error == (
        "ExecutionError: step 'hand_over': _handoff_to 'sales' names no agent of workflow "
        "'handoffs' (agents: front, expert)"
    )

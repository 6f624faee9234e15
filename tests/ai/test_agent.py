"""The ``agent`` step: the tool-calling loop, checkpointed turn by turn."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import flowkit
import flowkit.ai as ai
from flowkit.ai import ScriptedProvider, reply, tool_call
from flowkit.backends.memory import MemoryStore
from flowkit.testing import FakeClock

EngineFactory = Callable[..., flowkit.Engine]


def workflow(**agent: Any) -> flowkit.WorkflowDef:
    """An ``ask`` step running agent ``helper`` (tools lookup, refund; handoff to expert)."""
    step = {
        "id": "ask",
        "type": "agent",
        "agent_id": "helper",
        "prompt": "Customer says: $input.message",
        "output": "answer",
    }
    step.update(agent.pop("step", {}))
    return flowkit.load(
        {
            "id": "agent_test",
            "inputs": {"message": {"type": "string"}},
            "agents": [
                {
                    "id": "helper",
                    "model": "small-model",
                    "instructions": "Be helpful.",
                    "tools": ["lookup", "refund"],
                    "handoffs": [{"agent_id": "expert", "description": "For hard questions"}],
                    **agent,
                },
                {"id": "expert", "name": "The Expert"},
            ],
            "tools": [
                {
                    "id": "lookup",
                    "description": "Find an order",
                    "parameters": [{"name": "order_id", "required": True}],
                    "service": "Orders",
                    "method": "lookup",
                },
                {
                    "id": "refund",
                    "parameters": [{"name": "order_id", "required": True}],
                    "service": "Orders",
                    "method": "refund",
                },
            ],
            "steps": [{"id": "start", "type": "start", "next": "ask"}, step],
        }
    )


class Orders:
    """A service recording its calls and the idempotency key of each."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    def lookup(self, order_id: str) -> dict[str, Any]:
        self.calls.append(("lookup", {"order_id": order_id}, flowkit.current().idempotency_key))
        if order_id == "missing":
            raise LookupError(f"no order {order_id}")
        return {"order_id": order_id, "status": "shipped"}

    def refund(self, order_id: str) -> dict[str, Any]:
        self.calls.append(("refund", {"order_id": order_id}, flowkit.current().idempotency_key))
        return {"refunded": order_id}


@pytest.fixture
def orders(services: flowkit.ServiceRegistry) -> Orders:
    found = Orders()
    services.register("Orders", found)
    return found


def entry_of(engine: flowkit.Engine, result: flowkit.Result, step: str = "ask") -> Any:
    [entry] = [e for e in engine.store.entries(result.execution_id) if e.step_id == step]
    return entry


# --- the loop -------------------------------------------------------------------------------------


def test_tools_run_through_the_service_registry_until_the_model_replies(
    make_engine: EngineFactory, orders: Orders
) -> None:
    provider = ScriptedProvider(
        [
            reply(tool_calls=[tool_call("lookup", _id="c1", order_id="A-1")]),
            reply("Order A-1 has shipped."),
        ]
    )
    engine = make_engine(provider)
    result = engine.run(workflow(), {"message": "Where is A-1?"})
    assert result.completed, result.error
    ctx = engine.load(result.execution_id).ctx
    assert ctx["answer"] == "Order A-1 has shipped."
    assert ctx["_handoff_to"] is None
    assert ctx["_current_agent"] == "helper"
    assert [call[:2] for call in orders.calls] == [("lookup", {"order_id": "A-1"})]
    first, second = provider.calls
    assert first.model == "small-model"
    assert first.messages == [
        {"role": "system", "content": "Be helpful."},
        {"role": "user", "content": "Customer says: Where is A-1?"},
    ]
    provider.assert_tools_offered("lookup", "refund", "transfer_to_expert", call=0)
    assert first.tools[2]["function"]["description"] == "For hard questions"
    assert second.messages[-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": json.dumps({"order_id": "A-1", "status": "shipped"}),
    }
    provider.assert_exhausted()


def test_each_tool_call_gets_its_own_stable_idempotency_key(
    make_engine: EngineFactory, orders: Orders
) -> None:
    provider = ScriptedProvider(
        [
            reply(
                tool_calls=[
                    tool_call("refund", _id="c1", order_id="A-1"),
                    tool_call("refund", _id="c2", order_id="A-2"),
                ]
            ),
            reply("Both refunded."),
        ]
    )
    engine = make_engine(provider)
    result = engine.run(workflow(), {"message": "refund both"})
    assert result.completed, result.error
    keys = [key for _, _, key in orders.calls]
    assert keys == [f"{result.execution_id}:ask:2:c1", f"{result.execution_id}:ask:2:c2"]


class RecordingStore(MemoryStore):
    """A memory store that remembers the cursor of every checkpoint."""

    def __init__(self) -> None:
        super().__init__(warn=False)
        self.cursors: list[dict[str, Any]] = []

    def checkpoint(
        self,
        execution: Any,
        entries: Any,
        expected_version: int,
        *,
        changed: Any = None,
        consumed: Any = (),
    ) -> Any:
        self.cursors.append(json.loads(json.dumps(execution.cursor)))
        return super().checkpoint(
            execution, entries, expected_version, changed=changed, consumed=consumed
        )


def test_every_model_reply_and_every_tool_result_is_checkpointed(
    make_engine: EngineFactory, orders: Orders
) -> None:
    store = RecordingStore()
    provider = ScriptedProvider(
        [
            reply(
                tool_calls=[
                    tool_call("lookup", order_id="A-1"),
                    tool_call("refund", order_id="A-1"),
                ]
            ),
            reply(tool_calls=[tool_call("lookup", order_id="A-1")]),
            reply("Done."),
        ]
    )
    engine = make_engine(provider, store=store)
    result = engine.run(workflow(), {"message": "refund A-1"})
    assert result.completed, result.error
    saved = [cursor["state"] for cursor in store.cursors if "state" in cursor]
    # reply 1 (2 tool calls), tool, tool, reply 2 (1 tool call), tool; the final reply
    # goes straight into the step's entry.
    assert [(state["turns"], [m["role"] for m in state["messages"][2:]]) for state in saved] == [
        (1, ["assistant"]),
        (1, ["assistant", "tool"]),
        (1, ["assistant", "tool", "tool"]),
        (2, ["assistant", "tool", "tool", "assistant"]),
        (2, ["assistant", "tool", "tool", "assistant", "tool"]),
    ]
    entries = engine.store.entries(result.execution_id)
    assert [entry.step_id for entry in entries] == ["start", "ask"]  # progress has no entries


def test_past_max_turns_the_step_fails_clearly(make_engine: EngineFactory, orders: Orders) -> None:
    provider = ScriptedProvider(
        [reply(tool_calls=[tool_call("lookup", order_id="A-1")]) for _ in range(3)]
    )
    engine = make_engine(provider)
    result = engine.run(workflow(max_turns=2), {"message": "loop forever"})
    assert result.failed
    assert result.error == (
        "ExecutionError: step 'ask': agent 'helper' did not give a final reply within "
        "max_turns=2 model calls (its last reply still called tools); raise max_turns on the "
        "agent or the step, or give clearer instructions"
    )
    provider.assert_called(2)
    assert len(orders.calls) == 2


def test_the_step_can_lower_or_raise_max_turns(make_engine: EngineFactory, orders: Orders) -> None:
    provider = ScriptedProvider(
        [reply(tool_calls=[tool_call("lookup", order_id="A-1")]), reply("ok")]
    )
    result = make_engine(provider).run(
        workflow(max_turns=5, step={"max_turns": 1}), {"message": "x"}
    )
    assert result.failed
    assert "within max_turns=1 model calls" in str(result.error)


def test_the_default_max_turns_is_ten(make_engine: EngineFactory, orders: Orders) -> None:
    provider = ScriptedProvider(
        [reply(tool_calls=[tool_call("lookup", order_id="A-1")]) for _ in range(11)]
    )
    result = make_engine(provider).run(workflow(), {"message": "x"})
    assert "within max_turns=10 model calls" in str(result.error)
    provider.assert_called(10)


# --- the output -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "output"),
    [
        ('{"category": "billing", "urgency": "high"}', {"category": "billing", "urgency": "high"}),
        ('```json\n{"category": "billing"}\n```', {"category": "billing"}),
        ('  {"a": 1}\n', {"a": 1}),
        ("[1, 2]", "[1, 2]"),
        ("{not json", "{not json"),
        ("Plain text.", "Plain text."),
        ("", ""),
    ],
)
def test_a_json_object_reply_becomes_an_object(
    make_engine: EngineFactory, content: str, output: Any
) -> None:
    engine = make_engine(ScriptedProvider([reply(content)]))
    result = engine.run(workflow(), {"message": "x"})
    assert result.completed, result.error
    assert engine.load(result.execution_id).ctx["answer"] == output


SCHEMA = {
    "type": "object",
    "properties": {"category": {"enum": ["billing", "technical"]}},
    "required": ["category"],
}


def test_with_an_output_schema_a_matching_reply_passes(make_engine: EngineFactory) -> None:
    provider = ScriptedProvider([reply({"category": "technical"})])
    engine = make_engine(provider)
    result = engine.run(workflow(output_schema=SCHEMA), {"message": "x"})
    assert result.completed, result.error
    assert engine.load(result.execution_id).ctx["answer"] == {"category": "technical"}
    assert provider.calls[0].response_format == {
        "type": "json_schema",
        "json_schema": {"name": "helper", "schema": SCHEMA},
    }


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (
            '{"category": "sales"}',
            "ExecutionError: step 'ask' (agent 'helper'): output does not match its schema: "
            "category: 'sales' is not one of ['billing', 'technical']",
        ),
        (
            "It is about billing.",
            "ExecutionError: step 'ask': agent 'helper' has an output_schema, so its reply must "
            "be JSON; it replied 'It is about billing.'",
        ),
    ],
)
def test_with_an_output_schema_a_bad_reply_fails_the_step(
    make_engine: EngineFactory, content: str, error: str
) -> None:
    result = make_engine(ScriptedProvider([reply(content)])).run(
        workflow(output_schema=SCHEMA), {"message": "x"}
    )
    assert result.failed
    assert result.error == error


def test_token_usage_is_recorded_on_the_entry_and_in_the_event(
    make_engine: EngineFactory, orders: Orders
) -> None:
    provider = ScriptedProvider(
        [
            reply(
                tool_calls=[tool_call("lookup", order_id="A-1")],
                prompt_tokens=100,
                completion_tokens=20,
            ),
            reply("Shipped.", prompt_tokens=150, completion_tokens=8),
        ]
    )
    engine = make_engine(provider)
    events: list[flowkit.Event] = []
    engine.subscribe(events.append, ["step.completed"])
    result = engine.run(workflow(), {"message": "A-1?"})
    usage = {"prompt_tokens": 250, "completion_tokens": 28, "total_tokens": 278}
    entry = entry_of(engine, result)
    assert entry.output == {
        "reply": "Shipped.",
        "agent": "helper",
        "model": "small-model",
        "turns": 2,
        "usage": usage,
        "handoff_to": None,
    }
    assert entry.input == {"agent": "helper", "prompt": "Customer says: A-1?"}
    [event] = [e for e in events if e.step_id == "ask"]
    assert event.payload["usage"] == usage


# --- handoffs -------------------------------------------------------------------------------------


def test_a_transfer_tool_call_ends_the_step_with_handoff_to(
    make_engine: EngineFactory, orders: Orders
) -> None:
    provider = ScriptedProvider(
        [
            reply(
                "Let me get an expert.",
                tool_calls=[
                    tool_call("transfer_to_expert", reason="needs an expert"),
                    tool_call("lookup", order_id="never"),
                ],
            )
        ]
    )
    engine = make_engine(provider)
    result = engine.run(workflow(), {"message": "hard question"})
    assert result.completed, result.error
    ctx = engine.load(result.execution_id).ctx
    assert ctx["_handoff_to"] == "expert"
    assert ctx["_handoff_reason"] == "needs an expert"
    assert ctx["answer"] == "Let me get an expert."
    assert orders.calls == []  # the call after the transfer is not run
    assert entry_of(engine, result).output["handoff_to"] == "expert"


def test_a_transfer_without_text_stores_the_reason(make_engine: EngineFactory) -> None:
    engine = make_engine(ScriptedProvider([reply(tool_calls=[tool_call("transfer_to_expert")])]))
    result = engine.run(workflow(), {"message": "x"})
    ctx = engine.load(result.execution_id).ctx
    assert ctx["answer"] == "Transferred to expert"
    assert ctx["_handoff_reason"] is None


# --- tools that go wrong --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "told"),
    [
        (
            tool_call("lookup", order_id="missing"),
            {"error": "LookupError: no order missing"},
        ),
        (
            tool_call("delete_everything"),
            {
                "error": "unknown tool 'delete_everything' (available: lookup, refund, "
                "transfer_to_expert)"
            },
        ),
        (
            tool_call("transfer_to_nobody"),
            {
                "error": "unknown tool 'transfer_to_nobody' (available: lookup, refund, "
                "transfer_to_expert)"
            },
        ),
        (
            ai.ToolCall(id="c1", name="lookup", arguments="{order_id:"),
            {
                "error": "tool 'lookup': the arguments are not valid JSON (Expecting property name "
                "enclosed in double quotes)"
            },
        ),
        (
            tool_call("lookup", order="A-1"),
            {"error": "TypeError: Orders.lookup() got an unexpected keyword argument 'order'"},
        ),
    ],
)
def test_tool_errors_are_told_to_the_model(
    make_engine: EngineFactory, orders: Orders, call: ai.ToolCall, told: dict[str, str]
) -> None:
    provider = ScriptedProvider([reply(tool_calls=[call]), reply("Sorry.")])
    result = make_engine(provider).run(workflow(), {"message": "x"})
    assert result.completed, result.error
    result_message = provider.calls[1].messages[-1]
    assert result_message["role"] == "tool"
    assert json.loads(result_message["content"]) == told


def test_a_tool_whose_service_is_not_registered_fails_the_step(make_engine: EngineFactory) -> None:
    provider = ScriptedProvider([reply(tool_calls=[tool_call("lookup", order_id="A")])])
    result = make_engine(provider).run(workflow(), {"message": "x"})
    assert result.failed
    assert result.error is not None
    assert result.error.startswith(
        "ExecutionError: tool 'lookup' of step 'ask': unknown service 'Orders'"
    )


def test_a_provider_error_fails_the_step_and_on_error_sees_it(make_engine: EngineFactory) -> None:
    data = flowkit.to_dict(workflow())
    data["steps"][1]["on_error"] = "sorry"
    data["steps"].append({"id": "sorry", "type": "assign", "set": {"why": "$_last_error.message"}})
    provider = ScriptedProvider([ai.ProviderError("model server is down")])
    engine = make_engine(provider)
    result = engine.run(flowkit.load(data), {"message": "x"})
    assert result.completed
    assert engine.load(result.execution_id).ctx["why"] == "model server is down"


def test_an_unknown_agent_is_reported_before_anything_runs(make_engine: EngineFactory) -> None:
    # Even a workflow without any `agents` key: every workflow gets the AI checks.
    wf = flowkit.parse(
        {
            "id": "no_agents",
            "steps": [
                {"id": "start", "type": "start", "next": "ask"},
                {"id": "ask", "type": "agent", "agent_id": "ghost", "prompt": "hi"},
            ],
        }
    )
    with pytest.raises(flowkit.ValidationError) as caught:
        make_engine(ScriptedProvider()).run(wf)
    assert any("'ghost'" in problem for problem in caught.value.problems)


def test_prompt_references_and_context_make_the_user_message(make_engine: EngineFactory) -> None:
    provider = ScriptedProvider([reply("ok")])
    wf = workflow(step={"prompt": "Order $input.message, data ${input}", "context": {"n": 1}})
    make_engine(provider).run(wf, {"message": "A-1"})
    assert provider.calls[0].messages[1]["content"] == (
        'Order A-1, data {"message": "A-1"}\n\nContext:\n{\n  "n": 1\n}'
    )


# --- crashes --------------------------------------------------------------------------------------


class Crash(BaseException):
    """Stands in for the process dying: nothing in the engine catches it."""


def test_a_crash_between_turns_resumes_without_repeating_a_model_call(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    store = MemoryStore(warn=False)
    calls: list[str] = []

    def lookup(order_id: str) -> dict[str, Any]:
        calls.append(order_id)
        if order_id == "B-2" and calls.count("B-2") == 1:
            raise Crash  # the process "dies" while this tool call runs
        return {"order_id": order_id}

    services.register("Orders", {"lookup": lookup, "refund": lambda order_id: {}})
    before = ScriptedProvider(
        [
            reply(
                tool_calls=[
                    tool_call("lookup", _id="c1", order_id="A-1"),
                    tool_call("lookup", _id="c2", order_id="B-2"),
                ]
            ),
            reply("never requested"),
        ]
    )
    first = make_engine(before, store=store)
    with pytest.raises(Crash):
        first.run(workflow(), {"message": "x"}, execution_id="ex-crash")
    assert store.load("ex-crash").status is flowkit.Status.RUNNING
    before.assert_called(1)

    after = ScriptedProvider([reply("All found.")])
    second = make_engine(after, store=store)
    clock.advance(3600)  # the first engine's lease expires
    [recovered] = second.recover()
    assert recovered.completed, recovered.error
    after.assert_called(1)  # the first model call was not made again
    assert calls == ["A-1", "B-2", "B-2"]  # the finished tool call was not run again
    assert [m["role"] for m in after.calls[0].messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
    ]
    assert second.load("ex-crash").ctx["answer"] == "All found."
    assert entry_of(second, recovered).output["turns"] == 2


# --- choosing the provider ------------------------------------------------------------------------


def test_an_engines_own_provider_wins_over_the_process_wide_one(
    make_engine: EngineFactory,
) -> None:
    own = ScriptedProvider([reply("from the engine's provider")])
    shared = ScriptedProvider([reply("from the shared provider")])
    with_own = make_engine(own)
    without = make_engine()
    ai.configure(shared)
    first = with_own.run(workflow(), {"message": "x"})
    second = without.run(workflow(), {"message": "x"})
    assert with_own.load(first.execution_id).ctx["answer"] == "from the engine's provider"
    assert without.load(second.execution_id).ctx["answer"] == "from the shared provider"


def test_use_provider_restores_the_previous_choice(make_engine: EngineFactory) -> None:
    engine = make_engine()
    outer = ScriptedProvider([reply("outer")])
    ai.configure(outer)
    with ai.use_provider(ScriptedProvider([reply("inner")])):
        inner = engine.run(workflow(), {"message": "x"})
    after = engine.run(workflow(), {"message": "x"})
    assert engine.load(inner.execution_id).ctx["answer"] == "inner"
    assert engine.load(after.execution_id).ctx["answer"] == "outer"


def test_a_provider_must_implement_the_protocol() -> None:
    with pytest.raises(TypeError, match="is not a provider"):
        ai.configure(object())  # type: ignore[arg-type]


def test_an_agent_in_a_loop_body_runs_once_per_item(
    make_engine: EngineFactory, orders: Orders
) -> None:
    data = flowkit.to_dict(workflow())
    ask = data["steps"][1]
    data["steps"][1] = {
        "id": "each",
        "type": "loop",
        "over": ["A-1", "A-2"],
        "as": "order",
        "do": [{**ask, "prompt": "Order $order"}],
        "output": "answers",
    }
    data["steps"][0]["next"] = "each"

    def respond(sent: ai.ScriptedCall) -> ai.ModelReply:
        order = sent.messages[1]["content"].removeprefix("Order ")
        if sent.last_message["role"] == "user":
            return reply(tool_calls=[tool_call("lookup", order_id=order)])
        return reply(f"{order} shipped")

    engine = make_engine(ScriptedProvider([respond] * 4))
    result = engine.run(flowkit.load(data), {"message": "x"})
    assert result.completed, result.error
    answers = engine.load(result.execution_id).ctx["answers"]
    assert [answer["reply"] for answer in answers] == ["A-1 shipped", "A-2 shipped"]
    assert [call[1] for call in orders.calls] == [{"order_id": "A-1"}, {"order_id": "A-2"}]

"""The scripted provider: replies from a script, a record of every request, assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowkit.ai import ModelReply, ProviderError, ScriptedCall, ScriptedProvider, read_log, reply
from flowkit.ai import tool_call as call

USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]


def test_items_of_every_kind_are_replies() -> None:
    provider = ScriptedProvider(
        [
            "plain text",
            {"json": True},
            reply(tool_calls=[call("lookup", _id="c1", order_id="A")]),
            lambda sent: f"you said {sent.last_message['content']}",
            ValueError("boom"),
        ]
    )
    assert provider.complete(model=None, messages=USER).content == "plain text"
    assert provider.complete(model=None, messages=USER).content == json.dumps({"json": True})
    [made] = provider.complete(model=None, messages=USER).tool_calls
    assert (made.id, made.name, made.parsed_arguments()) == ("c1", "lookup", {"order_id": "A"})
    assert provider.complete(model=None, messages=USER).content == "you said hi"
    with pytest.raises(ValueError, match="boom"):
        provider.complete(model=None, messages=USER)
    assert provider.remaining == 0


def test_a_used_up_script_is_a_clear_error() -> None:
    provider = ScriptedProvider().reply("only one")
    provider.complete(model="m", messages=USER)
    with pytest.raises(ProviderError) as caught:
        provider.complete(model="m", messages=USER)
    assert str(caught.value) == (
        'the scripted provider has no reply left for request 2 (last message: {"role": "user", '
        '"content": "hi"})'
    )


def test_requests_are_recorded_and_can_be_asserted_on() -> None:
    provider = ScriptedProvider().call_tools(call("lookup", _id="x")).reply("done")
    provider.complete(model="m1", messages=USER, tools=TOOLS)
    provider.complete(model="m2", messages=[*USER, {"role": "tool", "content": "found it"}])
    assert provider.calls[0] == ScriptedCall(model="m1", messages=USER, tools=TOOLS)
    provider.assert_called(2)
    provider.assert_exhausted()
    provider.assert_sent("found it")
    provider.assert_tools_offered("lookup", call=0)
    provider.assert_tools_offered(call=1)
    with pytest.raises(AssertionError, match="expected 3 model calls, got 2"):
        provider.assert_called(3)
    with pytest.raises(AssertionError, match="'nope' not in model call -1"):
        provider.assert_sent("nope")
    with pytest.raises(AssertionError, match=r"model call 0 offered \['lookup'\], expected \[\]"):
        provider.assert_tools_offered(call=0)


def test_what_was_sent_is_a_copy() -> None:
    messages = [{"role": "user", "content": "hi"}]
    provider = ScriptedProvider(["ok"])
    provider.complete(model=None, messages=messages)
    messages[0]["content"] = "changed"
    assert provider.calls[0].messages == [{"role": "user", "content": "hi"}]


def test_unused_replies_fail_assert_exhausted() -> None:
    with pytest.raises(AssertionError, match="2 scripted replies were never requested"):
        ScriptedProvider(["a", "b"]).assert_exhausted()


def test_requests_can_be_logged_to_a_file(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    provider = ScriptedProvider(["a", "b"], log=log)
    provider.complete(model="m", messages=USER)
    provider.complete(model="m", messages=USER)
    lines = read_log(log)
    assert [line["messages"] for line in lines] == [USER, USER]
    assert read_log(tmp_path / "missing.jsonl") == []


def test_a_reply_message_carries_its_tool_calls() -> None:
    made = reply("text", tool_calls=[call("f", _id="c", a=1)])
    assert isinstance(made, ModelReply)
    assert made.to_message() == {
        "role": "assistant",
        "content": "text",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
        ],
    }
    assert made.finish_reason == "tool_calls"

"""The OpenAI-compatible provider against a real local HTTP server (no network).

The server (``openai_server.py``) speaks the chat-completions wire format,
tool calls included; these tests drive the provider over a real socket:
retries on 429 (honouring ``Retry-After``) and 5xx, timeouts, unusable
answers, configuration from arguments and the environment, and a whole
agent step whose model is reached over HTTP.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowkit
import flowkit.ai as ai
from flowkit.ai import OpenAIProvider, ProviderError

from .openai_server import FakeOpenAI, completion, running, tool_call_json

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with running() as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def provider(server: FakeOpenAI, sleeps: list[float]) -> Iterator[OpenAIProvider]:
    made = OpenAIProvider(
        base_url=server.url, api_key="sk-test", model="gpt-test", timeout=2.0, sleep=sleeps.append
    )
    yield made
    made.close()


# --- the wire format ------------------------------------------------------------------------------


def test_a_text_reply_with_its_usage(server: FakeOpenAI, provider: OpenAIProvider) -> None:
    server.respond(completion("Hi there", prompt_tokens=30, completion_tokens=4))
    reply = provider.complete(model=None, messages=USER)
    assert reply.content == "Hi there"
    assert reply.tool_calls == ()
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (30, 4)
    assert reply.usage.total_tokens == 34
    assert reply.finish_reason == "stop"
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {"model": "gpt-test", "messages": USER}


def test_tool_schemas_go_out_and_tool_calls_come_back(
    server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    server.respond(completion(tool_calls=[tool_call_json("lookup", {"order_id": "A-1"}, "call_9")]))
    reply = provider.complete(model="gpt-4o", messages=USER, tools=tools)
    [call] = reply.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == (
        "call_9",
        "lookup",
        {"order_id": "A-1"},
    )
    assert reply.to_message()["tool_calls"][0]["function"]["name"] == "lookup"
    assert server.bodies[0]["tools"] == tools
    assert server.bodies[0]["model"] == "gpt-4o"  # the agent's model wins over the default


def test_arguments_sent_as_an_object_are_accepted(
    server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    body = completion(tool_calls=[tool_call_json("f", {}, "c1")])
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {"x": 1}
    server.respond(body)
    [call] = provider.complete(model=None, messages=USER).tool_calls
    assert call.parsed_arguments() == {"x": 1}


# --- retries --------------------------------------------------------------------------------------


def test_429_waits_as_long_as_retry_after_says(
    server: FakeOpenAI, provider: OpenAIProvider, sleeps: list[float]
) -> None:
    limited = {"error": {"message": "Rate limit reached", "type": "requests"}}
    server.respond(limited, status=429, headers={"Retry-After": "3"})
    server.respond(limited, status=429, headers={"retry-after-ms": "250"})
    server.respond(completion("finally"))
    assert provider.complete(model=None, messages=USER).content == "finally"
    assert sleeps == [3.0, 0.25]
    assert len(server.requests) == 3


def test_5xx_is_retried_with_exponential_backoff(
    server: FakeOpenAI, provider: OpenAIProvider, sleeps: list[float]
) -> None:
    server.respond({"error": {"message": "overloaded"}}, status=503)
    server.respond({"error": {"message": "bad gateway"}}, status=502)
    server.respond(completion("ok"))
    assert provider.complete(model=None, messages=USER).content == "ok"
    assert sleeps == [0.5, 1.0]


def test_retries_give_up_with_the_servers_message(
    server: FakeOpenAI, provider: OpenAIProvider, sleeps: list[float]
) -> None:
    for _ in range(4):
        server.respond({"error": {"message": "The server had an error"}}, status=500)
    with pytest.raises(ProviderError) as caught:
        provider.complete(model=None, messages=USER)
    assert str(caught.value) == (
        f"{server.url}/chat/completions answered 500: The server had an error "
        "(gave up after 4 attempts)"
    )
    assert caught.value.status == 500
    assert len(server.requests) == 4  # the first attempt and max_retries=3 more
    assert sleeps == [0.5, 1.0, 2.0]


def test_a_long_retry_after_is_capped(server: FakeOpenAI, sleeps: list[float]) -> None:
    capped = OpenAIProvider(base_url=server.url, model="m", max_backoff=5, sleep=sleeps.append)
    server.respond({}, status=429, headers={"Retry-After": "3600"})
    server.respond(completion("ok"))
    try:
        assert capped.complete(model=None, messages=USER).content == "ok"
    finally:
        capped.close()
    assert sleeps == [5]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "answered 400: Invalid 'messages[0].role'"),
        (401, "answered 401: Incorrect API key provided (check the API key: "),
        (404, "answered 404: The model 'nope' does not exist (check the base URL and the model"),
    ],
)
def test_client_errors_are_not_retried(
    server: FakeOpenAI, provider: OpenAIProvider, status: int, message: str
) -> None:
    text = {
        400: "Invalid 'messages[0].role'",
        401: "Incorrect API key provided",
        404: "The model 'nope' does not exist",
    }[status]
    server.respond({"error": {"message": text}}, status=status)
    with pytest.raises(ProviderError, match="answered") as caught:
        provider.complete(model=None, messages=USER)
    assert message in str(caught.value)
    assert caught.value.status == status
    assert len(server.requests) == 1


# --- timeouts and unusable answers ----------------------------------------------------------------


def test_a_request_that_takes_too_long_times_out(server: FakeOpenAI) -> None:
    slow = OpenAIProvider(base_url=server.url, model="m", timeout=0.2, max_retries=0)
    server.respond(completion("too late"), delay=1.0)
    try:
        with pytest.raises(ProviderError, match=r"did not answer within 0.2s \(ReadTimeout\)"):
            slow.complete(model=None, messages=USER)
    finally:
        slow.close()


def test_a_timed_out_request_is_retried(server: FakeOpenAI, sleeps: list[float]) -> None:
    slow = OpenAIProvider(base_url=server.url, model="m", timeout=0.2, sleep=sleeps.append)
    server.respond(completion("too late"), delay=1.0)
    server.respond(completion("in time"))
    try:
        assert slow.complete(model=None, messages=USER).content == "in time"
    finally:
        slow.close()
    assert sleeps == [0.5]


def test_a_body_that_is_not_json_is_a_clear_error(
    server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    server.respond(raw=b"<html>502 Bad Gateway</html>")
    with pytest.raises(ProviderError) as caught:
        provider.complete(model=None, messages=USER)
    assert str(caught.value) == (
        f"{server.url}/chat/completions answered 200 with a body that is not JSON: "
        "'<html>502 Bad Gateway</html>'"
    )


def test_json_that_is_not_a_completion_is_a_clear_error(
    server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    server.respond({"object": "list", "data": []})
    with pytest.raises(ProviderError, match=r"answered without 'choices\[0\].message' \(is it a"):
        provider.complete(model=None, messages=USER)


def test_an_unreachable_server_is_named(sleeps: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nobody = OpenAIProvider(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, sleep=sleeps.append
    )
    try:
        with pytest.raises(ProviderError, match=rf"cannot reach http://127.0.0.1:{port}/v1/chat"):
            nobody.complete(model=None, messages=USER)
    finally:
        nobody.close()
    assert sleeps == [0.5]


def test_a_model_is_required(server: FakeOpenAI) -> None:
    unnamed = OpenAIProvider(base_url=server.url)
    try:
        with pytest.raises(flowkit.ConfigError, match=r"no model: name one on the agent"):
            unnamed.complete(model=None, messages=USER)
    finally:
        unnamed.close()
    assert server.requests == []


# --- moderation -----------------------------------------------------------------------------------


def test_moderation_reports_the_flagged_categories(
    server: FakeOpenAI, provider: OpenAIProvider
) -> None:
    server.respond(
        {
            "id": "modr-1",
            "results": [{"flagged": True, "categories": {"harassment": True, "violence": False}}],
        }
    )
    result = provider.moderate("some text")
    assert result.flagged
    assert result.categories == ("harassment",)
    assert server.requests[0].path == "/v1/moderations"
    assert server.bodies[0] == {"input": "some text"}


# --- configuration --------------------------------------------------------------------------------


def test_the_environment_configures_the_default_provider(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWKIT_AI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("FLOWKIT_AI_MODEL", "env-model")
    chosen = ai.provider_for(None)
    assert isinstance(chosen, OpenAIProvider)
    assert ai.provider_for(None) is chosen  # built once
    server.respond(completion("from env"))
    assert chosen.complete(model=None, messages=USER).content == "from env"
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env"
    assert server.bodies[0]["model"] == "env-model"


def test_configure_sets_up_the_default_provider(server: FakeOpenAI) -> None:
    ai.configure(base_url=server.url, model="configured", max_retries=0)
    chosen = ai.provider_for(None)
    assert isinstance(chosen, OpenAIProvider)
    assert (chosen.base_url, chosen.model, chosen.max_retries) == (server.url, "configured", 0)
    assert chosen.api_key is None


def test_without_configuration_the_error_says_what_to_do() -> None:
    with pytest.raises(flowkit.ConfigError) as caught:
        ai.provider_for(None)
    assert str(caught.value) == (
        "no model provider is configured: call flowkit.ai.configure(base_url=..., api_key=..., "
        "model=...) or set OPENAI_API_KEY (and FLOWKIT_AI_BASE_URL for another "
        "OpenAI-compatible server); tests use flowkit.ai.ScriptedProvider"
    )


# --- an agent step over HTTP ----------------------------------------------------------------------

AGENT_WORKFLOW = {
    "id": "http_agent",
    "inputs": {"question": {"type": "string"}},
    "agents": [
        {
            "id": "helper",
            "model": "gpt-4o-mini",
            "instructions": "Answer with JSON.",
            "tools": ["add"],
        }
    ],
    "tools": [
        {
            "id": "add",
            "description": "Add two numbers",
            "parameters": [
                {"name": "a", "type": "number", "required": True},
                {"name": "b", "type": "number", "required": True},
            ],
            "service": "Math",
            "method": "add",
        }
    ],
    "steps": [
        {"id": "start", "type": "start", "next": "ask"},
        {
            "id": "ask",
            "type": "agent",
            "agent_id": "helper",
            "prompt": "$input.question",
            "output": "answer",
        },
    ],
}


def test_an_agent_step_talks_to_the_model_over_http(
    server: FakeOpenAI,
    provider: OpenAIProvider,
    make_engine: ...,
    services: flowkit.ServiceRegistry,
) -> None:
    services.register("Math", {"add": lambda a, b: {"sum": a + b}})
    server.respond(completion(tool_calls=[tool_call_json("add", {"a": 2, "b": 40}, "call_1")]))
    server.respond(completion('{"answer": 42}', prompt_tokens=50, completion_tokens=5))
    engine = make_engine(provider)
    result = engine.run(flowkit.parse(AGENT_WORKFLOW), {"question": "What is 2 + 40?"})
    assert result.completed, result.error
    assert engine.load(result.execution_id).ctx["answer"] == {"answer": 42}
    first, second = server.bodies
    assert first["model"] == "gpt-4o-mini"
    assert first["messages"] == [
        {"role": "system", "content": "Answer with JSON."},
        {"role": "user", "content": "What is 2 + 40?"},
    ]
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    "required": ["a", "b"],
                },
                "description": "Add two numbers",
            },
        }
    ]
    assert second["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call_json("add", {"a": 2, "b": 40}, "call_1")],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"sum": 42})},
    ]
    [entry] = [e for e in engine.store.entries(result.execution_id) if e.step_id == "ask"]
    assert entry.output["usage"] == {
        "prompt_tokens": 62,
        "completion_tokens": 12,
        "total_tokens": 74,
    }
    assert entry.output["model"] == "gpt-test"  # as the server reported it


def test_an_output_schema_asks_the_server_for_json(
    server: FakeOpenAI, provider: OpenAIProvider, make_engine: ...
) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    data = json.loads(json.dumps(AGENT_WORKFLOW))
    data["agents"][0]["output_schema"] = schema
    data["agents"][0]["tools"] = []
    server.respond(completion('{"ok": true}'))
    result = make_engine(provider).run(flowkit.parse(data), {"question": "ok?"})
    assert result.completed, result.error
    assert server.bodies[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "helper", "schema": schema},
    }
    assert "tools" not in server.bodies[0]


# --- credentials in what is stored ----------------------------------------------------------------


def test_a_gateway_echoing_the_key_leaves_no_credential_in_the_store(
    server: FakeOpenAI, make_engine: ..., tmp_path: Path
) -> None:
    key = "sk-echoed-a1b2c3d4e5f6a7b8c9d0"
    server.respond(status=400, echo=True)
    store = flowkit.connect(f"sqlite:///{tmp_path}/runs.db")
    events: list[flowkit.Event] = []
    provider = OpenAIProvider(base_url=server.url, api_key=key, model="m", max_retries=0)
    engine = make_engine(provider, store=store)
    engine.events.subscribe(events.append)
    result = engine.run(flowkit.parse(AGENT_WORKFLOW), {"question": "What is 2 + 40?"})
    provider.close()
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    assert result.status is flowkit.Status.FAILED
    assert result.error is not None
    assert "answered 400: bad request; the headers were" in result.error
    assert "'Authorization': '[redacted]'" in result.error
    stored = store.load(result.execution_id)
    assert stored is not None
    texts = [stored.error, *(entry.error for entry in store.entries(result.execution_id))]
    texts += [json.dumps(event.to_dict()) for event in events]
    assert all(key not in (text or "") for text in texts)
    assert "[redacted]" in stored.error
    store.close()

"""The ``mcp`` step against real MCP servers: a subprocess over stdio, and uvicorn over
streamable HTTP (``mcp_servers/demo_server.py``, built with the SDK's MCPServer)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp_types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    TextContent,
)

import flowkit
import flowkit.ai  # registers the AI step types
from flowkit.ai import _mcp
from flowkit.ai._mcp import close_sessions, tool_result_json

from .mcp_servers.processes import DEMO, free_port, gone, listening

pytestmark = pytest.mark.timeout(120)

PNG = (  # the demo server's 1x1 PNG, base64
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture(autouse=True)
def fresh_sessions() -> Iterator[None]:
    """Every test starts without pooled sessions, and stops the servers it started."""
    close_sessions()
    yield
    close_sessions()


def stdio_server(**extra: Any) -> dict[str, Any]:
    return {"command": [sys.executable, str(DEMO)], **extra}


def workflow(server: dict[str, Any], *steps: dict[str, Any], **top: Any) -> flowkit.WorkflowDef:
    """A workflow whose steps run in the order given, then end with ctx as the result."""
    chained = []
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        chained.append({**step, "next": following["id"] if following else "done"})
    return flowkit.load(
        {
            "id": "mcp_test",
            "mcp_servers": {"demo": server},
            **top,
            "steps": [
                *({"type": "mcp", "server": "demo", **step} for step in chained),
                {"id": "done", "type": "end"},
            ],
        }
    )


# --- stdio ----------------------------------------------------------------------------------


def test_stdio_server_runs_tools_and_converts_results(flowkit_engine: flowkit.Engine) -> None:
    wf = flowkit.load(
        f"""
id: stdio_tools
inputs:
  a: {{type: integer}}
  word: {{type: string}}
mcp_servers:
  demo:
    transport: stdio
    command: {json.dumps([sys.executable, str(DEMO)])}
steps:
  - id: add
    type: mcp
    server: demo
    tool: add
    arguments: {{a: $input.a, b: 2}}
    output: total
    next: shout
  - id: shout
    type: mcp
    server: demo
    tool: shout
    arguments: {{text: "$input.word makes ${{total.sum}}"}}
    output: loud
    next: lines
  - id: lines
    type: mcp
    server: demo
    tool: lines
    arguments: {{items: [one, two]}}
    output: joined
    next: picture
  - id: picture
    type: mcp
    server: demo
    tool: picture
    output: image
    next: captioned
  - id: captioned
    type: mcp
    server: demo
    tool: captioned
    output: blocks
    next: inventory
  - id: inventory
    type: mcp
    server: demo
    tool: inventory
    output: stock
"""
    )
    result = flowkit_engine.run(wf, {"a": 40, "word": "forty"})
    assert result.completed, result.error
    ctx = flowkit_engine.load(result.execution_id).ctx
    assert ctx["total"] == {"sum": 42}  # structured content, as the server sent it
    assert ctx["loud"] == "FORTY MAKES 42"  # text content
    assert ctx["joined"] == "one\ntwo"  # text blocks joined
    assert ctx["image"] == {"type": "image", "mimeType": "image/png", "data": PNG}
    assert ctx["stock"] == {"apples": 3, "pears": 0}  # JSON text, parsed
    assert ctx["blocks"] == [
        {"type": "text", "text": "a pixel"},
        {"type": "image", "mimeType": "image/png", "data": PNG},
    ]
    entries = {entry.step_id: entry for entry in flowkit_engine.store.entries(result.execution_id)}
    assert entries["add"].input == {"a": 40, "b": 2}  # the resolved arguments
    assert entries["shout"].input == {"text": "forty makes 42"}
    assert entries["add"].output == {"sum": 42}


def test_sessions_are_reused_across_steps_and_runs(flowkit_engine: flowkit.Engine) -> None:
    wf = workflow(
        stdio_server(),
        {"id": "first", "tool": "process", "output": "first"},
        {"id": "second", "tool": "process", "output": "second"},
    )
    one = flowkit_engine.load(flowkit_engine.run(wf).execution_id).ctx
    two = flowkit_engine.load(flowkit_engine.run(wf).execution_id).ctx
    # One server process answered all four calls, in order.
    assert {one["first"]["pid"], one["second"]["pid"], two["first"]["pid"]} == {
        two["second"]["pid"]
    }
    assert [one["first"]["calls"], one["second"]["calls"], two["second"]["calls"]] == [1, 2, 4]
    assert _mcp.pool.sessions() == 1


def test_parallel_branches_share_one_session_concurrently(flowkit_engine: flowkit.Engine) -> None:
    branches = [
        {
            "id": f"nap{i}",
            "type": "mcp",
            "server": "demo",
            "tool": "slow",
            "arguments": {"seconds": 1},
        }
        for i in range(3)
    ]
    wf = flowkit.load(
        {
            "id": "naps",
            "mcp_servers": {"demo": stdio_server()},
            "steps": [
                {"id": "warm", "type": "mcp", "server": "demo", "tool": "process", "next": "naps"},
                {"id": "naps", "type": "parallel", "branches": branches, "output": "naps"},
            ],
        }
    )
    started = time.monotonic()
    result = flowkit_engine.run(wf)
    elapsed = time.monotonic() - started
    assert result.completed, result.error
    assert flowkit_engine.load(result.execution_id).ctx["naps"] == [{"slept": 1}] * 3
    durations = {
        e.step_id: e.duration_ms / 1000 for e in flowkit_engine.store.entries(result.execution_id)
    }
    assert elapsed - durations["warm"] < 2.5  # the three one-second calls overlapped
    assert _mcp.pool.sessions() == 1


def test_close_sessions_stops_the_stdio_server(flowkit_engine: flowkit.Engine) -> None:
    wf = workflow(stdio_server(), {"id": "who", "tool": "process", "output": "who"})
    pid = flowkit_engine.load(flowkit_engine.run(wf).execution_id).ctx["who"]["pid"]
    close_sessions()
    assert gone(pid)
    assert _mcp.pool.sessions() == 0
    again = flowkit_engine.load(flowkit_engine.run(wf).execution_id).ctx["who"]
    assert again["pid"] != pid  # a new session, a new process


def test_closing_the_sessions_during_a_call_fails_that_step(
    flowkit_engine: flowkit.Engine,
) -> None:
    wf = workflow(stdio_server(), {"id": "nap", "tool": "slow", "arguments": {"seconds": 60}})
    results: list[flowkit.Result] = []
    runner = threading.Thread(target=lambda: results.append(flowkit_engine.run(wf)))
    runner.start()
    deadline = time.monotonic() + 30
    while _mcp.pool.sessions() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    close_sessions()
    runner.join(30)
    assert not runner.is_alive()
    (result,) = results
    assert result.failed
    assert result.error is not None
    assert result.error.startswith(
        (
            "ExecutionError: lost the connection to MCP server 'demo'",
            "ExecutionError: the MCP sessions of this process were closed while calling 'slow'",
        )
    )


def test_a_server_that_died_is_restarted_for_the_next_step(flowkit_engine: flowkit.Engine) -> None:
    wf = workflow(stdio_server(), {"id": "who", "tool": "process", "output": "who"})
    pid = flowkit_engine.load(flowkit_engine.run(wf).execution_id).ctx["who"]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert gone(pid)
    # The pool notices on its own thread when the server's pipe ends; a step between
    # the death and that moment would fail like any call to a dying server.
    deadline = time.monotonic() + 30
    while _mcp.pool.sessions() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _mcp.pool.sessions() == 0
    result = flowkit_engine.run(wf)  # the dead session was noticed: no failed step
    assert result.completed, result.error
    who = flowkit_engine.load(result.execution_id).ctx["who"]
    assert who["pid"] != pid
    assert who["calls"] == 1


def test_env_is_interpolated_when_the_server_starts(
    flowkit_engine: flowkit.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWKIT_TEST_REGION", "eu-west")
    wf = workflow(
        stdio_server(env={"REGION": "region=${FLOWKIT_TEST_REGION}"}),
        {"id": "env", "tool": "environment", "arguments": {"name": "REGION"}, "output": "env"},
    )
    assert "${FLOWKIT_TEST_REGION}" in flowkit.to_yaml(wf)  # stored as written
    result = flowkit_engine.run(wf)
    assert flowkit_engine.load(result.execution_id).ctx["env"] == {
        "name": "REGION",
        "value": "region=eu-west",
    }


def test_a_missing_env_variable_fails_the_step(flowkit_engine: flowkit.Engine) -> None:
    wf = workflow(
        stdio_server(env={"TOKEN": "${FLOWKIT_TEST_NOT_SET}"}),
        {"id": "env", "tool": "environment", "arguments": {"name": "TOKEN"}},
    )
    result = flowkit_engine.run(wf)
    assert result.failed
    assert result.error == (
        "ExecutionError: MCP server 'demo': env: environment variable "
        "'FLOWKIT_TEST_NOT_SET' is not set"
    )


def test_stdio_server_starts_in_the_workflow_files_directory(
    flowkit_engine: flowkit.Engine, tmp_path: Path
) -> None:
    (tmp_path / "server.py").write_text(DEMO.read_text())
    path = tmp_path / "flow.yml"
    path.write_text(
        f"""
id: relative
mcp_servers:
  local: {{command: [{json.dumps(sys.executable)}, server.py]}}
steps:
  - {{id: where, type: mcp, server: local, tool: cwd, output: where}}
"""
    )
    result = flowkit_engine.run(flowkit.load(path))
    assert result.completed, result.error
    assert flowkit_engine.load(result.execution_id).ctx["where"] == {"cwd": str(tmp_path)}


# --- errors ---------------------------------------------------------------------------------


def test_a_tool_error_fails_the_step_with_the_servers_message(
    flowkit_engine: flowkit.Engine,
) -> None:
    wf = workflow(
        stdio_server(), {"id": "ask", "tool": "refuse", "arguments": {"reason": "$input.why"}}
    )
    result = flowkit_engine.run(wf, {"why": "no budget"})
    assert result.failed
    assert result.error == (
        "ExecutionError: MCP tool 'refuse' on server 'demo' failed: "
        "Error executing tool refuse: refused: no budget"
    )
    failed = flowkit_engine.store.entries(result.execution_id)[-1]
    assert (failed.step_id, failed.action.value) == ("ask", "failed")


def test_a_tool_error_can_be_handled_with_on_error(flowkit_engine: flowkit.Engine) -> None:
    wf = flowkit.load(
        {
            "id": "handled",
            "mcp_servers": {"demo": stdio_server()},
            "steps": [
                {
                    "id": "ask",
                    "type": "mcp",
                    "server": "demo",
                    "tool": "nonexistent_tool",
                    "on_error": "fallback",
                },
                {"id": "fallback", "type": "end", "result": "$_last_error"},
            ],
        }
    )
    result = flowkit_engine.run(wf)
    assert result.completed
    assert result.output == {
        "step": "ask",
        "type": "ExecutionError",
        "message": "MCP tool 'nonexistent_tool' on server 'demo' failed: "
        "Unknown tool: nonexistent_tool",
    }


def test_a_protocol_error_fails_the_step(flowkit_engine: flowkit.Engine) -> None:
    result = flowkit_engine.run(workflow(stdio_server(), {"id": "ask", "tool": "over_quota"}))
    assert result.error == (
        "ExecutionError: MCP server 'demo' refused tool 'over_quota': quota exceeded (error -32602)"
    )


def test_without_the_sdk_the_step_says_which_extra_to_install(
    flowkit_engine: flowkit.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the ai extra were not installed
    result = flowkit_engine.run(workflow(stdio_server(), {"id": "ask", "tool": "add"}))
    assert result.error == (
        "ExecutionError: step 'ask': the mcp step needs the MCP SDK (import of mcp halted; "
        "None in sys.modules): pip install 'flowkit-workflows[ai]'"
    )


def test_the_step_timeout_cancels_the_call_and_keeps_the_session(
    flowkit_engine: flowkit.Engine,
) -> None:
    wf = workflow(
        stdio_server(),
        {"id": "before", "tool": "process", "output": "before"},
        {"id": "wait", "tool": "slow", "arguments": {"seconds": 30}, "timeout": 0.3},
    )
    started = time.monotonic()
    result = flowkit_engine.run(wf)
    assert time.monotonic() - started < 10
    assert result.failed
    assert result.error == "ExecutionError: Step 'wait' timed out after 0.3s"
    after = workflow(stdio_server(), {"id": "after", "tool": "process", "output": "after"})
    before_pid = flowkit_engine.load(result.execution_id).ctx["before"]["pid"]
    again = flowkit_engine.load(flowkit_engine.run(after).execution_id).ctx["after"]
    assert again == {"pid": before_pid, "calls": 2}


def test_a_server_that_never_answers_the_handshake(
    flowkit_engine: flowkit.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_mcp, "CONNECT_TIMEOUT", 0.5)
    pidfile = tmp_path / "pid"
    script = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    silent = {"command": [sys.executable, "-c", script, str(pidfile)]}
    result = flowkit_engine.run(workflow(silent, {"id": "ask", "tool": "add"}))
    assert result.failed
    assert result.error == (
        f"ExecutionError: MCP server 'demo' ({shlex.join(silent['command'])}) "
        "did not finish the MCP handshake within 0.5s"
    )
    assert _mcp.pool.sessions() == 0
    close_sessions()  # waits for the abandoned process to be stopped
    assert gone(int(pidfile.read_text()), timeout=0.5)


def test_a_command_that_does_not_exist(flowkit_engine: flowkit.Engine, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-server")
    result = flowkit_engine.run(workflow({"command": [missing]}, {"id": "ask", "tool": "add"}))
    assert result.failed
    assert result.error == (
        f"ExecutionError: cannot connect to MCP server 'demo' (stdio: {missing}): "
        f"FileNotFoundError: [Errno 2] No such file or directory: '{missing}'"
    )


def test_arguments_must_be_a_mapping(flowkit_engine: flowkit.Engine) -> None:
    wf = workflow(stdio_server(), {"id": "ask", "tool": "add", "arguments": "$input.numbers"})
    result = flowkit_engine.run(wf, {"numbers": [1, 2]})
    assert result.failed
    assert result.error == (
        "ExecutionError: step 'ask': 'arguments' must be a mapping of argument names to "
        "values, got list"
    )


def test_a_step_must_name_a_declared_server() -> None:
    definition = {
        "id": "typo",
        "mcp_servers": {"demo": stdio_server()},
        "steps": [{"id": "ask", "type": "mcp", "server": "dmeo", "tool": "add"}],
    }
    assert flowkit.check(definition) == [
        "workflow 'typo' step 'ask': server: no MCP server 'dmeo' (did you mean 'demo'?)"
    ]
    with pytest.raises(flowkit.ValidationError) as raised:
        flowkit.load(definition)
    assert raised.value.problems == flowkit.check(definition)


def test_an_undeclared_server_is_reported_without_mcp_servers(
    flowkit_engine: flowkit.Engine,
) -> None:
    wf = flowkit.parse(
        {"id": "bare", "steps": [{"id": "ask", "type": "mcp", "server": "demo", "tool": "add"}]}
    )
    message = "no MCP server 'demo' (the workflow declares no top-level 'mcp_servers')"
    problems = flowkit.check(wf)
    if problems:  # validation reports it (once it covers workflows without AI keys)
        assert problems == [f"workflow 'bare' step 'ask': server: {message}"]
    else:  # otherwise the step refuses at run time, before connecting to anything
        assert flowkit_engine.run(wf).error == f"ExecutionError: step 'ask': {message}"


def test_the_idempotency_key_travels_in_the_request_meta(flowkit_engine: flowkit.Engine) -> None:
    wf = workflow(stdio_server(), {"id": "meta", "tool": "call_meta", "output": "meta"})
    result = flowkit_engine.run(wf)
    key = flowkit_engine.load(result.execution_id).ctx["meta"]["key"]
    assert key.startswith(f"{result.execution_id}:meta")


# --- streamable HTTP ------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    """The demo server under uvicorn on a free loopback port; its /mcp URL."""
    port = free_port()
    command = [sys.executable, str(DEMO), "http", str(port)]
    with listening(command, port, tmp_path / "server.log"):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[flowkit.Engine]:
    engine = flowkit.Engine(store=f"sqlite:///{tmp_path / 'runs.db'}", executor="inline")
    yield engine
    engine.close()


def test_http_server_with_interpolated_headers(
    sqlite_engine: flowkit.Engine, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWKIT_TEST_TOKEN", "s3cret-token")
    server = {
        "url": http_server,
        "headers": {"Authorization": "Bearer ${FLOWKIT_TEST_TOKEN}", "X-Tenant": "acme"},
    }
    wf = workflow(
        server,
        {"id": "add", "tool": "add", "arguments": {"a": "$input.a", "b": 1}, "output": "total"},
        {"id": "headers", "tool": "request_headers", "output": "seen"},
        {"id": "loud", "tool": "shout", "arguments": {"text": "ok"}, "output": "loud"},
    )
    result = sqlite_engine.run(wf, {"a": 41})
    assert result.completed, result.error
    ctx = sqlite_engine.load(result.execution_id).ctx
    assert ctx["total"] == {"sum": 42}
    assert ctx["seen"] == {"authorization": "Bearer s3cret-token", "x_tenant": "acme"}
    assert ctx["loud"] == "OK"
    # The header reached the server; the definition keeps the placeholder, and the
    # token is in no entry but the output of the tool that echoed it.
    assert "Bearer ${FLOWKIT_TEST_TOKEN}" in flowkit.to_yaml(wf)
    entries = sqlite_engine.store.entries(result.execution_id)
    assert [entry.step_id for entry in entries] == ["add", "headers", "loud", "done"]
    leaked = [e.step_id for e in entries if "s3cret" in json.dumps([e.input, e.output])]
    assert leaked == ["headers", "done"]  # the echo, and the end step's copy of ctx


def test_http_tool_error_and_timeout(sqlite_engine: flowkit.Engine, http_server: str) -> None:
    refused = sqlite_engine.run(
        workflow(
            {"url": http_server}, {"id": "ask", "tool": "refuse", "arguments": {"reason": "x"}}
        )
    )
    assert refused.error == (
        "ExecutionError: MCP tool 'refuse' on server 'demo' failed: "
        "Error executing tool refuse: refused: x"
    )
    slow = sqlite_engine.run(
        workflow(
            {"url": http_server},
            {"id": "wait", "tool": "slow", "arguments": {"seconds": 30}, "timeout": 0.3},
        )
    )
    assert slow.error == "ExecutionError: Step 'wait' timed out after 0.3s"


def test_an_http_server_that_stops_during_a_call(
    sqlite_engine: flowkit.Engine, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    wf = workflow({"url": url}, {"id": "nap", "tool": "slow", "arguments": {"seconds": 60}})
    results: list[flowkit.Result] = []
    with listening([sys.executable, str(DEMO), "http", str(port)], port, tmp_path / "log") as p:
        runner = threading.Thread(target=lambda: results.append(sqlite_engine.run(wf)))
        runner.start()
        deadline = time.monotonic() + 30
        while _mcp.pool.sessions() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        p.kill()  # mid-call
        runner.join(30)
    (result,) = results
    assert result.error is not None
    assert result.error.startswith(
        f"ExecutionError: lost the connection to MCP server 'demo' ({url}) while calling 'slow': "
    )
    assert result.error.endswith("; the next call opens a new session")


def test_http_server_that_is_not_running(sqlite_engine: flowkit.Engine) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    result = sqlite_engine.run(workflow({"url": url}, {"id": "ask", "tool": "add"}))
    assert result.failed
    assert result.error == (
        f"ExecutionError: cannot connect to MCP server 'demo' (http: {url}): "
        "ConnectError: All connection attempts failed"
    )


def test_a_missing_header_variable_fails_before_connecting(
    sqlite_engine: flowkit.Engine,
) -> None:
    server = {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "${FLOWKIT_NOPE}"}}
    result = sqlite_engine.run(workflow(server, {"id": "ask", "tool": "add"}))
    assert result.error == (
        "ExecutionError: MCP server 'demo': headers: environment variable 'FLOWKIT_NOPE' is not set"
    )


# --- result conversion ----------------------------------------------------------------------


def test_tool_result_json() -> None:
    def result(*content: Any, structured: Any = None) -> CallToolResult:
        return CallToolResult(content=list(content), structured_content=structured)

    text = TextContent(type="text", text="hi")
    image = ImageContent(type="image", data=PNG, mime_type="image/png")
    assert tool_result_json(result(text, structured={"a": [1]})) == {"a": [1]}
    assert tool_result_json(result(text, TextContent(type="text", text="there"))) == "hi\nthere"
    assert tool_result_json(result()) is None
    # Text that is one JSON object or array is parsed; other text stays text.
    as_text = TextContent(type="text", text='{\n  "city": "Lisbon"\n}')
    assert tool_result_json(result(as_text)) == {"city": "Lisbon"}
    listing = TextContent(type="text", text="[1, 2]")
    assert tool_result_json(result(listing)) == [1, 2]
    for plain in ("42", "true", '"quoted"', "{not json}", "[1, 2] and more"):
        assert tool_result_json(result(TextContent(type="text", text=plain))) == plain
    assert tool_result_json(result(image)) == {
        "type": "image",
        "mimeType": "image/png",
        "data": PNG,
    }
    blob = EmbeddedResource(
        type="resource",
        resource=BlobResourceContents(uri="file:///a.bin", mime_type="x/y", blob="AAEC"),
    )
    assert tool_result_json(result(text, blob)) == [
        {"type": "text", "text": "hi"},
        {"type": "resource", "uri": "file:///a.bin", "mimeType": "x/y", "blob": "AAEC"},
    ]

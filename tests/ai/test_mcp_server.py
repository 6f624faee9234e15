"""``flowkit mcp serve`` driven by the ``mcp`` SDK's client: over stdio (the client
spawns the command) and over streamable HTTP (a server process on a free port,
its clients authenticated by bearer tokens)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click
import httpx2
import pytest
from click.testing import CliRunner
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

import flowkit
import flowkit.ai  # registers the AI top-level keys
from flowkit.ai._mcp_server import TOKENS_ENV, Tokens, WorkflowServer, input_schema
from flowkit.cli import LazyCommand, main

from .mcp_servers.processes import EXPENSES, HERE, flowkit_command, free_port, listening

pytestmark = pytest.mark.timeout(120)

SERVE = ["mcp", "serve", EXPENSES.name, "-m", "expense_services"]
MANAGER_TOKEN = "mgr-5f0c1d9a7e3b48c2a61f"
INTERN_TOKEN = "int-93be27d4c5a14f8e0b7d"
TOKENS = f"{MANAGER_TOKEN}:manager,{INTERN_TOKEN}:intern"


@pytest.fixture(autouse=True)
def _no_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers see only the tokens a test gives them."""
    monkeypatch.delenv(TOKENS_ENV, raising=False)


@contextlib.asynccontextmanager
async def http_client(url: str, token: str | None = None) -> AsyncIterator[Client]:
    """An SDK client of ``url`` that sends ``token`` as its bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def http_command(store_url: str, port: int, *options: str) -> list[str]:
    return [
        flowkit_command(),
        *SERVE,
        "--store",
        store_url,
        "--transport",
        "http",
        "--port",
        str(port),
        *options,
    ]


def stdio_client(store_url: str, *options: str) -> Client:
    return Client(
        StdioServerParameters(
            command=flowkit_command(), args=[*SERVE, "--store", store_url, *options], cwd=HERE
        )
    )


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def exercise(client: Client, intern: Client, store_url: str) -> None:
    """List the tools, call one, run the workflow, and decide a halted approval.

    ``client`` acts as the approval's approver (manager), ``intern`` as someone else.
    """
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert list(tools) == ["exchange_rate", "run_expense_report", "resume_expense_report"]
    assert tools["run_expense_report"].input_schema == {
        "type": "object",
        "properties": {
            "employee": {"type": "string", "description": "Who spent the money"},
            "amount": {"type": "number", "description": "The amount in EUR"},
            "note": {"type": "string", "description": "What it was for", "default": ""},
        },
        "required": ["employee", "amount"],
        "additionalProperties": False,
    }
    assert tools["exchange_rate"].description == "How many EUR one unit of a currency is worth."
    assert tools["exchange_rate"].input_schema["required"] == ["currency"]
    assert tools["resume_expense_report"].input_schema["required"] == ["execution_id"]

    # A tool of the workflow: its service method runs.
    rate = await client.call_tool("exchange_rate", {"currency": "USD"})
    assert not rate.is_error
    assert rate.structured_content == {"currency": "USD", "eur": 0.92}
    unknown = await client.call_tool("exchange_rate", {"currency": "XYZ"})
    assert unknown.is_error
    assert text(unknown) == (
        "tool 'exchange_rate' failed: LookupError: no rate for XYZ (known: USD, GBP, EUR)"
    )

    # The workflow itself: a small amount completes at once.
    small = await client.call_tool("run_expense_report", {"employee": "ada", "amount": 40})
    assert not small.is_error, text(small)
    assert small.structured_content is not None
    assert small.structured_content["status"] == "completed"
    assert small.structured_content["output"] == {"booked": "EXP-ada-40", "amount": 40}

    bad = await client.call_tool("run_expense_report", {"employee": "ada"})
    assert bad.is_error
    assert (
        text(bad) == "invalid arguments for 'run_expense_report': 'amount' is a required property"
    )

    # A large amount halts for the manager's approval.
    big = await client.call_tool(
        "run_expense_report", {"employee": "ada", "amount": 250, "note": "GPU"}
    )
    halted = big.structured_content
    assert halted is not None, text(big)
    execution_id = halted["execution_id"]
    assert halted == {
        "status": "halted",
        "execution_id": execution_id,
        "step": "approve",
        "prompt": "Approve 250 EUR for ada?",
        "approvers": ["manager"],
        "context": {"note": "GPU"},
        "halt": {"halted_at": halted["halt"]["halted_at"]},
        "resume_with": "resume_expense_report",
    }
    assert json.loads(text(big)) == halted
    assert _status(store_url, execution_id) == "halted"  # kept in the store

    # Someone who is not an approver is refused, even naming the approver in 'by'.
    refused = await intern.call_tool(
        "resume_expense_report", {"execution_id": execution_id, "approved": True, "by": "manager"}
    )
    assert refused.is_error
    assert text(refused) == (
        f"execution '{execution_id}' waits for a decision by manager; this client is 'intern' "
        "(the identity of its token, or --as over stdio; 'by' is ignored)"
    )
    assert _status(store_url, execution_id) == "halted"

    # The approver decides as itself; a 'by' it sends changes nothing.
    approved = await client.call_tool(
        "resume_expense_report", {"execution_id": execution_id, "approved": True, "by": "intern"}
    )
    assert approved.structured_content == {
        "status": "completed",
        "execution_id": execution_id,
        "output": {"booked": "EXP-ada-250", "amount": 250},
    }
    assert _status(store_url, execution_id) == "completed"
    assert _decided_by(store_url, execution_id) == "manager"

    again = await client.call_tool(
        "resume_expense_report", {"execution_id": execution_id, "approved": True, "by": "manager"}
    )
    assert again.is_error
    assert text(again) == f"execution '{execution_id}' is completed and cannot be resumed"

    with pytest.raises(MCPError, match="unknown tool 'nope'"):
        await client.call_tool("nope", {})


def _status(store_url: str, execution_id: str) -> str:
    store = flowkit.connect(store_url)
    try:
        execution = store.load(execution_id)
        assert execution is not None
        return execution.status.value
    finally:
        store.close()


def _decided_by(store_url: str, execution_id: str) -> Any:
    store = flowkit.connect(store_url)
    try:
        decision = [e for e in store.entries(execution_id) if e.step_id == "approve"][-1]
        return decision.output["by"]
    finally:
        store.close()


def test_serve_over_stdio_decides_as_the_identity_given_with_as(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def main() -> None:
        async with (
            stdio_client(store_url, "--as", "manager") as client,
            stdio_client(store_url, "--as", "intern") as intern,
        ):
            await exercise(client, intern, store_url)

    asyncio.run(main())


def test_over_stdio_without_as_clients_are_anonymous(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def main() -> CallToolResult:
        async with stdio_client(store_url) as client:
            big = await client.call_tool("run_expense_report", {"employee": "bo", "amount": 900})
            assert big.structured_content is not None
            execution_id = big.structured_content["execution_id"]
            return await client.call_tool(
                "resume_expense_report",
                {"execution_id": execution_id, "approved": True, "by": "manager"},
            )

    refused = asyncio.run(main())
    assert refused.is_error
    assert text(refused) == ANONYMOUS


ANONYMOUS = (
    "resume_expense_report needs to know who decides, and this client is anonymous: connect "
    "with a bearer token (HTTP), or start the server with --as NAME (stdio)"
)


def test_serve_over_streamable_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    monkeypatch.setenv(TOKENS_ENV, TOKENS)
    log = tmp_path / "serve.log"
    with listening(http_command(store_url, port), port, log, cwd=HERE) as process:

        async def main() -> None:
            async with (
                http_client(url, MANAGER_TOKEN) as client,
                http_client(url, INTERN_TOKEN) as intern,
            ):
                await exercise(client, intern, store_url)

        asyncio.run(main())
        assert process.poll() is None
    logged = log.read_text()
    assert f"flowkit mcp: serving at {url}" in logged
    assert "flowkit mcp: clients authenticate with bearer tokens (2 identities)" in logged
    assert MANAGER_TOKEN not in logged
    assert INTERN_TOKEN not in logged


def test_http_requests_without_a_valid_token_get_401(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    tokens_file = tmp_path / "tokens"
    digest = hashlib.sha256(MANAGER_TOKEN.encode()).hexdigest()
    tokens_file.write_text(f"# who may call\nmanager:{digest}\n")
    command = http_command(store_url, port, "--tokens-file", str(tokens_file))
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    with listening(command, port, tmp_path / "serve.log", cwd=HERE):
        for authorization in [
            None,
            f"Bearer {INTERN_TOKEN}",  # a token, but not one this server knows
            f"Bearer {MANAGER_TOKEN}x",
            "Bearer",
            f"Basic {MANAGER_TOKEN}",
            MANAGER_TOKEN,
        ]:
            headers = {**accept, **({"Authorization": authorization} if authorization else {})}
            answer = httpx2.post(url, json=initialize, headers=headers)
            assert answer.status_code == 401, authorization
            assert answer.headers["www-authenticate"].startswith('Bearer realm="flowkit"')
            assert MANAGER_TOKEN not in answer.text
            assert INTERN_TOKEN not in answer.text
        missing = httpx2.post(url, json=initialize, headers=accept)
        assert missing.json() == {
            "error": "unauthorized",
            "error_description": "a bearer token is required (Authorization: Bearer ...)",
        }
        wrong = httpx2.post(url, json=initialize, headers={**accept, "Authorization": "Bearer x"})
        assert wrong.headers["www-authenticate"] == 'Bearer realm="flowkit", error="invalid_token"'
        assert wrong.json()["error_description"] == "the bearer token is not valid"

        async def main() -> list[str]:
            with pytest.raises(ExceptionGroup) as raised:  # the SDK client cannot connect
                async with http_client(url, INTERN_TOKEN) as client:
                    await client.list_tools()
            assert raised.group_contains(MCPError, match="Server returned an error", depth=None)
            async with http_client(url, MANAGER_TOKEN) as client:  # the token of the file
                return [tool.name for tool in (await client.list_tools()).tools]

        assert asyncio.run(main()) == [
            "exchange_rate",
            "run_expense_report",
            "resume_expense_report",
        ]


def test_http_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    command = http_command(f"sqlite:///{tmp_path / 'runs.db'}", free_port())
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        "error: serving over HTTP needs bearer tokens, so that only clients you gave one can "
        "reach the workflow: set FLOWKIT_MCP_TOKENS=TOKEN:NAME,... or pass --tokens-file FILE "
        "(lines NAME:SHA256-OF-TOKEN); or pass --allow-anonymous to serve without them "
        "(anonymous clients cannot resume executions)\n"
    )


def test_anonymous_http_clients_can_run_but_not_approve(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    log = tmp_path / "serve.log"
    with listening(http_command(store_url, port, "--allow-anonymous"), port, log, cwd=HERE):

        async def main() -> tuple[str, CallToolResult]:
            async with http_client(url) as client:
                big = await client.call_tool(
                    "run_expense_report", {"employee": "bo", "amount": 900}
                )
                assert big.structured_content is not None
                execution_id: str = big.structured_content["execution_id"]
                refused = await client.call_tool(
                    "resume_expense_report",
                    {"execution_id": execution_id, "approved": True, "by": "manager"},
                )
                return execution_id, refused

        execution_id, refused = asyncio.run(main())
    assert refused.is_error
    assert text(refused) == ANONYMOUS
    assert _status(store_url, execution_id) == "halted"
    assert "flowkit mcp: clients are anonymous: they cannot resume executions" in log.read_text()


def test_a_rejection_goes_to_on_reject(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def main() -> dict[str, Any]:
        async with stdio_client(store_url, "--as", "manager") as client:
            big = await client.call_tool("run_expense_report", {"employee": "bo", "amount": 900})
            assert big.structured_content is not None
            rejected = await client.call_tool(
                "resume_expense_report",
                {
                    "execution_id": big.structured_content["execution_id"],
                    "approved": False,
                    "by": "manager",
                    "response": {"why": "too much"},
                },
            )
            assert rejected.structured_content is not None
            return rejected.structured_content

    assert asyncio.run(main())["output"] == {"booked": None, "reason": "rejected"}


# --- the command line -----------------------------------------------------------------------


def test_flowkit_import_and_help_do_not_import_the_ai_extension() -> None:
    script = (
        "import json, sys, flowkit, flowkit.cli\n"
        "try:\n"
        "    flowkit.cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'httpx2',"
        " 'uvicorn', 'starlette') or m.startswith('flowkit.ai')]\n"
        "print(json.dumps(loaded), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert re.search(r"\n  mcp +Serve workflows to MCP clients \(ai extra\)\.", done.stdout)
    assert json.loads(done.stderr) == []


def test_without_the_sdk_serve_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the ai extra were not installed
    done = CliRunner().invoke(main, ["mcp", "serve", str(EXPENSES)])
    assert done.exit_code == 1
    assert done.stderr == (
        "error: flowkit mcp serve needs the ai extra (import of mcp halted; None in "
        "sys.modules): pip install 'flowkit-workflows[ai]' (or pip install -e '.[ai]' in the "
        "source tree)\n"
    )


def test_a_lazy_command_that_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    group = click.Group(commands=[LazyCommand("extra", "no_such_module_xyz:cli", help="Lazy.")])
    done = CliRunner().invoke(group, ["extra"])
    assert done.exit_code == 1
    assert done.stderr == (
        "error: 'flowkit extra' needs the ai extra (No module named 'no_such_module_xyz'): "
        "pip install 'flowkit-workflows[ai]' (or pip install -e '.[ai]' from the source tree)\n"
    )


def test_serve_reports_a_missing_workflow_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [flowkit_command(), "mcp", "serve", "missing.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == "error: workflow file not found: missing.yml\n"


def test_serve_reports_a_tool_whose_service_is_not_registered(tmp_path: Path) -> None:
    done = subprocess.run(
        [flowkit_command(), "mcp", "serve", EXPENSES.name, "--store", f"sqlite:///{tmp_path}/a.db"],
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(
        "error: workflow 'expense_report': tool 'exchange_rate': unknown service 'Expenses': "
        "register it with @flowkit.service('Expenses')"
    )


def test_serve_reports_a_port_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKENS_ENV, TOKENS)
    port = free_port()
    command = [flowkit_command(), *SERVE, "--store", f"sqlite:///{tmp_path / 'a.db'}"]
    http = ["--transport", "http", "--port", str(port)]
    with listening([*command, *http], port, tmp_path / "first.log", cwd=HERE):
        done = subprocess.run(
            [*command, *http], capture_output=True, text=True, cwd=HERE, timeout=60
        )
    assert done.returncode == 1
    assert done.stderr.endswith(
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


HTTP_ONLY = (
    "--tokens-file and --allow-anonymous are for --transport http; "
    "over stdio, --as NAME says who decides"
)


def test_serve_checks_the_options_of_each_transport(tmp_path: Path) -> None:
    for options, message in [
        (
            ["--transport", "http", "--as", "manager"],
            "--as is for --transport stdio; over HTTP each token names its identity",
        ),
        (
            ["--tokens-file", "tokens"],
            HTTP_ONLY,
        ),
        (
            ["--allow-anonymous"],
            HTTP_ONLY,
        ),
        (["--as", " "], "--as needs a name: the approver the stdio client decides as"),
    ]:
        done = CliRunner().invoke(main, ["mcp", "serve", str(EXPENSES), *options])
        assert done.exit_code == 1, options
        assert done.stderr == f"error: {message}\n"


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (
            f"{MANAGER_TOKEN}",
            "FLOWKIT_MCP_TOKENS: entry 1 is not TOKEN:NAME (entries are separated by commas)",
        ),
        (
            f"{MANAGER_TOKEN}:manager,{INTERN_TOKEN}:",
            "FLOWKIT_MCP_TOKENS: entry 2 is not TOKEN:NAME (entries are separated by commas)",
        ),
        (  # NAME:TOKEN, the wrong way round: the token is not shown
            f"cfo:{MANAGER_TOKEN}",
            "FLOWKIT_MCP_TOKENS: the token of entry 1 is shorter than 16 characters; use a long "
            "random one, e.g. from python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        ),
        (
            "hunter2:cfo",
            "FLOWKIT_MCP_TOKENS: the token of entry 1 is shorter than 16 characters; use a long "
            "random one, e.g. from python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        ),
        (
            f"{MANAGER_TOKEN}:manager,{MANAGER_TOKEN}:cfo",
            "bearer tokens: one token is given to two identities; give each identity its own token",
        ),
    ],
)
def test_bad_tokens_are_reported_without_the_tokens(tokens: str, message: str) -> None:
    done = CliRunner().invoke(
        main,
        ["mcp", "serve", str(EXPENSES), "--transport", "http"],
        env={TOKENS_ENV: tokens},
    )
    assert done.exit_code == 1
    assert done.stderr == f"error: {message}\n"
    for secret in (MANAGER_TOKEN, INTERN_TOKEN, "hunter2"):
        assert secret not in done.output


def test_a_bad_tokens_file_is_reported_without_its_lines(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    digest = hashlib.sha256(MANAGER_TOKEN.encode()).hexdigest()
    tokens_file.write_text(f"manager:{digest}\n\ncfo:{INTERN_TOKEN}\n")  # a token, not its hash
    command = ["mcp", "serve", str(EXPENSES), "--transport", "http", "--tokens-file"]
    done = CliRunner().invoke(main, [*command, str(tokens_file)])
    assert done.exit_code == 1
    assert done.stderr == (
        f"error: tokens file '{tokens_file}', line 3: expected NAME:SHA256, the SHA-256 of the "
        'token as 64 hex digits (printf %s "$TOKEN" | sha256sum)\n'
    )
    assert INTERN_TOKEN not in done.output
    missing = CliRunner().invoke(main, [*command, str(tmp_path / "nope")])
    assert missing.stderr == (
        f"error: cannot read the tokens file '{tmp_path / 'nope'}': No such file or directory\n"
    )


def test_tokens_name_identities() -> None:
    tokens = Tokens.parse(f" {MANAGER_TOKEN}:manager , ,{INTERN_TOKEN}:intern ")
    assert tokens.identify(MANAGER_TOKEN) == "manager"
    assert tokens.identify(INTERN_TOKEN) == "intern"
    assert tokens.identify(MANAGER_TOKEN[:-1]) is None
    assert tokens.identify("") is None
    assert tokens.identities == ["intern", "manager"]
    assert MANAGER_TOKEN not in repr(tokens)
    assert not Tokens.parse("")
    # A token may hold colons: the name is what follows the last one.
    assert Tokens.parse("a:b:c:d:e:f:g:h:i:j:k:cfo").identify("a:b:c:d:e:f:g:h:i:j:k") == "cfo"


# --- the server in process (the SDK's in-memory transport) ----------------------------------


def call_in_process(
    server: WorkflowServer, name: str, arguments: dict[str, Any], identity: str | None = None
) -> Any:
    async def main() -> CallToolResult:
        async with Client(server.server(identity)) as client:
            return await client.call_tool(name, arguments)

    return asyncio.run(main())


def test_a_python_workflow_with_a_tool_and_no_halts(flowkit_engine: flowkit.Engine) -> None:
    wf = flowkit.Workflow(
        "greeter",
        inputs={
            "name": flowkit.Input(type="string", description="Who to greet"),
            "times": flowkit.Input(type="integer", required=False, default=1),
            "extra": flowkit.Input(type="any", required=False),
        },
    )

    @wf.tool  # a method flowkit.ai adds
    def shout(word: str, times: int = 1) -> str:
        """A word in capitals.

        Args:
            word: What to shout.
            times: How often.
        """
        return " ".join([word.upper()] * times)

    @wf.step(output="greeting")
    def greet(name: str, times: int) -> str:
        return " ".join([f"hello {name}"] * times)

    wf.end(result="$greeting")
    server = WorkflowServer(wf, flowkit_engine)
    assert list(server.tools) == ["shout", "run_greeter"]  # it cannot halt: no resume tool
    listed = {tool.name: tool for tool in server.list()}
    assert listed["run_greeter"].description == (
        "Run the workflow 'greeter'. Returns {status, execution_id, output}."
    )
    assert listed["shout"].description == "A word in capitals."
    assert listed["shout"].input_schema["required"] == ["word"]
    assert input_schema(server.workflow) == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Who to greet"},
            "times": {"type": "integer", "default": 1},
            "extra": {},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    done = call_in_process(server, "run_greeter", {"name": "ada", "times": 2})
    assert done.structured_content["output"] == "hello ada hello ada"
    shouted = call_in_process(server, "shout", {"word": "hi", "times": 2})
    assert text(shouted) == "HI HI"
    assert shouted.structured_content is None  # not an object: text only


def test_a_failed_run_is_a_tool_error(flowkit_engine: flowkit.Engine) -> None:
    wf = flowkit.Workflow("breaks")

    @wf.step()
    def explode() -> None:
        raise RuntimeError("the boiler burst")

    server = WorkflowServer(wf, flowkit_engine)
    failed = call_in_process(server, "run_breaks", {})
    assert failed.is_error
    (execution,) = flowkit_engine.store.find(workflow_id="breaks")
    assert text(failed) == (
        f"workflow 'breaks' failed (execution {execution.id}): RuntimeError: the boiler burst"
    )


def test_a_tool_named_like_a_generated_one_is_refused(
    flowkit_engine: flowkit.Engine, stub_service: Any
) -> None:
    stub_service("Clash", {"go": 1})
    wf = flowkit.load(
        {
            "id": "clash",
            "tools": [{"id": "run_clash", "service": "Clash", "method": "go"}],
            "steps": [{"id": "done", "type": "end"}],
        }
    )
    with pytest.raises(flowkit.ConfigError) as raised:
        WorkflowServer(wf, flowkit_engine)
    assert str(raised.value) == (
        "workflow 'clash': tool 'run_clash' has the name of the tool flowkit generates for "
        "the workflow; rename it"
    )


def test_resume_refuses_an_execution_of_another_workflow(
    flowkit_engine: flowkit.Engine, stub_service: Any
) -> None:
    stub_service("Expenses", {"rate": {}, "book": {}})
    other = flowkit.load(
        {"id": "other", "steps": [{"id": "wait", "type": "halt", "reason": "hold on"}]}
    )
    halted = flowkit_engine.run(other)
    server = WorkflowServer(flowkit.load(EXPENSES), flowkit_engine)
    refused = call_in_process(
        server, "resume_expense_report", {"execution_id": halted.execution_id}, "manager"
    )
    assert refused.is_error
    assert text(refused) == (
        f"execution '{halted.execution_id}' belongs to workflow 'other', not 'expense_report'"
    )

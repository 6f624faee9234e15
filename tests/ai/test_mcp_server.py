"""``flowkit mcp serve`` driven by the ``mcp`` SDK's client: over stdio (the client
spawns the command) and over streamable HTTP (a server process on a free port)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from mcp import Client, MCPError, StdioServerParameters
from mcp_types import CallToolResult

import flowkit
import flowkit.ai  # registers the AI top-level keys
from flowkit.ai._mcp_server import WorkflowServer, input_schema
from flowkit.cli import LazyCommand, main

from .mcp_servers.processes import EXPENSES, HERE, flowkit_command, free_port, listening

pytestmark = pytest.mark.timeout(120)

SERVE = ["mcp", "serve", EXPENSES.name, "-m", "expense_services"]


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def exercise(client: Client, store_url: str) -> None:
    """List the tools, call one, run the workflow, and decide a halted approval."""
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

    # Someone who is not an approver is refused, with flowkit's message; nothing changes.
    refused = await client.call_tool(
        "resume_expense_report", {"execution_id": execution_id, "approved": True, "by": "intern"}
    )
    assert refused.is_error
    assert text(refused) == (
        f"approval 'approve' of execution '{execution_id}' can only be decided by manager; "
        "'intern' is not one of them (pass by=<approver>)"
    )
    assert _status(store_url, execution_id) == "halted"

    approved = await client.call_tool(
        "resume_expense_report", {"execution_id": execution_id, "approved": True, "by": "manager"}
    )
    assert approved.structured_content == {
        "status": "completed",
        "execution_id": execution_id,
        "output": {"booked": "EXP-ada-250", "amount": 250},
    }
    assert _status(store_url, execution_id) == "completed"

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


def test_serve_over_stdio(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"
    params = StdioServerParameters(
        command=flowkit_command(), args=[*SERVE, "--store", store_url], cwd=HERE
    )

    async def main() -> None:
        async with Client(params) as client:
            await exercise(client, store_url)

    asyncio.run(main())


def test_serve_over_streamable_http(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"
    port = free_port()
    command = [
        flowkit_command(),
        *SERVE,
        "--store",
        store_url,
        "--transport",
        "http",
        "--port",
        str(port),
    ]
    log = tmp_path / "serve.log"
    with listening(command, port, log, cwd=HERE) as process:

        async def main() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                await exercise(client, store_url)

        asyncio.run(main())
        assert process.poll() is None
    assert f"flowkit mcp: serving at http://127.0.0.1:{port}/mcp" in log.read_text()


def test_a_rejection_goes_to_on_reject(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'runs.db'}"
    params = StdioServerParameters(
        command=flowkit_command(), args=[*SERVE, "--store", store_url], cwd=HERE
    )

    async def main() -> dict[str, Any]:
        async with Client(params) as client:
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
    assert "mcp       Serve workflows to MCP clients (ai extra)." in done.stdout
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


def test_serve_reports_a_port_in_use(tmp_path: Path) -> None:
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


# --- the server in process (the SDK's in-memory transport) ----------------------------------


def call_in_process(server: WorkflowServer, name: str, arguments: dict[str, Any]) -> Any:
    async def main() -> CallToolResult:
        async with Client(server.server()) as client:
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
        server, "resume_expense_report", {"execution_id": halted.execution_id}
    )
    assert refused.is_error
    assert text(refused) == (
        f"execution '{halted.execution_id}' belongs to workflow 'other', not 'expense_report'"
    )

"""Serve a workflow to MCP clients (``flowkit mcp serve``, SPEC §13).

One workflow becomes an MCP server with these tools:

- each entry of its top-level ``tools`` (the tool's parameters are its input
  schema; a call runs the tool's ``service.method`` from the service registry);
- ``run_<workflow_id>``: start an execution with the workflow's inputs as the
  arguments and wait until it completes, fails or halts. A halted execution
  comes back with its execution id and, for an approval, its prompt and
  approvers;
- ``resume_<workflow_id>`` (when the workflow can halt): decide an approval or
  continue a halt (``execution_id``, ``approved``, ``by``, ``response``). A
  resume that flowkit refuses, such as one by someone who is not a listed
  approver, is a tool error carrying flowkit's message, and changes nothing.

Executions are kept in the configured store (``--store``), so a halted run can
also be resumed later with ``flowkit resume``.
"""

from __future__ import annotations

import inspect
import json
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs

from flowkit import Engine, Result, WorkflowDef, __version__
from flowkit.abc import step_type
from flowkit.definitions import all_steps
from flowkit.errors import ConfigError, FlowkitError, ValidationError
from flowkit.frozen import thaw

from ._definitions import ToolDef, tools_of

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp_types import CallToolResult, Tool

__all__ = ["WorkflowServer", "input_schema"]


def input_schema(wf: WorkflowDef) -> dict[str, Any]:
    """The JSON Schema of a workflow's input: its declared inputs as properties.

    Types, descriptions and defaults are carried over; an input is required
    when it is declared required and has no default. A workflow that declares
    no inputs accepts any object.
    """
    properties: dict[str, Any] = {}
    required: list[str] = []
    for spec in wf.inputs:
        prop: dict[str, Any] = {} if spec.type == "any" else {"type": spec.type}
        if spec.description:
            prop["description"] = spec.description
        if spec.default is not None:
            prop["default"] = thaw(spec.default)
        properties[spec.name] = prop
        if spec.required and spec.default is None:
            required.append(spec.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if wf.inputs:
        schema["additionalProperties"] = False
    return schema


RESUME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "execution_id": {
            "type": "string",
            "description": "The execution to resume (run_* returned it).",
        },
        "approved": {
            "type": "boolean",
            "description": "The decision, for an approval: true approves, false rejects.",
        },
        "by": {
            "type": "string",
            "description": "Who decides; one of the approval's approvers when it lists any.",
        },
        "response": {"description": "Any data; the workflow reads it as $response."},
    },
    "required": ["execution_id"],
    "additionalProperties": False,
}


@attrs.frozen(kw_only=True)
class _Entry:
    """One tool the server offers: what clients see and what a call does."""

    name: str
    description: str
    schema: Mapping[str, Any]
    call: Callable[[dict[str, Any]], Awaitable[Any]]  # JSON data, or raises _ToolError


class _ToolError(Exception):
    """A failure reported to the client as a tool error (``isError``) with this message."""


def _can_halt(wf: WorkflowDef) -> bool:
    for _path, step in all_steps(wf.steps):
        kind = step_type(step.type)
        if step.type == "workflow" or (kind is not None and kind.halts):
            return True
    return False


class WorkflowServer:
    """The tools of one workflow, and an MCP server offering them.

    Args:
        workflow: a definition, a Python ``Workflow``, or anything
            :func:`flowkit.load` accepts.
        engine: runs and resumes executions, and resolves the tools' services.

    Raises:
        ValidationError: the workflow is invalid.
        ConfigError: one of its tools is named like a generated tool
            (``run_<id>``, ``resume_<id>``), or its service is not registered.
    """

    def __init__(self, workflow: Any, engine: Engine) -> None:
        self.engine = engine
        self.workflow: WorkflowDef = engine.definition(workflow)
        self.tools: dict[str, _Entry] = {}
        for tool in tools_of(self.workflow).values():
            if tool.service is not None and tool.method is not None:
                self._add(self._service_tool(tool, tool.service, tool.method))
        self._add(self._run_tool())
        if _can_halt(self.workflow):
            self._add(self._resume_tool())

    def _add(self, entry: _Entry) -> None:
        if entry.name in self.tools:
            raise ConfigError(
                f"workflow '{self.workflow.id}': tool '{entry.name}' has the name of the tool "
                f"flowkit generates for the workflow; rename it"
            )
        self.tools[entry.name] = entry

    @property
    def title(self) -> str:
        return self.workflow.name or self.workflow.id

    # --- the tools -----------------------------------------------------------------------------

    def _service_tool(self, tool: ToolDef, service: str, method: str) -> _Entry:
        where = f"tool '{tool.id}'"
        try:  # an unknown service fails at startup, not at the first call
            self.engine.services.resolve(service, method)
        except FlowkitError as exc:
            raise ConfigError(f"workflow '{self.workflow.id}': {where}: {exc}") from None

        async def call(arguments: dict[str, Any]) -> Any:
            import anyio

            from flowkit.services import bind_arguments, to_json

            fn = self.engine.services.resolve(service, method)
            try:
                args, kwargs = bind_arguments(fn, arguments)
            except TypeError as exc:
                raise _ToolError(f"{where}: {exc}") from None
            try:
                if inspect.iscoroutinefunction(fn):
                    result = await fn(*args, **kwargs)
                else:
                    result = await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
            except Exception as exc:
                raise _ToolError(f"{where} failed: {type(exc).__name__}: {exc}") from None
            return to_json(result, where)

        return _Entry(
            name=tool.id,
            description=tool.description or f"Calls {service}.{method}.",
            schema=tool.json_schema(),
            call=call,
        )

    def _run_tool(self) -> _Entry:
        wf = self.workflow
        description = f"Run the workflow '{self.title}'."
        if wf.description:
            description += f" {wf.description.strip()}"
        description += " Returns {status, execution_id, output}."
        if _can_halt(wf):
            description += (
                " When the workflow stops for an approval, status is 'halted' and the result "
                f"carries the prompt and the approvers: decide it with resume_{wf.id}."
            )

        def run(arguments: dict[str, Any]) -> Any:
            try:
                result = self.engine.run(wf, arguments)
            except ValidationError as exc:
                raise _ToolError("; ".join(exc.problems) or str(exc)) from None
            except FlowkitError as exc:
                raise _ToolError(str(exc)) from None
            return self._result(result)

        return _Entry(
            name=f"run_{wf.id}",
            description=description,
            schema=input_schema(wf),
            call=_in_thread(run),
        )

    def _resume_tool(self) -> _Entry:
        wf = self.workflow

        def resume(arguments: dict[str, Any]) -> Any:
            # The input schema was checked: execution_id is a string, approved a boolean.
            execution_id = arguments["execution_id"]
            approved, by = arguments.get("approved"), arguments.get("by")
            try:
                execution = self.engine.load(execution_id)
                if execution.workflow_id != wf.id:
                    raise _ToolError(
                        f"execution '{execution_id}' belongs to workflow "
                        f"'{execution.workflow_id}', not '{wf.id}'"
                    )
                result = self.engine.resume(
                    execution_id,
                    approved=approved,
                    by=by,
                    response=arguments.get("response"),
                    workflow=wf,
                )
            except FlowkitError as exc:
                raise _ToolError(str(exc)) from None
            return self._result(result)

        return _Entry(
            name=f"resume_{wf.id}",
            description=(
                f"Resume an execution of '{self.title}' that halted: approve or reject an "
                "approval (as one of its approvers, in 'by'), or continue a halt with a "
                "'response'. Returns the same shape as run_" + wf.id + "."
            ),
            schema=RESUME_SCHEMA,
            call=_in_thread(resume),
        )

    def _result(self, result: Result) -> dict[str, Any]:
        if result.failed:
            raise _ToolError(
                f"workflow '{self.workflow.id}' failed (execution {result.execution_id}): "
                f"{result.error}"
            )
        data: dict[str, Any] = {
            "status": result.status.value,
            "execution_id": result.execution_id,
        }
        if result.completed:
            data["output"] = result.output
        elif result.halt is not None:
            halt = dict(result.halt.data)
            data["step"] = result.halt.resume_step
            data["prompt"] = result.halt.prompt
            for key in ("approvers", "context"):
                if halt.get(key) is not None:
                    data[key] = halt.pop(key)
            halt.pop("prompt", None)
            data["halt"] = halt  # the rest: halted_at, expires_at, a halt step's reason and data
            data["resume_with"] = f"resume_{self.workflow.id}"
        return data

    # --- MCP -----------------------------------------------------------------------------------

    def list(self) -> list[Tool]:
        """The tools, as MCP tool descriptions."""
        from mcp_types import Tool

        return [
            Tool(name=entry.name, description=entry.description, input_schema=dict(entry.schema))
            for entry in self.tools.values()
        ]

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> CallToolResult:
        """Call a tool; failures come back as tool errors (``isError``).

        Raises:
            MCPError: there is no tool called ``name`` (a protocol error).
        """
        import jsonschema
        from mcp import MCPError
        from mcp_types import INVALID_PARAMS, CallToolResult, TextContent

        entry = self.tools.get(name)
        if entry is None:
            raise MCPError(
                INVALID_PARAMS, f"unknown tool '{name}' (tools: {', '.join(self.tools)})"
            )
        given = dict(arguments or {})
        problems = sorted(
            jsonschema.Draft202012Validator(dict(entry.schema)).iter_errors(given), key=str
        )
        try:
            if problems:
                raise _ToolError(
                    f"invalid arguments for '{name}': "
                    + "; ".join(_describe(error) for error in problems)
                )
            value = await entry.call(given)
        except _ToolError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        except FlowkitError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return CallToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content=value if isinstance(value, dict) else None,
        )

    def server(self) -> Server[Any]:
        """An MCP (low-level SDK) server offering the tools."""
        from mcp.server.lowlevel import Server
        from mcp_types import CallToolRequestParams, ListToolsResult, PaginatedRequestParams

        async def list_tools(_ctx: Any, _params: PaginatedRequestParams | None) -> ListToolsResult:
            return ListToolsResult(tools=self.list())

        async def call_tool(_ctx: Any, params: CallToolRequestParams) -> CallToolResult:
            return await self.call(params.name, params.arguments)

        def schema_of(name: str) -> Mapping[str, Any] | None:
            entry = self.tools.get(name)
            return None if entry is None else entry.schema

        return Server(
            f"flowkit-{self.workflow.id}",
            version=__version__,
            title=self.title,
            instructions=(
                f"Tools of the flowkit workflow '{self.title}'. run_{self.workflow.id} runs it; "
                "an execution that halts for approval is decided with "
                f"resume_{self.workflow.id}."
            ),
            get_tool_input_schema=schema_of,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )

    # --- transports ----------------------------------------------------------------------------

    def serve_stdio(self) -> None:
        """Serve over this process's stdin and stdout until stdin closes."""
        import anyio
        from mcp.server.stdio import stdio_server

        server = self.server()

        async def main() -> None:
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())

        anyio.run(main)

    def serve_http(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        path: str = "/mcp",
        announce: Callable[[str], None] | None = None,
    ) -> None:
        """Serve streamable HTTP at ``http://host:port/mcp`` until interrupted.

        Args:
            host: the interface to listen on.
            port: the port; 0 picks a free one.
            path: the endpoint's path.
            announce: called with the endpoint URL once the socket is bound.

        Raises:
            ConfigError: the address cannot be bound.
        """
        import uvicorn

        app = self.server().streamable_http_app(streamable_http_path=path, host=host)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        if announce is not None:
            announce(f"http://{shown}:{bound}{path}")
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()


def _in_thread(function: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """Run a blocking tool (the engine is synchronous) in a worker thread."""

    async def call(arguments: dict[str, Any]) -> Any:
        import anyio

        return await anyio.to_thread.run_sync(partial(function, arguments))

    return call


def _describe(error: Any) -> str:
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else str(error.message)


def announce(url: str) -> None:
    """Say where an HTTP server listens (on stderr: stdout may be a protocol stream)."""
    print(f"flowkit mcp: serving at {url}", file=sys.stderr, flush=True)

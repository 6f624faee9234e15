"""Serve a workflow to MCP clients (``flowkit mcp serve``, SPEC §13).

One workflow becomes an MCP server with these tools:

- each entry of its top-level ``tools`` (the tool's parameters are its input
  schema; a call runs the tool's ``service.method`` from the service registry);
- ``run_<workflow_id>``: start an execution with the workflow's inputs as the
  arguments and wait until it completes, fails or halts. A halted execution
  comes back with its execution id and, for an approval, its prompt and
  approvers;
- ``resume_<workflow_id>`` (when the workflow can halt): decide an approval or
  continue a halt (``execution_id``, ``approved``, ``response``). A resume
  that flowkit refuses, such as one by someone who is not a listed approver,
  is a tool error carrying flowkit's message, and changes nothing.

Who resumes is never taken from the client's arguments: over HTTP it is the
identity of the client's bearer token (:class:`Tokens`, checked by
:class:`BearerAuth` on every request), over stdio the identity the server was
started as (``--as``). An anonymous client (HTTP with ``--allow-anonymous``
and no token, or stdio without ``--as``) can run the workflow and call its
tools, but cannot resume an execution.

Executions are kept in the configured store (``--store``), so a halted run can
also be resumed later with ``flowkit resume``.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import os
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from flowkit import Engine, Result, WorkflowDef, __version__
from flowkit.abc import step_type
from flowkit.definitions import all_steps
from flowkit.errors import ConfigError, FlowkitError, ValidationError
from flowkit.frozen import thaw

from ._definitions import ToolDef, tools_of

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server
    from mcp_types import CallToolResult, Tool
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "TOKENS_ENV",
    "BearerAuth",
    "Tokens",
    "WorkflowServer",
    "input_schema",
    "require_tokens",
]

TOKENS_ENV = "FLOWKIT_MCP_TOKENS"
"""The environment variable holding ``TOKEN:NAME,TOKEN:NAME`` for the HTTP transport."""
MIN_TOKEN_LENGTH = 16
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


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
            "description": (
                "Ignored: the decision is made as the identity the client authenticated as "
                "(its bearer token's name, or the server's --as over stdio)."
            ),
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
    call: Callable[[dict[str, Any], str | None], Awaitable[Any]]
    """``call(arguments, identity)``: JSON data, or raises _ToolError."""


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

        async def call(arguments: dict[str, Any], _identity: str | None) -> Any:
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

        def run(arguments: dict[str, Any], _identity: str | None) -> Any:
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

        def resume(arguments: dict[str, Any], identity: str | None) -> Any:
            # The input schema was checked: execution_id is a string, approved a boolean.
            # 'by' is ignored: a decision is made as the client's identity.
            if identity is None:
                raise _ToolError(
                    f"resume_{wf.id} needs to know who decides, and this client is anonymous: "
                    "connect with a bearer token (HTTP), or start the server with --as NAME "
                    "(stdio)"
                )
            execution_id = arguments["execution_id"]
            try:
                execution = self.engine.load(execution_id)
                if execution.workflow_id != wf.id:
                    raise _ToolError(
                        f"execution '{execution_id}' belongs to workflow "
                        f"'{execution.workflow_id}', not '{wf.id}'"
                    )
                approvers = (execution.halt_data or {}).get("approvers") or []
                if approvers and identity not in approvers:
                    raise _ToolError(
                        f"execution '{execution_id}' waits for a decision by "
                        f"{', '.join(approvers)}; this client is '{identity}' (the identity of "
                        "its token, or --as over stdio; 'by' is ignored)"
                    )
                result = self.engine.resume(
                    execution_id,
                    approved=arguments.get("approved"),
                    by=identity,
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
                "approval, or continue a halt with a 'response'. The decision is made as the "
                "identity this client authenticated as, which must be one of the approval's "
                "approvers. Returns the same shape as run_" + wf.id + "."
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

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, identity: str | None = None
    ) -> CallToolResult:
        """Call a tool as ``identity`` (None: anonymous); failures come back as tool errors.

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
            value = await entry.call(given, identity)
        except _ToolError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        except FlowkitError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return CallToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content=value if isinstance(value, dict) else None,
        )

    def server(self, identity: str | None = None) -> Server[Any]:
        """An MCP (low-level SDK) server offering the tools.

        Args:
            identity: who calls made without an HTTP request (stdio, in
                memory) act as; None makes them anonymous. A call over HTTP
                acts as the identity :class:`BearerAuth` found for its request.
        """
        from mcp.server.lowlevel import Server
        from mcp_types import CallToolRequestParams, ListToolsResult, PaginatedRequestParams

        async def list_tools(_ctx: Any, _params: PaginatedRequestParams | None) -> ListToolsResult:
            return ListToolsResult(tools=self.list())

        async def call_tool(
            ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
        ) -> CallToolResult:
            return await self.call(params.name, params.arguments, _caller(ctx, identity))

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

    def serve_stdio(self, identity: str | None = None) -> None:
        """Serve over this process's stdin and stdout until stdin closes.

        Args:
            identity: who the client acts as (``--as``); None makes it anonymous.
        """
        import anyio
        from mcp.server.stdio import stdio_server

        server = self.server(identity)

        async def main() -> None:
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())

        anyio.run(main)

    def serve_http(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        tokens: Tokens | None = None,
        allow_anonymous: bool = False,
        path: str = "/mcp",
        announce: Callable[[str], None] | None = None,
    ) -> None:
        """Serve streamable HTTP at ``http://host:port/mcp`` until interrupted.

        Every request is authenticated (see :class:`BearerAuth`).

        Args:
            host: the interface to listen on.
            port: the port; 0 picks a free one.
            tokens: the bearer tokens clients authenticate with.
            allow_anonymous: also serve requests without a token (they cannot resume).
            path: the endpoint's path.
            announce: called with the endpoint URL once the socket is bound.

        Raises:
            ConfigError: there are no tokens and anonymous clients are not
                allowed, or the address cannot be bound.
        """
        import uvicorn

        tokens = tokens if tokens is not None else Tokens()
        require_tokens(tokens, allow_anonymous)
        mcp_app = self.server().streamable_http_app(streamable_http_path=path, host=host)
        app = BearerAuth(mcp_app, tokens, allow_anonymous=allow_anonymous)
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


def _in_thread(
    function: Callable[[dict[str, Any], str | None], Any],
) -> Callable[[dict[str, Any], str | None], Awaitable[Any]]:
    """Run a blocking tool (the engine is synchronous) in a worker thread."""

    async def call(arguments: dict[str, Any], identity: str | None) -> Any:
        import anyio

        return await anyio.to_thread.run_sync(partial(function, arguments, identity))

    return call


def _caller(ctx: ServerRequestContext[Any, Any], identity: str | None) -> str | None:
    """Who a tool call acts as: its HTTP request's identity, else the server's own."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

    if ctx.request is None:  # stdio or in memory
        return identity
    user = ctx.request.scope.get("user")
    return user.access_token.client_id if isinstance(user, AuthenticatedUser) else None


def _describe(error: Any) -> str:
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else str(error.message)


def announce(url: str) -> None:
    """Say where an HTTP server listens (on stderr: stdout may be a protocol stream)."""
    print(f"flowkit mcp: serving at {url}", file=sys.stderr, flush=True)


# --- authentication over HTTP -------------------------------------------------------------------


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _entries(entries: Iterable[tuple[str, bytes]]) -> tuple[tuple[str, bytes], ...]:
    return tuple(entries)


@attrs.frozen
class Tokens:
    """Bearer tokens and the identity each stands for; only their SHA-256 digests are kept.

    Args:
        entries: ``(identity, SHA-256 digest of the token)`` pairs.

    Raises:
        ConfigError: one token is given to two identities (the message names
            neither: a name may be a token written in the wrong place).
    """

    entries: tuple[tuple[str, bytes], ...] = attrs.field(default=(), converter=_entries, repr=False)

    def __attrs_post_init__(self) -> None:
        owners: dict[bytes, str] = {}
        for name, digest in self.entries:
            if owners.setdefault(digest, name) != name:
                raise ConfigError(
                    "bearer tokens: one token is given to two identities; "
                    "give each identity its own token"
                )

    @classmethod
    def parse(cls, text: str, where: str = TOKENS_ENV) -> Tokens:
        """Tokens from ``TOKEN:NAME,TOKEN:NAME`` (the format of ``FLOWKIT_MCP_TOKENS``).

        Raises:
            ConfigError: an entry is not ``TOKEN:NAME``, or its token is too short
                to be secret; the message names the entry by its number only.
        """
        entries = []
        for number, item in enumerate(text.split(","), start=1):
            if not item.strip():
                continue
            token, _, name = item.strip().rpartition(":")
            if not token.strip() or not name.strip():
                raise ConfigError(
                    f"{where}: entry {number} is not TOKEN:NAME (entries are separated by commas)"
                )
            if len(token.strip()) < MIN_TOKEN_LENGTH:
                raise ConfigError(
                    f"{where}: the token of entry {number} is shorter than {MIN_TOKEN_LENGTH} "
                    "characters; use a long random one, e.g. from "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            entries.append((name.strip(), _digest(token.strip())))
        return cls(entries)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Tokens:
        """Tokens from a file of ``NAME:SHA256`` lines, the SHA-256 of each token in hex.

        Blank lines and lines starting with ``#`` are skipped.

        Raises:
            ConfigError: the file cannot be read, or a line is not ``NAME:SHA256``;
                the message never repeats the line.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"cannot read the tokens file '{path}': {reason}") from None
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, digest = line.rpartition(":")
            if not name.strip() or not _SHA256_HEX.fullmatch(digest.strip()):
                raise ConfigError(
                    f"tokens file '{path}', line {number}: expected NAME:SHA256, the SHA-256 "
                    'of the token as 64 hex digits (printf %s "$TOKEN" | sha256sum)'
                )
            entries.append((name.strip(), bytes.fromhex(digest.strip())))
        return cls(entries)

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.entries + other.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    @property
    def identities(self) -> list[str]:
        """The identities, sorted, each once."""
        return sorted({name for name, _ in self.entries})

    def identify(self, token: str) -> str | None:
        """The identity ``token`` stands for, or None (compared in constant time)."""
        digest = _digest(token)
        found = None
        for name, expected in self.entries:
            if hmac.compare_digest(digest, expected):
                found = name
        return found


def require_tokens(tokens: Tokens, allow_anonymous: bool) -> None:
    """Refuse to serve HTTP without tokens, unless anonymous clients are allowed.

    Raises:
        ConfigError: there are no tokens and ``allow_anonymous`` is false.
    """
    if not tokens and not allow_anonymous:
        raise ConfigError(
            "serving over HTTP needs bearer tokens, so that only clients you gave one can "
            f"reach the workflow: set {TOKENS_ENV}=TOKEN:NAME,... or pass --tokens-file FILE "
            "(lines NAME:SHA256-OF-TOKEN); or pass --allow-anonymous to serve without them "
            "(anonymous clients cannot resume executions)"
        )


class BearerAuth:
    """ASGI middleware: each HTTP request names its identity with ``Authorization: Bearer``.

    A request with a known token goes on with its identity in ``scope["user"]``
    (the SDK's ``AuthenticatedUser``, which also binds each MCP session to the
    identity that opened it). Any other ``Authorization`` header is refused
    with 401, and so is a request without one unless ``allow_anonymous``.
    """

    def __init__(self, app: ASGIApp, tokens: Tokens, *, allow_anonymous: bool = False) -> None:
        self.app = app
        self.tokens = tokens
        self.allow_anonymous = allow_anonymous

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (the app serves no websockets)
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"authorization")
        if header is None:
            if self.allow_anonymous:
                await self.app(scope, receive, send)
            else:
                await _unauthorized(send, "a bearer token is required (Authorization: Bearer ...)")
            return
        scheme, _, token = header.partition(" ")
        identity = self.tokens.identify(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            await _unauthorized(send, "the bearer token is not valid", error="invalid_token")
            return
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken

        # The SDK's type wants the token; this identity never needs it again.
        user = AuthenticatedUser(AccessToken(token="-", client_id=identity, scopes=[]))
        await self.app({**scope, "user": user}, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _unauthorized(send: Send, description: str, error: str | None = None) -> None:
    """Answer 401 (RFC 6750); nothing of the request is repeated."""
    challenge = 'Bearer realm="flowkit"' + (f', error="{error}"' if error else "")
    body = json.dumps({"error": error or "unauthorized", "error_description": description})
    data = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})

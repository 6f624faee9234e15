"""The ``mcp`` step: call a tool on an MCP server (SPEC §13).

Servers come from the workflow's top-level ``mcp_servers``: a subprocess
spoken to over stdio (``command``, ``env``) or a streamable-HTTP endpoint
(``url``, ``headers``). ``${ENV}`` in headers and env is read from the
environment each time a session is opened, and never stored.

The engine is synchronous and the official ``mcp`` SDK is asynchronous, so the
sessions live on one background event loop per process. A session is opened
the first time a step needs its server and then reused by every later step
in the process (keyed by what it connects to), until the process exits or
:func:`close_sessions` is called. A session whose connection is lost is
dropped, and the next call opens a new one.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import os
import shlex
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from flowkit.abc import Outcome, Runtime, StepType
from flowkit.errors import ExecutionError

from ._definitions import MCPConfig, MCPServerDef, mcp_servers_of
from ._dsl import build_mcp

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult

__all__ = [
    "CONNECT_TIMEOUT",
    "IDEMPOTENCY_META_KEY",
    "Connection",
    "MCPStep",
    "SessionPool",
    "close_sessions",
    "pool",
    "tool_result_json",
]

CONNECT_TIMEOUT = 30.0
"""Seconds a new session may take to start and finish the MCP handshake."""

CLOSE_TIMEOUT = 10.0
"""Seconds :func:`close_sessions` waits for sessions to end. The SDK gives a stdio server
2 s to exit once its stdin is closed, then SIGTERM, then SIGKILL (2 s each)."""

IDEMPOTENCY_META_KEY = "flowkit/idempotency_key"
"""The ``_meta`` key of every ``tools/call`` request: the step's idempotency key, so
a server can recognise a call repeated after a crash (see ``flowkit.current()``)."""

_CONNECTION_CLOSED = -32000  # mcp_types.CONNECTION_CLOSED (not imported until a call is made)


# --- what a session connects to -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Connection:
    """What one pooled session connects to: the server with ``${ENV}`` resolved.

    Sessions are keyed by this value, so two workflows naming the same server
    share a session, and a changed environment variable opens a new one.
    Instances live in memory only; the resolved values are never stored.
    """

    server_id: str = attrs.field(eq=False)
    transport: str
    url: str | None
    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    cwd: str | None

    @classmethod
    def of(cls, server: MCPServerDef, cwd: str | None = None) -> Connection:
        """Resolve ``server``'s ``${ENV}`` values now.

        Raises:
            ExecutionError: a referenced environment variable is not set.
        """
        try:
            headers = server.resolved_headers() if server.transport == "http" else {}
        except KeyError as exc:
            raise ExecutionError(f"MCP server '{server.id}': headers: {exc.args[0]}") from None
        try:
            env = server.resolved_env() if server.transport == "stdio" else {}
        except KeyError as exc:
            raise ExecutionError(f"MCP server '{server.id}': env: {exc.args[0]}") from None
        return cls(
            server_id=server.id,
            transport=server.transport,
            url=server.url,
            headers=tuple(sorted(headers.items())),
            command=server.command,
            env=tuple(sorted(env.items())),
            cwd=cwd if server.transport == "stdio" else None,
        )

    def describe(self) -> str:
        """The URL or the command line, for messages."""
        if self.transport == "http":
            return str(self.url)
        return shlex.join(self.command)


# --- one session ----------------------------------------------------------------------------


class _Session:
    """One open MCP client, held open by a task on the pool's loop.

    The SDK's transports are anyio task groups that must be entered and left
    in one task; :meth:`hold` is that task. Calls are made from other tasks.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.client: Client | None = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done() and not self.stop.is_set()

    async def hold(self) -> None:
        from mcp import Client

        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = _watched(await self._transport(stack), self.stop.set)
                self.client = await stack.enter_async_context(Client(transport))
                self.ready.set()
                await self.stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the transport failed: report it to whoever waits
            self.error = exc
        finally:
            self.client = None
            self.stop.set()
            self.ready.set()

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        conn = self.connection
        if conn.transport == "http":
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            assert conn.url is not None
            # The SDK's defaults: 30 s to connect or send, 300 s between bytes of a response.
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=dict(conn.headers), timeout=httpx2.Timeout(30.0, read=300.0)
                )
            )
            return streamable_http_client(conn.url, http_client=http)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=conn.command[0],
            args=list(conn.command[1:]),
            env=dict(conn.env) or None,
            cwd=conn.cwd,
        )
        return stdio_client(params, errlog=sys.stderr)


@contextlib.asynccontextmanager
async def _watched(transport: Any, on_eof: Callable[[], None]) -> AsyncIterator[tuple[Any, Any]]:
    """The transport, telling ``on_eof`` when the server closes the connection.

    A stdio server that exits between two steps is noticed here, so the next
    step opens a new session instead of failing on the dead one.
    """
    async with transport as (read_stream, write_stream):
        yield _WatchedStream(read_stream, on_eof), write_stream


class _WatchedStream:
    """A read stream that calls ``on_eof`` when it ends (the SDK's ``ReadStream`` protocol)."""

    def __init__(self, stream: Any, on_eof: Callable[[], None]) -> None:
        self._stream = stream
        self._on_eof = on_eof

    def __getattr__(self, name: str) -> Any:  # e.g. ``last_context`` of context streams
        return getattr(self._stream, name)

    async def receive(self) -> Any:
        import anyio

        try:
            return await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_eof()
            raise

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> _WatchedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# --- the pool -------------------------------------------------------------------------------


class _Runtime:
    """One background event loop, its thread, and the sessions that live on it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.sessions: dict[Connection, _Session] = {}  # touched on the loop thread only
        self.holders: set[asyncio.Task[None]] = set()  # the tasks holding sessions open
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="flowkit-mcp", daemon=True
        )
        self.thread.start()

    async def call(
        self,
        connection: Connection,
        tool: str,
        arguments: dict[str, Any],
        timeout: float | None,
        meta: dict[str, Any],
    ) -> CallToolResult:
        from mcp import MCPError

        async with asyncio.timeout(timeout):
            session = await self.open(connection)
            client = session.client
            if client is None:  # closed between the handshake and now
                raise await self.lost(session, connection, tool, "the session was closed")
            try:
                return await client.call_tool(tool, arguments, meta=meta or None)  # type: ignore[arg-type]
            except MCPError as exc:
                if exc.code == _CONNECTION_CLOSED or not session.alive:
                    raise await self.lost(session, connection, tool, str(exc)) from None
                raise ExecutionError(
                    f"MCP server '{connection.server_id}' refused tool '{tool}': "
                    f"{exc.message} (error {exc.code})"
                ) from None
            except (OSError, EOFError) as exc:
                raise await self.lost(session, connection, tool, _message(exc)) from None

    async def open(self, connection: Connection) -> _Session:
        session = self.sessions.get(connection)
        if session is not None and not session.alive:
            self.drop(session)
            session = None
        if session is None:
            session = _Session(connection)
            self.sessions[connection] = session
            session.task = self.loop.create_task(
                session.hold(), name=f"flowkit-mcp {connection.server_id}"
            )
            self.holders.add(session.task)  # until it ends, also after it was dropped
            session.task.add_done_callback(self.holders.discard)
        if not session.ready.is_set():
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await session.ready.wait()
            except TimeoutError:  # this one only: the step's own timeout arrives as a cancel
                self.drop(session)
                raise ExecutionError(
                    f"MCP server '{connection.server_id}' ({connection.describe()}) did not "
                    f"finish the MCP handshake within {CONNECT_TIMEOUT:g}s"
                ) from None
        if session.client is None:
            self.drop(session)
            why = _message(session.error) if session.error is not None else "it closed at once"
            raise ExecutionError(
                f"cannot connect to MCP server '{connection.server_id}' "
                f"({connection.transport}: {connection.describe()}): {why}"
            )
        return session

    async def lost(
        self, session: _Session, conn: Connection, tool: str, why: str
    ) -> ExecutionError:
        self.drop(session)
        if session.task is not None:  # let the transport say why it failed, if it does at once
            await asyncio.wait([session.task], timeout=2.0)
        if session.error is not None:
            why = _message(session.error)
        return ExecutionError(
            f"lost the connection to MCP server '{conn.server_id}' ({conn.describe()}) while "
            f"calling '{tool}': {why}; the next call opens a new session"
        )

    def drop(self, session: _Session) -> None:
        session.stop.set()
        if not session.ready.is_set() and session.task is not None:
            session.task.cancel()  # stuck in the handshake: stop it (and its subprocess)
        if self.sessions.get(session.connection) is session:
            del self.sessions[session.connection]

    async def close_all(self) -> None:
        """End every session and wait for its transport to shut down (stdio servers are
        stopped: stdin closed, then SIGTERM, then SIGKILL); cancel calls still in flight."""
        for session in list(self.sessions.values()):
            self.drop(session)
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current and task not in self.holders:
                task.cancel()  # a call in flight: its caller gets an error
        holders = list(self.holders)
        if holders:
            _, pending = await asyncio.wait(holders, timeout=CLOSE_TIMEOUT)
            for task in pending:
                task.cancel()

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            future = asyncio.run_coroutine_threadsafe(self.close_all(), self.loop)
            future.result(CLOSE_TIMEOUT + 1)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(CLOSE_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


class SessionPool:
    """MCP client sessions shared by every step of this process.

    A daemon thread runs the event loop the sessions live on; it is started
    on first use (afresh in a forked child) and stopped by :meth:`close`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runtime: _Runtime | None = None

    def _after_fork(self) -> None:
        # The parent's loop thread does not exist in the child, and the lock may be held.
        self._lock = threading.Lock()
        self._runtime = None

    def call(
        self,
        connection: Connection,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        timeout: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CallToolResult:
        """Call ``tool`` on the server, opening (or reusing) its session.

        Raises:
            ExecutionError: the server cannot be reached, the connection was lost,
                the server answered with a protocol error, or the pool was closed
                during the call.
            TimeoutError: ``timeout`` seconds passed (the call is cancelled).
        """
        with self._lock:  # so that close() cannot stop the loop between these two lines
            if self._runtime is None or self._runtime.pid != os.getpid():
                self._runtime = _Runtime()
            runtime = self._runtime
            future = asyncio.run_coroutine_threadsafe(
                runtime.call(connection, tool, dict(arguments), timeout, dict(meta or {})),
                runtime.loop,
            )
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ExecutionError(
                f"the MCP sessions of this process were closed while calling '{tool}' on "
                f"server '{connection.server_id}'"
            ) from None
        except BaseException:
            future.cancel()
            raise

    def sessions(self) -> int:
        """How many sessions are open: connected, past the handshake (for tests)."""
        runtime = self._runtime
        if runtime is None or runtime.pid != os.getpid():
            return 0

        async def count() -> int:
            return sum(1 for s in runtime.sessions.values() if s.alive and s.client is not None)

        return asyncio.run_coroutine_threadsafe(count(), runtime.loop).result()

    def close(self) -> None:
        """Close every session (stdio servers are stopped) and the loop thread.

        The pool can be used again afterwards; it starts afresh.
        """
        with self._lock:
            runtime, self._runtime = self._runtime, None
        if runtime is not None and runtime.pid == os.getpid():
            runtime.shutdown()


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _message(exc: BaseException) -> str:
    """One line for an error that may be an exception group from a task group."""
    leaves = [leaf for leaf in _leaves(exc) if not isinstance(leaf, asyncio.CancelledError)]
    leaf = leaves[0] if leaves else exc
    text = str(leaf) or type(leaf).__name__
    return text if isinstance(leaf, ExecutionError) else f"{type(leaf).__name__}: {text}"


pool = SessionPool()
"""The process-wide session pool the ``mcp`` step uses."""

atexit.register(pool.close)
os.register_at_fork(after_in_child=pool._after_fork)


def close_sessions() -> None:
    """Close every pooled MCP session of this process (stdio servers are stopped).

    They are closed at interpreter exit anyway; call this to release them
    sooner (a later ``mcp`` step opens new ones).
    """
    pool.close()


# --- results --------------------------------------------------------------------------------


def tool_result_json(result: CallToolResult) -> Any:
    """A tool result as JSON data.

    The structured content when the server sent some; otherwise the text
    blocks joined with newlines, parsed when that text is one JSON object or
    array (None when there is no content); when other blocks are present,
    each becomes a mapping such as
    ``{"type": "image", "mimeType": "image/png", "data": "<base64>"}``, and
    the result is that mapping alone or the list of all blocks.
    """
    if result.structured_content is not None:
        return json.loads(json.dumps(result.structured_content))
    blocks = list(result.content)
    if not blocks:
        return None
    if all(block.type == "text" for block in blocks):
        text = "\n".join(getattr(block, "text", "") for block in blocks)
        return _json_document(text)
    converted = [_block(block) for block in blocks]
    return converted[0] if len(converted) == 1 else converted


def _json_document(text: str) -> Any:
    """``text`` parsed when it is one JSON object or array (many servers send JSON as text)."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return text


def _block(block: Any) -> dict[str, Any]:
    data: dict[str, Any] = block.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("_meta", None)
    data.pop("annotations", None)
    resource = data.pop("resource", None)
    if isinstance(resource, dict):  # an embedded resource: flatten its contents
        resource.pop("_meta", None)
        data.update(resource)
    return data


def _error_text(result: CallToolResult) -> str:
    texts = [getattr(block, "text", "") for block in result.content if block.type == "text"]
    text = "\n".join(t for t in texts if t)
    if text:
        return text
    if result.structured_content is not None:
        return json.dumps(result.structured_content)
    return "the tool reported an error without a message"


# --- the step -------------------------------------------------------------------------------


def _workflow_dir(run: Runtime) -> str | None:
    """Where a stdio server starts: the workflow file's directory, if it came from a file."""
    source = run.workflow.source
    if source is not None and source.file:
        folder = Path(source.file).parent
        if folder.is_dir():
            return str(folder.resolve())
    return None


class MCPStep(StepType):
    """The ``mcp`` step type: ``tool`` on ``server`` with ``arguments``, result in ``output``."""

    name = "mcp"
    config = MCPConfig
    build = staticmethod(build_mcp)

    def run(self, run: Runtime) -> Outcome:
        config: MCPConfig = run.step.config
        servers = mcp_servers_of(run.workflow)
        server = servers.get(config.server)
        if server is None:
            declared = (
                f"declared: {', '.join(servers)}"
                if servers
                else "the workflow declares no top-level 'mcp_servers'"
            )
            raise ExecutionError(f"step '{run.path}': no MCP server '{config.server}' ({declared})")
        arguments = run.resolve(config.arguments)
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ExecutionError(
                f"step '{run.path}': 'arguments' must be a mapping of argument names to values, "
                f"got {type(arguments).__name__}"
            )
        try:
            import mcp  # noqa: F401  # the SDK (the ai extra)
        except ImportError as exc:
            raise ExecutionError(
                f"step '{run.path}': the mcp step needs the MCP SDK ({exc}): "
                "pip install 'flowkit-workflows[ai]'"
            ) from None
        connection = Connection.of(server, _workflow_dir(run))
        timeout = run.remaining(config.timeout)
        try:
            result = pool.call(
                connection,
                config.tool,
                arguments,
                timeout=timeout,
                meta={IDEMPOTENCY_META_KEY: run.key},
            )
        except TimeoutError:
            assert timeout is not None
            raise ExecutionError(f"Step '{run.path}' timed out after {timeout:g}s") from None
        if result.is_error:
            raise ExecutionError(
                f"MCP tool '{config.tool}' on server '{config.server}' failed: "
                f"{_error_text(result)}"
            )
        output = tool_result_json(result)
        updates = {config.output: output} if config.output else {}
        return Outcome(target=run.step.next, updates=updates, output=output, input=arguments)

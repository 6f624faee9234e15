"""``flowkit mcp``: serve workflows to MCP clients (SPEC §11, §13).

:mod:`flowkit.cli` loads this module only when the ``mcp`` command runs, so
``flowkit --help`` and every other command never import ``flowkit.ai``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import click

from flowkit.cli import handles_errors, import_option, load_target, open_engine, store_option
from flowkit.errors import ConfigError

__all__ = ["mcp"]


@click.group()
def mcp() -> None:
    """Serve workflows to MCP clients (needs the 'ai' extra)."""


@mcp.command()
@click.argument("target", metavar="FILE_OR_MODULE:ATTR")
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio (the client starts this command) or streamable HTTP.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="The interface for --transport http."
)
@click.option(
    "--port",
    type=int,
    default=8000,
    show_default=True,
    help="The port for --transport http (0 picks a free one).",
)
@click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False),
    help="For --transport http: a file of NAME:SHA256-OF-TOKEN lines, one per identity "
    "(besides FLOWKIT_MCP_TOKENS=TOKEN:NAME,...).",
)
@click.option(
    "--allow-anonymous",
    is_flag=True,
    help="For --transport http: also serve clients without a token (they cannot resume).",
)
@click.option(
    "--as",
    "identity",
    metavar="NAME",
    help="For --transport stdio: who the client decides approvals as (default: nobody).",
)
@store_option
@import_option
@handles_errors
def serve(
    target: str,
    transport: str,
    host: str,
    port: int,
    tokens_file: str | None,
    allow_anonymous: bool,
    identity: str | None,
    store_url: str | None,
    imports: Sequence[str],
) -> None:
    """Expose a workflow to MCP clients.

    The workflow's tools become MCP tools, and the workflow itself becomes
    run_<workflow_id> (its inputs are the arguments); when it can halt,
    resume_<workflow_id> decides its approvals. Executions are kept in the
    store, so `flowkit resume` works on them too.

    A decision is made as the client's identity, never as a name the client
    sends: over HTTP the name of its bearer token (FLOWKIT_MCP_TOKENS or
    --tokens-file; a request without a valid one gets 401), over stdio the
    --as NAME the server was started with.

    \b
    Examples:
      flowkit mcp serve expenses.yml -m shop.services --store sqlite:///runs.db --as manager
      FLOWKIT_MCP_TOKENS="$TOKEN:manager" flowkit mcp serve shop.flows:expenses --transport http
    """
    if identity is not None and not identity.strip():
        raise ConfigError("--as needs a name: the approver the stdio client decides as")
    if transport == "http" and identity is not None:
        raise ConfigError("--as is for --transport stdio; over HTTP each token names its identity")
    if transport == "stdio" and (tokens_file is not None or allow_anonymous):
        raise ConfigError(
            "--tokens-file and --allow-anonymous are for --transport http; "
            "over stdio, --as NAME says who decides"
        )
    try:
        import mcp  # noqa: F401  # the SDK (the ai extra)

        from ._mcp_server import TOKENS_ENV, Tokens, WorkflowServer, announce, require_tokens
    except ImportError as exc:
        raise ConfigError(
            f"flowkit mcp serve needs the ai extra ({exc}): "
            "pip install 'flowkit-workflows[ai]' (or pip install -e '.[ai]' in the source tree)"
        ) from None
    tokens = Tokens()
    if transport == "http":
        tokens = Tokens.parse(os.environ.get(TOKENS_ENV, ""))
        if tokens_file is not None:
            tokens += Tokens.read(tokens_file)
        require_tokens(tokens, allow_anonymous)
    with contextlib.ExitStack() as stack:
        # Over stdio, stdout is the protocol stream: what user modules print goes to stderr.
        quiet = contextlib.redirect_stdout(sys.stderr) if transport == "stdio" else None
        with quiet or contextlib.nullcontext():
            engine = stack.enter_context(open_engine(store_url, imports))
            server = WorkflowServer(load_target(target), engine)
        click.echo(
            f"flowkit mcp: workflow '{server.workflow.id}', tools: {', '.join(server.tools)}",
            err=True,
        )
        clients = _clients(identity, len(tokens.identities), allow_anonymous)
        click.echo(f"flowkit mcp: {clients}", err=True)
        try:
            if transport == "stdio":
                server.serve_stdio(identity)
            else:
                server.serve_http(
                    host, port, tokens=tokens, allow_anonymous=allow_anonymous, announce=announce
                )
        except KeyboardInterrupt:
            pass


def _clients(identity: str | None, identities: int, allow_anonymous: bool) -> str:
    """Who the clients are, for the line the server starts with (no token names: a
    misplaced token would be one)."""
    if identity is not None:
        return f"clients act as '{identity}'"
    if not identities:
        return "clients are anonymous: they cannot resume executions"
    known = f"clients authenticate with bearer tokens ({identities} identities)"
    return known + "; clients without one are anonymous" if allow_anonymous else known

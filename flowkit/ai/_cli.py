"""``flowkit mcp``: serve workflows to MCP clients (SPEC §11, §13).

:mod:`flowkit.cli` loads this module only when the ``mcp`` command runs, so
``flowkit --help`` and every other command never import ``flowkit.ai``.
"""

from __future__ import annotations

import contextlib
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
@store_option
@import_option
@handles_errors
def serve(
    target: str,
    transport: str,
    host: str,
    port: int,
    store_url: str | None,
    imports: Sequence[str],
) -> None:
    """Expose a workflow to MCP clients.

    The workflow's tools become MCP tools, and the workflow itself becomes
    run_<workflow_id> (its inputs are the arguments); when it can halt,
    resume_<workflow_id> decides its approvals. Executions are kept in the
    store, so `flowkit resume` works on them too.

    \b
    Examples:
      flowkit mcp serve expenses.yml -m shop.services --store sqlite:///runs.db
      flowkit mcp serve shop.flows:expenses --transport http --port 8765
    """
    try:
        import mcp  # noqa: F401  # the SDK (the ai extra)

        from ._mcp_server import WorkflowServer, announce
    except ImportError as exc:
        raise ConfigError(
            f"flowkit mcp serve needs the ai extra ({exc}): "
            "pip install 'flowkit-workflows[ai]' (or pip install -e '.[ai]' in the source tree)"
        ) from None
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
        try:
            if transport == "stdio":
                server.serve_stdio()
            else:
                server.serve_http(host, port, announce=announce)
        except KeyboardInterrupt:
            pass

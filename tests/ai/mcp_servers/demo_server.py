"""A small real MCP server for the tests, built with the SDK's MCPServer (FastMCP in mcp 1.x).

python demo_server.py                 # stdio
python demo_server.py http PORT       # streamable HTTP on 127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import base64
import os
import sys

import anyio
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image
from mcp_types import INVALID_PARAMS, TextContent

app = MCPServer("flowkit-demo", log_level="WARNING")
_calls = {"count": 0}

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@app.tool()
def add(a: int, b: int) -> dict[str, int]:
    """Add two integers."""
    return {"sum": a + b}


@app.tool(structured_output=False)
def shout(text: str) -> str:
    """The text in capitals (text content only, no structured content)."""
    return text.upper()


@app.tool(structured_output=False)
def lines(items: list[str]) -> list[TextContent]:
    """Each item as its own text block."""
    return [TextContent(type="text", text=item) for item in items]


@app.tool(structured_output=False)
def inventory() -> dict[str, int]:
    """Counts, sent as JSON text (no structured content), as many servers do."""
    return {"apples": 3, "pears": 0}


@app.tool()
def refuse(reason: str) -> str:
    """Always fails with the reason (an MCP tool error)."""
    raise ToolError(f"refused: {reason}")


@app.tool()
def over_quota() -> str:
    """Answers with a JSON-RPC error instead of a result (a protocol error)."""
    raise MCPError(INVALID_PARAMS, "quota exceeded")


@app.tool()
def request_headers(ctx: Context) -> dict[str, str | None]:
    """The HTTP headers this call arrived with (streamable HTTP only)."""
    headers = ctx.headers or {}
    return {"authorization": headers.get("authorization"), "x_tenant": headers.get("x-tenant")}


@app.tool()
def environment(name: str) -> dict[str, str | None]:
    """An environment variable of the server process."""
    return {"name": name, "value": os.environ.get(name)}


@app.tool()
def cwd() -> dict[str, str]:
    """The server's working directory."""
    return {"cwd": os.getcwd()}


@app.tool()
def picture() -> Image:
    """A PNG image."""
    return Image(data=PNG, format="png")


@app.tool(structured_output=False)
def captioned() -> list[TextContent | Image]:
    """A caption and a PNG image."""
    return [TextContent(type="text", text="a pixel"), Image(data=PNG, format="png")]


@app.tool()
async def slow(seconds: float) -> dict[str, float]:
    """Sleep, then answer."""
    await anyio.sleep(seconds)
    return {"slept": seconds}


@app.tool()
def process() -> dict[str, int]:
    """The server's pid and how many calls of this tool it has answered."""
    _calls["count"] += 1
    return {"pid": os.getpid(), "calls": _calls["count"]}


@app.tool()
def call_meta(ctx: Context) -> dict[str, str | None]:
    """The idempotency key flowkit sends in the request's _meta."""
    meta = ctx.request_context.meta or {}
    return {"key": meta.get("flowkit/idempotency_key")}


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        app.run()

"""A local HTTP server speaking OpenAI's chat-completions wire format, for tests.

It answers ``POST /v1/chat/completions`` and ``POST /v1/moderations`` from a
queue of programmed responses (a status, a JSON body or raw bytes, headers,
an optional delay) and records every request it received, so tests exercise
the real HTTP provider (httpx, retries, timeouts) against a real socket.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = ["FakeOpenAI", "Received", "completion", "running", "tool_call_json"]


@attrs.frozen
class Received:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: Any


@attrs.frozen
class _Response:
    status: int
    body: bytes
    headers: Mapping[str, str]
    delay: float
    echo: bool = False


def tool_call_json(name: str, arguments: Mapping[str, Any], call_id: str) -> dict[str, Any]:
    """A tool call as OpenAI sends it."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def completion(
    content: str | None = None,
    *,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    model: str = "gpt-test",
    prompt_tokens: int = 12,
    completion_tokens: int = 7,
) -> dict[str, Any]:
    """A chat-completions response body."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class FakeOpenAI:
    """The programmable server; use :func:`running` to start one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._responses: deque[_Response] = deque()
        self.requests: list[Received] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The API root, ``http://127.0.0.1:<port>/v1``."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def respond(
        self,
        body: Any = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        raw: bytes | None = None,
        echo: bool = False,
    ) -> FakeOpenAI:
        """Queue a response: ``body`` as JSON, or ``raw`` bytes as they are.

        With ``echo``, the error message repeats the request's headers, as a careless
        gateway does (credentials included).
        """
        data = raw if raw is not None else json.dumps(body).encode()
        with self._lock:
            self._responses.append(_Response(status, data, dict(headers or {}), delay, echo))
        return self

    def _next(self) -> _Response:
        with self._lock:
            if self._responses:
                return self._responses.popleft()
        error = {"error": {"message": "the test server has no response queued"}}
        return _Response(599, json.dumps(error).encode(), {}, 0.0)

    def _record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies received, in order."""
        return [request.body for request in self.requests]


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            fake._record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            response = fake._next()
            if response.echo:
                message = f"bad request; the headers were {dict(self.headers.items())}"
                body = json.dumps({"error": {"message": message}}).encode()
                response = attrs.evolve(response, body=body)
            if response.delay:
                time.sleep(response.delay)
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(response.body)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(response.body)
            except OSError:  # the client gave up (a timeout test)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running() -> Iterator[FakeOpenAI]:
    """A :class:`FakeOpenAI` listening on a free local port while the block runs."""
    fake = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    server.block_on_close = False
    fake.server = server
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

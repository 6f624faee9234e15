"""A dashboard served by uvicorn on a free port of 127.0.0.1, in a thread of the test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.applications import Starlette

from flowkit.dashboard.serve import Server


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Serve ``app`` while the block runs; yields its base URL."""
    server = Server(app, host="127.0.0.1", port=0, log_level="warning")
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    assert server.listening.wait(30), "the dashboard server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the dashboard server did not stop"

"""Serving the dashboard with uvicorn, and ending its event streams when the server stops.

An open ``/api/events`` stream would keep a graceful shutdown waiting for as
long as a browser stays on a page; :class:`Server` ends the streams first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import end_live_updates

__all__ = ["Server", "serve"]


class Server(uvicorn.Server):
    """A uvicorn server for a dashboard app (``options`` are :class:`uvicorn.Config`'s).

    ``listening`` is set, and ``on_listening`` called, once it accepts
    connections; shutting down ends the app's event streams at once.
    """

    def __init__(
        self, app: Starlette, *, on_listening: Callable[[], None] | None = None, **options: Any
    ) -> None:
        super().__init__(uvicorn.Config(app, **options))
        self.app = app
        self.on_listening = on_listening
        self.listening = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)  # exits the process when the port is taken
        self.listening.set()
        if self.on_listening is not None:
            self.on_listening()

    async def shutdown(self, sockets: Any = None) -> None:
        end_live_updates(self.app)
        await super().shutdown(sockets)


def serve(
    app: Starlette,
    *,
    host: str,
    port: int,
    root_path: str = "",
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` until interrupted (Ctrl+C or SIGTERM)."""
    server = Server(
        app,
        on_listening=on_listening,
        host=host,
        port=port,
        root_path=root_path,
        log_level="warning",
    )
    server.run()

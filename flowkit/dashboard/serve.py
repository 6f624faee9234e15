"""Serving the dashboard with uvicorn, and ending its event streams when the server stops.

An open ``/api/events`` stream would keep a graceful shutdown waiting for as
long as a browser stays on a page; :class:`Server` ends the streams first.
"""

from __future__ import annotations

import threading
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import end_live_updates

__all__ = ["Server", "serve"]


class Server(uvicorn.Server):
    """A uvicorn server for a dashboard app (``options`` are :class:`uvicorn.Config`'s):
    ``listening`` is set once it accepts connections, and shutting down ends the
    app's event streams at once."""

    def __init__(self, app: Starlette, **options: Any) -> None:
        super().__init__(uvicorn.Config(app, **options))
        self.app = app
        self.listening = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    async def shutdown(self, sockets: Any = None) -> None:
        end_live_updates(self.app)
        await super().shutdown(sockets)


def serve(app: Starlette, *, host: str, port: int, root_path: str = "") -> None:
    """Serve ``app`` until interrupted (Ctrl+C or SIGTERM)."""
    Server(app, host=host, port=port, root_path=root_path, log_level="warning").run()

"""``flowkit dashboard``: serve the web dashboard (SPEC §17, extra ``dashboard``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import click

from ..config import settings
from ..errors import ConfigError
from .app import handles_errors, import_option, main, open_engine, store_option


@main.command()
@store_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on. The default serves this machine only; pass 0.0.0.0 "
    "(or a specific address) to expose it, ideally behind a TLS reverse proxy.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8484,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--root-path",
    default="",
    metavar="PATH",
    help="The path prefix a reverse proxy serves the dashboard under (e.g. /flowkit).",
)
@click.option(
    "--https-only", is_flag=True, help="Send the session cookie over HTTPS only (TLS proxy)."
)
@click.option(
    "--hash-password",
    "hash_for",
    metavar="NAME",
    help="Ask for a password and print a 'NAME:hash' line for the dashboard_users file; then exit.",
)
@import_option
@handles_errors
def dashboard(
    store_url: str | None,
    host: str,
    port: int,
    root_path: str,
    https_only: bool,
    hash_for: str | None,
    imports: Sequence[str],
) -> None:
    """Serve the web dashboard: executions, workflows, schedules; approve, cancel, retry.

    Binds 127.0.0.1 (this machine only) unless --host says otherwise. Users who
    may act come from FLOWKIT_DASHBOARD_USERS ("alice:password,bob:password")
    or the dashboard_users setting (a file of lines from --hash-password);
    without users the dashboard is read-only.
    """
    try:
        from ..dashboard import Users, create_app, hash_password
        from ..dashboard.serve import serve
    except ImportError as exc:
        raise ConfigError(
            f"'flowkit dashboard' needs the dashboard extra ({exc}): pip install "
            "'flowkit-workflows[dashboard]' (or pip install -e '.[dashboard]' from the source tree)"
        ) from None
    if hash_for is not None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        click.echo(f"{hash_for}:{hash_password(password)}")
        return
    users = Users.configured(os.environ, settings().dashboard_users)
    with open_engine(store_url, imports) as engine:
        app = create_app(engine, users=users, https_only=https_only)
        where = f"http://{host}:{port}{root_path}"
        mode = f"{len(users.hashes)} user(s)" if users else "read-only: no users"

        def listening() -> None:
            click.echo(f"flowkit dashboard on {where} ({mode}); Ctrl+C stops it", err=True)

        # uvicorn shuts down gracefully on Ctrl+C, then raises it again: a normal end.
        with contextlib.suppress(KeyboardInterrupt):
            serve(app, host=host, port=port, root_path=root_path, on_listening=listening)

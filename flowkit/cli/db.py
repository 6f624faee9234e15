"""``flowkit db``: create and upgrade the SQL store's tables (SPEC §10, §11)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..adapters import scheme_of
from ..config import settings
from ..errors import ConfigError
from .app import echo_json, handles_errors, json_option, main, store_option

if TYPE_CHECKING:
    from ..backends.sqlalchemy import SQLStore

__all__ = ["db"]

_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")


def _sql_store(store_url: str | None) -> SQLStore:
    """The SQL store a URL (or the configuration) names, opened without touching its schema.

    Raises:
        ConfigError: the URL is not a SQL store's.
    """
    config = settings()
    url = store_url or config.store
    scheme = scheme_of(url)
    if scheme not in _SQL_SCHEMES:
        raise ConfigError(
            f"flowkit db manages the tables of SQL stores (sqlite, postgresql, mysql, "
            f"mariadb); {scheme}:// stores have no schema to manage"
        )
    from ..backends.sqlalchemy import SQLStore

    options = {**dict(config.store_options), "create_schema": False}
    return SQLStore(url, **options)


def _where(store: SQLStore) -> str:
    return f"{store.engine.url.render_as_string(hide_password=True)} (prefix {store.prefix!r})"


@main.group()
def db() -> None:
    """Create and upgrade the tables of a SQL store (SQLite, PostgreSQL, MySQL/MariaDB)."""


@db.command()
@store_option
@json_option
@handles_errors
def upgrade(store_url: str | None, as_json: bool) -> None:
    """Create the tables, or upgrade them to this flowkit's schema version.

    Safe to run while other processes use the store, and from several
    processes at once: the migrations run under a database lock.
    """
    store = _sql_store(store_url)
    try:
        before, after = store.upgrade()
        where = _where(store)
    finally:
        store.close()
    if as_json:
        echo_json({"before": before, "after": after})
    elif before == after:
        click.echo(f"the flowkit schema in {where} is at version {after}: up to date")
    else:
        click.echo(f"upgraded the flowkit schema in {where} from version {before} to {after}")


@db.command()
@store_option
@json_option
@handles_errors
def current(store_url: str | None, as_json: bool) -> None:
    """Show the schema version the database holds (0: no tables yet)."""
    from ..backends.sqlalchemy import SCHEMA_VERSION

    store = _sql_store(store_url)
    try:
        version = store.schema_version()
        where = _where(store)
    finally:
        store.close()
    if as_json:
        echo_json({"version": version, "latest": SCHEMA_VERSION})
        return
    click.echo(f"the flowkit schema in {where} is at version {version}")
    if version < SCHEMA_VERSION:
        click.echo(f"this flowkit needs version {SCHEMA_VERSION}: run `flowkit db upgrade`")

"""From a store URL (or a ready :class:`~sqlalchemy.engine.Engine`) to a configured engine.

flowkit's own options are taken out of the URL's query before SQLAlchemy and
the driver see it; everything else in the query goes to the driver untouched.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from ...adapters import optional_import
from ...errors import ConfigError

__all__ = ["Options", "open_engine", "parse_options"]

#: Plain schemes and the driver flowkit picks for them.
_DEFAULT_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
#: Drivers flowkit installs through an extra: driver -> (module, extra).
_EXTRAS = {"psycopg": ("psycopg", "postgres"), "pymysql": ("pymysql", "mysql")}
_SYNCHRONOUS = ("off", "normal", "full", "extra")
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_USED = "flowkit_used"  # key in a pool entry's info: monotonic time it was last checked in


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"store option '{name}' must be true or false, got {value!r}")


def _number(kind: type[int] | type[float]) -> Callable[[str, Any], Any]:
    def convert(name: str, value: Any) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"store option '{name}' must be {noun}, got {value!r}") from None
        if number < 0 and name != "pool_recycle":
            raise ConfigError(f"store option '{name}' must be 0 or more, got {value!r}")
        return number

    return convert


def _text(name: str, value: Any) -> str:
    return str(value)


#: flowkit's options, and how a URL query value is converted. The pool_* ones go to create_engine.
_OPTIONS: dict[str, Callable[[str, Any], Any]] = {
    "prefix": _text,
    "create_schema": _flag,
    "group_commit": _flag,
    "synchronous": _text,
    "busy_timeout": _number(float),
    "pool_pre_ping": _flag,
    "pool_pre_ping_after": _number(float),
    "pool_size": _number(int),
    "max_overflow": _number(int),
    "pool_recycle": _number(int),
    "pool_timeout": _number(float),
}
_POOL_OPTIONS = ("pool_size", "max_overflow", "pool_recycle", "pool_timeout")


@attrs.frozen(kw_only=True)
class Options:
    """What flowkit takes from the URL and keyword arguments.

    Attributes:
        url: the URL for SQLAlchemy (driver mapped, flowkit's options removed).
        prefix: the table name prefix.
        create_schema: create or upgrade the schema when the store opens.
        group_commit: checkpoints that threads of this process make at once share
            one transaction (see :class:`~flowkit.backends.sqlalchemy.SQLStore`);
            None: the database's default.
        synchronous: SQLite's ``PRAGMA synchronous``.
        busy_timeout: seconds SQLite waits for a lock held by another connection.
        pre_ping: check a pooled connection before use.
        pre_ping_after: only when it sat idle this many seconds (0: always).
        engine_kwargs: for :func:`sqlalchemy.create_engine`.
    """

    url: URL | None
    prefix: str
    create_schema: bool
    group_commit: bool | None
    synchronous: str
    busy_timeout: float
    pre_ping: bool
    pre_ping_after: float
    engine_kwargs: dict[str, Any]


def _driver_url(text: str) -> URL:
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ConfigError(f"not a SQL store URL: {text!r} ({exc})") from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if not driver:
        driver = _DEFAULT_DRIVERS.get(backend, "")
    return url.set(drivername=f"{backend}+{driver}" if driver else backend)


def parse_options(url_text: str | None, given: Mapping[str, Any]) -> Options:
    """Split the URL's query and the keyword arguments into flowkit's options and the engine's.

    Keyword arguments win over the URL's query.

    Raises:
        ConfigError: an option has a bad value, or the URL is not a SQL URL.
    """
    url = None
    values: dict[str, Any] = {}
    if url_text is not None:
        url = _driver_url(url_text)
        found = [key for key in url.query if key in _OPTIONS]
        for key in found:
            raw = url.query[key]
            values[key] = raw[-1] if isinstance(raw, tuple) else raw
        url = url.difference_update_query(found)
    engine_kwargs = dict(given)
    for key in list(engine_kwargs):
        if key in _OPTIONS:
            values[key] = engine_kwargs.pop(key)
    converted = {key: _OPTIONS[key](key, value) for key, value in values.items()}
    prefix = converted.get("prefix", "flowkit_")
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"table prefix {prefix!r} must be lower-case letters, digits and underscores, "
            "start with a letter or underscore, and be at most 40 characters long"
        )
    synchronous = converted.get("synchronous", "full").lower()
    if synchronous not in _SYNCHRONOUS:
        raise ConfigError(
            f"store option 'synchronous' must be one of {', '.join(_SYNCHRONOUS)}, "
            f"got {converted['synchronous']!r}"
        )
    backend = url.get_backend_name() if url is not None else None
    if backend is not None and backend != "sqlite":
        for name in ("synchronous", "busy_timeout"):
            if name in converted:
                raise ConfigError(f"store option '{name}' is for SQLite only, not {backend}")
    for name in _POOL_OPTIONS:
        if name in converted:
            engine_kwargs[name] = converted[name]
    return Options(
        url=url,
        prefix=prefix,
        create_schema=converted.get("create_schema", True),
        group_commit=converted.get("group_commit"),
        synchronous=synchronous,
        busy_timeout=converted.get("busy_timeout", 30.0),
        pre_ping=converted.get("pool_pre_ping", True),
        pre_ping_after=converted.get("pool_pre_ping_after", 1.0),
        engine_kwargs=engine_kwargs,
    )


def _is_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:")


def open_engine(options: Options) -> Engine:
    """A new engine for ``options.url``, set up for flowkit.

    SQLite: WAL, ``synchronous`` and the busy timeout on every connection.
    PostgreSQL (psycopg, psycopg2…): autocommit connections (flowkit opens its
    transactions explicitly, and sends a checkpoint as one statement).
    MySQL/MariaDB: READ COMMITTED. Everywhere: connections that sat idle are
    pinged before use (see :class:`Options`).

    Raises:
        ConfigError: the driver is not installed, or the URL or an option is wrong.
    """
    url = options.url
    assert url is not None
    backend, driver = url.get_backend_name(), url.get_driver_name()
    needed = _EXTRAS.get(driver)
    if needed is not None:
        module, extra = needed
        optional_import(module, extra=extra, purpose=f"the {backend} store ({backend}+{driver})")
    kwargs: dict[str, Any] = {"pool_reset_on_return": None}
    memory = backend == "sqlite" and _is_memory(url)
    if not memory:
        # The connection used last is used next: its caches are warm (SQLite's page
        # cache, prepared statements) and it is the one least likely to have died;
        # the others can time out on the server side.
        kwargs["pool_use_lifo"] = True
    if backend == "sqlite":
        connect_args: dict[str, Any] = {"check_same_thread": False}
        if "timeout" not in url.query:
            connect_args["timeout"] = options.busy_timeout
        kwargs["connect_args"] = connect_args
        if memory:
            kwargs["poolclass"] = StaticPool
    elif backend in ("mysql", "mariadb"):
        kwargs["isolation_level"] = "READ COMMITTED"
    kwargs.update(options.engine_kwargs)
    try:
        engine = sa.create_engine(url, **kwargs)
    except NoSuchModuleError as exc:
        raise ConfigError(f"no SQLAlchemy dialect for {url.drivername!r}: {exc}") from None
    except ImportError as exc:
        raise ConfigError(
            f"the {backend} store needs the {driver!r} driver, which is not installed ({exc})"
        ) from None
    except (TypeError, ArgumentError) as exc:
        raise ConfigError(f"bad engine option for {backend}: {exc}") from None
    if backend == "sqlite":
        _setup_sqlite(engine, options.synchronous, wal=not memory)
    else:
        if backend == "postgresql":
            event.listen(engine, "connect", _autocommit)
        if options.pre_ping:
            _setup_ping(engine, options.pre_ping_after)
    return engine


def _setup_sqlite(engine: Engine, synchronous: str, *, wal: bool) -> None:
    def connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        finally:
            cursor.close()

    event.listen(engine, "connect", connect)


def _autocommit(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.autocommit = True


def _setup_ping(engine: Engine, after: float) -> None:
    """Ping connections taken from the pool when they sat idle longer than ``after`` seconds.

    SQLAlchemy's own ``pool_pre_ping`` pings on every checkout: one more round
    trip per checkpoint. A connection used a moment ago is very likely alive;
    if it is not, the store's disconnect handling retries on a fresh one.
    """
    dialect = engine.dialect
    monotonic = time.monotonic

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        used = record.info.get(_USED)
        if used is not None and monotonic() - used < after:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool drops this connection and checks out (or opens) another.
            raise DisconnectionError(f"pre-ping failed: {exc}") from exc

    def stamp(dbapi_connection: Any, record: Any) -> None:
        record.info[_USED] = monotonic()

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", stamp)
    event.listen(engine, "connect", stamp)

"""What differs between SQLite, PostgreSQL and MySQL/MariaDB: SQL text, values, transactions.

Statements are written once per store as driver-ready text (the driver's
parameter style, identifiers quoted by the dialect) and executed on the DBAPI
connection from SQLAlchemy's pool: the hot path (:meth:`SQL.write_checkpoint`)
pays for the driver and the database, not for a query builder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy.engine import Dialect

from ...errors import ConfigError
from ...records import (
    CHECKPOINT_FIELDS,
    ENTRY_FIELDS,
    EXECUTION_FIELDS,
    Entry,
    Execution,
    FieldKind,
    field_kinds,
)
from ._schema import Schema, lock_key, lock_name

__all__ = [
    "ENTRY_COLUMNS",
    "ENTRY_READ_COLUMNS",
    "EXECUTION_COLUMNS",
    "SQL",
    "UPDATE_COLUMNS",
    "State",
    "for_dialect",
]

#: The columns of an execution: its fields (:mod:`flowkit.records`), in that order.
EXECUTION_COLUMNS = EXECUTION_FIELDS
#: What a checkpoint rewrites (id, workflow_id, input, parent_id and created_at never change).
UPDATE_COLUMNS = CHECKPOINT_FIELDS
#: The columns of an entry: its fields but ``id``, which is ``"<execution_id>:<seq>"``.
ENTRY_COLUMNS = tuple(name for name in ENTRY_FIELDS if name != "id")
#: The entry columns read back (the execution id is known).
ENTRY_READ_COLUMNS = ENTRY_COLUMNS[1:]
JSON_COLUMNS = frozenset(
    name
    for kinds in (field_kinds(Execution), field_kinds(Entry))
    for name, kind in kinds.items()
    if kind is FieldKind.JSON
)

#: Above this many entries a checkpoint inserts them in chunks (bind-parameter limits).
CHUNK = 200


class State:
    """How far a write got: ``committing`` once the commit (or a self-committing
    statement) was sent, after which a lost connection leaves the outcome unknown."""

    __slots__ = ("committing",)

    def __init__(self) -> None:
        self.committing = False


class SQL:
    """Statements and conversions for one database; subclasses override what differs.

    Args:
        dialect: the engine's SQLAlchemy dialect.
        schema: the tables.
        database: the database name (for lock names).
    """

    name: ClassVar[str] = "sql"
    #: The placeholder of a JSON parameter (PostgreSQL casts it).
    json_in: ClassVar[str] = "?"
    #: Wrapped around JSON columns on the way out.
    json_out: ClassVar[str] = "{}"
    #: Wrapped around entry values in a multi-row VALUES list, by column.
    value_casts: ClassVar[dict[str, str]] = {}

    def __init__(self, dialect: Dialect, schema: Schema, database: str) -> None:
        self.dialect = dialect
        self.schema = schema
        self.database = database
        quote = dialect.identifier_preparer.quote
        self.q = quote
        style = dialect.paramstyle
        if style not in ("qmark", "format", "pyformat", "numeric"):
            raise ConfigError(
                f"the {dialect.name}+{dialect.driver} driver's parameter style {style!r} "
                "is not supported by flowkit; use the default driver"
            )
        self._style = style
        self.executions = quote(schema.executions.name)
        self.entries_table = quote(schema.entries.name)
        self.versions = quote(schema.versions.name)
        ex, en = self.executions, self.entries_table
        select = ", ".join(
            self.json_out.format(quote(c)) if c in JSON_COLUMNS else quote(c)
            for c in EXECUTION_COLUMNS
        )
        self.select_executions = f"SELECT {select} FROM {ex}"
        order_new = f"ORDER BY {quote('updated_at')} DESC, {quote('id')} DESC LIMIT ?"
        wf, st = quote("workflow_id"), quote("status")
        self.find = {
            (False, False): self.p(f"{self.select_executions} {order_new}"),
            (True, False): self.p(f"{self.select_executions} WHERE {wf} = ? {order_new}"),
            (False, True): self.p(f"{self.select_executions} WHERE {st} = ? {order_new}"),
            (True, True): self.p(
                f"{self.select_executions} WHERE {wf} = ? AND {st} = ? {order_new}"
            ),
        }
        wake, lease, id_ = quote("wake_at"), quote("lease_expires_at"), quote("id")
        self.due = self.p(
            f"{self.select_executions} WHERE {wake} <= ? AND {st} = 'halted' "
            f"ORDER BY {wake}, {id_} LIMIT ?"
        )
        self.stale = self.p(
            f"{self.select_executions} WHERE {st} = 'running' AND {lease} <= ? "
            f"ORDER BY {lease}, {id_} LIMIT ?"
        )
        self.load = self.p(f"{self.select_executions} WHERE {id_} = ?")
        entry_select = ", ".join(
            self.json_out.format(quote(c)) if c in JSON_COLUMNS else quote(c)
            for c in ENTRY_READ_COLUMNS
        )
        eid, seq = quote("execution_id"), quote("seq")
        self.read_entries = self.p(
            f"SELECT {entry_select} FROM {en} WHERE {eid} = ? AND {seq} > ? ORDER BY {seq}"
        )
        self.insert_execution = self.p(
            f"INSERT INTO {ex} ({', '.join(quote(c) for c in EXECUTION_COLUMNS)}) VALUES ("
            + ", ".join(self.json_in if c in JSON_COLUMNS else "?" for c in EXECUTION_COLUMNS)
            + ")"
        )
        sets = ", ".join(
            f"{quote(c)} = {self.json_in if c in JSON_COLUMNS else '?'}" for c in UPDATE_COLUMNS
        )
        self.update_where = f"UPDATE {ex} SET {sets} WHERE {id_} = ? AND {quote('version')} = ?"
        self.update = self.p(f"{self.update_where} AND {seq} = ?")
        self.probe = self.p(f"SELECT {quote('version')}, {seq} FROM {ex} WHERE {id_} = ?")
        self.delete_execution = self.p(f"DELETE FROM {ex} WHERE {id_} = ?")
        self.delete_entries = self.p(f"DELETE FROM {en} WHERE {eid} = ?")
        self.current_version = f"SELECT MAX({quote('version')}) FROM {self.versions}"
        self.record_version = self.p(
            f"INSERT INTO {self.versions} ({quote('version')}, {quote('description')}, "
            f"{quote('applied_at')}) VALUES (?, ?, ?)"
        )
        self._inserts: dict[int, str] = {}

    # --- SQL text ---------------------------------------------------------------------------------

    def p(self, sql: str) -> str:
        """``sql`` with its ``?`` markers in the driver's parameter style."""
        if self._style == "qmark":
            return sql
        if self._style in ("format", "pyformat"):
            return sql.replace("%", "%%").replace("?", "%s")
        parts = sql.split("?")
        return "".join(
            part + (f":{index}" if index < len(parts) else "")
            for index, part in enumerate(parts, 1)
        )

    def insert_entries(self, count: int) -> str:
        """``INSERT`` of ``count`` entries (all columns, one row each)."""
        sql = self._inserts.get(count)
        if sql is None:
            row = "(" + ", ".join("?" for _ in ENTRY_COLUMNS) + ")"
            columns = ", ".join(self.q(c) for c in ENTRY_COLUMNS)
            sql = self.p(
                f"INSERT INTO {self.entries_table} ({columns}) VALUES " + ", ".join([row] * count)
            )
            self._inserts[count] = sql
        return sql

    # --- values -----------------------------------------------------------------------------------

    def time_in(self, value: datetime) -> Any:
        """A UTC datetime as the driver takes it."""
        return value

    def time_out(self, value: Any) -> datetime:
        """A stored time as a UTC datetime."""
        assert isinstance(value, datetime)
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    # --- transactions -----------------------------------------------------------------------------

    def begin(self, connection: Any, cursor: Any) -> None:
        """Open a write transaction (the DBAPI opens one implicitly by default)."""

    def commit(self, connection: Any, cursor: Any) -> None:
        """Commit the write transaction."""
        connection.commit()

    def abort(self, connection: Any, cursor: Any) -> None:
        """Roll back after a failure; errors are ignored (the connection may be gone)."""
        with contextlib.suppress(Exception):  # the original error is the one that matters
            connection.rollback()

    def end_read(self, connection: Any) -> None:
        """End the transaction a read may have opened."""

    def unavailable(self, error: BaseException) -> bool:
        """Whether a driver error (not a lost connection) means the database is out of reach."""
        return False

    # --- the hot path -----------------------------------------------------------------------------

    def write_checkpoint(
        self,
        connection: Any,
        update: Sequence[Any],
        entries: Sequence[Sequence[Any]],
        state: State,
    ) -> bool:
        """Update the record and insert the entries in one transaction.

        Args:
            update: the parameters of :attr:`update`.
            entries: the parameters of each entry (:data:`ENTRY_COLUMNS`).

        Returns:
            False, having written nothing, when the version or seq guard did not match.
        """
        cursor = connection.cursor()
        try:
            self.begin(connection, cursor)
            cursor.execute(self.update, update)
            if cursor.rowcount != 1:
                self.abort(connection, cursor)
                return False
            for start in range(0, len(entries), CHUNK):
                chunk = entries[start : start + CHUNK]
                cursor.execute(
                    self.insert_entries(len(chunk)), [value for row in chunk for value in row]
                )
            state.committing = True
            self.commit(connection, cursor)
            return True
        except BaseException:
            if not state.committing:
                self.abort(connection, cursor)
            raise
        finally:
            cursor.close()

    # --- migrations -------------------------------------------------------------------------------

    def lock(self, connection: Any, cursor: Any) -> None:
        """Take the migration lock (and open the migration's transaction where DDL has one)."""
        raise NotImplementedError

    def unlock(self, connection: Any, cursor: Any, *, ok: bool) -> None:
        """Commit (or roll back) and release the migration lock."""
        raise NotImplementedError

    def exists(self, cursor: Any, kind: str, name: str) -> bool:
        """Whether a table or an index of that name exists."""
        raise NotImplementedError


class SQLiteSQL(SQL):
    """SQLite (pysqlite): explicit ``BEGIN IMMEDIATE`` for every write, times as text."""

    name = "sqlite"

    def time_in(self, value: datetime) -> Any:
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    def time_out(self, value: Any) -> datetime:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def begin(self, connection: Any, cursor: Any) -> None:
        # Take the write lock first: a deferred transaction that reads and then
        # writes can deadlock against another writer (SQLITE_BUSY, no waiting).
        cursor.execute("BEGIN IMMEDIATE")

    def unavailable(self, error: BaseException) -> bool:
        text = str(error)
        return text.startswith(("database is locked", "unable to open", "disk I/O error"))

    def lock(self, connection: Any, cursor: Any) -> None:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("BEGIN IMMEDIATE")

    def unlock(self, connection: Any, cursor: Any, *, ok: bool) -> None:
        if ok:
            connection.commit()
        else:
            self.abort(connection, cursor)

    def exists(self, cursor: Any, kind: str, name: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind, name))
        return cursor.fetchone() is not None


class PostgresSQL(SQL):
    """PostgreSQL: autocommit connections; a checkpoint is one statement (one round trip)."""

    name = "postgresql"
    json_in = "CAST(? AS json)"
    json_out = "CAST({} AS text)"
    value_casts: ClassVar[dict[str, str]] = {
        name: {
            FieldKind.INT: "bigint",
            FieldKind.FLOAT: "double precision",
            FieldKind.JSON: "json",
            FieldKind.TIME: "timestamptz",
        }.get(kind, "text")
        for name, kind in field_kinds(Entry).items()
    }

    def __init__(self, dialect: Dialect, schema: Schema, database: str) -> None:
        super().__init__(dialect, schema, database)
        self._ctes: dict[int, str] = {}

    def checkpoint_statement(self, count: int) -> str:
        """The record update and ``count`` entry inserts as one statement."""
        sql = self._ctes.get(count)
        if sql is None:
            q = self.q
            names = ENTRY_COLUMNS[1:]
            row = "(" + ", ".join(f"CAST(? AS {self.value_casts[c]})" for c in names) + ")"
            columns = ", ".join(q(c) for c in ENTRY_COLUMNS)
            values = ", ".join(f"v.{q(c)}" for c in names)
            sql = self.p(
                f"WITH u AS ({self.update_where} AND {q('seq')} = ? RETURNING {q('id')}) "
                f"INSERT INTO {self.entries_table} ({columns}) "
                f"SELECT u.{q('id')}, {values} FROM u CROSS JOIN "
                f"(VALUES {', '.join([row] * count)}) AS v ({', '.join(q(c) for c in names)})"
            )
            self._ctes[count] = sql
        return sql

    def begin(self, connection: Any, cursor: Any) -> None:
        if connection.autocommit:
            cursor.execute("BEGIN")

    def commit(self, connection: Any, cursor: Any) -> None:
        if connection.autocommit:
            cursor.execute("COMMIT")
        else:
            connection.commit()

    def abort(self, connection: Any, cursor: Any) -> None:
        with contextlib.suppress(Exception):  # the original error is the one that matters
            if connection.autocommit:
                cursor.execute("ROLLBACK")
            else:
                connection.rollback()

    def end_read(self, connection: Any) -> None:
        if not connection.autocommit:
            connection.rollback()

    def write_checkpoint(
        self,
        connection: Any,
        update: Sequence[Any],
        entries: Sequence[Sequence[Any]],
        state: State,
    ) -> bool:
        if len(entries) > CHUNK or not connection.autocommit:
            return super().write_checkpoint(connection, update, entries, state)
        cursor = connection.cursor()
        try:
            # One self-committing statement: if the connection dies while it
            # runs, whether it committed is unknown.
            state.committing = True
            if not entries:
                cursor.execute(self.update, update)
                return bool(cursor.rowcount == 1)
            cursor.execute(
                self.checkpoint_statement(len(entries)),
                [*update, *(value for row in entries for value in row[1:])],
            )
            return bool(cursor.rowcount == len(entries))
        finally:
            cursor.close()

    def lock(self, connection: Any, cursor: Any) -> None:
        self.begin(connection, cursor)
        cursor.execute(self.p("SELECT pg_advisory_xact_lock(?)"), (lock_key(self.schema.prefix),))

    def unlock(self, connection: Any, cursor: Any, *, ok: bool) -> None:
        if ok:
            self.commit(connection, cursor)
        else:
            self.abort(connection, cursor)

    def exists(self, cursor: Any, kind: str, name: str) -> bool:
        relkind = "r" if kind == "table" else "i"
        cursor.execute(
            self.p(
                "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                "AND c.relname = ? AND c.relkind = ?"
            ),
            (name, relkind),
        )
        return cursor.fetchone() is not None


class MySQL(SQL):
    """MySQL and MariaDB: times as naive UTC ``DATETIME(6)``; DDL commits on its own."""

    name = "mysql"

    def time_in(self, value: datetime) -> Any:
        return value.replace(tzinfo=None)

    def time_out(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    def __init__(self, dialect: Dialect, schema: Schema, database: str) -> None:
        super().__init__(dialect, schema, database)
        self._max_packet: int | None = None

    def write_checkpoint(
        self,
        connection: Any,
        update: Sequence[Any],
        entries: Sequence[Sequence[Any]],
        state: State,
    ) -> bool:
        # The server drops the connection on a statement longer than max_allowed_packet,
        # which looks like an outage: refuse it here, where the reason is known.
        limit = self._packet_limit(connection)
        largest = max(
            [_bytes(update)]
            + [
                sum(_bytes(row) for row in entries[start : start + CHUNK])
                for start in range(0, len(entries), CHUNK)
            ]
        )
        if largest + _STATEMENT_ROOM > limit:
            raise ValueError(
                f"the checkpoint needs a statement of about {largest} bytes, more than the "
                f"server's max_allowed_packet of {limit} bytes: keep less data in the "
                "execution, or raise max_allowed_packet"
            )
        return super().write_checkpoint(connection, update, entries, state)

    def _packet_limit(self, connection: Any) -> int:
        if self._max_packet is None:
            cursor = connection.cursor()
            try:
                cursor.execute("SELECT @@max_allowed_packet")
                (value,) = cursor.fetchone()
            finally:
                cursor.close()
            self._max_packet = int(value)
        return self._max_packet

    def begin(self, connection: Any, cursor: Any) -> None:
        if connection.get_autocommit():
            cursor.execute("BEGIN")

    def end_read(self, connection: Any) -> None:
        if not connection.get_autocommit():
            connection.rollback()

    def lock(self, connection: Any, cursor: Any) -> None:
        cursor.execute(self.p("SELECT GET_LOCK(?, 300)"), (self._lock_name(),))
        (got,) = cursor.fetchone()
        if got != 1:
            raise ConfigError(
                f"could not take the migration lock in MySQL database {self.database!r} "
                "within 300 s (another process is migrating it)"
            )

    def unlock(self, connection: Any, cursor: Any, *, ok: bool) -> None:
        try:
            if ok:
                connection.commit()
            else:
                self.abort(connection, cursor)
        finally:
            cursor.execute(self.p("SELECT RELEASE_LOCK(?)"), (self._lock_name(),))
            cursor.fetchall()
            connection.commit()

    def _lock_name(self) -> str:
        return lock_name(self.database, self.schema.prefix)

    def exists(self, cursor: Any, kind: str, name: str) -> bool:
        if kind == "table":
            sql = (
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = ?"
            )
        else:
            sql = (
                "SELECT 1 FROM information_schema.statistics "
                "WHERE table_schema = DATABASE() AND index_name = ? LIMIT 1"
            )
        cursor.execute(self.p(sql), (name,))
        return cursor.fetchone() is not None


_STATEMENT_ROOM = 64 * 1024  # for the SQL text and the other parameters


def _bytes(values: Sequence[Any]) -> int:
    """About how many bytes the text parameters of a statement take."""
    return sum(
        len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        for value in values
        if isinstance(value, str)
    )


def for_dialect(dialect: Dialect, schema: Schema, database: str) -> SQL:
    """The :class:`SQL` for a SQLAlchemy dialect.

    Raises:
        ConfigError: flowkit does not support that database.
    """
    kinds: dict[str, type[SQL]] = {
        "sqlite": SQLiteSQL,
        "postgresql": PostgresSQL,
        "mysql": MySQL,
        "mariadb": MySQL,
    }
    kind = kinds.get(dialect.name)
    if kind is None:
        raise ConfigError(
            f"the SQL store supports SQLite, PostgreSQL, MySQL and MariaDB, not {dialect.name}"
        )
    return kind(dialect, schema, database)

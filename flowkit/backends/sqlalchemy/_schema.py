"""The tables, their indexes, and the versioned-DDL migrations that create them.

Why not Alembic: flowkit owns six tables whose DDL changes rarely; users
embed flowkit in their own applications, which often have an Alembic
environment of their own. A list of numbered migrations, applied in order
under a database lock and recorded in ``<prefix>schema_version``, needs no
configuration directory, works on first use as well as from
``flowkit db upgrade``, and is safe when several processes start at once.

Adding a migration: append a :class:`Migration` with the next number to
:data:`MIGRATIONS` and bump nothing else. Its function gets a :class:`DDL`
helper and must be safe to re-run (MySQL commits each DDL statement on its
own, so a crash can leave a migration half-applied; PostgreSQL and SQLite run
each migration in one transaction). Never change an applied migration: when
the tables below change, freeze the old shape into the old migration.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable, DropIndex

from ...errors import ConfigError
from ...records import decode_json, encode_json

__all__ = [
    "DDL",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "Schema",
    "ctx_key",
    "lock_name",
    "position",
]


def _json() -> sa.types.TypeEngine[Any]:
    # JSON text, written once by flowkit's codec. PostgreSQL's `json` (not `jsonb`)
    # keeps the text as written: key order survives, and so does "\u0000".
    # MySQL's JSON type reorders keys, so MySQL and MariaDB get LONGTEXT.
    return (
        sa.Text()
        .with_variant(postgresql.JSON(), "postgresql")
        .with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
    )


def _time() -> sa.types.TypeEngine[Any]:
    # timestamptz on PostgreSQL; DATETIME(6) in UTC on MySQL; on SQLite the text
    # 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (SQLAlchemy's own format; sorts as time).
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _long_text() -> sa.types.TypeEngine[Any]:
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class Schema:
    """The tables of one prefix, for one database, as this flowkit uses them.

    Args:
        prefix: the table name prefix.
        dialect: the SQLAlchemy dialect (decides the collation of ids on MySQL).
    """

    def __init__(self, prefix: str, dialect: Dialect) -> None:
        self.prefix = prefix
        self.dialect = dialect
        self.metadata = sa.MetaData()
        name = dialect.name
        self.table_kwargs: dict[str, Any] = {}
        # Ids compare byte for byte (so 'A' != 'a' and 'x' != 'x ') and sort by code point.
        self.id_collation: str | None = None
        if name == "postgresql":
            self.id_collation = "C"
        elif name in ("mysql", "mariadb"):
            mariadb = bool(getattr(dialect, "is_mariadb", False)) or name == "mariadb"
            version = getattr(dialect, "server_version_info", None) or (0,)
            if mariadb:
                collation = "utf8mb4_nopad_bin"
            elif version >= (8,):
                collation = "utf8mb4_0900_bin"
            else:
                collation = "utf8mb4_bin"
            self.id_collation = collation
            for dialect_name in ("mysql", "mariadb"):
                self.table_kwargs[f"{dialect_name}_engine"] = "InnoDB"
                self.table_kwargs[f"{dialect_name}_charset"] = "utf8mb4"
                self.table_kwargs[f"{dialect_name}_collate"] = collation
        table_kwargs = self.table_kwargs
        ident = self.ident

        # Every field of an execution but ctx, whose values are rows of ctx_values (v2).
        self.executions = sa.Table(
            f"{prefix}executions",
            self.metadata,
            sa.Column("id", ident(), primary_key=True),
            sa.Column("workflow_id", ident(), nullable=False),
            sa.Column("workflow_version", sa.String(255), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("input", _json(), nullable=False),
            sa.Column("current_step", sa.Text()),
            sa.Column("cursor", _json(), nullable=False),
            sa.Column("result", _json()),
            sa.Column("recover_to", sa.Text()),
            sa.Column("halt_data", _json()),
            sa.Column("error", _long_text()),
            sa.Column("parent_id", ident()),
            sa.Column("version", sa.BigInteger(), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("created_at", _time(), nullable=False),
            sa.Column("updated_at", _time(), nullable=False),
            sa.Column("wake_at", _time()),
            sa.Column("definition_hash", sa.String(255)),
            sa.Column("lease_owner", sa.String(255)),
            sa.Column("lease_expires_at", _time()),
            sa.Column("traceparent", sa.String(255)),  # v3
            **table_kwargs,
        )
        self.indexes = _indexes(prefix, self.executions)
        self.entries = _entries_table(self, self.metadata)
        # One row per top-level ctx value: a checkpoint writes the values it changed.
        self.ctx_values = sa.Table(
            f"{prefix}ctx_values",
            self.metadata,
            sa.Column("execution_id", ident(), primary_key=True),
            # The name's JSON text ('"order"'), or '#<sha256 of it>' when that is too long.
            sa.Column("name", ident(), primary_key=True),
            # Orders the values as ctx orders them (see _dialects.position).
            sa.Column("position", sa.BigInteger(), nullable=False),
            sa.Column("value", _json(), nullable=False),
            # The name's JSON text when `name` holds its digest; NULL otherwise.
            sa.Column("full_name", _long_text()),
            **table_kwargs,
        )
        # Each execution's mailbox (v3): signals stay, marked consumed, until it is deleted.
        self.signals = sa.Table(
            f"{prefix}signals",
            self.metadata,
            sa.Column("execution_id", ident(), primary_key=True),
            sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
            sa.Column("name", ident(), nullable=False),
            sa.Column("payload", _json(), nullable=False),
            sa.Column("key", ident()),
            sa.Column("sent_at", _time(), nullable=False),
            # The version of the checkpoint that consumed it; NULL while pending.
            sa.Column("consumed", sa.BigInteger()),
            **table_kwargs,
        )
        sg = self.signals.c
        # A key is seen once per execution (NULL keys are never equal).
        sa.Index(f"{prefix}signals_key", sg.execution_id, sg.key, unique=True)
        # signals(execution_id, name=…): the pending ones, of a name, in seq order.
        sa.Index(f"{prefix}signals_pending", sg.execution_id, sg.consumed, sg.name, sg.seq)
        self.schedules = sa.Table(
            f"{prefix}schedules",
            self.metadata,
            sa.Column("name", ident(), primary_key=True),
            sa.Column("workflow_id", ident(), nullable=False),
            sa.Column("cron", sa.Text(), nullable=False),
            sa.Column("timezone", sa.Text(), nullable=False),
            sa.Column("input", _json(), nullable=False),
            sa.Column("created_at", _time(), nullable=False),
            sa.Column("last_slot", _time()),
            **table_kwargs,
        )
        self.versions = sa.Table(
            f"{prefix}schema_version",
            self.metadata,
            sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("description", sa.String(255), nullable=False),
            sa.Column("applied_at", _time(), nullable=False),
            **table_kwargs,
        )

    def ident(self) -> sa.String:
        """The type of an id column: ``VARCHAR(255)``, compared byte for byte."""
        return sa.String(255, collation=self.id_collation)


def _indexes(prefix: str, executions: sa.Table) -> tuple[sa.Index, ...]:
    ex = executions.c
    return (
        # find(), newest first, and its pages: (updated_at, id) < (?, ?) is a range
        sa.Index(f"{prefix}executions_updated", ex.updated_at, ex.id),
        # find(workflow_id=…) and find(status=…), the same way
        sa.Index(f"{prefix}executions_workflow_updated", ex.workflow_id, ex.updated_at, ex.id),
        sa.Index(f"{prefix}executions_status_updated", ex.status, ex.updated_at, ex.id),
        # due(now): halted or waiting ones whose timer passed, earliest first (a range
        # scan per status)
        sa.Index(f"{prefix}executions_wake", ex.status, ex.wake_at),
        # stale(now): running ones whose lease expired, oldest first
        sa.Index(f"{prefix}executions_lease", ex.status, ex.lease_expires_at),
    )


def _entries_table(schema: Schema, metadata: sa.MetaData) -> sa.Table:
    ident = schema.ident
    return sa.Table(
        f"{schema.prefix}entries",
        metadata,
        sa.Column("execution_id", ident(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("step_type", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("input", _json()),
        sa.Column("output", _json()),
        sa.Column("error", _long_text()),
        sa.Column("timestamp", _time(), nullable=False),
        sa.Column("iteration", sa.Integer()),
        **schema.table_kwargs,
    )


class DDL:
    """What a migration uses: run statements, create tables and indexes idempotently.

    Args:
        cursor: a DBAPI cursor inside the migration's lock (and transaction, where DDL is
            transactional).
        dialect: the SQLAlchemy dialect, to compile DDL.
        exists: ``exists(kind, name)`` says whether a table or index exists.
        has_column: ``has_column(table, column)`` says whether a table has that column.
        p: puts a statement's ``?`` markers in the driver's parameter style.
        json_in: the placeholder of a JSON parameter (``?``, or a cast).
        json_out: wrapped around a JSON column to read it as text (``{}``, or a cast).
        commit: ends a batch of a data move: commits on MySQL, where DDL commits on
            its own anyway; nothing elsewhere (the migration is one transaction).
    """

    def __init__(
        self,
        cursor: Any,
        dialect: Dialect,
        exists: Callable[[str, str], bool],
        *,
        has_column: Callable[[str, str], bool],
        p: Callable[[str], str],
        json_in: str,
        json_out: str,
        commit: Callable[[], None],
    ) -> None:
        self.cursor = cursor
        self.dialect = dialect
        self.exists = exists
        self.has_column = has_column
        self.p = p
        self.json_in = json_in
        self.json_out = json_out
        self.commit = commit
        self.q = dialect.identifier_preparer.quote

    def execute(self, statement: str) -> None:
        """Run one statement (no parameters)."""
        self.cursor.execute(statement)

    def create_table(self, table: sa.Table) -> None:
        """Create a table (without its indexes) unless it exists."""
        if not self.exists("table", table.name):
            self.execute(str(CreateTable(table).compile(dialect=self.dialect)))

    def create_index(self, index: sa.Index) -> None:
        """Create an index unless it exists."""
        assert index.name is not None
        if not self.exists("index", str(index.name)):
            self.execute(str(CreateIndex(index).compile(dialect=self.dialect)))

    def drop_index(self, index: sa.Index) -> None:
        """Drop an index if it exists."""
        assert index.name is not None
        if self.exists("index", str(index.name)):
            self.execute(str(DropIndex(index).compile(dialect=self.dialect)))

    def add_column(self, table: sa.Table, column: str) -> None:
        """Add a nullable column (as ``table`` declares it) unless the table has it."""
        if not self.has_column(table.name, column):
            spec = CreateColumn(table.c[column]).compile(dialect=self.dialect)
            self.execute(f"ALTER TABLE {self.q(table.name)} ADD COLUMN {spec}")

    def drop_column(self, table: sa.Table, column: str) -> None:
        """Drop a column if the table has it; ``table`` is the shape without it.

        SQLite before 3.35 cannot drop a column: the table is made again in
        that shape (the procedure SQLite documents), and its indexes with it.
        """
        if not self.has_column(table.name, column):
            return
        if self.dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
            self.execute(f"ALTER TABLE {self.q(table.name)} DROP COLUMN {self.q(column)}")
            return
        new = table.to_metadata(sa.MetaData(), name=f"{table.name}_new")
        self.execute(str(CreateTable(new).compile(dialect=self.dialect)))
        columns = ", ".join(self.q(c.name) for c in table.columns)
        self.execute(
            f"INSERT INTO {self.q(new.name)} ({columns}) SELECT {columns} FROM {self.q(table.name)}"
        )
        self.execute(f"DROP TABLE {self.q(table.name)}")  # and its indexes
        self.execute(f"ALTER TABLE {self.q(new.name)} RENAME TO {self.q(table.name)}")
        for index in table.indexes:
            self.create_index(index)


@attrs.frozen
class Migration:
    """One step of the schema's history.

    Attributes:
        version: its number (1, 2, 3…).
        description: what it does, recorded in ``<prefix>schema_version``.
        apply: makes the change, given the current :class:`Schema` and a :class:`DDL`.
    """

    version: int
    description: str
    apply: Callable[[Schema, DDL], None]


# --- ctx values (version 2) -----------------------------------------------------------------------

#: The longest name JSON text kept as it is in ``ctx_values.name`` (the column's length).
MAX_NAME = 255
#: How far apart the positions of values written by successive versions are (see position).
POSITIONS_PER_VERSION = 2**32


def ctx_key(name: str) -> tuple[str, str | None]:
    """The ``(name, full_name)`` columns of a ctx value's row.

    ``name`` is the name's JSON text (so NUL survives PostgreSQL's text, and a
    read joins ``name:value`` pairs into the ctx's JSON text as they are); a
    longer text than the column holds is kept in ``full_name`` and ``name``
    holds ``#`` and its SHA-256 (no JSON text starts with ``#``).

    Raises:
        UnicodeEncodeError: the name holds a lone surrogate.
    """
    text = encode_json(name)
    if len(text) <= MAX_NAME:
        return text, None
    return "#" + hashlib.sha256(text.encode()).hexdigest(), text


def position(version: int, index: int) -> int:
    """Where the ``index``-th value a write of ``version`` names goes in ctx order.

    A value set again keeps its position, so a name new to ctx must sort after
    every name already there: positions grow with the version that first wrote
    them, and no write names :data:`POSITIONS_PER_VERSION` values.
    """
    return version * POSITIONS_PER_VERSION + index


# --- the migrations -------------------------------------------------------------------------------


def _old_executions(schema: Schema, *, ctx: bool) -> sa.Table:
    """The executions table as releases 1 (``ctx``: with its ctx column) and 2 made it,
    with its indexes of then. Frozen: :class:`Schema` describes the current tables."""
    ident = schema.ident
    executions = sa.Table(
        f"{schema.prefix}executions",
        sa.MetaData(),
        sa.Column("id", ident(), primary_key=True),
        sa.Column("workflow_id", ident(), nullable=False),
        sa.Column("workflow_version", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", _json(), nullable=False),
        *([sa.Column("ctx", _json(), nullable=False)] if ctx else []),
        sa.Column("current_step", sa.Text()),
        sa.Column("cursor", _json(), nullable=False),
        sa.Column("result", _json()),
        sa.Column("recover_to", sa.Text()),
        sa.Column("halt_data", _json()),
        sa.Column("error", _long_text()),
        sa.Column("parent_id", ident()),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.Column("wake_at", _time()),
        sa.Column("definition_hash", sa.String(255)),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", _time()),
        **schema.table_kwargs,
    )
    ex, prefix = executions.c, schema.prefix
    sa.Index(f"{prefix}executions_workflow", ex.workflow_id, ex.updated_at)
    sa.Index(f"{prefix}executions_status", ex.status, ex.updated_at)
    sa.Index(f"{prefix}executions_wake", ex.status, ex.wake_at)
    sa.Index(f"{prefix}executions_lease", ex.status, ex.lease_expires_at)
    return executions


def _v1(schema: Schema, ddl: DDL) -> None:
    """The tables as release 1 made them: ctx as one JSON column of executions.

    Frozen: the entries table has not changed since (whoever changes it
    freezes it here too).
    """
    executions = _old_executions(schema, ctx=True)
    ddl.create_table(executions)
    for index in executions.indexes:
        ddl.create_index(index)
    ddl.create_table(_entries_table(schema, sa.MetaData()))


#: How many executions migration 2 moves per batch (one transaction each on MySQL).
MOVE_BATCH = 200


def _v2(schema: Schema, ddl: DDL) -> None:
    """ctx as one row per value in ctx_values; the executions.ctx column is dropped.

    Safe to re-run after a crash on MySQL (where each batch and each DDL
    statement commits on its own): a batch writes its executions' rows and
    empties their ctx column in one transaction, and later runs skip executions
    whose column is empty, or do nothing once the column is gone.
    """
    ddl.create_table(schema.ctx_values)
    executions = schema.executions.name
    if not ddl.has_column(executions, "ctx"):
        return
    q, p, cursor = ddl.q, ddl.p, ddl.cursor
    ex, cv = q(executions), q(schema.ctx_values.name)
    ctx_text = ddl.json_out.format(q("ctx"))
    select = p(
        f"SELECT {q('id')}, {q('version')}, {ctx_text} FROM {ex} "
        f"WHERE {q('id')} > ? ORDER BY {q('id')} LIMIT {MOVE_BATCH}"
    )
    columns = ("execution_id", "name", "position", "value", "full_name")
    insert = p(
        f"INSERT INTO {cv} ({', '.join(q(c) for c in columns)}) VALUES (?, ?, ?, {ddl.json_in}, ?)"
    )
    clear = p(f"DELETE FROM {cv} WHERE {q('execution_id')} = ?")
    empty = p(f"UPDATE {ex} SET {q('ctx')} = {ddl.json_in} WHERE {q('id')} = ?")
    after = ""
    while True:
        cursor.execute(select, (after,))
        batch = cursor.fetchall()
        if not batch:
            break
        for execution_id, version, text in batch:
            ctx = decode_json(text)
            if not ctx:
                continue
            rows = []
            for index, (name, value) in enumerate(ctx.items()):
                key, full_name = ctx_key(name)
                at = position(int(version), index)
                rows.append((execution_id, key, at, encode_json(value), full_name))
            cursor.execute(clear, (execution_id,))
            cursor.executemany(insert, rows)
            cursor.execute(empty, ("{}", execution_id))
        ddl.commit()
        after = batch[-1][0]
    ddl.drop_column(_old_executions(schema, ctx=False), "ctx")


def _v3(schema: Schema, ddl: DDL) -> None:
    """The traceparent column, the signals and schedules tables, and indexes that end
    with the id, so that a page of ``find`` starts with an index range.

    Safe to re-run (each step checks first). The new indexes come before the old
    ones they replace go, so ``find`` has an index throughout.
    """
    ddl.add_column(schema.executions, "traceparent")
    current = {index.name for index in schema.indexes}
    for index in schema.indexes:
        ddl.create_index(index)
    for index in _old_executions(schema, ctx=False).indexes:
        if index.name not in current:
            ddl.drop_index(index)
    for table in (schema.signals, schema.schedules):
        ddl.create_table(table)
        for index in table.indexes:
            ddl.create_index(index)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "executions and entries tables, with their indexes", _v1),
    Migration(2, "ctx values as rows of ctx_values, written one by one", _v2),
    Migration(3, "signals, schedules, traceparent; find pages by (updated_at, id)", _v3),
)

#: The schema version this flowkit writes and reads.
SCHEMA_VERSION = MIGRATIONS[-1].version


def check_version(current: int, url: str) -> None:
    """Refuse a schema newer than this flowkit knows.

    Raises:
        ConfigError: ``current`` is above :data:`SCHEMA_VERSION`.
    """
    if current > SCHEMA_VERSION:
        raise ConfigError(
            f"the flowkit schema in {url} is at version {current}, newer than this flowkit "
            f"knows ({SCHEMA_VERSION}): upgrade flowkit"
        )


def lock_name(database: str, prefix: str) -> str:
    """A MySQL ``GET_LOCK`` name (at most 64 characters) for one database and prefix."""
    digest = hashlib.sha256(f"{database}\0{prefix}".encode()).hexdigest()[:40]
    return f"flowkit-migrate-{digest}"


def lock_key(prefix: str) -> int:
    """A PostgreSQL advisory lock key (signed 64-bit) for one prefix."""
    digest = hashlib.sha256(f"flowkit-migrate\0{prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)

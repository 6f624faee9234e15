"""The tables, their indexes, and the versioned-DDL migrations that create them.

Why not Alembic: flowkit owns three tables whose DDL changes rarely; users
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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from ...errors import ConfigError

__all__ = ["DDL", "MIGRATIONS", "SCHEMA_VERSION", "Migration", "Schema", "lock_name"]


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
    """The tables of one prefix, for one database.

    Args:
        prefix: the table name prefix.
        dialect: the SQLAlchemy dialect (decides the collation of ids on MySQL).
    """

    def __init__(self, prefix: str, dialect: Dialect) -> None:
        self.prefix = prefix
        self.metadata = sa.MetaData()
        name = dialect.name
        table_kwargs: dict[str, Any] = {}
        # Ids compare byte for byte (so 'A' != 'a' and 'x' != 'x ') and sort by code point.
        id_collation: str | None = None
        if name == "postgresql":
            id_collation = "C"
        elif name in ("mysql", "mariadb"):
            mariadb = bool(getattr(dialect, "is_mariadb", False)) or name == "mariadb"
            version = getattr(dialect, "server_version_info", None) or (0,)
            if mariadb:
                collation = "utf8mb4_nopad_bin"
            elif version >= (8,):
                collation = "utf8mb4_0900_bin"
            else:
                collation = "utf8mb4_bin"
            for dialect_name in ("mysql", "mariadb"):
                table_kwargs[f"{dialect_name}_engine"] = "InnoDB"
                table_kwargs[f"{dialect_name}_charset"] = "utf8mb4"
                table_kwargs[f"{dialect_name}_collate"] = collation

        def ident() -> sa.String:
            return sa.String(255, collation=id_collation)

        self.executions = sa.Table(
            f"{prefix}executions",
            self.metadata,
            sa.Column("id", ident(), primary_key=True),
            sa.Column("workflow_id", ident(), nullable=False),
            sa.Column("workflow_version", sa.String(255), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("input", _json(), nullable=False),
            sa.Column("ctx", _json(), nullable=False),
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
            **table_kwargs,
        )
        ex = self.executions.c
        self.indexes = (
            # find(workflow_id=…), newest first
            sa.Index(f"{prefix}executions_workflow", ex.workflow_id, ex.updated_at),
            # find(status=…), newest first
            sa.Index(f"{prefix}executions_status", ex.status, ex.updated_at),
            # due(now): halted ones whose timer passed, earliest first (one range scan)
            sa.Index(f"{prefix}executions_wake", ex.status, ex.wake_at),
            # stale(now): running ones whose lease expired, oldest first
            sa.Index(f"{prefix}executions_lease", ex.status, ex.lease_expires_at),
        )
        self.entries = sa.Table(
            f"{prefix}entries",
            self.metadata,
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


class DDL:
    """What a migration uses: run statements, create tables and indexes idempotently.

    Args:
        cursor: a DBAPI cursor inside the migration's lock (and transaction, where DDL is
            transactional).
        dialect: the SQLAlchemy dialect, to compile DDL.
        exists: ``exists(kind, name)`` says whether a table or index exists.
    """

    def __init__(self, cursor: Any, dialect: Dialect, exists: Callable[[str, str], bool]) -> None:
        self.cursor = cursor
        self.dialect = dialect
        self.exists = exists

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


def _v1(schema: Schema, ddl: DDL) -> None:
    ddl.create_table(schema.executions)
    for index in schema.indexes:
        ddl.create_index(index)
    ddl.create_table(schema.entries)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "executions and entries tables, with their indexes", _v1),
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

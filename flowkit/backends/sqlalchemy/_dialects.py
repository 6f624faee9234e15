"""What differs between SQLite, PostgreSQL and MySQL/MariaDB: SQL text, values, transactions.

Statements are written once per store as driver-ready text (the driver's
parameter style, identifiers quoted by the dialect) and executed on the DBAPI
connection from SQLAlchemy's pool: the hot path (:meth:`SQL.write_checkpoint`,
:meth:`SQL.write_batch`) pays for the driver and the database, not for a query
builder. ctx values are rows of their own table (see :data:`CTX_COLUMNS`): a
checkpoint upserts the values it changed, and reads join them back in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
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
    Status,
    field_kinds,
)
from ._schema import Schema, lock_key, lock_name

__all__ = [
    "CTX_COLUMNS",
    "ENTRY_COLUMNS",
    "ENTRY_READ_COLUMNS",
    "EXECUTION_COLUMNS",
    "PRUNE_BATCH",
    "SCHEDULE_COLUMNS",
    "SQL",
    "UPDATE_COLUMNS",
    "State",
    "Write",
    "for_dialect",
]

#: The columns of an execution's row: its fields (:mod:`flowkit.records`) but ctx, in
#: that order. ctx values are rows of ``ctx_values``.
EXECUTION_COLUMNS = tuple(name for name in EXECUTION_FIELDS if name != "ctx")
#: What a checkpoint rewrites in the row (id, workflow_id, input, parent_id and
#: created_at never change; ctx values are written apart).
UPDATE_COLUMNS = tuple(name for name in CHECKPOINT_FIELDS if name != "ctx")
#: The columns of an entry: its fields but ``id``, which is ``"<execution_id>:<seq>"``.
ENTRY_COLUMNS = tuple(name for name in ENTRY_FIELDS if name != "id")
#: The entry columns read back (the execution id is known).
ENTRY_READ_COLUMNS = ENTRY_COLUMNS[1:]
#: The columns of a ctx value's row (see :func:`flowkit.backends.sqlalchemy._schema.ctx_key`).
CTX_COLUMNS = ("execution_id", "name", "position", "value", "full_name")
JSON_COLUMNS = frozenset(
    name
    for kinds in (field_kinds(Execution), field_kinds(Entry))
    for name, kind in kinds.items()
    if kind is FieldKind.JSON
)

#: The columns of a signal's row as it is sent (``consumed`` is set by a checkpoint).
SIGNAL_COLUMNS = ("execution_id", "seq", "name", "payload", "key", "sent_at")
#: The columns of a schedule's row: its fields, in their order.
SCHEDULE_COLUMNS = ("name", "workflow_id", "cron", "timezone", "input", "created_at", "last_slot")
#: The statuses of an execution that takes no more signals.
FINISHED = frozenset(status.value for status in Status if status.finished)
#: How many executions :meth:`SQL.prune_batch` deletes in one transaction.
PRUNE_BATCH = 500

#: Above this many rows a statement inserts them in chunks (bind-parameter limits).
CHUNK = 200
#: How many execution ids one read of ctx values asks for.
IN_CHUNK = 500

Row = Sequence[Any]


class State:
    """How far a write got: ``committing`` once the commit (or a self-committing
    statement) was sent, after which a lost connection leaves the outcome unknown."""

    __slots__ = ("committing",)

    def __init__(self) -> None:
        self.committing = False


class Write:
    """One checkpoint, as driver parameters.

    Attributes:
        execution_id: the execution.
        update: the parameters of :attr:`SQL.update` (the guarded row update).
        entries: one row per entry (:data:`ENTRY_COLUMNS`).
        ctx: one row per ctx value written (:data:`CTX_COLUMNS`), each name once.
        whole: ``ctx`` is the whole ctx (the stored values are replaced);
            otherwise it holds the changed values (upserted, the others kept).
        consumed: the seqs of the signals it consumes, each once, and the version
            that consumes them.
    """

    __slots__ = ("consumed", "ctx", "entries", "execution_id", "update", "version", "whole")

    def __init__(
        self,
        execution_id: str,
        update: Row,
        entries: Sequence[Row],
        ctx: Sequence[Row],
        *,
        whole: bool,
        consumed: Sequence[int] = (),
        version: int = 0,
    ) -> None:
        self.execution_id = execution_id
        self.update = update
        self.entries = entries
        self.ctx = ctx
        self.whole = whole
        self.consumed = consumed
        self.version = version


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
    #: Ends a SELECT that locks the rows it reads until the transaction ends.
    for_update: ClassVar[str] = " FOR UPDATE"
    #: Follows the executions table in a locking read by ids, so that it reads no other row.
    by_id: ClassVar[str] = ""

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
        self.ctx_table = quote(schema.ctx_values.name)
        self.versions = quote(schema.versions.name)
        ex, en, cv = self.executions, self.entries_table, self.ctx_table
        select = ", ".join(
            self.json_out.format(quote(c)) if c in JSON_COLUMNS else quote(c)
            for c in EXECUTION_COLUMNS
        )
        self.select_executions = f"SELECT {select}{self.ctx_column()} FROM {ex} AS e"
        self.find = {
            (by_workflow, by_status, paged): self.p(self._find(by_workflow, by_status, paged))
            for by_workflow in (False, True)
            for by_status in (False, True)
            for paged in (False, True)
        }
        st = quote("status")
        wake, lease, id_ = quote("wake_at"), quote("lease_expires_at"), quote("id")
        # Halted and waiting executions have timers; the wake index serves both statuses.
        self.due = self.p(
            f"{self.select_executions} WHERE {st} IN ('halted', 'waiting') AND {wake} <= ? "
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
        self.insert_execution_text = (
            f"INSERT INTO {ex} ({', '.join(quote(c) for c in EXECUTION_COLUMNS)}) VALUES ("
            + ", ".join(self.json_in if c in JSON_COLUMNS else "?" for c in EXECUTION_COLUMNS)
            + ")"
        )
        self.insert_execution = self.p(self.insert_execution_text)
        sets = ", ".join(
            f"{quote(c)} = {self.json_in if c in JSON_COLUMNS else '?'}" for c in UPDATE_COLUMNS
        )
        self.update_where = f"UPDATE {ex} SET {sets} WHERE {id_} = ? AND {quote('version')} = ?"
        self.update = self.p(f"{self.update_where} AND {seq} = ?")
        self.probe = self.p(f"SELECT {quote('version')}, {seq} FROM {ex} WHERE {id_} = ?")
        self.delete_execution = self.p(f"DELETE FROM {ex} WHERE {id_} = ?")
        self.delete_entries = self.p(f"DELETE FROM {en} WHERE {eid} = ?")
        self.delete_ctx = self.p(f"DELETE FROM {cv} WHERE {eid} = ?")
        # With `{}` for a list of statuses (see in_list).
        self.prunable = f"{ex} WHERE {st} IN ({{}}) AND {quote('updated_at')} < ?"
        self._signals_statements()
        self._schedules_statements()
        self.current_version = f"SELECT MAX({quote('version')}) FROM {self.versions}"
        self.record_version = self.p(
            f"INSERT INTO {self.versions} ({quote('version')}, {quote('description')}, "
            f"{quote('applied_at')}) VALUES (?, ?, ?)"
        )
        # ctx values of some executions, each execution's in ctx order, as `name:value` text.
        self._ctx_select = (
            f"SELECT {eid}, COALESCE({quote('full_name')}, {quote('name')}), "
            f"{self.json_out.format(quote('value'))} FROM {cv} WHERE {eid} IN "
        )
        self._ctx_order = f" ORDER BY {eid}, {quote('position')}"
        self._inserts: dict[int, str] = {}
        self._ctx_inserts: dict[tuple[int, bool], str] = {}
        self._ctx_reads: dict[int, str] = {}
        self._lists: dict[tuple[str, int], str] = {}

    def _signals_statements(self) -> None:
        q, p = self.q, self.p
        sg, eid, seq, key = q(self.schema.signals.name), q("execution_id"), q("seq"), q("key")
        self.signals_table = sg
        # Taken before a signal is appended: senders to one execution, and a checkpoint
        # that finishes it, wait for each other.
        self.lock_execution = p(
            f"SELECT {q('status')} FROM {self.executions} WHERE {q('id')} = ?{self.for_update}"
        )
        self.signal_state = p(
            f"SELECT (SELECT MAX({seq}) FROM {sg} WHERE {eid} = ?), "
            f"(SELECT COUNT(*) FROM {sg} WHERE {eid} = ? AND {key} = ?)"
        )
        marks = ", ".join(self.json_in if c == "payload" else "?" for c in SIGNAL_COLUMNS)
        self.insert_signal = p(
            f"INSERT INTO {sg} ({', '.join(q(c) for c in SIGNAL_COLUMNS)}) VALUES ({marks})"
        )
        pending = (
            f"SELECT {seq}, {q('name')}, {self.json_out.format(q('payload'))}, {key}, "
            f"{q('sent_at')} FROM {sg} WHERE {eid} = ? AND {q('consumed')} IS NULL"
        )
        self.read_signals = {
            False: p(f"{pending} ORDER BY {seq}"),
            True: p(f"{pending} AND {q('name')} = ? ORDER BY {seq}"),
        }
        self.delete_signals = p(f"DELETE FROM {sg} WHERE {eid} = ?")
        # The tables that hold an execution's rows, and the column of its id.
        self._owned = (
            (self.executions, "id"),
            (self.entries_table, "execution_id"),
            (self.ctx_table, "execution_id"),
            (sg, "execution_id"),
        )
        # With `{}` for a list of seqs (see in_list).
        consumed = q("consumed")
        self.pending_template = (
            f"SELECT COUNT(*) FROM {sg} WHERE {eid} = ? AND {consumed} IS NULL AND {seq} IN ({{}})"
        )
        self.consume_template = (
            f"UPDATE {sg} SET {consumed} = ? WHERE {eid} = ? AND {seq} IN ({{}})"
        )

    def _schedules_statements(self) -> None:
        q, p = self.q, self.p
        sc, name, last = q(self.schema.schedules.name), q("name"), q("last_slot")
        marks = ", ".join(self.json_in if c == "input" else "?" for c in SCHEDULE_COLUMNS)
        self.save_schedule = p(
            f"INSERT INTO {sc} ({', '.join(q(c) for c in SCHEDULE_COLUMNS)}) VALUES ({marks}) "
            + self.on_conflict(("name",), SCHEDULE_COLUMNS[1:])
        )
        columns = ", ".join(
            self.json_out.format(q(c)) if c == "input" else q(c) for c in SCHEDULE_COLUMNS
        )
        self.read_schedules = p(f"SELECT {columns} FROM {sc} ORDER BY {name}")
        self.delete_schedule = p(f"DELETE FROM {sc} WHERE {name} = ?")
        # A compare-and-set: of several workers firing one slot, one updates the row.
        self.fire_schedule = p(
            f"UPDATE {sc} SET {last} = ? WHERE {name} = ? AND ({last} IS NULL OR {last} < ?)"
        )

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

    def ctx_column(self) -> str:
        """An extra column of :attr:`select_executions` holding the ctx ('' when read apart)."""
        return ""

    def _find(self, by_workflow: bool, by_status: bool, paged: bool) -> str:
        q = self.q
        where = []
        if by_workflow:
            where.append(f"{q('workflow_id')} = ?")
        if by_status:
            where.append(f"{q('status')} = ?")
        if paged:
            where.append(self.after_condition())
        sql = self.select_executions
        if where:
            sql += " WHERE " + " AND ".join(where)
        return f"{sql} ORDER BY {q('updated_at')} DESC, {q('id')} DESC LIMIT ?"

    def after_condition(self) -> str:
        """``find``'s rows strictly after a page position, as an index range (see
        :meth:`after_params`)."""
        return f"({self.q('updated_at')}, {self.q('id')}) < (?, ?)"

    def after_params(self, updated_at: Any, execution_id: str) -> tuple[Any, ...]:
        """The parameters of :meth:`after_condition`."""
        return updated_at, execution_id

    def in_list(self, template: str, count: int) -> str:
        """``template`` with ``{}`` replaced by ``count`` markers (driver-ready, cached)."""
        sql = self._lists.get((template, count))
        if sql is None:
            sql = self._lists[(template, count)] = self.p(template.format(", ".join("?" * count)))
        return sql

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

    def insert_ctx(self, count: int, *, upsert: bool) -> str:
        """``INSERT`` of ``count`` ctx values; with ``upsert``, a name already stored
        gets the new value and keeps its position."""
        sql = self._ctx_inserts.get((count, upsert))
        if sql is None:
            row = "(?, ?, ?, " + self.json_in + ", ?)"
            columns = ", ".join(self.q(c) for c in CTX_COLUMNS)
            sql = f"INSERT INTO {self.ctx_table} ({columns}) VALUES " + ", ".join([row] * count)
            if upsert:
                sql += " " + self.upsert_clause()
            sql = self._ctx_inserts[(count, upsert)] = self.p(sql)
        return sql

    def upsert_clause(self) -> str:
        """What follows an ``INSERT`` of ctx values so that a stored name is updated."""
        return self.on_conflict(("execution_id", "name"), ("value",))

    def on_conflict(self, keys: Sequence[str], columns: Sequence[str]) -> str:
        """What follows an ``INSERT`` so that a row whose ``keys`` are stored gets the new
        ``columns``."""
        q = self.q
        sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in columns)
        return f"ON CONFLICT ({', '.join(q(k) for k in keys)}) DO UPDATE SET {sets}"

    def read_ctx(self, count: int) -> str:
        """The ctx values of ``count`` executions: ``(execution_id, name, value)`` rows."""
        sql = self._ctx_reads.get(count)
        if sql is None:
            marks = ", ".join("?" * count)
            sql = self._ctx_reads[count] = self.p(f"{self._ctx_select}({marks}){self._ctx_order}")
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

    def begin_snapshot(self, connection: Any, cursor: Any) -> None:
        """Open a read transaction whose statements all see one snapshot.

        An execution is read as its row and its ctx rows: without one snapshot,
        a checkpoint committed between the two reads would tear it.
        """
        raise NotImplementedError

    def unavailable(self, error: BaseException) -> bool:
        """Whether a driver error (not a lost connection) means the database is out of reach."""
        return False

    def stuck(self, connection: Any) -> bool:
        """Whether, after a driver error, the connection cannot be used again although the
        driver did not mark it closed."""
        return False

    # --- reads ------------------------------------------------------------------------------------

    def read_executions(
        self, connection: Any, sql: str, params: Sequence[Any]
    ) -> list[tuple[Row, str]]:
        """Execution rows (``sql`` selects :attr:`select_executions`) with their ctx's JSON text.

        Reads the rows, then the ctx values of all of them in one query (per
        :data:`IN_CHUNK` executions), in one snapshot.
        """
        cursor = connection.cursor()
        try:
            self.begin_snapshot(connection, cursor)
            cursor.execute(sql, params)
            rows: list[Row] = cursor.fetchall()
            pieces: dict[str, list[str]] = {}
            ids = [row[0] for row in rows]
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                cursor.execute(self.read_ctx(len(chunk)), chunk)
                for execution_id, name, value in cursor.fetchall():
                    found = pieces.get(execution_id)
                    if found is None:
                        found = pieces[execution_id] = []
                    found.append(f"{name}:{value}")
        finally:
            cursor.close()
            self.end_read(connection)
        return [(row, "{" + ",".join(pieces.get(row[0], ())) + "}") for row in rows]

    # --- writes -----------------------------------------------------------------------------------

    def chunks(self, connection: Any, rows: Sequence[Row]) -> list[Sequence[Row]]:
        """``rows`` in groups that one statement may carry."""
        return [rows[start : start + CHUNK] for start in range(0, len(rows), CHUNK)]

    @contextlib.contextmanager
    def transaction(self, connection: Any, state: State) -> Iterator[Any]:
        """A cursor in a transaction, committed when the block ends; rolled back if the
        block raises (a failed commit is not: ``state`` says it was sent)."""
        cursor = connection.cursor()
        try:
            self.begin(connection, cursor)
            yield cursor
            state.committing = True
            self.commit(connection, cursor)
        except BaseException:
            if not state.committing:
                self.abort(connection, cursor)
            raise
        finally:
            cursor.close()

    def write_execution(self, connection: Any, row: Row, ctx: Sequence[Row], state: State) -> None:
        """Insert a new execution's row and its ctx values in one transaction.

        Raises:
            The driver's IntegrityError: the id exists.
        """
        with self.transaction(connection, state) as cursor:
            cursor.execute(self.insert_execution, row)
            self._insert_ctx(connection, cursor, ctx, upsert=False)

    def _insert_ctx(
        self, connection: Any, cursor: Any, ctx: Sequence[Row], *, upsert: bool
    ) -> None:
        _insert(cursor, self.chunks(connection, ctx), partial(self.insert_ctx, upsert=upsert))

    def write_checkpoint(self, connection: Any, write: Write, state: State) -> bool:
        """Write one checkpoint in one transaction.

        Returns:
            False, having written nothing, when the version or seq guard did not match.
        """
        with self.transaction(connection, state) as cursor:
            return self.apply(connection, cursor, write)

    def write_batch(self, connection: Any, writes: Sequence[Write], state: State) -> list[bool]:
        """Write several checkpoints in one transaction (one commit), each guarded on its own.

        Returns:
            For each write, whether its guard matched (False: it wrote nothing).

        Raises:
            The driver's errors and ValueError as :meth:`apply` does: the transaction
            was rolled back, nothing was written.
        """
        if len(writes) == 1:
            return [self.write_checkpoint(connection, writes[0], state)]
        with self.transaction(connection, state) as cursor:
            # The guarded updates, then one INSERT for the entries of every write whose
            # guard matched and one for their ctx values: fewer statements, each a round
            # trip to a server, or on SQLite a handover of the GIL and back, which costs
            # more than the statement while other threads wait for it.
            matched: list[bool] = []
            entries: list[Row] = []
            ctx: list[Row] = []
            for write in writes:
                if write.whole or write.consumed:
                    matched.append(self.apply(connection, cursor, write))
                    continue
                self.check_update(connection, write)
                cursor.execute(self.update, write.update)
                ok = cursor.rowcount == 1
                matched.append(ok)
                if ok:
                    entries += write.entries
                    ctx += write.ctx
            _insert(cursor, self.chunks(connection, entries), self.insert_entries)
            self._insert_ctx(connection, cursor, ctx, upsert=True)
            return matched

    def check_update(self, connection: Any, write: Write) -> None:
        """Raise ValueError when the write's row update cannot be sent (MySQL's packet
        limit); nothing is checked elsewhere."""

    def apply(self, connection: Any, cursor: Any, write: Write) -> bool:
        """Inside an open transaction: the guarded update, then, only if it matched,
        the entries and the ctx values. Returns whether it matched.

        Raises:
            ValueError: a statement would be too long for the server (MySQL); nothing
                was sent.
        """
        self.check_update(connection, write)
        entries = self.chunks(connection, write.entries)
        ctx = self.chunks(connection, write.ctx)
        consumed = write.consumed
        if consumed:
            # Only a checkpoint of the execution consumes its signals, and a checkpoint
            # that got here first has moved the version on: the update below then
            # matches nothing. So what is pending now is pending at the update.
            pending_sql = self.in_list(self.pending_template, len(consumed))
            cursor.execute(pending_sql, (write.execution_id, *consumed))
            (pending,) = cursor.fetchone()
            if pending != len(consumed):
                return False
        cursor.execute(self.update, write.update)
        if cursor.rowcount != 1:
            return False
        if consumed:
            cursor.execute(
                self.in_list(self.consume_template, len(consumed)),
                (write.version, write.execution_id, *consumed),
            )
        _insert(cursor, entries, self.insert_entries)
        if write.whole:
            cursor.execute(self.delete_ctx, (write.execution_id,))
        _insert(cursor, ctx, partial(self.insert_ctx, upsert=not write.whole))
        return True

    # --- signals and prune ------------------------------------------------------------------------

    def send_signal(self, connection: Any, row: Row, state: State) -> tuple[str | None, int | None]:
        """Append a signal (``row``: :data:`SIGNAL_COLUMNS` but seq) to its execution's
        mailbox, holding the execution's row lock.

        Returns:
            The execution's status (None: there is none) and the seq the signal got
            (None: nothing was written, the execution being finished or the key seen).
        """
        execution_id, key = row[0], row[3]
        with self.transaction(connection, state) as cursor:
            cursor.execute(self.lock_execution, (execution_id,))
            found = cursor.fetchone()
            if found is None or found[0] in FINISHED:
                return (None if found is None else found[0]), None
            # A statement of its own, after the lock: it sees the signals of senders
            # that held the lock before.
            cursor.execute(self.signal_state, (execution_id, execution_id, key))
            last, seen = cursor.fetchone()
            if seen:
                return found[0], None
            seq = int(last or 0) + 1
            cursor.execute(self.insert_signal, (execution_id, seq, *row[1:]))
            return found[0], seq

    def delete_executions(self, cursor: Any, ids: Sequence[str]) -> None:
        """Delete executions (locked by this transaction) with their entries, ctx values
        and signals."""
        for table, column in self._owned:
            delete = f"DELETE FROM {table} WHERE {self.q(column)} IN ({{}})"
            cursor.execute(self.in_list(delete, len(ids)), ids)

    def count_prunable(self, statuses: int) -> str:
        """How many executions of ``statuses`` statuses were updated before a time."""
        return self.in_list(f"SELECT COUNT(*) FROM {self.prunable}", statuses)

    def prune_batch(
        self, connection: Any, statuses: Sequence[str], before: datetime, state: State
    ) -> tuple[int, int]:
        """Delete up to :data:`PRUNE_BATCH` executions of ``statuses`` updated before
        ``before``, with their entries, ctx values and signals, in one transaction.

        The executions are chosen without a lock, then locked through the
        primary key and checked again (one retried meanwhile stays): InnoDB
        keeps the locks of every row a locking read passes by, and those could
        be other executions', whose checkpoints would then wait for the batch.

        Returns:
            How many were chosen, and how many of them went.
        """
        q = self.q
        choose = self.in_list(
            f"SELECT {q('id')} FROM {self.prunable} LIMIT {PRUNE_BATCH}", len(statuses)
        )
        with self.transaction(connection, state) as cursor:
            cursor.execute(choose, (*statuses, self.time_in(before)))
            chosen = [row[0] for row in cursor.fetchall()]
            if not chosen:
                return 0, 0
            lock = self.in_list(
                f"SELECT {q('id')}, {q('status')}, {q('updated_at')} FROM {self.executions}"
                f"{self.by_id} WHERE {q('id')} IN ({{}}){self.for_update}",
                len(chosen),
            )
            cursor.execute(lock, chosen)
            ids = [
                execution_id
                for execution_id, status, updated_at in cursor.fetchall()
                if status in statuses and self.time_out(updated_at) < before
            ]
            if ids:
                self.delete_executions(cursor, ids)
            return len(chosen), len(ids)

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

    def has_column(self, cursor: Any, table: str, column: str) -> bool:
        """Whether a table has a column of that name."""
        raise NotImplementedError

    def commit_batch(self, connection: Any) -> None:
        """End one batch of a migration's data move (MySQL: commit; else the migration's
        one transaction goes on)."""


class SQLiteSQL(SQL):
    """SQLite (pysqlite): explicit ``BEGIN IMMEDIATE`` for every write, times as text."""

    name = "sqlite"
    for_update = ""  # BEGIN IMMEDIATE holds the database's write lock

    def time_in(self, value: datetime) -> Any:
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    def time_out(self, value: Any) -> datetime:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def begin(self, connection: Any, cursor: Any) -> None:
        # Take the write lock first: a deferred transaction that reads and then
        # writes can deadlock against another writer (SQLITE_BUSY, no waiting).
        cursor.execute("BEGIN IMMEDIATE")

    def begin_snapshot(self, connection: Any, cursor: Any) -> None:
        # A deferred transaction: its first read fixes the snapshot (WAL), no lock is taken.
        cursor.execute("BEGIN")

    def end_read(self, connection: Any) -> None:
        if connection.in_transaction:
            connection.rollback()

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

    def has_column(self, cursor: Any, table: str, column: str) -> bool:
        cursor.execute("SELECT 1 FROM pragma_table_info(?) WHERE name = ?", (table, column))
        return cursor.fetchone() is not None


class PostgresSQL(SQL):
    """PostgreSQL: autocommit connections; a checkpoint is one statement (one round trip),
    and an execution is read with its ctx in one statement."""

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
    #: The casts of a ctx value's columns (but execution_id) in a VALUES list.
    ctx_casts = ("text", "bigint", "json", "text")

    def __init__(self, dialect: Dialect, schema: Schema, database: str) -> None:
        super().__init__(dialect, schema, database)
        self._ctes: dict[tuple[int, int], str] = {}
        self._creates: dict[int, str] = {}

    def ctx_column(self) -> str:
        # The ctx values joined into the ctx's JSON text by the server, in ctx order:
        # one statement, so one snapshot, and one round trip.
        q = self.q
        return (
            f", (SELECT string_agg(COALESCE(c.{q('full_name')}, c.{q('name')}) || ':' || "
            f"CAST(c.{q('value')} AS text), ',' ORDER BY c.{q('position')}) "
            f"FROM {self.ctx_table} AS c WHERE c.{q('execution_id')} = e.{q('id')})"
        )

    def read_executions(
        self, connection: Any, sql: str, params: Sequence[Any]
    ) -> list[tuple[Row, str]]:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            rows: list[Row] = cursor.fetchall()
        finally:
            cursor.close()
            self.end_read(connection)
        return [(row[:-1], "{" + (row[-1] or "") + "}") for row in rows]

    def _values(self, casts: Sequence[str], count: int) -> str:
        row = "(" + ", ".join(f"CAST(? AS {cast})" for cast in casts) + ")"
        return ", ".join([row] * count)

    def _ctx_from(self, source: str, count: int, *, upsert: bool) -> str:
        """``INSERT`` of ``count`` ctx values for the execution whose id ``source`` returns."""
        q = self.q
        names = CTX_COLUMNS[1:]
        sql = (
            f"INSERT INTO {self.ctx_table} ({', '.join(q(c) for c in CTX_COLUMNS)}) "
            f"SELECT {source}.{q('id')}, {', '.join(f'v.{q(c)}' for c in names)} "
            f"FROM {source} CROSS JOIN ({'VALUES ' + self._values(self.ctx_casts, count)}) "
            f"AS v ({', '.join(q(c) for c in names)})"
        )
        return f"{sql} {self.upsert_clause()}" if upsert else sql

    def checkpoint_statement(self, entries: int, ctx: int) -> str:
        """The guarded update, ``entries`` entry inserts and ``ctx`` ctx value upserts as
        one statement, whose row count is ``entries`` (else ``ctx``, else 1) when the
        guard matched and 0 when not."""
        sql = self._ctes.get((entries, ctx))
        if sql is None:
            q = self.q
            ctes = [f"u AS ({self.update_where} AND {q('seq')} = ? RETURNING {q('id')})"]
            if entries:
                names = ENTRY_COLUMNS[1:]
                casts = [self.value_casts[c] for c in names]
                main = (
                    f"INSERT INTO {self.entries_table} ({', '.join(q(c) for c in ENTRY_COLUMNS)}) "
                    f"SELECT u.{q('id')}, {', '.join(f'v.{q(c)}' for c in names)} FROM u "
                    f"CROSS JOIN (VALUES {self._values(casts, entries)}) "
                    f"AS v ({', '.join(q(c) for c in names)})"
                )
                if ctx:
                    ctes.append(f"c AS ({self._ctx_from('u', ctx, upsert=True)})")
            else:
                main = self._ctx_from("u", ctx, upsert=True)
            sql = self._ctes[(entries, ctx)] = self.p(f"WITH {', '.join(ctes)} {main}")
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

    def stuck(self, connection: Any) -> bool:
        # psycopg can fail with "connection socket closed" while sending, and leave the
        # connection neither closed nor broken but with a command in progress (ACTIVE)
        # or in an unknown state: the next use fails with "another command is already
        # in progress". Such a connection is as good as lost.
        info = getattr(connection, "info", None)
        return getattr(info, "transaction_status", 0) in _PG_STUCK

    def write_execution(self, connection: Any, row: Row, ctx: Sequence[Row], state: State) -> None:
        if not ctx or len(ctx) > CHUNK or not connection.autocommit:
            return super().write_execution(connection, row, ctx, state)
        cursor = connection.cursor()
        try:
            state.committing = True  # one self-committing statement
            cursor.execute(
                self.create_statement(len(ctx)), [*row, *(v for values in ctx for v in values[1:])]
            )
        finally:
            cursor.close()

    def create_statement(self, ctx: int) -> str:
        """The insert of an execution's row and of its ``ctx`` values as one statement."""
        sql = self._creates.get(ctx)
        if sql is None:
            insert = f"{self.insert_execution_text} RETURNING {self.q('id')}"
            sql = f"WITH n AS ({insert}) {self._ctx_from('n', ctx, upsert=False)}"
            sql = self._creates[ctx] = self.p(sql)
        return sql

    def write_checkpoint(self, connection: Any, write: Write, state: State) -> bool:
        if not self._one_statement(write) or not connection.autocommit:
            return super().write_checkpoint(connection, write, state)
        cursor = connection.cursor()
        try:
            # One self-committing statement: if the connection dies while it
            # runs, whether it committed is unknown.
            state.committing = True
            return self._execute(cursor, write)
        finally:
            cursor.close()

    def apply(self, connection: Any, cursor: Any, write: Write) -> bool:
        if self._one_statement(write):
            return self._execute(cursor, write)
        return super().apply(connection, cursor, write)

    def write_batch(self, connection: Any, writes: Sequence[Write], state: State) -> list[bool]:
        # With psycopg 3, BEGIN, one statement per checkpoint and COMMIT travel in one
        # pipeline: one round trip for the whole batch.
        if (
            len(writes) == 1
            or not connection.autocommit
            or not hasattr(connection, "pipeline")
            or not all(self._one_statement(write) for write in writes)
        ):
            return super().write_batch(connection, writes, state)
        control = connection.cursor()
        cursors = [connection.cursor() for _ in writes]
        try:
            # The commit goes with the statements: once sent, the outcome of a lost
            # connection is unknown.
            state.committing = True
            with connection.pipeline():
                control.execute("BEGIN")
                for cursor, write in zip(cursors, writes, strict=True):
                    self._send(cursor, write)
                control.execute("COMMIT")
            return [
                self._matched(cursor, write) for cursor, write in zip(cursors, writes, strict=True)
            ]
        except self.dialect.loaded_dbapi.Error:
            # A statement failed: the server skipped the rest, COMMIT included, and the
            # transaction is aborted; nothing was written.
            self.abort(connection, control)
            raise
        finally:
            for cursor in (control, *cursors):
                cursor.close()

    @staticmethod
    def _one_statement(write: Write) -> bool:
        return (
            not write.whole
            and not write.consumed
            and len(write.entries) <= CHUNK
            and len(write.ctx) <= CHUNK
        )

    def _execute(self, cursor: Any, write: Write) -> bool:
        """Run the checkpoint as one statement; return whether its guard matched."""
        self._send(cursor, write)
        return self._matched(cursor, write)

    def _send(self, cursor: Any, write: Write) -> None:
        entries, ctx = len(write.entries), len(write.ctx)
        if not entries and not ctx:
            cursor.execute(self.update, write.update)
            return
        cursor.execute(
            self.checkpoint_statement(entries, ctx),
            [
                *write.update,
                *(value for row in write.ctx for value in row[1:]),
                *(value for row in write.entries for value in row[1:]),
            ],
        )

    @staticmethod
    def _matched(cursor: Any, write: Write) -> bool:
        """Whether the statement :meth:`_send` ran matched the guard (by its row count)."""
        return bool(cursor.rowcount == (len(write.entries) or len(write.ctx) or 1))

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

    def has_column(self, cursor: Any, table: str, column: str) -> bool:
        cursor.execute(
            self.p(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ? AND column_name = ?"
            ),
            (table, column),
        )
        return cursor.fetchone() is not None


class MySQL(SQL):
    """MySQL and MariaDB: times as naive UTC ``DATETIME(6)``; DDL commits on its own."""

    name = "mysql"
    # With many ids against a small table, MariaDB would rather scan it all (locking all).
    by_id = " FORCE INDEX (PRIMARY)"

    def delete_executions(self, cursor: Any, ids: Sequence[str]) -> None:
        # One id per statement: with a list, MariaDB may scan rows of other executions,
        # and a row it had to wait for stays locked until the batch commits.
        for table, column in self._owned:
            cursor.executemany(
                self.p(f"DELETE FROM {table} WHERE {self.q(column)} = ?"), [(i,) for i in ids]
            )

    def time_in(self, value: datetime) -> Any:
        return value.replace(tzinfo=None)

    def time_out(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    def __init__(self, dialect: Dialect, schema: Schema, database: str) -> None:
        super().__init__(dialect, schema, database)
        self._max_packet: int | None = None

    def on_conflict(self, keys: Sequence[str], columns: Sequence[str]) -> str:
        # VALUES() works on MariaDB and MySQL alike (MySQL 8.0.20+ also has row aliases).
        q = self.q
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{q(c)} = VALUES({q(c)})" for c in columns)

    def after_condition(self) -> str:
        # MariaDB does not make an index range of a row comparison: the range is on
        # updated_at, and the rows of the position's own time are filtered by id.
        q = self.q
        at, id_ = q("updated_at"), q("id")
        return f"{at} <= ? AND ({at} < ? OR {id_} < ?)"

    def after_params(self, updated_at: Any, execution_id: str) -> tuple[Any, ...]:
        return updated_at, updated_at, execution_id

    def chunks(self, connection: Any, rows: Sequence[Row]) -> list[Sequence[Row]]:
        # The server drops the connection on a statement longer than max_allowed_packet,
        # which looks like an outage: rows go in statements that fit, and a row that
        # fits in none is refused here, where the reason is known.
        limit = self._packet_limit(connection)
        budget = limit - _STATEMENT_ROOM
        groups: list[Sequence[Row]] = []
        chunk: list[Row] = []
        size = 0
        for row in rows:
            length = _bytes(row)
            if length > budget:
                raise _too_long(length, limit)
            if chunk and (len(chunk) == CHUNK or size + length > budget):
                groups.append(chunk)
                chunk, size = [], 0
            chunk.append(row)
            size += length
        if chunk:
            groups.append(chunk)
        return groups

    def check_update(self, connection: Any, write: Write) -> None:
        limit = self._packet_limit(connection)
        length = _bytes(write.update)
        if length + _STATEMENT_ROOM > limit:
            raise _too_long(length, limit)

    def write_execution(self, connection: Any, row: Row, ctx: Sequence[Row], state: State) -> None:
        limit = self._packet_limit(connection)
        length = _bytes(row)
        if length + _STATEMENT_ROOM > limit:
            raise _too_long(length, limit, "storing the execution")
        super().write_execution(connection, row, ctx, state)

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

    def begin_snapshot(self, connection: Any, cursor: Any) -> None:
        # flowkit's connections read committed, where each statement of a transaction
        # sees a newer snapshot: this transaction reads one.
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if connection.get_autocommit():
            cursor.execute("START TRANSACTION")

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

    def has_column(self, cursor: Any, table: str, column: str) -> bool:
        cursor.execute(
            self.p(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND table_name = ? AND column_name = ?"
            ),
            (table, column),
        )
        return cursor.fetchone() is not None

    def commit_batch(self, connection: Any) -> None:
        connection.commit()


#: libpq's PQTRANS_ACTIVE and PQTRANS_UNKNOWN (psycopg and psycopg2 alike).
_PG_STUCK = frozenset({1, 4})
_STATEMENT_ROOM = 64 * 1024  # for the SQL text and the other parameters


def _insert(cursor: Any, chunks: Sequence[Sequence[Row]], statement: Callable[[int], str]) -> None:
    """Insert rows, one statement per chunk (``statement(count)`` is its SQL)."""
    for chunk in chunks:
        cursor.execute(statement(len(chunk)), [v for row in chunk for v in row])


def _too_long(length: int, limit: int, what: str = "the checkpoint") -> ValueError:
    return ValueError(
        f"{what} needs a statement of about {length} bytes, more than the "
        f"server's max_allowed_packet of {limit} bytes: keep less data in one value of "
        "the execution, or raise max_allowed_packet"
    )


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

"""The SQL store: SQLite, PostgreSQL and MySQL/MariaDB through SQLAlchemy (SPEC §10)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, TypeVar

import attrs
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from ...errors import (
    ConfigError,
    ConflictError,
    FlowkitError,
    StoreError,
    StoreUnavailableError,
)
from ...records import (
    Entry,
    Execution,
    RecordCodec,
    Schedule,
    Signal,
    Status,
    decode_json,
    encode_json,
)
from ..batching import GroupCommit
from ..checks import (
    check_after,
    check_checkpoint,
    check_limit,
    check_prunable,
    check_status,
    signal_refused,
    utc,
    utc_entry,
    utc_execution,
    utc_schedule,
    utc_signal,
)
from ._dialects import (
    ENTRY_COLUMNS,
    ENTRY_READ_COLUMNS,
    EXECUTION_COLUMNS,
    PRUNE_BATCH,
    SCHEDULE_COLUMNS,
    UPDATE_COLUMNS,
    State,
    Write,
    for_dialect,
)
from ._engine import Options, open_engine, parse_options
from ._schema import (
    DDL,
    MIGRATIONS,
    SCHEMA_VERSION,
    Schema,
    check_version,
    ctx_key,
    now,
    position,
)

__all__ = ["SQLStore"]

T = TypeVar("T")

#: Longest id the tables hold (``VARCHAR(255)``).
MAX_ID = 255
#: How often a write is retried after a deadlock or a lost connection.
ATTEMPTS = 3

# Deadlocks and serialization failures roll the whole transaction back: safe to retry.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
_TRANSIENT_MYSQL_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock


class _Lost(Exception):
    """Internal: the connection died during an operation (it was invalidated)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Transient(Exception):
    """Internal: a deadlock or serialization failure; the transaction was rolled back."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _one_line(error: BaseException) -> str:
    original = getattr(error, "orig", None)
    if isinstance(error, sa_exc.DBAPIError) and original is not None:
        error = original
    text = re.sub(r"\s+", " ", str(error)).strip()
    text = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", text)
    if len(text) > 300:
        text = text[:297] + "..."
    return text or type(error).__name__


def _check_id(value: str | None, field: str) -> None:
    if value is None:
        return
    if len(value) > MAX_ID:
        raise ValueError(f"{field} is longer than {MAX_ID} characters: {value[:40]!r}…")
    if "\x00" in value:
        raise ValueError(f"{field} contains a NUL character: {value!r}")


class _Checkpoint:
    """A checkpoint on its way to the database (one item of a group commit)."""

    __slots__ = ("execution", "expected_version", "write")

    def __init__(self, execution: Execution, expected_version: int, write: Write) -> None:
        self.execution = execution
        self.expected_version = expected_version
        self.write = write


class SQLStore:
    """A store in SQLite, PostgreSQL or MySQL/MariaDB, through SQLAlchemy.

    On SQLite, checkpoints that threads of one process make at the same time
    are written together, in one transaction with one commit and one fsync
    (group commit), each still guarded by its own version check. PostgreSQL
    and MySQL group concurrent commits themselves, and do more in parallel on
    a connection per thread, so there each checkpoint is committed alone
    unless ``group_commit=True``.

    Tables ``<prefix>executions``, ``<prefix>ctx_values`` (one row per ctx
    value, so that a checkpoint writes only the values it changed),
    ``<prefix>entries``, ``<prefix>signals`` (the mailboxes),
    ``<prefix>schedules`` and ``<prefix>schema_version`` are created (or
    upgraded) when the store opens, unless ``create_schema`` is false;
    ``flowkit db upgrade`` does the same.
    See the Stores page of the documentation for URLs, options and tuning.

    Args:
        url_or_engine: a URL (``sqlite:///flowkit.db``, ``postgresql://host/db``
            (psycopg 3), ``mysql://…`` / ``mariadb://…`` (PyMySQL), or any
            ``dialect+driver://`` URL), or a ready SQLAlchemy :class:`Engine`,
            which the store uses as it is and never disposes.
        prefix: the table name prefix (lower-case letters, digits, ``_``).
        create_schema: create or upgrade the tables when the store opens (the
            default). When false, nothing is changed: the first call checks
            the schema version and raises :class:`ConfigError` if the tables
            are missing or older than this flowkit (run ``flowkit db upgrade``).
        **engine_options: flowkit's options (``group_commit``, ``synchronous``,
            ``busy_timeout``, ``pool_pre_ping``, ``pool_pre_ping_after``) and anything
            :func:`sqlalchemy.create_engine` takes (``pool_size``,
            ``max_overflow``, ``pool_recycle``, ``pool_timeout``, ``echo``…).
            The same flowkit and pool options can be given in the URL's query
            (``?prefix=app_&pool_size=10``); keyword arguments win.

    Raises:
        ConfigError: a bad URL or option, a missing driver (the message names
            the extra to install), or a schema newer than this flowkit knows.
        StoreUnavailableError: the database cannot be reached.
        StoreError: the database refused to create the schema.
    """

    def __init__(
        self,
        url_or_engine: str | Engine,
        *,
        prefix: str | None = None,
        create_schema: bool | None = None,
        **engine_options: Any,
    ) -> None:
        given = dict(engine_options)
        if prefix is not None:
            given["prefix"] = prefix
        if create_schema is not None:
            given["create_schema"] = create_schema
        if isinstance(url_or_engine, Engine):
            options = parse_options(None, given)
            if options.engine_kwargs or "synchronous" in given or "busy_timeout" in given:
                extra = sorted(
                    {*options.engine_kwargs, *given} - {"prefix", "create_schema", "group_commit"}
                )
                raise ConfigError(
                    f"engine options ({', '.join(extra)}) cannot be applied to a ready Engine: "
                    "configure the engine itself"
                )
            self._engine = url_or_engine
            self._owns_engine = False
        elif isinstance(url_or_engine, str):
            options = parse_options(url_or_engine, given)
            self._engine = open_engine(options)
            self._owns_engine = True
        else:
            raise ConfigError(
                f"SQLStore needs a URL or a SQLAlchemy Engine, got {type(url_or_engine).__name__}"
            )
        self._options: Options = options
        # Group commit: on SQLite unless turned off, elsewhere when asked for (see above).
        group = options.group_commit
        if group is None:
            group = self._engine.dialect.name == "sqlite"
        # A batch shares a commit: its first caller waits for the others of the last.
        self._commit: Callable[[_Checkpoint], bool] = (
            GroupCommit(self._write_batch, gather=True) if group else self._write_alone
        )
        engine = self._engine
        self._where = engine.url.render_as_string(hide_password=True)
        self.prefix = options.prefix
        dbapi = engine.dialect.loaded_dbapi
        self._dbapi_error: type[Exception] = dbapi.Error
        self._integrity_error: type[Exception] = dbapi.IntegrityError
        # SQLite in memory is one connection shared by every thread: serialize.
        memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self._serial: AbstractContextManager[Any] = threading.RLock() if memory else nullcontext()
        self._closed = False
        # True while the store is closed or its schema not yet known to be current:
        # every call then goes through _check_open's slow path first.
        self._blocked = True
        try:
            database = self._database()
            self.schema = Schema(options.prefix, engine.dialect)
            sql = self._sql = for_dialect(engine.dialect, self.schema, database)
            # Rows are made from records, and records from rows, by column name.
            codec = self._codec = RecordCodec(
                time_in=sql.time_in, time_out=sql.time_out, json_text=True
            )
            self._execution_row = codec.encoder(Execution, EXECUTION_COLUMNS)
            self._update_values = codec.encoder(Execution, UPDATE_COLUMNS)
            self._entry_row = codec.encoder(Entry, ENTRY_COLUMNS)
            if options.create_schema:
                self.upgrade()
        except BaseException:
            self._dispose()
            raise

    def __repr__(self) -> str:
        return f"SQLStore({self._where!r}, prefix={self.prefix!r})"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine the store uses."""
        return self._engine

    # --- connections and errors -------------------------------------------------------------------

    def _database(self) -> str:
        # Connecting once tells us the server (MySQL vs MariaDB collations) and that it is there.
        def probe(connection: Any) -> str:
            return self._engine.url.database or ""

        return self._run(probe)

    def _check_open(self) -> None:
        if not self._blocked:
            return
        if self._closed:
            raise FlowkitError("store is closed")
        self._check_schema()

    def _unavailable(self, error: BaseException, doing: str = "") -> StoreUnavailableError:
        reason = _one_line(error)
        if self._engine.dialect.name == "sqlite":
            if reason.startswith("unable to open"):
                reason += " (does its directory exist, and may this process write there?)"
            verb = "cannot open" if doing == "connecting" else "cannot use"
        else:
            verb = "cannot connect to" if doing == "connecting" else "lost the connection to"
        return StoreUnavailableError(f"{verb} the store {self._where}: {reason}")

    def _translate(self, error: BaseException) -> StoreError:
        if self._sql.unavailable(error):
            return self._unavailable(error)
        return self._failed(error)

    def _failed(self, error: BaseException) -> StoreError:
        return StoreError(f"the store {self._where} failed: {_one_line(error)}")

    def _is_disconnect(self, error: BaseException, connection: Any) -> bool:
        try:
            if self._engine.dialect.is_disconnect(error, connection, None):  # type: ignore[arg-type]
                return True
        except Exception:  # pragma: no cover - a dialect that cannot tell
            return False
        closed = getattr(connection, "closed", False)
        return (bool(closed) and not callable(closed)) or self._sql.stuck(connection)

    def _is_transient(self, error: BaseException) -> bool:
        if getattr(error, "sqlstate", None) in _TRANSIENT_SQLSTATES:
            return True
        code = getattr(error, "pgcode", None)
        if code in _TRANSIENT_SQLSTATES:
            return True
        args: tuple[Any, ...] = getattr(error, "args", ())
        return len(args) > 0 and args[0] in _TRANSIENT_MYSQL_CODES

    def _run(self, work: Callable[[Any], T]) -> T:
        """Run ``work(dbapi_connection)`` on a pooled connection.

        Raises:
            _Lost: the connection died (it was invalidated; the caller may retry).
            _Transient: a deadlock rolled the transaction back (the caller may retry).
            StoreUnavailableError: no connection could be had.
            The driver's errors, for the caller to translate.
        """
        with self._serial:
            try:
                fairy = self._engine.raw_connection()
            except (self._dbapi_error, sa_exc.SQLAlchemyError) as exc:
                raise self._unavailable(exc, "connecting") from exc
            connection = fairy.dbapi_connection
            try:
                return work(connection)
            except self._dbapi_error as exc:
                if self._is_disconnect(exc, connection):
                    fairy.invalidate(exc)
                    raise _Lost(exc) from exc
                if self._is_transient(exc):
                    raise _Transient(exc) from exc
                raise
            except BaseException:
                # Interrupted half-way (KeyboardInterrupt…): never pool a connection
                # that may be inside a transaction.
                fairy.invalidate()
                raise
            finally:
                fairy.close()

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        def read(connection: Any) -> list[Any]:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, params)
                rows: list[Any] = cursor.fetchall()
            finally:
                cursor.close()
            self._sql.end_read(connection)
            return rows

        return self._retrying(read)

    def _retrying(self, work: Callable[[Any], T]) -> T:
        """Run an operation that is safe to repeat, retrying on a lost connection or deadlock."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._run(work)
            except (_Lost, _Transient) as signal:
                if attempt == ATTEMPTS:
                    if isinstance(signal, _Lost):
                        raise self._unavailable(signal.error) from signal.error
                    raise self._failed(signal.error) from signal.error
                time.sleep(0.01 * attempt)
            except StoreError:
                raise
            except self._dbapi_error as exc:
                raise self._translate(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # --- schema -----------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version the database holds (0 when there are no tables).

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
        """
        if self._closed:
            raise FlowkitError("store is closed")
        sql = self._sql

        def current(connection: Any) -> int:
            cursor = connection.cursor()
            try:
                if not sql.exists(cursor, "table", self.schema.versions.name):
                    version = 0
                else:
                    cursor.execute(sql.current_version)
                    (found,) = cursor.fetchone()
                    version = int(found or 0)
            finally:
                cursor.close()
            sql.end_read(connection)
            return version

        return self._retrying(current)

    def upgrade(self) -> tuple[int, int]:
        """Create the tables, or bring them to :data:`SCHEMA_VERSION`.

        Safe when several processes do it at once: the migrations run under a
        database lock (a PostgreSQL advisory lock, MySQL ``GET_LOCK``, SQLite
        ``BEGIN IMMEDIATE``), and each is recorded in ``<prefix>schema_version``.

        Returns:
            The versions before and after.

        Raises:
            ConfigError: the database's schema is newer than this flowkit knows.
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database refused a migration.
        """
        if self._closed:
            raise FlowkitError("store is closed")
        before = self.schema_version()
        check_version(before, self._where)
        if before < SCHEMA_VERSION:
            before = self._retrying(self._migrate)
        self._blocked = False
        return before, SCHEMA_VERSION

    def _migrate(self, connection: Any, target: int = SCHEMA_VERSION) -> int:
        """Apply the migrations after the database's version, up to ``target``; return
        the version before. (Tests build an older release's database with ``target``.)"""
        sql, schema = self._sql, self.schema
        cursor = connection.cursor()
        ok = False
        try:
            sql.lock(connection, cursor)
            ddl = DDL(
                cursor,
                self._engine.dialect,
                lambda kind, name: sql.exists(cursor, kind, name),
                has_column=lambda table, column: sql.has_column(cursor, table, column),
                p=sql.p,
                json_in=sql.json_in,
                json_out=sql.json_out,
                commit=lambda: sql.commit_batch(connection),
            )
            ddl.create_table(schema.versions)
            cursor.execute(sql.current_version)
            (found,) = cursor.fetchone()
            before = int(found or 0)
            check_version(before, self._where)
            for migration in MIGRATIONS:
                if before < migration.version <= target:
                    migration.apply(schema, ddl)
                    cursor.execute(
                        sql.record_version,
                        (migration.version, migration.description, sql.time_in(now())),
                    )
            ok = True
            return before
        finally:
            try:
                sql.unlock(connection, cursor, ok=ok)
            finally:
                cursor.close()

    def _check_schema(self) -> None:
        version = self.schema_version()
        check_version(version, self._where)
        if version < SCHEMA_VERSION:
            raise ConfigError(
                f"the flowkit tables in {self._where} (prefix {self.prefix!r}) are at schema "
                f"version {version}, this flowkit needs {SCHEMA_VERSION}: run "
                f"`flowkit db upgrade --store URL` (or open the store with create_schema=True)"
            )
        self._blocked = False

    # --- rows -------------------------------------------------------------------------------------

    def _update_row(
        self, execution: Execution, expected_version: int, previous_seq: int
    ) -> list[Any]:
        row = self._update_values(execution)
        row += (execution.id, expected_version, previous_seq)
        return row

    def _ctx_rows(
        self, execution: Execution, names: Collection[str]
    ) -> list[tuple[str, str, int, str, str | None]]:
        """The ctx rows of ``names`` (each once, in order), positioned for this version.

        Raises:
            TypeError, ValueError: a value is not JSON data (nothing was written).
        """
        ctx, execution_id, version = execution.ctx, execution.id, execution.version
        rows = []
        for index, name in enumerate(names):
            key, full_name = ctx_key(name)
            rows.append(
                (execution_id, key, position(version, index), encode_json(ctx[name]), full_name)
            )
        return rows

    def _execution(self, row: Sequence[Any], ctx: str) -> Execution:
        values = dict(zip(EXECUTION_COLUMNS, row, strict=True))
        values["ctx"] = ctx
        return self._codec.execution(values)

    def _executions(self, statement: str, params: Sequence[Any]) -> list[Execution]:
        """The executions ``statement`` selects, each with its whole ctx (one snapshot)."""
        read = self._sql.read_executions

        def work(connection: Any) -> list[tuple[Sequence[Any], str]]:
            return read(connection, statement, params)

        return [self._execution(row, ctx) for row, ctx in self._retrying(work)]

    def _entry(self, execution_id: str, row: Sequence[Any]) -> Entry:
        values = dict(zip(ENTRY_READ_COLUMNS, row, strict=True))
        return self._codec.entry(values, execution_id=execution_id)

    # --- the protocol -----------------------------------------------------------------------------

    def create(self, execution: Execution) -> None:
        """Store a new execution.

        Raises:
            ConflictError: an execution with this id already exists.
            ValueError: a time is naive, an id is longer than 255 characters or
                holds NUL, or the record holds a value JSON cannot represent.
            TypeError: the record holds a value that is not JSON data.
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        execution = utc_execution(execution)
        for field in ("id", "workflow_id", "parent_id"):
            _check_id(getattr(execution, field), field)
        row = self._execution_row(execution)
        ctx = self._ctx_rows(execution, execution.ctx)
        write = self._sql.write_execution

        def insert(connection: Any) -> None:
            write(connection, row, ctx, State())

        try:
            self._retrying_write(insert, lambda: self._created(execution))
        except self._integrity_error as exc:
            raise ConflictError(f"execution {execution.id!r} already exists") from exc

    def _created(self, execution: Execution) -> bool | None:
        """After a lost commit: True if our insert landed."""
        found = self.load(execution.id)
        if found is None:
            return False
        if found.version == execution.version and found.created_at == execution.created_at:
            return True
        raise ConflictError(f"execution {execution.id!r} already exists")

    def _retrying_write(
        self, work: Callable[[Any], T], landed: Callable[[], bool | None]
    ) -> T | None:
        """Run a write; after a lost connection or deadlock, retry it when nothing was written.

        ``landed()`` tells, after a connection was lost during the commit,
        whether the write happened (True), did not (False: it is retried) or
        cannot be told (None).
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._run(work)
            except _Transient as signal:
                if attempt == ATTEMPTS:
                    raise self._failed(signal.error) from signal.error
            except _Lost as signal:
                if attempt == ATTEMPTS:
                    raise self._unavailable(signal.error) from signal.error
                try:
                    outcome = landed()
                except StoreUnavailableError as exc:
                    raise StoreUnavailableError(
                        f"{exc}; the outcome of the interrupted write is unknown"
                    ) from signal.error
                if outcome:
                    return None
            except StoreError:
                raise
            except self._integrity_error:
                raise
            except self._dbapi_error as exc:
                raise self._translate(exc) from exc
            time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def load(self, execution_id: str) -> Execution | None:
        """The execution with this id, or None.

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        if "\x00" in execution_id:
            return None
        found = self._executions(self._sql.load, (execution_id,))
        return found[0] if found else None

    def checkpoint(
        self,
        execution: Execution,
        entries: Sequence[Entry],
        expected_version: int,
        *,
        changed: Collection[str] | None = None,
        consumed: Collection[int] = (),
    ) -> None:
        """Replace the execution and append ``entries``, atomically.

        One transaction: a version- and seq-guarded ``UPDATE`` of the record,
        then the entry inserts and the ctx values: with ``changed``, only those
        values are upserted (the others are not touched); with None, ctx is
        replaced whole. The signals ``consumed`` names are marked consumed in
        the same transaction. On PostgreSQL, one statement when none are.

        Raises:
            ConflictError: the execution does not exist, its stored version is
                not ``expected_version``, the entries do not continue its
                stored log, or a consumed seq is not a pending signal of the
                execution; nothing was written.
            ValueError: the arguments are inconsistent (see ``Store.checkpoint``),
                a time is naive, or a value cannot be represented in JSON.
            TypeError: a value is not JSON data.
            StoreUnavailableError: the database cannot be reached (nothing was
                written, or the message says the outcome is unknown).
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        if self._blocked:
            self._check_open()
        item = self._prepare(execution, entries, expected_version, changed, consumed)
        if not self._commit(item):
            raise self._conflict(item, len(entries))

    def _prepare(
        self,
        execution: Execution,
        entries: Sequence[Entry],
        expected_version: int,
        changed: Collection[str] | None,
        consumed: Collection[int] = (),
    ) -> _Checkpoint:
        """A checkpoint's checks and driver parameters, made before the database is touched.

        Raises:
            ValueError, TypeError: as :meth:`checkpoint`.
        """
        execution = utc_execution(execution)
        check_checkpoint(execution, entries, expected_version, changed)
        update = self._update_row(execution, expected_version, execution.seq - len(entries))
        entry_row = self._entry_row
        rows = [entry_row(utc_entry(entry)) for entry in entries]
        names = execution.ctx if changed is None else dict.fromkeys(changed)
        ctx = self._ctx_rows(execution, names)
        write = Write(
            execution.id,
            update,
            rows,
            ctx,
            whole=changed is None,
            consumed=sorted(set(consumed)) if consumed else (),
            version=execution.version,
        )
        return _Checkpoint(execution, expected_version, write)

    def _write_alone(self, item: _Checkpoint) -> bool:
        """Write one checkpoint in its own transaction; False when its guard did not match.

        Raises:
            ConflictError: its entries exist already, or another writer moved the
                execution on while the connection was lost.
            ValueError: MySQL cannot take a statement that long.
            StoreUnavailableError, StoreError: as :meth:`checkpoint`.
        """
        write_checkpoint, write = self._sql.write_checkpoint, item.write

        def run(connection: Any) -> bool:
            return write_checkpoint(connection, write, State())

        try:
            written = self._retrying_write(
                run, lambda: self._landed(item.execution, item.expected_version)
            )
        except self._integrity_error as exc:
            raise ConflictError(
                f"checkpoint of execution {item.execution.id!r}: its entries were written by "
                "another writer first; nothing was written"
            ) from exc
        return written is not False

    def _write_batch(self, items: Sequence[_Checkpoint]) -> list[bool | BaseException]:
        """Group commit: write checkpoints that arrived together in one transaction.

        Each keeps its own guard, so a conflict fails only its own checkpoint.
        When the transaction fails before its commit was sent, nothing was
        written and each checkpoint is written alone (so an error of one, a
        value too long for MySQL say, fails only that one); when the connection
        was lost during the commit, each checkpoint is read back, as
        :meth:`_write_alone` does for one.

        Returns:
            For each checkpoint: whether its guard matched, or its exception.
        """
        if len(items) == 1:
            return [self._attempt(items[0])]
        # Rows are locked in id order, so that two processes' batches cannot deadlock.
        order = sorted(range(len(items)), key=lambda index: items[index].execution.id)
        writes = [items[index].write for index in order]
        state = State()
        write_batch = self._sql.write_batch
        try:
            matched = self._run(lambda connection: write_batch(connection, writes, state))
        except _Lost:
            if state.committing:
                return [self._after_lost_commit(item) for item in items]
            return [self._attempt(item) for item in items]
        except Exception:  # a deadlock, a refused value, an unreachable database: nothing written
            return [self._attempt(item) for item in items]
        outcomes: list[bool | BaseException] = [False] * len(items)
        for index, ok in zip(order, matched, strict=True):
            outcomes[index] = ok
        return outcomes

    def _attempt(self, item: _Checkpoint) -> bool | BaseException:
        try:
            return self._write_alone(item)
        except Exception as exc:  # the outcome of this checkpoint, raised in its caller
            return exc

    def _after_lost_commit(self, item: _Checkpoint) -> bool | BaseException:
        try:
            landed = self._landed(item.execution, item.expected_version)
        except StoreUnavailableError as exc:
            return StoreUnavailableError(f"{exc}; the outcome of the interrupted write is unknown")
        except Exception as exc:  # ConflictError: another writer moved it on
            return exc
        return True if landed else self._attempt(item)

    def _landed(self, execution: Execution, expected_version: int) -> bool | None:
        """After a lost commit: did our checkpoint land (True) or not (False)?

        Raises:
            ConflictError: another writer moved the execution on.
        """
        found = self.load(execution.id)
        if found is not None:
            if (
                found.version == execution.version
                and found.seq == execution.seq
                and found.updated_at == execution.updated_at
                and found.lease_owner == execution.lease_owner
            ):
                return True
            if found.version == expected_version:
                return False
        raise ConflictError(
            f"checkpoint of execution {execution.id!r}: another writer changed or deleted it "
            "while the connection was lost; nothing was written"
        )

    def _conflict(self, item: _Checkpoint, count: int) -> ConflictError:
        execution, expected_version = item.execution, item.expected_version
        where = f"checkpoint of execution {execution.id!r}"
        rows = self._read(self._sql.probe, (execution.id,))
        if not rows:
            return ConflictError(
                f"{where}: it does not exist (deleted, or never created); nothing was written"
            )
        version, seq = int(rows[0][0]), int(rows[0][1])
        if version != expected_version:
            return ConflictError(
                f"{where}: expected version {expected_version}, but the store holds version "
                f"{version} (another writer got there first); nothing was written"
            )
        if seq != execution.seq - count:
            return ConflictError(
                f"{where}: entries must continue at seq {seq + 1}, got "
                f"{execution.seq - count + 1}; nothing was written"
            )
        pending = {signal.seq for signal in self.signals(execution.id)}
        gone = [seq for seq in item.write.consumed if seq not in pending]
        if not gone:  # the record moved on and back between the write and this look
            return ConflictError(f"{where}: another writer changed it; nothing was written")
        return ConflictError(
            f"{where}: signal {', '.join(map(str, gone))} is not pending in its mailbox "
            "(consumed already, or never sent); nothing was written"
        )

    def entries(self, execution_id: str, *, after: int = 0) -> list[Entry]:
        """The entries with ``seq > after``, in ``seq`` order (none for an unknown id).

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        if "\x00" in execution_id:
            return []
        rows = self._read(self._sql.read_entries, (execution_id, after))
        return [self._entry(execution_id, row) for row in rows]

    def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | str | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[Execution]:
        """Executions matching the filters, most recently updated first (ties: id descending),
        strictly after the position ``after`` (``(updated_at, id)``) when given.

        A page starts with an index range, so a deep page costs what the first does.

        Raises:
            ValueError: the status is unknown, ``limit`` is negative, or ``after``'s
                time is naive.
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        check_limit(limit)
        wanted = check_status(status)
        position = check_after(after)
        if workflow_id is not None and "\x00" in workflow_id:
            return []
        sql = self._sql
        params: list[Any] = []
        if workflow_id is not None:
            params.append(workflow_id)
        if wanted is not None:
            params.append(wanted.value)
        if position is not None:
            params.extend(sql.after_params(sql.time_in(position[0]), position[1]))
        params.append(limit)
        statement = sql.find[(workflow_id is not None, wanted is not None, position is not None)]
        return self._executions(statement, params)

    def due(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Halted or waiting executions whose ``wake_at`` is at or before ``now``, earliest
        first.

        Ties are ordered by id.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        check_limit(limit)
        at = self._sql.time_in(utc(now, "now"))
        return self._executions(self._sql.due, (at, limit))

    def stale(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Running executions whose lease expired at or before ``now``, oldest first.

        Ties are ordered by id.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        check_limit(limit)
        at = self._sql.time_in(utc(now, "now"))
        return self._executions(self._sql.stale, (at, limit))

    def delete(self, execution_id: str) -> bool:
        """Delete an execution, its ctx values, its entries and its signals (one
        transaction); False if it did not exist.

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        if "\x00" in execution_id:
            return False
        sql = self._sql

        def delete(connection: Any) -> bool:
            with sql.transaction(connection, State()) as cursor:
                # The record first: a concurrent checkpoint then finds nothing to update.
                cursor.execute(sql.delete_execution, (execution_id,))
                existed = bool(cursor.rowcount > 0)
                cursor.execute(sql.delete_entries, (execution_id,))
                cursor.execute(sql.delete_ctx, (execution_id,))
                cursor.execute(sql.delete_signals, (execution_id,))
            return existed

        # After a lost commit, deleting again is harmless.
        return bool(self._retrying_write(delete, lambda: False))

    def _execute(
        self, statement: str, params: Sequence[Any], landed: Callable[[], bool] = lambda: False
    ) -> int | None:
        """Run one write statement in a transaction; its row count, or None when the
        connection was lost during the commit and ``landed()`` says the write happened.
        By default, after a lost commit, the statement is run again."""
        sql = self._sql

        def run(connection: Any) -> int:
            with sql.transaction(connection, State()) as cursor:
                cursor.execute(statement, params)
                return int(cursor.rowcount)

        return self._retrying_write(run, landed)

    def send_signal(self, signal: Signal) -> Signal | None:
        """Append ``signal`` to its execution's mailbox; the stored signal, with its ``seq``.

        One transaction that locks the execution's row (so that senders to one
        execution take turns, and a checkpoint that finishes the execution
        comes before or after, never between), then appends with the next seq.
        Returns None, writing nothing, when a signal with its key was sent before.

        Raises:
            NotFoundError: the execution does not exist.
            ExecutionError: the execution is completed, failed or cancelled.
            ValueError: ``sent_at`` is naive, the payload holds NaN or an infinity,
                or the name or key is longer than 255 characters or holds NUL.
            TypeError: the payload is not JSON data.
            StoreUnavailableError: the database cannot be reached (the message says
                when whether the signal was stored is unknown).
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        signal, payload = utc_signal(signal)
        _check_id(signal.name, "signal name")
        _check_id(signal.key, "signal key")
        if len(signal.execution_id) > MAX_ID or "\x00" in signal.execution_id:
            raise signal_refused(signal, None)  # no execution has such an id
        sql = self._sql
        row = (signal.execution_id, signal.name, payload, signal.key, sql.time_in(signal.sent_at))
        states: list[State] = []

        def send(connection: Any) -> tuple[str | None, int | None]:
            state = State()
            states.append(state)
            return sql.send_signal(connection, row, state)

        def landed() -> bool:
            # Before the commit nothing was written; with a key, sending again is harmless.
            if not states[-1].committing or signal.key is not None:
                return False
            raise StoreUnavailableError(
                f"lost the connection to the store {self._where} while sending signal "
                f"{signal.name!r} to execution {signal.execution_id!r}"
            )

        outcome = self._retrying_write(send, landed)
        assert outcome is not None  # landed() is never True
        status, seq = outcome
        if status is None or Status(status).finished:
            raise signal_refused(signal, status)
        if seq is None:
            return None
        return attrs.evolve(signal, seq=seq, payload=decode_json(payload))

    def signals(self, execution_id: str, *, name: str | None = None) -> list[Signal]:
        """The execution's pending (not consumed) signals, of ``name`` if given, in seq order.

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        if "\x00" in execution_id or (name is not None and "\x00" in name):
            return []
        sql = self._sql
        params = (execution_id,) if name is None else (execution_id, name)
        rows = self._read(sql.read_signals[name is not None], params)
        return [
            Signal(
                execution_id=execution_id,
                seq=int(seq),
                name=signal_name,
                payload=decode_json(payload),
                key=key,
                sent_at=sql.time_out(sent_at),
            )
            for seq, signal_name, payload, key, sent_at in rows
        ]

    def save_schedule(self, schedule: Schedule) -> None:
        """Insert the schedule, or replace the one with its name (``last_slot`` included).

        Raises:
            ValueError: a time is naive, the input holds NaN or an infinity, the
                name or workflow id is longer than 255 characters, or a text holds NUL.
            TypeError: the input is not JSON data.
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        schedule = utc_schedule(schedule)
        _check_id(schedule.name, "schedule name")
        _check_id(schedule.workflow_id, "workflow_id")
        for field in ("cron", "timezone"):
            if "\x00" in getattr(schedule, field):
                raise ValueError(f"schedule {field} contains a NUL character")
        time_in, last = self._sql.time_in, schedule.last_slot
        values = {
            **{field: getattr(schedule, field) for field in SCHEDULE_COLUMNS},
            "input": encode_json(schedule.input),
            "created_at": time_in(schedule.created_at),
            "last_slot": None if last is None else time_in(last),
        }
        # Saving again after a lost commit is harmless.
        self._execute(self._sql.save_schedule, [values[field] for field in SCHEDULE_COLUMNS])

    def schedules(self) -> list[Schedule]:
        """Every schedule, by name.

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        time_out = self._sql.time_out
        schedules = []
        for row in self._read(self._sql.read_schedules, ()):
            values = dict(zip(SCHEDULE_COLUMNS, row, strict=True))
            last = values["last_slot"]
            values["input"] = decode_json(values["input"])
            values["created_at"] = time_out(values["created_at"])
            values["last_slot"] = None if last is None else time_out(last)
            schedules.append(Schedule(**values))
        return schedules

    def delete_schedule(self, name: str) -> bool:
        """Delete a schedule (never the executions it started); False if there was none.

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        if "\x00" in name:
            return False
        # After a lost commit, deleting again is harmless.
        return bool(self._execute(self._sql.delete_schedule, (name,)))

    def schedule_fired(self, name: str, slot: datetime) -> bool:
        """Record ``slot`` as the schedule's ``last_slot`` if it is later than the stored one.

        One guarded ``UPDATE`` (a compare-and-set): of several callers with the
        same slot, one gets True.

        Raises:
            ValueError: ``slot`` is naive.
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        slot = utc(slot, "slot")
        if "\x00" in name:
            return False
        at = self._sql.time_in(slot)

        def landed() -> bool:
            # The slot is stored: this caller's update or another's. True either way:
            # the execution of a slot has an id of its own, so starting it twice is
            # harmless, and not starting it would lose it.
            return any(s.name == name and s.last_slot == slot for s in self.schedules())

        count = self._execute(self._sql.fire_schedule, (at, name, at), landed)
        return count is None or count == 1

    def prune(
        self,
        *,
        before: datetime,
        statuses: Iterable[Status | str],
        dry_run: bool = False,
    ) -> int:
        """Delete finished executions last updated before ``before``; how many went.

        Each batch of up to 500 executions, with their entries, ctx values and
        signals, is one short transaction, so other executions keep
        checkpointing meanwhile. With ``dry_run``, count only.

        Raises:
            ValueError: ``before`` is naive, or a status is unknown or not finished.
            StoreUnavailableError: the database cannot be reached.
            StoreError: the database failed.
            FlowkitError: the store is closed.
        """
        self._check_open()
        before, wanted = check_prunable(before, statuses)
        if not wanted:
            return 0
        sql = self._sql
        values = [status.value for status in wanted]
        if dry_run:
            rows = self._read(sql.count_prunable(len(values)), (*values, sql.time_in(before)))
            return int(rows[0][0])

        def batch(connection: Any) -> tuple[int, int]:
            return sql.prune_batch(connection, values, before, State())

        total = 0
        while True:
            # After a lost commit the batch is chosen again (what went is not counted).
            outcome = self._retrying_write(batch, lambda: False)
            assert outcome is not None  # the lambda is never True
            chosen, gone = outcome
            total += gone
            if chosen < PRUNE_BATCH:
                return total

    def close(self) -> None:
        """Release the connections; later calls raise :class:`FlowkitError`. Closing twice is fine.

        An engine the store was given is left open (its owner disposes it).
        """
        if self._closed:
            return
        self._closed = self._blocked = True
        self._dispose()

    def _dispose(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

"""What the store benches share: the workflows, a recording store, and the raw-write floors.

A *raw floor* replays the writes flowkit made in one run (captured by
:class:`Recording`) with the driver alone, no flowkit and no SQLAlchemy: the
same tables and keys, the same indexes, the same JSON text (encoded before
timing). It is what the store's own writes cost; anything above it is
flowkit's.
"""

from __future__ import annotations

import gc
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

import flowkit
from flowkit import Entry, Execution
from flowkit.backends.memory import MemoryStore
from flowkit.backends.sqlalchemy import SQLStore

#: One run's writes: the execution as created, then each checkpoint's arguments.
Writes = tuple[Execution, list[tuple[Execution, list[Entry], int]]]


# --- the workflows -----------------------------------------------------------------------------


def chain(n: int) -> flowkit.WorkflowDef:
    """A start step and ``n`` trivial call steps, one after the other."""
    steps: list[dict[str, Any]] = [{"id": "start", "type": "start", "next": "s0"}]
    for i in range(n):
        steps.append(
            {
                "id": f"s{i}",
                "type": "call",
                "service": "Bench",
                "method": "noop",
                "input": {"i": i},
                "output": "last",
                **({"next": f"s{i + 1}"} if i + 1 < n else {}),
            }
        )
    return flowkit.load({"id": f"chain_{n}", "steps": steps})


def loop(n: int) -> flowkit.WorkflowDef:
    """A start step and a ``loop`` over ``$input.items`` whose body is one trivial call step."""
    return flowkit.load(
        {
            "id": f"loop_{n}",
            "inputs": {"items": {"type": "array"}},
            "steps": [
                {"id": "start", "type": "start", "next": "each"},
                {
                    "id": "each",
                    "type": "loop",
                    "over": "$input.items",
                    "max": n,
                    "output": "results",
                    "do": [
                        {
                            "id": "work",
                            "type": "call",
                            "service": "Bench",
                            "method": "noop",
                            "input": {"i": "$item"},
                        }
                    ],
                },
            ],
        }
    )


def services() -> flowkit.ServiceRegistry:
    """The ``Bench.noop`` service the workflows call."""
    registry = flowkit.ServiceRegistry()
    registry.register("Bench", {"noop": lambda i: i})
    return registry


class Recording(MemoryStore):
    """A memory store that keeps every execution created and checkpoint given."""

    def __init__(self) -> None:
        super().__init__(warn=False)
        self.created: list[Execution] = []
        self.writes: list[tuple[Execution, list[Entry], int]] = []

    def create(self, execution: Execution) -> None:
        self.created.append(execution)
        super().create(execution)

    def checkpoint(
        self,
        execution: Execution,
        entries: Sequence[Entry],
        expected_version: int,
        *,
        changed: Any = None,
        consumed: Any = (),
    ) -> None:
        self.writes.append((execution, list(entries), expected_version))
        super().checkpoint(execution, entries, expected_version, changed=changed, consumed=consumed)


class NullStore:
    """A store that keeps the objects it is given, copying and encoding nothing.

    Checks versions like a real store, nothing else: flowkit on it is the engine's
    own cost per step (the memory store adds a JSON round trip per checkpoint).
    """

    def __init__(self) -> None:
        self._records: dict[str, Execution] = {}
        self._logs: dict[str, list[Entry]] = {}

    def create(self, execution: Execution) -> None:
        if execution.id in self._records:
            raise flowkit.ConflictError(f"execution {execution.id!r} already exists")
        self._records[execution.id] = execution
        self._logs[execution.id] = []

    def load(self, execution_id: str) -> Execution | None:
        return self._records.get(execution_id)

    def checkpoint(
        self,
        execution: Execution,
        entries: Sequence[Entry],
        expected_version: int,
        *,
        changed: Any = None,
        consumed: Any = (),  # no mailbox: the benchmarks send no signals
    ) -> None:
        if self._records[execution.id].version != expected_version:
            raise flowkit.ConflictError(f"execution {execution.id!r}: stale version")
        self._records[execution.id] = execution
        self._logs[execution.id].extend(entries)

    def entries(self, execution_id: str, *, after: int = 0) -> list[Entry]:
        return [entry for entry in self._logs.get(execution_id, []) if entry.seq > after]

    def find(self, **_: Any) -> list[Execution]:
        return []

    def due(self, now: Any, *, limit: int = 100) -> list[Execution]:
        return []

    def stale(self, now: Any, *, limit: int = 100) -> list[Execution]:
        return []

    def delete(self, execution_id: str) -> bool:
        self._logs.pop(execution_id, None)
        return self._records.pop(execution_id, None) is not None

    def close(self) -> None:
        pass


def record(wf: flowkit.WorkflowDef, data: dict[str, Any] | None = None) -> Writes:
    """The writes of one run of ``wf`` (on a memory store)."""
    recording = Recording()
    with flowkit.Engine(store=recording, services=services()) as engine:
        result = engine.run(wf, data or {})
    assert result.completed, result.error
    return recording.created[0], list(recording.writes)


def renamed(writes: Writes) -> Writes:
    """The same writes for a fresh execution id (so that they can be replayed again)."""
    created, checkpoints = writes
    new_id = uuid.uuid4().hex
    return attrs.evolve(created, id=new_id), [
        (
            attrs.evolve(record, id=new_id),
            [attrs.evolve(e, id=f"{new_id}:{e.seq}", execution_id=new_id) for e in entries],
            expected,
        )
        for record, entries, expected in checkpoints
    ]


def stats(samples: Sequence[float]) -> dict[str, float]:
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "max": max(samples),
    }


def replay_store(store: Any, writes: Writes, *, timed_create: bool = False) -> float:
    """Seconds to make the checkpoints of one run with ``store.checkpoint`` alone.

    The adapter's cost without the engine; with ``timed_create``, ``store.create``
    is timed too.
    """
    created, checkpoints = renamed(writes)
    if not timed_create:
        store.create(created)
    gc.collect()
    started = time.perf_counter()
    if timed_create:
        store.create(created)
    for record, entries, expected in checkpoints:
        store.checkpoint(record, entries, expected)
    return time.perf_counter() - started


# --- raw floors: the driver alone --------------------------------------------------------------


class Raw:
    """One store's raw writes with its driver; :meth:`run` replays one run's writes."""

    def prepare(self, writes: Writes) -> Any:
        """The replay's parameters, encoded before timing (for a fresh execution id)."""
        raise NotImplementedError

    def run(self, prepared: Any, *, timed_create: bool = False) -> float:
        """Seconds to make the checkpoints (and with ``timed_create`` the create too)."""
        raise NotImplementedError

    def replay(self, writes: Writes, *, timed_create: bool = False) -> float:
        return self.run(self.prepare(writes), timed_create=timed_create)

    def close(self) -> None:
        pass


class RawSQL(Raw):
    """A SQL database through its DBAPI driver: per checkpoint, one transaction with the
    version-guarded ``UPDATE`` and the ``INSERT`` of its entries, as the store writes them.

    ``store`` provides the tables (it created them) and the statements' text; the
    raw writes use a connection of their own.
    """

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        sql = store._sql
        self.insert_execution = sql.insert_execution
        self.update = sql.update
        self.insert_entries = sql.insert_entries
        self.connection = self.connect()

    def connect(self) -> Any:
        raise NotImplementedError

    def begin(self, cursor: Any) -> None:
        pass

    def prepare(self, writes: Writes) -> Any:
        created, checkpoints = renamed(writes)
        store = self.store
        steps = []
        for record, entries, expected in checkpoints:
            update = store._update_row(record, expected, record.seq - len(entries))
            rows = [store._entry_row(entry) for entry in entries]
            steps.append((update, self.insert_entries(len(rows)) if rows else "", rows))
        return store._execution_row(created), steps

    def run(self, prepared: Any, *, timed_create: bool = False) -> float:
        created, steps = prepared
        connection = self.connection
        cursor = connection.cursor()
        begin, update_sql = self.begin, self.update

        def create() -> None:
            begin(cursor)
            cursor.execute(self.insert_execution, created)
            connection.commit()

        if not timed_create:
            create()
        gc.collect()
        started = time.perf_counter()
        if timed_create:
            create()
        for update, insert_sql, rows in steps:
            begin(cursor)
            cursor.execute(update_sql, update)
            if cursor.rowcount != 1:
                raise RuntimeError("raw update matched no row")
            if rows:
                cursor.execute(insert_sql, [value for row in rows for value in row])
            connection.commit()
        elapsed = time.perf_counter() - started
        cursor.close()
        return elapsed

    def close(self) -> None:
        self.connection.close()


class RawSQLite(RawSQL):
    """sqlite3 with the store's journal (WAL) and ``synchronous`` setting."""

    def connect(self) -> Any:
        import sqlite3

        url = self.store.engine.url
        connection = sqlite3.connect(url.database or "", isolation_level=None)
        synchronous = self.store._options.synchronous
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
        return connection

    def begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN")


class RawPostgres(RawSQL):
    """psycopg, one transaction: UPDATE, INSERT, COMMIT (three round trips)."""

    def connect(self) -> Any:
        import psycopg

        url = self.store.engine.url
        return psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, dbname=url.database
        )


class RawPostgresOneStatement(RawPostgres):
    """psycopg in autocommit, UPDATE and INSERT as one statement (one round trip).

    This is what the store sends, so it is the floor flowkit is held to on PostgreSQL.
    """

    def __init__(self, store: SQLStore) -> None:
        super().__init__(store)
        self.connection.autocommit = True

    def prepare(self, writes: Writes) -> Any:
        created, checkpoints = renamed(writes)
        store = self.store
        steps = []
        for record, entries, expected in checkpoints:
            update = store._update_row(record, expected, record.seq - len(entries))
            rows = [store._entry_row(entry) for entry in entries]
            statement = store._sql.checkpoint_statement(len(rows))  # type: ignore[attr-defined]
            params = [*update, *(value for row in rows for value in row[1:])]
            steps.append((statement, params, len(rows)))
        return store._execution_row(created), steps

    def run(self, prepared: Any, *, timed_create: bool = False) -> float:
        created, steps = prepared
        cursor = self.connection.cursor()
        if not timed_create:
            cursor.execute(self.insert_execution, created)
        gc.collect()
        started = time.perf_counter()
        if timed_create:
            cursor.execute(self.insert_execution, created)
        for statement, params, count in steps:
            cursor.execute(statement, params)
            if cursor.rowcount != count:
                raise RuntimeError("raw statement matched no row")
        elapsed = time.perf_counter() - started
        cursor.close()
        return elapsed


class RawMySQL(RawSQL):
    def connect(self) -> Any:
        import pymysql

        url = self.store.engine.url
        connection = pymysql.connect(
            host=url.host, port=url.port or 3306, user=url.username, database=url.database
        )
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return connection


class RawRedis(Raw):
    """redis-py, per checkpoint one ``MULTI``/``EXEC`` (one round trip) with the writes the
    store's checkpoint script makes: the record's hash fields, the entries appended to
    the log list, and the sorted-set indexes (``i:all``, ``i:wf:…``, ``i:st:…``,
    ``i:sw:…``, ``i:lease``). No version check (that needs the script or ``WATCH``).

    The commands are packed before timing and sent on one connection, and the
    replies read (``+OK``, ``+QUEUED``…, then ``EXEC``'s array): the network round
    trip and Redis' own work, without the pipeline object's Python overhead.
    """

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.connection = self.client.connection_pool.get_connection()

    def prepare(self, writes: Writes) -> Any:
        from flowkit.backends.redis._store import _entry_text, _micros, _state_text

        created, checkpoints = renamed(writes)
        p = self.prefix
        id_, wf = created.id, created.workflow_id
        record, log = f"{p}e:{id_}", f"{p}l:{id_}"

        def indexes(execution: Execution, old: str | None) -> list[tuple[Any, ...]]:
            st, updated = execution.status.value, _micros(execution.updated_at)
            commands: list[tuple[Any, ...]] = [
                ("ZADD", f"{p}i:all", updated, id_),
                ("ZADD", f"{p}i:wf:{wf}", updated, id_),
            ]
            if old is not None and old != st:
                commands += [("ZREM", f"{p}i:st:{old}", id_), ("ZREM", f"{p}i:sw:{old}:{wf}", id_)]
            commands += [
                ("ZADD", f"{p}i:st:{st}", updated, id_),
                ("ZADD", f"{p}i:sw:{st}:{wf}", updated, id_),
            ]
            lease = execution.lease_expires_at
            if st == "running" and lease is not None:
                commands.append(("ZADD", f"{p}i:lease", _micros(lease), id_))
            elif old == "running":
                commands.append(("ZREM", f"{p}i:lease", id_))
            return commands

        first: list[tuple[Any, ...]] = [
            ("DEL", log),
            (
                "HSET",
                record,
                *("f", b"{}", "in", b"{}", "wf", wf, "b", created.seq),
                *("v", created.version, "s", created.seq, "st", created.status.value),
                *("w", b"w0", "d", _state_text(created)),
            ),
            *indexes(created, None),
        ]
        steps = []
        old = created.status.value
        for number, (execution, entries, _) in enumerate(checkpoints, 1):
            commands: list[tuple[Any, ...]] = [
                (
                    "HSET",
                    record,
                    *("v", execution.version, "s", execution.seq),
                    *("st", execution.status.value, "w", b"w%d" % number),
                    *("d", _state_text(execution)),
                )
            ]
            if entries:
                commands.append(("RPUSH", log, *(_entry_text(entry) for entry in entries)))
            commands += indexes(execution, old)
            old = execution.status.value
            steps.append(commands)
        return self._packed(first), [self._packed(commands) for commands in steps]

    def _packed(self, commands: list[tuple[Any, ...]]) -> tuple[list[bytes], int]:
        everything = [("MULTI",), *commands, ("EXEC",)]
        return self.connection.pack_commands(everything), len(everything)

    def _send(self, packed: tuple[list[bytes], int]) -> None:
        chunks, replies = packed
        connection = self.connection
        connection.send_packed_command(chunks, check_health=False)
        for _ in range(replies - 1):
            connection.read_response()
        done = connection.read_response()
        if not isinstance(done, list):
            raise RuntimeError(f"raw MULTI/EXEC failed: {done!r}")

    def run(self, prepared: Any, *, timed_create: bool = False) -> float:
        first, steps = prepared
        send = self._send
        if not timed_create:
            send(first)
        gc.collect()
        started = time.perf_counter()
        if timed_create:
            send(first)
        for packed in steps:
            send(packed)
        return time.perf_counter() - started

    def close(self) -> None:
        self.client.connection_pool.release(self.connection)
        self.client.close()


# --- concurrency.py and datasize.py: stores and provenance --------------------------------------


def open_store(url: str, prefix: str = "") -> Any:
    """A flowkit store for ``url`` (``memory://``, SQL or Redis), with ``prefix`` for its
    tables or keys so that a run leaves nothing behind that it cannot find."""
    if url.startswith("memory:"):
        return MemoryStore(warn=False)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from flowkit.backends.redis import RedisStore

        return RedisStore(url, **({"prefix": prefix} if prefix else {}))
    return SQLStore(url, **({"prefix": prefix} if prefix else {}))


def store_settings(store: Any) -> dict[str, Any]:
    """What matters for durability and concurrency, read back from the store's own
    connection: SQLite's journal and ``synchronous``, PostgreSQL's
    ``synchronous_commit``, the SQLAlchemy pool's size."""
    engine = getattr(store, "engine", None)
    if engine is None:
        return {}
    found: dict[str, Any] = {"pool_size": getattr(engine.pool, "size", lambda: None)()}
    with engine.connect() as connection:
        name = engine.dialect.name
        if name == "sqlite":
            names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            driver = connection.connection.dbapi_connection
            (synchronous,) = driver.execute("PRAGMA synchronous").fetchone()
            (journal,) = driver.execute("PRAGMA journal_mode").fetchone()
            found |= {"synchronous": names.get(synchronous, synchronous), "journal_mode": journal}
        elif name == "postgresql":
            for setting in ("synchronous_commit", "server_version"):
                found[setting] = connection.exec_driver_sql(f"SHOW {setting}").scalar()
        else:
            found["server_version"] = connection.exec_driver_sql("SELECT VERSION()").scalar()
    return found


def drop_store(store: Any, prefix: str) -> None:
    """Remove what a run left in a server-backed store: the SQL tables whose names start
    with ``prefix``, or the Redis keys under it. SQLite files and memory are left alone."""
    if not prefix:
        return
    engine = getattr(store, "engine", None)
    if engine is not None:
        if engine.dialect.name == "sqlite":
            return
        import sqlalchemy as sa

        quote = engine.dialect.identifier_preparer.quote
        names = [n for n in sa.inspect(engine).get_table_names() if n.startswith(prefix)]
        with engine.begin() as connection:
            # Entries first: they may refer to executions.
            for name in sorted(names, key=lambda n: "entries" not in n):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)}")
        return
    client = getattr(store, "client", None)
    if client is not None:
        batch = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(batch), 1000):
            client.delete(*batch[start : start + 1000])


def provenance() -> dict[str, Any]:
    """Which flowkit this process imports: its file, version and git commit, with the
    files changed under ``flowkit/`` since (``git status --porcelain``), so that runs
    against different checkouts, or the same one at different times, can be told apart."""
    import subprocess
    from pathlib import Path

    package = Path(flowkit.__file__).resolve().parent
    found: dict[str, Any] = {
        "flowkit_file": str(package / "__init__.py"),
        "flowkit_version": getattr(flowkit, "__version__", "?"),
    }

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(package.parent), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return done.stdout.rstrip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    if commit:
        found |= {
            "git_commit": commit,
            "git_subject": git("log", "-1", "--format=%s")[:100],
            "git_changed_under_flowkit": git("status", "--porcelain", "--", "flowkit").splitlines(),
        }
    return found

"""Per-step cost of flowkit's SQL stores next to the raw cost of the same writes.

For each database (SQLite with synchronous=FULL and NORMAL, PostgreSQL, MariaDB):
  - flowkit: a 100-step workflow of trivial call steps run by ``flowkit.Engine``
    (inline executor) on the store: µs per step (run time / 101 steps, the start
    step included; the run also creates the execution);
  - store: the same checkpoints (records and entries captured from such a run)
    written with ``store.checkpoint`` alone: the adapter without the engine;
  - raw: the same writes with the driver alone, no flowkit and no SQLAlchemy:
    per step one transaction with one version-guarded UPDATE and one INSERT,
    same tables, same indexes, same JSON text (encoded before timing);
  - memory: the engine on ``memory://``, i.e. the engine's own overhead.
All in one run; min/median/max over ``--repeat`` repetitions (≥ 5), one workflow
each; ratios use medians. Prints a table and writes bench/results/stores.json.

Usage: python bench/stores.py [--repeat 7] [--only sqlite-full,postgresql] [--profile NAME]
Servers (loopback): FLOWKIT_BENCH_POSTGRESQL_URL (default
postgresql://postgres@127.0.0.1:5432/test), FLOWKIT_BENCH_MYSQL_URL (default
mysql://root@127.0.0.1:3306/test). Tables use a unique prefix and are dropped.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa

import flowkit
from flowkit import Entry, Execution
from flowkit.backends.memory import MemoryStore
from flowkit.backends.sqlalchemy import SQLStore

RESULTS = Path(__file__).parent / "results"
STEPS = 100
POSTGRESQL_URL = os.environ.get(
    "FLOWKIT_BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("FLOWKIT_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def chain(n: int) -> flowkit.WorkflowDef:
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


class Recording(MemoryStore):
    """A memory store that keeps every checkpoint it is given."""

    def __init__(self) -> None:
        super().__init__(warn=False)
        self.created: list[Execution] = []
        self.writes: list[tuple[Execution, list[Entry], int]] = []

    def create(self, execution: Execution) -> None:
        self.created.append(execution)
        super().create(execution)

    def checkpoint(
        self, execution: Execution, entries: Sequence[Entry], expected_version: int
    ) -> None:
        self.writes.append((execution, list(entries), expected_version))
        super().checkpoint(execution, entries, expected_version)


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "max": max(samples),
    }


# --- flowkit -----------------------------------------------------------------------------------


def time_engine(engine: flowkit.Engine, wf: flowkit.WorkflowDef) -> float:
    """One run: µs per step."""
    gc.collect()
    started = time.perf_counter()
    result = engine.run(wf)
    elapsed = time.perf_counter() - started
    assert result.completed, result.error
    return elapsed / (STEPS + 1) * 1e6


def _renamed(
    created: Execution, writes: list[tuple[Execution, list[Entry], int]]
) -> tuple[Execution, list[tuple[Execution, list[Entry], int]]]:
    new_id = uuid.uuid4().hex
    renamed = [
        (
            attrs.evolve(record, id=new_id),
            [attrs.evolve(e, id=f"{new_id}:{e.seq}", execution_id=new_id) for e in entries],
            expected,
        )
        for record, entries, expected in writes
    ]
    return attrs.evolve(created, id=new_id), renamed


def time_store(
    store: SQLStore, created: Execution, writes: list[tuple[Execution, list[Entry], int]]
) -> float:
    """The checkpoints of one run through ``store.checkpoint`` alone: µs per step."""
    first, batch = _renamed(created, writes)
    store.create(first)
    gc.collect()
    started = time.perf_counter()
    for record, entries, expected in batch:
        store.checkpoint(record, entries, expected)
    elapsed = time.perf_counter() - started
    return elapsed / len(batch) * 1e6


# --- raw: the driver alone ---------------------------------------------------------------------


def _raw_rows(
    store: SQLStore, created: Execution, writes: list[tuple[Execution, list[Entry], int]]
) -> tuple[tuple[Any, ...], list[tuple[tuple[Any, ...], tuple[Any, ...]]]]:
    """Parameters for the raw statements, prepared (and JSON-encoded) before timing."""
    first, batch = _renamed(created, writes)
    steps = []
    for record, entries, expected in batch:
        update = store._update_row(record, expected, record.seq - len(entries))
        # Raw writes one entry per step (every step of this workflow writes one).
        assert len(entries) <= 1
        entry = store._entry_row(entries[0]) if entries else ()
        steps.append((update, entry))
    return store._execution_row(first), steps


class Raw:
    """One database's raw writes: a DBAPI connection and plain SQL."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        sql = store._sql
        self.insert_execution = sql.insert_execution
        self.update = sql.update
        self.insert_entry = sql.insert_entries(1)
        self.connection = self.connect()

    def connect(self) -> Any:
        raise NotImplementedError

    def begin(self, cursor: Any) -> None:
        pass

    def run(self, created: tuple[Any, ...], steps: list[tuple[tuple[Any, ...], Any]]) -> float:
        connection = self.connection
        cursor = connection.cursor()
        self.begin(cursor)
        cursor.execute(self.insert_execution, created)
        connection.commit()
        update_sql, insert_sql, begin = self.update, self.insert_entry, self.begin
        gc.collect()
        started = time.perf_counter()
        for update, entry in steps:
            begin(cursor)
            cursor.execute(update_sql, update)
            if cursor.rowcount != 1:
                raise RuntimeError("raw update matched no row")
            if entry:
                cursor.execute(insert_sql, entry)
            connection.commit()
        elapsed = time.perf_counter() - started
        cursor.close()
        return elapsed / len(steps) * 1e6

    def close(self) -> None:
        self.connection.close()


class RawSQLite(Raw):
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


class RawPostgres(Raw):
    """psycopg, one transaction: UPDATE, INSERT, COMMIT (three round trips)."""

    def connect(self) -> Any:
        import psycopg

        url = self.store.engine.url
        return psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, dbname=url.database
        )


class RawPostgresOneStatement(RawPostgres):
    """psycopg in autocommit, the UPDATE and INSERT as one statement (one round trip)."""

    def __init__(self, store: SQLStore) -> None:
        super().__init__(store)
        self.connection.autocommit = True
        self.statement = store._sql.checkpoint_statement(1)  # type: ignore[attr-defined]

    def run(self, created: tuple[Any, ...], steps: list[tuple[tuple[Any, ...], Any]]) -> float:
        connection = self.connection
        cursor = connection.cursor()
        cursor.execute(self.insert_execution, created)
        statement = self.statement
        gc.collect()
        started = time.perf_counter()
        for update, entry in steps:
            cursor.execute(statement, (*update, *entry[1:]))
            if cursor.rowcount != 1:
                raise RuntimeError("raw statement matched no row")
        elapsed = time.perf_counter() - started
        cursor.close()
        return elapsed / len(steps) * 1e6


class RawMySQL(Raw):
    def connect(self) -> Any:
        import pymysql

        url = self.store.engine.url
        connection = pymysql.connect(
            host=url.host, port=url.port or 3306, user=url.username, database=url.database
        )
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return connection


def time_raw(
    raw: Raw, created: Execution, writes: list[tuple[Execution, list[Entry], int]]
) -> float:
    first, steps = _raw_rows(raw.store, created, writes)
    return raw.run(first, steps)


# --- the run -----------------------------------------------------------------------------------


def backends(directory: Path) -> dict[str, tuple[str, type[Raw], type[Raw] | None]]:
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    return {
        "sqlite-full": (f"sqlite:///{directory}/full.db?synchronous=full", RawSQLite, None),
        "sqlite-normal": (f"sqlite:///{directory}/normal.db?synchronous=normal", RawSQLite, None),
        "postgresql": (
            f"{POSTGRESQL_URL}?prefix={prefix}",
            RawPostgres,
            RawPostgresOneStatement,
        ),
        "mariadb": (f"{MYSQL_URL}?prefix={prefix}", RawMySQL, None),
    }


def drop(store: SQLStore) -> None:
    if store.engine.dialect.name == "sqlite":
        return
    quote = store.engine.dialect.identifier_preparer.quote
    with store.engine.begin() as connection:
        for name in ("entries", "executions", "schema_version"):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(store.prefix + name)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated backend names")
    parser.add_argument("--profile", default="", help="profile the flowkit run on this backend")
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be 5 or more")

    services = flowkit.ServiceRegistry()
    services.register("Bench", {"noop": lambda i: i})
    wf = chain(STEPS)

    recording = Recording()
    memory_engine = flowkit.Engine(store=recording, services=services)
    memory_engine.run(wf)
    created, writes = recording.created[0], list(recording.writes)
    samples = [time_engine(memory_engine, wf) for _ in range(args.repeat)]
    rows: dict[str, Any] = {"memory (engine only)": {"flowkit": stats(samples)}}
    memory_engine.close()

    with tempfile.TemporaryDirectory() as tmp:
        chosen = backends(Path(tmp))
        names = [n for n in args.only.split(",") if n] or list(chosen)
        for name in names:
            url, raw_kind, extra_kind = chosen[name]
            store = SQLStore(url)
            raws: list[Raw] = []
            try:
                engine = flowkit.Engine(store=store, services=services)
                if args.profile == name:
                    profile(engine, wf)
                raws = [raw_kind(store)] + ([extra_kind(store)] if extra_kind else [])
                measures: dict[str, Callable[[], float]] = {
                    "flowkit": partial(time_engine, engine, wf),
                    "store": partial(time_store, store, created, writes),
                    "raw": partial(time_raw, raws[0], created, writes),
                }
                if extra_kind is not None:
                    measures["raw_one_statement"] = partial(time_raw, raws[1], created, writes)
                found: dict[str, list[float]] = {key: [] for key in measures}
                # Interleaved, so that every kind sees the same disk and server conditions;
                # the first round warms caches, pools and prepared statements up.
                for round_number in range(args.repeat + 1):
                    for key, measure in measures.items():
                        sample = measure()
                        if round_number:
                            found[key].append(sample)
                row: dict[str, Any] = {key: stats(values) for key, values in found.items()}
                row["ratio_flowkit_raw"] = row["flowkit"]["median"] / row["raw"]["median"]
                row["ratio_store_raw"] = row["store"]["median"] / row["raw"]["median"]
                rows[name] = row
                engine.close()
            finally:
                for raw in raws:
                    raw.close()
                drop(store)
                store.close()

    report(rows)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "stores.json"
    out.write_text(
        json.dumps(
            {
                "python": sys.version,
                "machine": platform.machine(),
                "sqlalchemy": sa.__version__,
                "steps": STEPS + 1,
                "repeat": args.repeat,
                "unit": "µs per step",
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


def _fmt(cell: dict[str, float] | None) -> str:
    if cell is None:
        return f"{'-':>22}"
    return f"{cell['min']:>6.0f} {cell['median']:>7.0f} {cell['max']:>7.0f}"


def report(rows: dict[str, Any]) -> None:
    print(f"µs per step, min / median / max (python {platform.python_version()})")
    header = (
        f"{'store':<22} {'flowkit (engine)':>22} {'store.checkpoint':>22} "
        f"{'raw (tx)':>22} {'flowkit/raw':>11} {'store/raw':>9}"
    )
    print(header)
    for name, row in rows.items():
        ratio = f"{row['ratio_flowkit_raw']:>11.2f}" if "ratio_flowkit_raw" in row else " " * 11
        store_ratio = f"{row['ratio_store_raw']:>9.2f}" if "ratio_store_raw" in row else ""
        print(
            f"{name:<22} {_fmt(row['flowkit'])} {_fmt(row.get('store'))} "
            f"{_fmt(row.get('raw'))} {ratio} {store_ratio}"
        )
        if "raw_one_statement" in row:
            one = _fmt(row["raw_one_statement"])
            print(f"{'  raw, one statement':<22} {'':>22} {'':>22} {one}")


def profile(engine: flowkit.Engine, wf: flowkit.WorkflowDef) -> None:
    engine.run(wf)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(20):
        engine.run(wf)
    profiler.disable()
    stream_stats = pstats.Stats(profiler)
    stream_stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()

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

Redis (``--only redis``): the same flowkit and store columns; raw is one
MULTI/EXEC per step with the writes the store's checkpoint script makes (HSET of
the record's fields, RPUSH of the entry's JSON, ZADD to the indexes; see
``_common.RawRedis``); then ``find(status="halted", limit=100)`` (and the other
queries) timed with ``--find-size`` executions (100,000) in the store. Also
"raw, SET+RPUSH+ZADD": the floor the Redis issue names, per step one MULTI/EXEC
through a redis-py pipeline with SET (the record's JSON) + RPUSH (the entry) +
ZADD (one index).

Usage: python bench/stores.py [--repeat 7] [--only sqlite-full,postgresql] [--profile NAME]
Servers (loopback): FLOWKIT_BENCH_POSTGRESQL_URL (default
postgresql://postgres@127.0.0.1:5432/test), FLOWKIT_BENCH_MYSQL_URL (default
mysql://root@127.0.0.1:3306/test), FLOWKIT_BENCH_REDIS_URL (default
redis://127.0.0.1:6379/0). Tables use a unique prefix and are dropped; Redis keys
use a unique prefix and are deleted.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import (
    Raw,
    RawMySQL,
    RawPostgres,
    RawPostgresOneStatement,
    RawRedis,
    RawSQL,
    RawSQLite,
    Recording,
    Writes,
    chain,
    replay_store,
    services,
    stats,
)

import flowkit
from flowkit import Execution, Status
from flowkit.backends.sqlalchemy import SQLStore

RESULTS = Path(__file__).parent / "results"
STEPS = 100
POSTGRESQL_URL = os.environ.get(
    "FLOWKIT_BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("FLOWKIT_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("FLOWKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


# --- flowkit -----------------------------------------------------------------------------------


def time_engine(engine: flowkit.Engine, wf: flowkit.WorkflowDef) -> float:
    """One run: µs per step."""
    gc.collect()
    started = time.perf_counter()
    result = engine.run(wf)
    elapsed = time.perf_counter() - started
    assert result.completed, result.error
    return elapsed / (STEPS + 1) * 1e6


def time_store(store: Any, writes: Writes) -> float:
    """The checkpoints of one run through ``store.checkpoint`` alone: µs per step."""
    return replay_store(store, writes) / len(writes[1]) * 1e6


def time_raw(raw: Raw, writes: Writes) -> float:
    """The same writes with the driver alone: µs per step."""
    return raw.replay(writes) / len(writes[1]) * 1e6


def interleaved(measures: dict[str, Callable[[], float]], repeat: int) -> dict[str, Any]:
    """Each measure ``repeat`` times, interleaved, so that every kind sees the same disk
    and server conditions; a first round (not kept) warms caches, pools and statements."""
    found: dict[str, list[float]] = {key: [] for key in measures}
    for round_number in range(repeat + 1):
        for key, measure in measures.items():
            sample = measure()
            if round_number:
                found[key].append(sample)
    row: dict[str, Any] = {key: stats(values) for key, values in found.items()}
    row["ratio_flowkit_raw"] = row["flowkit"]["median"] / row["raw"]["median"]
    row["ratio_store_raw"] = row["store"]["median"] / row["raw"]["median"]
    return row


# --- Redis -------------------------------------------------------------------------------------


def time_raw_multi(client: Any, prefix: str, writes: Writes) -> float:
    """redis-py alone, per step one MULTI/EXEC pipeline with SET + RPUSH + ZADD: µs per step."""
    from _common import renamed

    from flowkit.backends.redis._store import _entry_text, _micros, _state_text

    created, checkpoints = renamed(writes)
    keys = [f"{prefix}raw:{kind}:{created.id}" for kind in ("e", "l", "i")]
    steps = [
        (_state_text(record), [_entry_text(e) for e in entries], int(_micros(record.updated_at)))
        for record, entries, _ in checkpoints
    ]
    record_key, log_key, index_key = keys
    gc.collect()
    started = time.perf_counter()
    for state, entries, score in steps:
        pipe = client.pipeline(transaction=True)
        pipe.set(record_key, state)
        if entries:
            pipe.rpush(log_key, *entries)
        pipe.zadd(index_key, {created.id: score})
        pipe.execute()
    elapsed = time.perf_counter() - started
    client.delete(*keys)
    return elapsed / len(steps) * 1e6


def bench_redis(
    args: argparse.Namespace,
    registry: flowkit.ServiceRegistry,
    wf: flowkit.WorkflowDef,
    writes: Writes,
) -> dict[str, Any]:
    from flowkit.backends.redis import RedisStore

    prefix = f"flowkit_bench_{uuid.uuid4().hex[:8]}:"
    store = RedisStore(REDIS_URL, prefix=prefix)
    raw = RawRedis(REDIS_URL, prefix)
    try:
        engine = flowkit.Engine(store=store, services=registry)
        if args.profile == "redis":
            profile(engine, wf)
        row = interleaved(
            {
                "flowkit": partial(time_engine, engine, wf),
                "store": partial(time_store, store, writes),
                "raw": partial(time_raw, raw, writes),
                "raw_set_rpush_zadd": partial(time_raw_multi, store.client, prefix, writes),
            },
            args.repeat,
        )
        multi = row["raw_set_rpush_zadd"]["median"]
        row["ratio_flowkit_raw_set_rpush_zadd"] = row["flowkit"]["median"] / multi
        row["ratio_store_raw_set_rpush_zadd"] = row["store"]["median"] / multi
        engine.close()
        if args.find_size:
            row["queries"] = time_queries(store, args.find_size, args.repeat)
        return row
    finally:
        raw.close()
        client = store.client
        for keys in _batches(client.scan_iter(match=f"{prefix}*", count=1000), 1000):
            client.delete(*keys)
        store.close()


def _batches(items: Any, size: int) -> Any:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def time_queries(store: Any, size: int, repeat: int) -> dict[str, Any]:
    """ms per query with ``size`` executions in the store (a tenth of them halted with a
    timer, a tenth running with a lease, the rest completed; ten workflow ids)."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    for number in range(size):
        kind = number % 10
        status = {0: Status.HALTED, 1: Status.RUNNING}.get(kind, Status.COMPLETED)
        store.create(
            Execution(
                id=f"q{number}",
                workflow_id=f"wf{number % 10}",
                status=status,
                created_at=now,
                updated_at=now + timedelta(microseconds=number),
                wake_at=now - timedelta(seconds=1) if kind == 0 else None,
                lease_owner="bench" if kind == 1 else None,
                lease_expires_at=now - timedelta(seconds=1) if kind == 1 else None,
            )
        )
    populated = time.perf_counter() - started
    queries: dict[str, Callable[[], Any]] = {
        'find(status="halted", limit=100)': lambda: store.find(status="halted", limit=100),
        "find(limit=100)": lambda: store.find(limit=100),
        'find(workflow_id="wf3", limit=100)': lambda: store.find(workflow_id="wf3", limit=100),
        "due(now, limit=100)": lambda: store.due(datetime.now(UTC), limit=100),
        "stale(now, limit=100)": lambda: store.stale(datetime.now(UTC), limit=100),
    }
    timings: dict[str, Any] = {}
    for name, query in queries.items():
        query()
        samples = []
        for _ in range(repeat):
            began = time.perf_counter()
            found = query()
            samples.append((time.perf_counter() - began) * 1e3)
            assert len(found) == 100, (name, len(found))
        timings[name] = stats(samples)
    return {"executions": size, "populate_s": populated, "queries": timings}


# --- the run -----------------------------------------------------------------------------------


def backends(
    directory: Path,
) -> dict[str, tuple[str, type[RawSQL], type[RawSQL] | None]]:
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
    parser.add_argument(
        "--find-size", type=int, default=100_000, help="Redis: executions for the query timings"
    )
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be 5 or more")

    registry = services()
    wf = chain(STEPS)

    recording = Recording()
    memory_engine = flowkit.Engine(store=recording, services=registry)
    memory_engine.run(wf)
    writes: Writes = (recording.created[0], list(recording.writes))
    samples = [time_engine(memory_engine, wf) for _ in range(args.repeat)]
    rows: dict[str, Any] = {"memory (engine only)": {"flowkit": stats(samples)}}
    memory_engine.close()

    with tempfile.TemporaryDirectory() as tmp:
        chosen = backends(Path(tmp))
        names = [n for n in args.only.split(",") if n] or [*chosen, "redis"]
        for name in names:
            if name == "redis":
                rows[name] = bench_redis(args, registry, wf, writes)
                continue
            url, raw_kind, extra_kind = chosen[name]
            store = SQLStore(url)
            raws: list[RawSQL] = []
            try:
                engine = flowkit.Engine(store=store, services=registry)
                if args.profile == name:
                    profile(engine, wf)
                raws = [raw_kind(store)] + ([extra_kind(store)] if extra_kind else [])
                measures: dict[str, Callable[[], float]] = {
                    "flowkit": partial(time_engine, engine, wf),
                    "store": partial(time_store, store, writes),
                    "raw": partial(time_raw, raws[0], writes),
                }
                if extra_kind is not None:
                    measures["raw_one_statement"] = partial(time_raw, raws[1], writes)
                row = interleaved(measures, args.repeat)
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
        if "raw_set_rpush_zadd" in row:
            multi = _fmt(row["raw_set_rpush_zadd"])
            ratios = (
                f"{row['ratio_flowkit_raw_set_rpush_zadd']:>11.2f} "
                f"{row['ratio_store_raw_set_rpush_zadd']:>9.2f}"
            )
            print(f"{'  raw, SET+RPUSH+ZADD':<22} {'':>22} {'':>22} {multi} {ratios}")
        if "queries" in row:
            queries = row["queries"]
            print(
                f"  {name}: ms per query with {queries['executions']:,} executions "
                f"(min / median / max; populated in {queries['populate_s']:.0f} s)"
            )
            for query, cell in queries["queries"].items():
                print(
                    f"    {query:<36} {cell['min']:>7.2f} {cell['median']:>7.2f} "
                    f"{cell['max']:>7.2f}"
                )


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

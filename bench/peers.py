"""flowkit next to DBOS Transact and LangGraph, on the same stores, in one run (issue #8).

Workloads, each run once per repetition by every contestant:
  - chain10, chain100: a workflow of N trivial sequential steps (flowkit: a start
    step and N call steps; DBOS: a ``@DBOS.workflow`` calling N ``@DBOS.step``
    functions; LangGraph: a graph of N nodes in a chain);
  - loop1000: a 1,000-iteration loop (flowkit: a ``loop`` step over 1,000 items
    with one call step in its body; DBOS: a workflow calling one step 1,000
    times; LangGraph: one node cycling through a conditional edge 1,000 times).

Contestants, by store (each in its own process, one store file, table prefix or key
prefix each; PostgreSQL in a scratch database made for the run and dropped after):
  - SQLite (a file; synchronous=FULL everywhere, checked on each connection):
    flowkit (WAL), DBOS (its default rollback journal, and with the file put in
    WAL), LangGraph's SqliteSaver (WAL, which it sets itself) with
    ``durability="sync"`` and with its default ``"async"``, the raw floor (WAL);
  - PostgreSQL (synchronous_commit=on, the server's default, for everyone):
    flowkit, DBOS, LangGraph's PostgresSaver (sync and async), the raw floor as
    one statement (what the store sends) and as UPDATE + INSERT in a transaction;
  - Redis (if flowkit's Redis store is installed): flowkit and the raw floor;
  - memory (in process, no I/O: the engines' own overhead, issue #16 item 3):
    flowkit on ``memory://`` and LangGraph's InMemorySaver (sync and async).
  Plus, as diagnostics: flowkit's engine alone (on a store that keeps the objects
  it is given and encodes nothing), flowkit's store adapter alone
  (``store.checkpoint`` replaying a run's checkpoints, no engine) and, on SQLite,
  the engine alone on a store that sleeps 200 µs per checkpoint next to the
  sleeps alone (what Python work costs after the process blocked, as it does on
  every fsync or round trip).

Per repetition, from the same round's runs: µs per step = (run(100) - run(10)) / 90,
fixed overhead per workflow = run(10) - 10 x µs per step; µs per loop iteration =
run(loop1000) / 1,000: min / median / max over ``--repeat`` (≥ 5) repetitions.
"Best" uses the fastest run of each workload instead (noise from other work on
the machine only ever adds time). Ratios are given on medians and on best runs.
Every round runs each workload on every contestant in turn (in a rotating order),
so that noise from the machine hits all of them alike; a first round, not kept,
warms everything up.

Writes bench/results/peers.json and bench/results/peers.md.

Usage: python bench/peers.py [--repeat 9] [--only sqlite,postgresql,redis,memory] [--profile]
       python bench/peers.py --from-json bench/results/peers.json   # the table again
Servers (loopback): FLOWKIT_BENCH_POSTGRESQL_ADMIN_URL (default
postgresql://postgres@127.0.0.1:5432/postgres; used to create and drop the scratch
database), FLOWKIT_BENCH_REDIS_URL (default redis://127.0.0.1:6379/9; keys use a
unique prefix and are deleted).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import pstats
import sqlite3
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    NullStore,
    Raw,
    RawPostgres,
    RawPostgresOneStatement,
    RawRedis,
    RawSQLite,
    Writes,
    chain,
    loop,
    record,
    replay_store,
    services,
    stats,
)

RESULTS = Path(__file__).parent / "results"
ADMIN_URL = os.environ.get(
    "FLOWKIT_BENCH_POSTGRESQL_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FLOWKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
#: The workloads: name -> number of steps (or loop iterations).
CASES = {"chain10": 10, "chain100": 100, "loop1000": 1000}
SHORT, LONG = 10, 100
LOOP = 1000
#: How long one command to a contestant may take before the bench gives up on it.
TIMEOUT = 900.0

#: Contestant kinds: who, and what the row is for.
FLOWKIT, PEER, FLOOR, DIAGNOSTIC = "flowkit", "peer", "floor", "diagnostic"


# --- contestants (each runs in a process of its own) ------------------------------------------


class Contestant:
    """Runs the workloads on one store; lives in a worker process."""

    def setup(self) -> dict[str, Any]:
        """Prepare; returns the settings that matter for durability, as found."""
        return {}

    def run(self, case: str) -> float:
        """Run one workload once; seconds."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def _workflows() -> dict[str, tuple[Any, dict[str, Any]]]:
    return {
        "chain10": (chain(SHORT), {}),
        "chain100": (chain(LONG), {}),
        "loop1000": (loop(LOOP), {"items": list(range(LOOP))}),
    }


def _sqlite_settings(connection: Any) -> dict[str, Any]:
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    (synchronous,) = connection.execute("PRAGMA synchronous").fetchone()
    (journal,) = connection.execute("PRAGMA journal_mode").fetchone()
    return {
        "synchronous": names.get(synchronous, synchronous),
        "journal_mode": str(journal).upper(),
        "sqlite": sqlite3.sqlite_version,
    }


def _postgres_settings(execute: Callable[[str], Any]) -> dict[str, Any]:
    return {
        "synchronous_commit": execute("SHOW synchronous_commit"),
        "fsync": execute("SHOW fsync"),
        "server": execute("SHOW server_version"),
    }


class Flowkit(Contestant):
    """``flowkit.Engine`` (inline executor) on a store."""

    def __init__(self, url: str, prefix: str = "") -> None:
        self.url, self.prefix = url, prefix

    def open_store(self) -> Any:
        if self.url == "null://":
            return NullStore()
        if self.url == "sleeping://":
            return SleepingStore()
        if self.url == "memory://":
            from flowkit.backends.memory import MemoryStore

            return MemoryStore(warn=False)
        if self.url.startswith(("redis://", "rediss://", "unix://")):
            from flowkit.backends.redis import RedisStore

            return RedisStore(self.url, prefix=self.prefix)
        from flowkit.backends.sqlalchemy import SQLStore

        return SQLStore(self.url, **({"prefix": self.prefix} if self.prefix else {}))

    def setup(self) -> dict[str, Any]:
        import flowkit

        self.store = self.open_store()
        self.engine = flowkit.Engine(store=self.store, services=services())
        self.workflows = _workflows()
        return {"flowkit": flowkit.__version__, **self.settings()}

    def settings(self) -> dict[str, Any]:
        engine = getattr(self.store, "engine", None)
        if engine is None:
            return {}
        with engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            if engine.dialect.name == "sqlite":
                return _sqlite_settings(driver)
            return _postgres_settings(lambda sql: connection.exec_driver_sql(sql).scalar())

    def run(self, case: str) -> float:
        wf, data = self.workflows[case]
        gc.collect()
        started = time.perf_counter()
        result = self.engine.run(wf, data)
        elapsed = time.perf_counter() - started
        assert result.completed, result.error
        return elapsed

    def profile(self, runs: int) -> dict[str, Any]:
        """cProfile ``runs`` runs of chain100, summarized by layer (µs per step)."""
        wf, data = self.workflows["chain100"]
        self.engine.run(wf, data)
        profiler = cProfile.Profile()
        gc.collect()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(runs):
            self.engine.run(wf, data)
        profiler.disable()
        profiled = time.perf_counter() - started
        gc.collect()
        started = time.perf_counter()
        for _ in range(runs):
            self.engine.run(wf, data)
        plain = time.perf_counter() - started
        return summarize(pstats.Stats(profiler), runs * (LONG + 1), profiled, plain)

    def close(self) -> None:
        self.engine.close()
        self.store.close()


#: How long the sleeping diagnostics block per checkpoint (about an fsync here).
SLEEP = 0.0002


class SleepingStore(NullStore):
    """:class:`NullStore` that blocks in the kernel for :data:`SLEEP` per checkpoint, as a
    store blocks on its fsync or round trip, with no work of its own."""

    def checkpoint(
        self,
        execution: Any,
        entries: Any,
        expected_version: int,
        *,
        changed: Any = None,
        consumed: Any = (),
    ) -> None:
        super().checkpoint(execution, entries, expected_version, changed=changed, consumed=consumed)
        time.sleep(SLEEP)


class Sleeps(Contestant):
    """Only the sleeps of :class:`SleepingStore`, as many as a run has checkpoints."""

    def setup(self) -> dict[str, Any]:
        self.counts = {case: len(record(wf, data)[1]) for case, (wf, data) in _workflows().items()}
        return {}

    def run(self, case: str) -> float:
        sleep, count = time.sleep, self.counts[case]
        gc.collect()
        started = time.perf_counter()
        for _ in range(count):
            sleep(SLEEP)
        return time.perf_counter() - started


class Adapter(Flowkit):
    """flowkit's store adapter alone: ``store.create`` + ``store.checkpoint`` replaying the
    writes of a run (captured on memory://), no engine."""

    def setup(self) -> dict[str, Any]:
        settings = super().setup()
        self.writes = {case: record(wf, data) for case, (wf, data) in self.workflows.items()}
        return settings

    def run(self, case: str) -> float:
        return replay_store(self.store, self.writes[case], timed_create=True)


class Floor(Contestant):
    """The raw floor: the same writes as flowkit's with the driver alone."""

    def __init__(self, url: str, prefix: str, kind: str) -> None:
        self.url, self.prefix, self.kind = url, prefix, kind

    def setup(self) -> dict[str, Any]:
        self.writes: dict[str, Writes] = {
            case: record(wf, data) for case, (wf, data) in _workflows().items()
        }
        self.store: Any = None
        if self.kind == "redis":
            self.raw: Raw = RawRedis(self.url, self.prefix)
            return {}
        from flowkit.backends.sqlalchemy import SQLStore

        # The store creates the tables and provides the statements; the raw writes
        # go through a connection of their own.
        self.store = SQLStore(self.url, **({"prefix": self.prefix} if self.prefix else {}))
        kinds: dict[str, type[RawSQLite | RawPostgres]] = {
            "sqlite": RawSQLite,
            "postgresql-tx": RawPostgres,
            "postgresql-one": RawPostgresOneStatement,
        }
        self.raw = raw = kinds[self.kind](self.store)
        connection = raw.connection  # type: ignore[attr-defined]
        if self.kind == "sqlite":
            return _sqlite_settings(connection)
        return _postgres_settings(lambda sql: connection.execute(sql).fetchone()[0])

    def run(self, case: str) -> float:
        return self.raw.replay(self.writes[case], timed_create=True)

    def close(self) -> None:
        self.raw.close()
        if self.store is not None:
            self.store.close()


class DBOSContestant(Contestant):
    """DBOS Transact: ``@DBOS.workflow`` functions calling ``@DBOS.step`` functions."""

    def __init__(self, url: str, *, wal: bool = False) -> None:
        self.url, self.wal = url, wal

    def setup(self) -> dict[str, Any]:
        from dbos import DBOS, DBOSConfig

        if self.wal:
            # WAL is a property of the database file: set it before DBOS opens it.
            path = self.url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
        steps = [DBOS.step(name=f"s{i}")(_identity) for i in range(LONG)]

        @DBOS.step(name="work")
        def work(i: int) -> int:
            return i

        @DBOS.workflow(name="chain")
        def chain_workflow(n: int) -> int:
            for i in range(n):
                steps[i](i)
            return n

        @DBOS.workflow(name="loop")
        def loop_workflow(n: int) -> int:
            for i in range(n):
                work(i)
            return n

        config: DBOSConfig = {
            "name": "flowkit-bench",
            "system_database_url": self.url,
            "log_level": "WARNING",
            "run_admin_server": False,
        }
        DBOS(config=config)
        DBOS.launch()
        self.dbos = DBOS
        self.calls = {
            "chain10": lambda: chain_workflow(SHORT),
            "chain100": lambda: chain_workflow(LONG),
            "loop1000": lambda: loop_workflow(LOOP),
        }
        import dbos._dbos as internals

        engine = internals._dbos_global_instance._sys_db.engine  # type: ignore[union-attr]
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                settings = _sqlite_settings(connection.connection.dbapi_connection)
            else:
                settings = _postgres_settings(lambda sql: connection.exec_driver_sql(sql).scalar())
        return {"dbos": importlib.metadata.version("dbos"), **settings}

    def run(self, case: str) -> float:
        call = self.calls[case]
        gc.collect()
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    def close(self) -> None:
        self.dbos.destroy()


def _identity(i: int) -> int:
    return i


class LangGraph(Contestant):
    """LangGraph: a graph of N nodes (or one cycling node), compiled with a checkpointer;
    one thread id per run."""

    def __init__(self, url: str, durability: str) -> None:
        self.url, self.durability = url, durability

    def setup(self) -> dict[str, Any]:
        from typing import TypedDict

        from langgraph.graph import END, START, StateGraph

        class State(TypedDict):
            i: int

        def step(state: State) -> dict[str, int]:
            return {"i": state["i"] + 1}

        def chain_graph(n: int) -> Any:
            graph = StateGraph(State)
            for k in range(n):
                graph.add_node(f"n{k}", step)
            graph.add_edge(START, "n0")
            for k in range(n - 1):
                graph.add_edge(f"n{k}", f"n{k + 1}")
            graph.add_edge(f"n{n - 1}", END)
            return graph.compile(checkpointer=self.saver)

        def loop_graph(n: int) -> Any:
            graph = StateGraph(State)
            graph.add_node("work", step)
            graph.add_edge(START, "work")
            graph.add_conditional_edges(
                "work", lambda state: "work" if state["i"] < n else END, ["work", END]
            )
            return graph.compile(checkpointer=self.saver)

        self.connection: Any = None
        if self.url == "memory://":
            from langgraph.checkpoint.memory import InMemorySaver

            self.saver: Any = InMemorySaver()
            settings: dict[str, Any] = {}
            package = "langgraph-checkpoint"
        elif self.url.startswith("sqlite:///"):
            from langgraph.checkpoint.sqlite import SqliteSaver

            # As SqliteSaver.from_conn_string opens it, with synchronous made explicit.
            self.connection = sqlite3.connect(
                self.url.removeprefix("sqlite:///"), check_same_thread=False
            )
            self.connection.execute("PRAGMA synchronous=FULL")
            self.saver = SqliteSaver(self.connection)
            self.saver.setup()
            settings = _sqlite_settings(self.connection)
            package = "langgraph-checkpoint-sqlite"
        else:
            import psycopg
            from langgraph.checkpoint.postgres import PostgresSaver
            from psycopg.rows import dict_row

            # As PostgresSaver.from_conn_string opens it.
            self.connection = psycopg.connect(
                self.url, autocommit=True, prepare_threshold=0, row_factory=dict_row
            )
            self.saver = PostgresSaver(self.connection)
            self.saver.setup()
            settings = _postgres_settings(
                lambda sql: next(iter(self.connection.execute(sql).fetchone().values()))
            )
            package = "langgraph-checkpoint-postgres"
        self.graphs = {
            "chain10": (chain_graph(SHORT), SHORT),
            "chain100": (chain_graph(LONG), LONG),
            "loop1000": (loop_graph(LOOP), LOOP),
        }
        return {
            "langgraph": importlib.metadata.version("langgraph"),
            package: importlib.metadata.version(package),
            "durability": self.durability,
            **settings,
        }

    def run(self, case: str) -> float:
        graph, n = self.graphs[case]
        config = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": n + 10}
        gc.collect()
        started = time.perf_counter()
        out = graph.invoke({"i": 0}, config, durability=self.durability)
        elapsed = time.perf_counter() - started
        assert out["i"] == n, out
        return elapsed

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def worker(connection: Any, make: Callable[[], Contestant]) -> None:
    """A contestant's process: answers ("run", case), ("profile", runs) and ("close",)."""
    try:
        contestant = make()
        connection.send(("ok", contestant.setup()))
    except BaseException:
        connection.send(("error", traceback.format_exc()))
        return
    while True:
        command, *args = connection.recv()
        try:
            if command == "close":
                contestant.close()
                connection.send(("ok", None))
                return
            if command == "run":
                connection.send(("ok", contestant.run(args[0])))
            elif command == "profile":
                connection.send(("ok", contestant.profile(args[0])))  # type: ignore[attr-defined]
        except BaseException:
            connection.send(("error", traceback.format_exc()))


# --- the profile, by layer ---------------------------------------------------------------------

LAYERS = (
    ("engine (flowkit core)", lambda f, n: "/flowkit/" in f and "/flowkit/backends/" not in f),
    ("store adapter (flowkit/backends)", lambda f, n: "/flowkit/backends/" in f),
    ("SQLAlchemy (pool checkout/checkin)", lambda f, n: "/sqlalchemy/" in f),
    (
        "driver + database (sqlite3, psycopg, redis-py, waiting)",
        lambda f, n: (
            "/psycopg" in f
            or "/redis/" in f
            or any(word in n for word in ("sqlite3", "psycopg", "select", "poll", "socket"))
        ),
    ),
    ("JSON encode/decode", lambda f, n: "/json/" in f or "_json" in n),
    ("attrs (records)", lambda f, n: "attrs generated" in f or "/attr/" in f or "/attrs/" in f),
)


def summarize(stats_: pstats.Stats, steps: int, profiled: float, plain: float) -> dict[str, Any]:
    """Own time by layer and the top functions, in µs per step (profiled time)."""
    raw: dict[Any, Any] = stats_.stats  # type: ignore[attr-defined]
    layers: dict[str, float] = {}
    top = []
    for (filename, line, name), (_, calls, own, cumulative, _) in raw.items():
        layer = next((label for label, test in LAYERS if test(filename, name)), "other")
        layers[layer] = layers.get(layer, 0.0) + own
        where = name if filename == "~" else f"{_short(filename)}:{line} {name}"
        top.append((own, cumulative, calls, where, layer))
    top.sort(reverse=True)
    total = sum(layers.values())
    return {
        "steps": steps,
        "profiled_us_per_step": profiled / steps * 1e6,
        "unprofiled_us_per_step": plain / steps * 1e6,
        "layers_us_per_step": {
            key: value / steps * 1e6 for key, value in sorted(layers.items(), key=lambda x: -x[1])
        },
        "total_own_us_per_step": total / steps * 1e6,
        "top": [
            {
                "function": where,
                "layer": layer,
                "own_us_per_step": own / steps * 1e6,
                "cumulative_us_per_step": cumulative / steps * 1e6,
                "calls_per_step": calls / steps,
            }
            for own, cumulative, calls, where, layer in top[:20]
        ],
    }


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.rsplit("/work/main/", 1)[-1]


# --- the run -----------------------------------------------------------------------------------


class Remote:
    """The bench's side of a contestant process."""

    def __init__(self, key: str, label: str, kind: str, make: Callable[[], Contestant]) -> None:
        self.key, self.label, self.kind = key, label, kind
        context = multiprocessing.get_context("spawn")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=worker, args=(theirs, make), daemon=True)
        self.process.start()
        self.settings = self.receive()

    def receive(self) -> Any:
        if not self.connection.poll(TIMEOUT):
            raise RuntimeError(f"{self.label}: no answer within {TIMEOUT:.0f} s")
        status, value = self.connection.recv()
        if status != "ok":
            raise RuntimeError(f"{self.label} failed:\n{value}")
        return value

    def call(self, *command: Any) -> Any:
        self.connection.send(command)
        return self.receive()

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.call("close")
            except Exception as exc:
                print(f"  {self.label}: close failed: {exc}", file=sys.stderr)
            self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def contestants(store: str, where: dict[str, str]) -> list[tuple[str, str, str, Any]]:
    """(key, label, kind, factory) of every contestant on ``store``."""
    prefix = f"fkb_{uuid.uuid4().hex[:6]}_"
    engine_alone = (
        "flowkit-engine",
        "flowkit engine alone (a store that keeps references)",
        DIAGNOSTIC,
    )
    if store == "memory":
        return [
            ("flowkit", "flowkit on memory://", FLOWKIT, partial(Flowkit, "memory://")),
            (*engine_alone, partial(Flowkit, "null://")),
            (
                "langgraph-sync",
                'LangGraph InMemorySaver, durability="sync"',
                PEER,
                partial(LangGraph, "memory://", "sync"),
            ),
            (
                "langgraph-async",
                'LangGraph InMemorySaver, durability="async" (its default)',
                PEER,
                partial(LangGraph, "memory://", "async"),
            ),
        ]
    if store == "sqlite":
        directory = where["directory"]
        return [
            ("flowkit", "flowkit", FLOWKIT, partial(Flowkit, f"sqlite:///{directory}/flowkit.db")),
            (
                "flowkit-adapter",
                "flowkit store adapter alone (store.checkpoint)",
                DIAGNOSTIC,
                partial(Adapter, f"sqlite:///{directory}/adapter.db"),
            ),
            (*engine_alone, partial(Flowkit, "null://")),
            (
                "flowkit-engine-sleeping",
                f"flowkit engine alone, {SLEEP * 1e6:.0f} µs sleep per checkpoint",
                DIAGNOSTIC,
                partial(Flowkit, "sleeping://"),
            ),
            (
                "sleeps",
                f"the {SLEEP * 1e6:.0f} µs sleeps alone",
                DIAGNOSTIC,
                partial(Sleeps),
            ),
            (
                "floor",
                "raw floor (sqlite3: BEGIN, UPDATE, INSERT, COMMIT)",
                FLOOR,
                partial(Floor, f"sqlite:///{directory}/raw.db", "", "sqlite"),
            ),
            (
                "dbos-wal",
                "DBOS Transact (file in WAL)",
                PEER,
                partial(DBOSContestant, f"sqlite:///{directory}/dbos_wal.sqlite", wal=True),
            ),
            (
                "dbos",
                "DBOS Transact (its default: rollback journal)",
                PEER,
                partial(DBOSContestant, f"sqlite:///{directory}/dbos.sqlite"),
            ),
            (
                "langgraph-sync",
                'LangGraph SqliteSaver, durability="sync"',
                PEER,
                partial(LangGraph, f"sqlite:///{directory}/langgraph_sync.sqlite", "sync"),
            ),
            (
                "langgraph-async",
                'LangGraph SqliteSaver, durability="async" (its default)',
                PEER,
                partial(LangGraph, f"sqlite:///{directory}/langgraph_async.sqlite", "async"),
            ),
        ]
    if store == "postgresql":
        url = where["postgresql"]
        return [
            ("flowkit", "flowkit", FLOWKIT, partial(Flowkit, url, prefix + "fk_")),
            (
                "flowkit-adapter",
                "flowkit store adapter alone (store.checkpoint)",
                DIAGNOSTIC,
                partial(Adapter, url, prefix + "ad_"),
            ),
            (*engine_alone, partial(Flowkit, "null://")),
            (
                "floor",
                "raw floor (psycopg: one UPDATE…INSERT statement, autocommit)",
                FLOOR,
                partial(Floor, url, prefix + "r1_", "postgresql-one"),
            ),
            (
                "floor-tx",
                "raw, UPDATE + INSERT + COMMIT (three round trips)",
                DIAGNOSTIC,
                partial(Floor, url, prefix + "rt_", "postgresql-tx"),
            ),
            ("dbos", "DBOS Transact", PEER, partial(DBOSContestant, url)),
            (
                "langgraph-sync",
                'LangGraph PostgresSaver, durability="sync"',
                PEER,
                partial(LangGraph, url, "sync"),
            ),
            (
                "langgraph-async",
                'LangGraph PostgresSaver, durability="async" (its default)',
                PEER,
                partial(LangGraph, url, "async"),
            ),
        ]
    url, redis_prefix = where["redis"], where["redis_prefix"]
    return [
        ("flowkit", "flowkit", FLOWKIT, partial(Flowkit, url, redis_prefix)),
        (
            "flowkit-adapter",
            "flowkit store adapter alone (store.checkpoint)",
            DIAGNOSTIC,
            partial(Adapter, url, redis_prefix),
        ),
        (*engine_alone, partial(Flowkit, "null://")),
        (
            "floor",
            "raw floor (redis-py: MULTI, HSET, RPUSH, ZADD…, EXEC; one round trip)",
            FLOOR,
            partial(Floor, url, redis_prefix + "raw:", "redis"),
        ),
    ]


def measure(
    store: str, where: dict[str, str], args: argparse.Namespace, profiled: set[str]
) -> dict[str, Any]:
    """Every contestant on one store, interleaved; samples in seconds per run."""
    remotes: list[Remote] = []
    failed: dict[str, str] = {}
    for key, label, kind, make in contestants(store, where):
        print(f"  starting {label}", flush=True)
        try:
            remotes.append(Remote(key, label, kind, make))
        except RuntimeError as exc:
            failed[key] = str(exc)
            print(f"  {exc}", file=sys.stderr)
    samples: dict[str, dict[str, list[float]]] = {
        remote.key: {case: [] for case in CASES} for remote in remotes
    }
    profile: dict[str, Any] = {}
    before = machine_load()
    try:
        for round_number in range(args.repeat + 1):
            started = time.perf_counter()
            shift = round_number % len(remotes) if remotes else 0
            for case in CASES:
                for remote in remotes[shift:] + remotes[:shift]:
                    if remote.key in failed:
                        continue
                    try:
                        seconds = remote.call("run", case)
                    except RuntimeError as exc:
                        failed[remote.key] = str(exc)
                        print(f"  {exc}", file=sys.stderr)
                        continue
                    if round_number:
                        samples[remote.key][case].append(seconds)
            label = "warm-up" if not round_number else f"round {round_number}/{args.repeat}"
            print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)
        if args.profile:
            for remote in remotes:
                if remote.key == "flowkit" or (remote.key == "flowkit-engine" and not profiled):
                    print(f"  profiling {remote.label}", flush=True)
                    profile[remote.key] = remote.call("profile", args.profile_runs)
            profiled.add("engine")
    finally:
        for remote in remotes:
            remote.close()
    rows = {}
    for remote in remotes:
        if remote.key in failed:
            continue
        rows[remote.key] = {
            "label": remote.label,
            "kind": remote.kind,
            "settings": remote.settings,
            "samples_s": samples[remote.key],
            **derive(samples[remote.key]),
        }
    return {
        "rows": rows,
        "failed": failed,
        "profile": profile,
        "load": f"before {before}; after {machine_load()}",
    }


def machine_load() -> str:
    """The load average over 1 minute, and the share of the last minute in which some
    task waited for CPU or I/O (Linux pressure stall information), when available."""
    parts = [f"load {os.getloadavg()[0]:.1f}"]
    for kind in ("cpu", "io"):
        with suppress(OSError, ValueError, IndexError):
            some = Path(f"/proc/pressure/{kind}").read_text().splitlines()[0]
            parts.append(f"{kind} pressure {some.split()[2].split('=')[1]}%")
    return ", ".join(parts)


def derive(samples: dict[str, list[float]]) -> dict[str, Any]:
    """µs per step, steps/s, fixed overhead and µs per loop iteration, per repetition."""
    per_step, overhead, per_iteration = [], [], []
    for short, long, looped in zip(
        samples["chain10"], samples["chain100"], samples["loop1000"], strict=True
    ):
        step = (long - short) / (LONG - SHORT)
        per_step.append(step * 1e6)
        overhead.append((short - SHORT * step) * 1e6)
        per_iteration.append(looped / LOOP * 1e6)
    # The fastest run of each workload: noise from other work only ever adds time.
    best_step = (min(samples["chain100"]) - min(samples["chain10"])) / (LONG - SHORT)
    return {
        "us_per_step": stats(per_step),
        "steps_per_s": stats([1e6 / value for value in per_step if value > 0]),
        "overhead_us": stats(overhead),
        "us_per_loop_iteration": stats(per_iteration),
        "us_per_step_at_100": stats([s / LONG * 1e6 for s in samples["chain100"]]),
        "best": {
            "us_per_step": best_step * 1e6,
            "overhead_us": (min(samples["chain10"]) - SHORT * best_step) * 1e6,
            "us_per_loop_iteration": min(samples["loop1000"]) / LOOP * 1e6,
        },
    }


#: Issue #16's target in process: flowkit's µs per step ≤ 0.10 x the fastest peer's.
MEMORY_SPEEDUP_TARGET = 10.0


def ratios(rows: dict[str, Any], store: str) -> dict[str, Any]:
    """flowkit ÷ each other row, and the targets of issues #8 and #16, on medians and on
    best runs."""
    if "flowkit" not in rows:
        return {}
    mine = rows["flowkit"]
    statistics_ = {
        "median": lambda row, field: row[field]["median"],
        "best": lambda row, field: row["best"][field],
    }
    out: dict[str, Any] = {}
    for name, get in statistics_.items():
        for key, row in rows.items():
            if key != "flowkit":
                row.setdefault("flowkit_over_this", {})[name] = {
                    "per_step": get(mine, "us_per_step") / get(row, "us_per_step"),
                    "loop": get(mine, "us_per_loop_iteration") / get(row, "us_per_loop_iteration"),
                }
        found: dict[str, Any] = {}
        peers = {key: row for key, row in rows.items() if row["kind"] == PEER}
        if peers:
            for field, suffix in (("us_per_step", ""), ("us_per_loop_iteration", "_loop")):
                fastest = min(peers, key=lambda key: get(peers[key], field))
                found[f"fastest_peer{suffix}"] = fastest
                found[f"speedup_over_fastest_peer{suffix}"] = get(peers[fastest], field) / get(
                    mine, field
                )
            if store == "memory":
                found["peer_target_met"] = (
                    found["speedup_over_fastest_peer"] >= MEMORY_SPEEDUP_TARGET
                )
            else:
                found["peer_target_met"] = (
                    found["speedup_over_fastest_peer"] >= 2
                    and found["speedup_over_fastest_peer_loop"] >= 2
                )
        if "floor" in rows:
            floor = rows["floor"]
            found["over_floor"] = get(mine, "us_per_step") / get(floor, "us_per_step")
            found["over_floor_loop"] = get(mine, "us_per_loop_iteration") / get(
                floor, "us_per_loop_iteration"
            )
            found["floor_target_met"] = (
                found["over_floor"] <= 1.5 and found["over_floor_loop"] <= 1.5
            )
        out[name] = found
    return out


# --- servers -----------------------------------------------------------------------------------


@contextmanager
def scratch_database() -> Iterator[str]:
    """A PostgreSQL database for this run (dropped afterwards); yields its URL."""
    import psycopg

    name = f"flowkit_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_available() -> str:
    """Why the Redis contestants cannot run ('' when they can)."""
    if importlib.util.find_spec("flowkit.backends.redis") is None:
        return "flowkit has no Redis store in this tree"
    try:
        import redis

        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} is not usable: {exc}"
    return ""


def delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    batch = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            client.delete(*batch)
            batch = []
    if batch:
        client.delete(*batch)
    client.close()


def server_versions(where: dict[str, str]) -> dict[str, str]:
    found = {"sqlite": sqlite3.sqlite_version}
    if "postgresql" in where:
        import psycopg

        with psycopg.connect(where["postgresql"]) as connection:
            found["postgresql"] = connection.execute("SHOW server_version").fetchone()[0]
    if "redis" in where:
        import redis

        client = redis.Redis.from_url(where["redis"])
        info = client.info("server")
        persistence = client.config_get("appendonly") | client.config_get("appendfsync")
        persistence |= client.config_get("save")
        found["redis"] = info["redis_version"]
        found["redis_persistence"] = ", ".join(f"{k}={v!r}" for k, v in persistence.items())
        client.close()
    return found


def packages() -> dict[str, str]:
    found = {}
    for name in (
        "flowkit-workflows",
        "dbos",
        "langgraph",
        "langgraph-checkpoint",
        "langgraph-checkpoint-sqlite",
        "langgraph-checkpoint-postgres",
        "psycopg",
        "SQLAlchemy",
        "redis",
    ):
        with suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="repetitions (≥ 5)")
    parser.add_argument(
        "--only", default="", help="comma-separated: sqlite,postgresql,redis,memory"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile flowkit on SQLite and PostgreSQL"
    )
    parser.add_argument("--profile-runs", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS), help="directory for peers.json/.md")
    parser.add_argument(
        "--from-json", metavar="PATH", help="only write peers.md again from a peers.json"
    )
    args = parser.parse_args()
    if args.from_json:
        document = json.loads(Path(args.from_json).read_text())
        (Path(args.out) / "peers.md").write_text(report(document))
        return
    if args.repeat < 5:
        parser.error("--repeat must be 5 or more")
    stores = ["sqlite", "postgresql", "redis", "memory"]
    chosen = [name for name in args.only.split(",") if name] or stores
    unknown = set(chosen) - set(stores)
    if unknown:
        parser.error(f"unknown store(s): {', '.join(sorted(unknown))}")

    began = time.perf_counter()
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    where: dict[str, str] = {}
    profiled: set[str] = set()  # the engine alone is profiled once
    with tempfile.TemporaryDirectory(prefix="flowkit_bench_") as directory:
        where["directory"] = directory
        for store in chosen:
            print(f"{store}:", flush=True)
            if store == "redis":
                why = redis_available()
                if why:
                    skipped[store] = why
                    print(f"  skipped: {why}", flush=True)
                    continue
                where["redis"] = REDIS_URL
                where["redis_prefix"] = f"flowkit_bench_{uuid.uuid4().hex[:8]}:"
                try:
                    results[store] = measure(store, where, args, profiled)
                    results[store]["servers"] = server_versions({"redis": REDIS_URL})
                finally:
                    delete_keys(REDIS_URL, where["redis_prefix"])
            elif store == "postgresql":
                with scratch_database() as url:
                    where["postgresql"] = url
                    results[store] = measure(store, where, args, profiled)
                    results[store]["servers"] = server_versions({"postgresql": url})
                    del where["postgresql"]
            else:
                results[store] = measure(store, where, args, profiled)
                results[store]["servers"] = server_versions({})
            results[store]["targets"] = ratios(results[store]["rows"], store)
    elapsed = time.perf_counter() - began

    document = {
        "python": sys.version,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "packages": packages(),
        "repeat": args.repeat,
        "cases": CASES,
        "units": {
            "us_per_step": "µs per step: (run(100) - run(10)) / 90, per repetition",
            "overhead_us": "µs per workflow: run(10) - 10 x µs per step",
            "us_per_loop_iteration": "µs: run(1,000-iteration loop) / 1,000",
            "us_per_step_at_100": "µs: run(100) / 100 (overhead included)",
        },
        "elapsed_s": elapsed,
        "skipped": skipped,
        "stores": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "peers.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    markdown = report(document)
    (out / "peers.md").write_text(markdown)
    print()
    print(markdown)
    print(f"wrote {out / 'peers.json'} and {out / 'peers.md'} ({elapsed:.0f} s)")


# --- the report --------------------------------------------------------------------------------

TITLES = {
    "sqlite": "SQLite (file)",
    "postgresql": "PostgreSQL",
    "redis": "Redis",
    "memory": "memory (in process, no I/O)",
}


def _settings(settings: dict[str, Any]) -> str:
    keys = ("journal_mode", "synchronous", "synchronous_commit", "durability")
    return ", ".join(f"{key}={settings[key]}" for key in keys if key in settings) or "-"


def report(document: dict[str, Any]) -> str:
    lines = [
        "# flowkit next to DBOS Transact and LangGraph",
        "",
        f"`python bench/peers.py --repeat {document['repeat']}` (`nox -s bench_peers`); "
        f"Python {platform.python_version()}, {document['machine']}. "
        + ", ".join(f"{name} {version}" for name, version in document["packages"].items())
        + ".",
        "",
        "µs/step = (run of 100 steps - run of 10 steps) / 90; overhead = run of 10 steps "
        "- 10 x µs/step; at N=100 = run of 100 steps / 100 (overhead included); loop = run "
        "of a 1,000-iteration loop / 1,000. min / median / max over the repetitions; "
        "ratios of medians; flowkit ÷ this below 1 means flowkit is faster.",
        "",
    ]
    for store, result in document["stores"].items():
        lines += _store_report(store, result)
    for store, why in document["skipped"].items():
        lines += [f"## {TITLES[store]}", "", f"Skipped: {why}.", ""]
    lines.append(f"Whole run: {document['elapsed_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def _store_report(store: str, result: dict[str, Any]) -> list[str]:
    rows, servers = result["rows"], result.get("servers", {})
    lines = [f"## {TITLES[store]}", ""]
    if store == "sqlite":
        lines += [f"SQLite {servers['sqlite']} (the library of Python's sqlite3 module).", ""]
    elif store in servers:
        extra = f" ({servers['redis_persistence']})" if store == "redis" else ""
        lines += [f"Server {servers[store]}{extra}.", ""]
    if "load" in result:
        lines += [f"Machine load during this part: {result['load']}.", ""]
    lines += [
        "| contestant | settings | µs/step median (min-max) | best | steps/s "
        "| overhead µs/workflow median (best) | µs/step at N=100 "
        "| loop µs/iteration median (min-max) | best | flowkit ÷ this: step, loop "
        "(median; best) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, row in rows.items():
        label = f"**{row['label']}**" if key == "flowkit" else row["label"]
        ratio = row.get("flowkit_over_this")
        ratio_text = (
            f"{ratio['median']['per_step']:.2f}, {ratio['median']['loop']:.2f}; "
            f"{ratio['best']['per_step']:.2f}, {ratio['best']['loop']:.2f}"
            if ratio
            else ""
        )
        best = row["best"]
        lines.append(
            f"| {label} | {_settings(row['settings'])} | {_spread(row['us_per_step'])} "
            f"| {best['us_per_step']:,.0f} | {row['steps_per_s']['median']:,.0f} "
            f"| {row['overhead_us']['median']:,.0f} ({best['overhead_us']:,.0f}) "
            f"| {row['us_per_step_at_100']['median']:,.0f} "
            f"| {_spread(row['us_per_loop_iteration'])} "
            f"| {best['us_per_loop_iteration']:,.0f} | {ratio_text} |"
        )
    for key, error in result["failed"].items():
        lines.append(f"| {key} | failed: {error.splitlines()[-1][:120]} |" + " |" * 8)
    lines.append("")
    for name, targets in result.get("targets", {}).items():
        lines += _targets(rows, name, targets, store)
    if {"flowkit", "flowkit-adapter", "flowkit-engine", "floor"} <= set(rows):
        lines += ["", *_where_time_goes(rows)]
    lines.append("")
    for key, profile in result.get("profile", {}).items():
        lines += _profile_report(rows[key]["label"] if key in rows else key, profile)
    return lines


def _spread(cell: dict[str, float]) -> str:
    return f"{cell['median']:,.0f} ({cell['min']:,.0f}-{cell['max']:,.0f})"


def _targets(rows: dict[str, Any], name: str, targets: dict[str, Any], store: str) -> list[str]:
    on = "medians" if name == "median" else "best runs"
    lines = []
    if store == "memory" and "speedup_over_fastest_peer" in targets:
        met = "met" if targets["peer_target_met"] else "**missed**"
        lines.append(
            f"- On {on}: flowkit costs {1 / targets['speedup_over_fastest_peer']:.3f}x what "
            f"the fastest peer ({rows[targets['fastest_peer']]['label']}) costs per step, "
            f"{1 / targets['speedup_over_fastest_peer_loop']:.3f}x per loop iteration. "
            f"Target per step ≤ {1 / MEMORY_SPEEDUP_TARGET:.2f}x: {met}."
        )
    elif "speedup_over_fastest_peer" in targets:
        met = "met" if targets["peer_target_met"] else "**missed**"
        lines.append(
            f"- On {on}: flowkit is {targets['speedup_over_fastest_peer']:.2f}x faster per "
            f"step than the fastest peer ({rows[targets['fastest_peer']]['label']}) and "
            f"{targets['speedup_over_fastest_peer_loop']:.2f}x per loop iteration "
            f"({rows[targets['fastest_peer_loop']]['label']}). Target ≥ 2x: {met}."
        )
    if "over_floor" in targets:
        met = "met" if targets["floor_target_met"] else "**missed**"
        lines.append(
            f"- On {on}: flowkit ÷ raw floor is {targets['over_floor']:.2f} per step and "
            f"{targets['over_floor_loop']:.2f} per loop iteration. Target ≤ 1.5: {met}."
        )
    return lines


def _where_time_goes(rows: dict[str, Any]) -> list[str]:
    """flowkit's µs per step split by subtraction of best runs (no profiler)."""

    def best(key: str, field: str) -> float:
        return float(rows[key]["best"][field])

    lines = [
        "Where flowkit's time goes, by subtraction of best runs (µs):",
        "",
        "| part | how | per step | per loop iteration |",
        "|---|---|---:|---:|",
    ]
    parts = (
        ("driver + database", "raw floor", lambda f: best("floor", f)),
        (
            "store adapter",
            "adapter alone - raw floor",
            lambda f: best("flowkit-adapter", f) - best("floor", f),
        ),
        (
            "engine, on this store",
            "flowkit - adapter alone",
            lambda f: best("flowkit", f) - best("flowkit-adapter", f),
        ),
        ("engine, in isolation", "engine alone", lambda f: best("flowkit-engine", f)),
    )
    if {"flowkit-engine-sleeping", "sleeps"} <= set(rows):
        parts += (
            (
                "engine, after blocking",
                f"engine alone with a {SLEEP * 1e6:.0f} µs sleep per checkpoint - the sleeps",
                lambda f: best("flowkit-engine-sleeping", f) - best("sleeps", f),
            ),
        )
    parts += (("flowkit", "", lambda f: best("flowkit", f)),)
    for name, how, value in parts:
        lines.append(
            f"| {name} | {how} | {value('us_per_step'):,.0f} "
            f"| {value('us_per_loop_iteration'):,.0f} |"
        )
    return lines


def _profile_report(label: str, profile: dict[str, Any]) -> list[str]:
    runs = profile["steps"] // (LONG + 1)
    lines = [
        f"cProfile of {label}, {runs} runs of the 100-step chain: own time in µs per step "
        f"under the profiler ({profile['profiled_us_per_step']:.0f} µs per step profiled, "
        f"{profile['unprofiled_us_per_step']:.0f} without it):",
        "",
        "| layer | µs/step |",
        "|---|---:|",
    ]
    for layer, value in profile["layers_us_per_step"].items():
        lines.append(f"| {layer} | {value:.1f} |")
    lines += [
        "",
        "| function | layer | own µs/step | cumulative µs/step | calls/step |",
        "|---|---|---:|---:|---:|",
    ]
    for item in profile["top"][:12]:
        lines.append(
            f"| `{item['function']}` | {item['layer']} | {item['own_us_per_step']:.1f} "
            f"| {item['cumulative_us_per_step']:.1f} | {item['calls_per_step']:.1f} |"
        )
    lines.append("")
    return lines


if __name__ == "__main__":
    main()

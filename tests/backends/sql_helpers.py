"""Helpers for the SQL store tests: server URLs, scratch stores, and subprocess commands.

Every store a test opens gets its own table prefix, and its tables are dropped
when it closes, so concurrent test runs on one server never collide.

Run as a module (``python -m tests.backends.sql_helpers COMMAND …``) it is the
other process of the multi-process tests; imported with ``-m`` by
``flowkit recover`` it registers the workflows and services those tests run.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

import flowkit
from flowkit.backends.sqlalchemy import SQLStore
from flowkit.testing.conformance import next_checkpoint

#: The servers the tests use (loopback only); override with these variables.
POSTGRESQL_URL = os.environ.get(
    "FLOWKIT_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("FLOWKIT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

TABLES = ("ctx_values", "entries", "executions", "schedules", "schema_version", "signals")


def unique_prefix() -> str:
    """A table prefix no other test run uses."""
    return f"t{uuid.uuid4().hex[:10]}_"


def with_prefix(url: str, prefix: str, **query: Any) -> str:
    """``url`` with ``?prefix=…`` (and more query options) added."""
    options = "&".join(f"{key}={value}" for key, value in {"prefix": prefix, **query}.items())
    return f"{url}{'&' if '?' in url else '?'}{options}"


def drop_tables(engine: sa.Engine, prefix: str) -> None:
    """Drop a prefix's tables (those that exist)."""
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        for name in TABLES:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(prefix + name)}")


class ScratchSQLStore(SQLStore):
    """A SQL store whose tables are dropped when it closes."""

    def close(self) -> None:
        if not getattr(self, "_dropped", False):
            self._dropped = True
            drop_tables(self.engine, self.prefix)
        super().close()


def scratch_store(url: str, **options: Any) -> ScratchSQLStore:
    """A store on ``url`` with a fresh table prefix (SQLite files need none)."""
    options.setdefault("prefix", unique_prefix())
    return ScratchSQLStore(url, **options)


# --- fixtures shared by the SQL test modules ----------------------------------------------------

SQL_BACKENDS = [
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
    pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql"),
    pytest.param("mysql", marks=pytest.mark.mysql, id="mysql"),
]


def _drop(url: str) -> None:
    store = SQLStore(url, create_schema=False)
    try:
        if store.engine.dialect.name != "sqlite":
            drop_tables(store.engine, store.prefix)
    finally:
        store.close()


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: a new SQLite file, or a fresh prefix on a server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/flowkit.db"
        return
    base = POSTGRESQL_URL if request.param == "postgresql" else MYSQL_URL
    url = with_prefix(base, unique_prefix())
    yield url
    _drop(url)


@pytest.fixture
def open_store(sql_url: str) -> Iterator[Callable[..., SQLStore]]:
    """Opens stores on ``sql_url`` (with extra options) and closes them afterwards."""
    opened: list[SQLStore] = []

    def opener(**options: Any) -> SQLStore:
        store = SQLStore(sql_url, **options)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


# --- workflows and services for the subprocess tests -------------------------------------------

#: Where the services of the subprocess tests write their marks.
WORK_DIR = "FLOWKIT_TEST_DIR"


def _work_dir() -> Path:
    return Path(os.environ[WORK_DIR])


def _note(step: str) -> str:
    with (_work_dir() / "calls.log").open("a") as log:
        log.write(step + "\n")
    return step


def _block(step: str) -> str:
    """Note the call; then, unless ``release`` exists, say so and wait for it."""
    _note(step)
    directory = _work_dir()
    if not (directory / "release").exists():
        (directory / "blocked").write_text(str(os.getpid()))
        while not (directory / "release").exists():
            time.sleep(0.05)
    return step


def _call(step: str, method: str, next_step: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "id": step,
        "type": "call",
        "service": "SqlTest",
        "method": method,
        "input": {"step": step},
        "output": step,
    }
    if next_step is not None:
        config["next"] = next_step
    return config


BLOCKING = flowkit.load(
    {
        "id": "sql_blocking",
        "steps": [
            {"id": "start", "type": "start", "next": "one"},
            _call("one", "note", "two"),
            _call("two", "note", "block"),
            _call("block", "block", "three"),
            _call("three", "note", None),
        ],
    }
)

CHAIN = flowkit.load(
    {
        "id": "sql_chain",
        "steps": [
            {"id": "start", "type": "start", "next": "s0"},
            *[_call(f"s{i}", "note", f"s{i + 1}" if i < 19 else None) for i in range(20)],
        ],
    }
)


def register() -> None:
    """Register the workflows and the ``SqlTest`` service in this process."""
    flowkit.register_service("SqlTest", {"note": _note, "block": _block})
    flowkit.register(BLOCKING)
    flowkit.register(CHAIN)


# Imported by `flowkit recover -m tests.backends.sql_helpers` in a test's subprocess.
if WORK_DIR in os.environ:
    register()


# --- commands run in subprocesses ----------------------------------------------------------------


def _wait_until(start_at: float) -> None:
    while time.time() < start_at:
        time.sleep(0.001)


def _open(url: str, start_at: str) -> None:
    """Open the store (which creates its schema) at a given time; print the version."""
    _wait_until(float(start_at))
    store = SQLStore(url)
    print(json.dumps({"version": store.schema_version()}))
    store.close()


def _checkpoint(url: str, execution_id: str, version: str, start_at: str, tag: str) -> None:
    """At a given time, write the checkpoint that follows ``version``; print the outcome.

    A process that starts late and finds a newer version still writes on top of
    ``version``, as a slow writer would, so exactly one writer can win however
    the processes are scheduled.
    """
    store = SQLStore(url)
    current = store.load(execution_id)
    assert current is not None
    if current.version != int(version):
        current = attrs.evolve(current, version=int(version), seq=current.seq - 2)
    record, entries = next_checkpoint(current, 2, ctx={"writer": tag})
    entries = [attrs.evolve(entry, output={"writer": tag}) for entry in entries]
    _wait_until(float(start_at))
    try:
        store.checkpoint(record, entries, current.version)
    except flowkit.ConflictError:
        outcome = "conflict"
    else:
        outcome = "ok"
    print(json.dumps({"tag": tag, "outcome": outcome}))
    store.close()


def _run(url: str, workflow_id: str, execution_id: str) -> None:
    """Run a registered workflow with the inline executor (the blocking one never returns)."""
    engine = flowkit.Engine(store=url, executor="inline")
    result = engine.run(_WORKFLOWS[workflow_id], execution_id=execution_id)
    print(json.dumps({"status": result.status.value}))
    engine.close()


def _advance(url: str, start_at: str, count: str) -> None:
    """Run ``count`` chain workflows, starting at a given time; print their statuses."""
    engine = flowkit.Engine(store=url, executor="inline")
    _wait_until(float(start_at))
    statuses = [engine.run(CHAIN).status.value for _ in range(int(count))]
    print(json.dumps({"statuses": statuses}))
    engine.close()


_WORKFLOWS = {"sql_blocking": BLOCKING, "sql_chain": CHAIN}
COMMANDS = {"open": _open, "checkpoint": _checkpoint, "run": _run, "advance": _advance}


if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])

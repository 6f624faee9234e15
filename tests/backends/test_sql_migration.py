"""The migrations take databases written by earlier releases forward.

Migration 2 moves ctx from one JSON column (release 1) to rows of ctx_values;
migration 3 adds the traceparent column, the signals and schedules tables and
the indexes of find's pages (release 2 → this one). An old release's
database is built with the migrations up to its version only, and its rows
are written exactly as that release wrote them. Runs on a SQLite file,
PostgreSQL and MariaDB (or MySQL).
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import flowkit
from flowkit import Entry, Execution, Status
from flowkit.backends.memory import MemoryStore
from flowkit.backends.sqlalchemy import SCHEMA_VERSION, SQLStore, _schema
from flowkit.cli import main as cli
from flowkit.definitions import WorkflowRegistry
from flowkit.records import ENTRY_FIELDS, EXECUTION_FIELDS, RecordCodec, Schedule, Signal
from flowkit.testing.conformance import T0, make_entry, make_execution, next_checkpoint

from . import sql_helpers

sql_url = sql_helpers.sql_url
open_store = sql_helpers.open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "expense_approval.yml"

#: The execution columns of release 1 (ctx included) and of release 2 (ctx in ctx_values).
RELEASE_1_COLUMNS = tuple(name for name in EXECUTION_FIELDS if name != "traceparent")
RELEASE_2_COLUMNS = tuple(name for name in RELEASE_1_COLUMNS if name != "ctx")


def _release(store: SQLStore, version: int) -> None:
    """The tables as the release of schema ``version`` created them. Private: no public
    way makes an old release's schema."""
    store._retrying(functools.partial(store._migrate, target=version))


def _write_as_release(
    store: SQLStore, execution: Execution, entries: list[Entry], version: int
) -> None:
    """Insert an execution and its entries with the statements and encoding of the
    release of schema ``version`` (1 or 2)."""
    sql = store._sql  # the dialect's placeholder style, JSON casts and time format
    codec = RecordCodec(time_in=sql.time_in, time_out=sql.time_out, json_text=True)
    kinds = flowkit.records.field_kinds(Execution)
    json_fields = {name for name, kind in kinds.items() if kind.value == "json"}
    fields = RELEASE_1_COLUMNS if version == 1 else RELEASE_2_COLUMNS
    columns = ", ".join(sql.q(name) for name in fields)
    marks = ", ".join(sql.json_in if name in json_fields else "?" for name in fields)
    insert = sql.p(f"INSERT INTO {sql.executions} ({columns}) VALUES ({marks})")
    row = codec.encoder(Execution, fields)(execution)
    entry_row = codec.encoder(Entry, [name for name in ENTRY_FIELDS if name != "id"])
    fairy = store.engine.raw_connection()
    try:
        cursor = fairy.cursor()
        cursor.execute(insert, row)
        if entries:
            cursor.execute(
                sql.insert_entries(len(entries)),
                [value for entry in entries for value in entry_row(entry)],
            )
        if version == 2 and execution.ctx:  # release 2 wrote ctx values as these rows
            ctx = store._ctx_rows(execution, execution.ctx)
            cursor.execute(
                sql.insert_ctx(len(ctx), upsert=False), [value for row in ctx for value in row]
            )
        fairy.commit()
    finally:
        fairy.close()


def _release_1(store: SQLStore) -> None:
    _release(store, 1)


def _write_as_release_1(store: SQLStore, execution: Execution, entries: list[Entry]) -> None:
    _write_as_release(store, execution, entries, 1)


def _population() -> list[Execution]:
    """Executions whose ctx is awkward (order, NUL, long names, many keys, big values), each
    with one entry."""
    executions = [
        make_execution(id="ex-order", ctx={"z": 1, "a": [2], "m": {"k": None}}),
        make_execution(id="ex-empty", ctx={}),
        make_execution(
            id="ex-odd", ctx={"": 0, "\x00": "\x00", "ké 😀": "שלום", "é" * 300: 1, "A": 1, "a": 2}
        ),
        make_execution(id="ex-many", version=7, ctx={f"k{i}": i for i in range(1_000)}),
        make_execution(id="ex-big", ctx={"big": "b" * 1_000_000, "after": 1}),
        *[make_execution(id=f"ex-{n:03d}", ctx={"n": n, "tag": str(n)}) for n in range(450)],
    ]
    return [attrs.evolve(execution, seq=1) for execution in executions]


def _halted(store: MemoryStore) -> tuple[Execution, list[Entry], flowkit.WorkflowDef]:
    """An expense approval halted at its approval step, as the engine leaves it."""
    workflow = flowkit.load(str(EXAMPLE))
    engine = flowkit.Engine(store=store, workflows=WorkflowRegistry())
    result = engine.run(workflow, input={"amount": 250, "employee": "ada"})
    assert result.status is Status.HALTED
    execution = store.load(result.execution_id)
    assert execution is not None
    return execution, store.entries(execution.id), workflow


def _upgrade(sql_url: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["db", "upgrade", "--store", sql_url, "--json"])
    assert result.exit_code == 0, result.output
    outcome: dict[str, Any] = json.loads(result.output)
    return outcome


@pytest.mark.timeout(300)
def test_a_release_1_database_is_upgraded_and_runs_on(
    sql_url: str, open_store: Callable[..., SQLStore]
) -> None:
    old = open_store(create_schema=False)
    _release_1(old)
    assert old.schema_version() == 1
    population = _population()
    for execution in population:
        _write_as_release_1(old, execution, [make_entry(execution, 1)])
    halted, halted_entries, workflow = _halted(MemoryStore(warn=False))
    _write_as_release_1(old, halted, halted_entries)

    assert _upgrade(sql_url) == {"before": 1, "after": SCHEMA_VERSION}
    store = open_store(create_schema=False)
    assert "ctx" not in {
        column["name"]
        for column in sa.inspect(store.engine).get_columns(f"{store.prefix}executions")
    }
    for execution in population:
        loaded = store.load(execution.id)
        assert loaded is not None
        assert list(loaded.ctx.items()) == list(execution.ctx.items()), execution.id
        assert loaded.version == execution.version
        assert [entry.seq for entry in store.entries(execution.id)] == [1]
    found = {execution.id: execution for execution in store.find(limit=1_000)}
    assert found["ex-odd"].ctx == population[2].ctx

    # Checkpoints go on: a value set again keeps its place, a new one goes last.
    many = store.load("ex-many")
    assert many is not None
    ctx = {**many.ctx, "k3": "three", "new": 1}
    record = flowkit.records.execution_from_dict(
        {**flowkit.records.execution_to_dict(many), "ctx": ctx, "version": 8, "seq": 2}
    )
    store.checkpoint(record, [make_entry(many, 2)], 7, changed=("k3", "new"))
    reloaded = store.load("ex-many")
    assert reloaded is not None
    assert list(reloaded.ctx.items()) == list(ctx.items())

    # And the halted execution resumes where release 1 left it.
    engine = flowkit.Engine(store=store, workflows=WorkflowRegistry())
    done = engine.resume(
        halted.id, approved=True, by="alice", response={"comment": "ok"}, workflow=workflow
    )
    assert done.status is Status.COMPLETED
    assert done.output == {"status": "approved", "employee": "ada", "amount": 250, "comment": "ok"}
    final = store.load(halted.id)
    assert final is not None
    assert list(final.ctx)[: len(halted.ctx)] == list(halted.ctx)


@pytest.mark.timeout(300)
def test_an_interrupted_upgrade_is_run_again(
    sql_url: str, open_store: Callable[..., SQLStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = open_store(create_schema=False)
    _release_1(old)
    population = _population()
    for execution in population:
        _write_as_release_1(old, execution, [make_entry(execution, 1)])

    # The move fails half-way: on MySQL the first batches are committed already, on
    # PostgreSQL and SQLite the whole migration rolls back.
    calls = 0
    decode = flowkit.records.decode_json

    def failing(text: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 300:
            raise OSError("the process died here")
        return decode(text)

    monkeypatch.setattr(_schema, "decode_json", failing)
    with pytest.raises(OSError, match="the process died here"):
        SQLStore(sql_url)
    assert old.schema_version() == 1
    table = f"{old.prefix}ctx_values"
    if old.engine.dialect.name == "mysql":
        with old.engine.connect() as connection:
            moved = connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar()
        assert moved  # the batches before the failure
    else:
        assert not sa.inspect(old.engine).has_table(table)
    monkeypatch.setattr(_schema, "decode_json", decode)

    assert _upgrade(sql_url) == {"before": 1, "after": SCHEMA_VERSION}
    store = open_store(create_schema=False)
    for execution in population:
        loaded = store.load(execution.id)
        assert loaded is not None
        assert list(loaded.ctx.items()) == list(execution.ctx.items()), execution.id
    assert _upgrade(sql_url) == {"before": SCHEMA_VERSION, "after": SCHEMA_VERSION}


@pytest.mark.sqlite
def test_sqlite_before_3_35_makes_the_table_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite learnt DROP COLUMN in 3.35; before, migration 2 makes the table again.
    url = f"sqlite:///{tmp_path}/old.db"
    old = SQLStore(url, create_schema=False)
    _release_1(old)
    population = _population()[:20]
    for execution in population:
        _write_as_release_1(old, execution, [make_entry(execution, 1)])
    old.close()
    older = types.SimpleNamespace(sqlite_version_info=(3, 34, 1), sqlite_version="3.34.1")
    monkeypatch.setattr("flowkit.backends.sqlalchemy._schema.sqlite3", older)
    store = SQLStore(url)
    try:
        inspector = sa.inspect(store.engine)
        table = f"{store.prefix}executions"
        assert "ctx" not in {column["name"] for column in inspector.get_columns(table)}
        assert {index["name"] for index in inspector.get_indexes(table)} == {
            f"{store.prefix}executions_{name}"
            for name in ("updated", "workflow_updated", "status_updated", "wake", "lease")
        }
        for execution in population:
            loaded = store.load(execution.id)
            assert loaded is not None
            assert list(loaded.ctx.items()) == list(execution.ctx.items())
            assert loaded.created_at == execution.created_at
    finally:
        store.close()


@pytest.mark.timeout(300)
def test_a_release_2_database_is_upgraded_and_runs_on(
    sql_url: str, open_store: Callable[..., SQLStore]
) -> None:
    old = open_store(create_schema=False)
    _release(old, 2)
    assert old.schema_version() == 2
    population = [
        make_execution(
            id=f"ex-{n:03d}",
            workflow_id=f"wf-{n % 3}",
            status=Status.COMPLETED if n % 2 else Status.RUNNING,
            updated_at=T0 + timedelta(seconds=n // 2),  # pairs share a time: ties by id
            ctx={"n": n, "tag": str(n)},
            seq=1,
        )
        for n in range(40)
    ]
    for execution in population:
        _write_as_release(old, execution, [make_entry(execution, 1)], 2)
    halted, halted_entries, workflow = _halted(MemoryStore(warn=False))
    _write_as_release(old, halted, halted_entries, 2)

    assert _upgrade(sql_url) == {"before": 2, "after": SCHEMA_VERSION}
    store = open_store(create_schema=False)
    inspector = sa.inspect(store.engine)
    prefix = store.prefix
    assert "traceparent" in {
        column["name"] for column in inspector.get_columns(f"{prefix}executions")
    }
    # The indexes of find's pages replace the two they extend.
    assert {index["name"] for index in inspector.get_indexes(f"{prefix}executions")} == {
        f"{prefix}executions_{name}"
        for name in ("updated", "workflow_updated", "status_updated", "wake", "lease")
    }
    for execution in population:
        assert store.load(execution.id) == execution
        assert [entry.seq for entry in store.entries(execution.id)] == [1]

    # find pages through the old executions, in find's order.
    whole = [execution.id for execution in store.find(workflow_id="wf-1", limit=100)]
    assert len(whole) == 13
    paged: list[str] = []
    after: tuple[datetime, str] | None = None
    while page := store.find(workflow_id="wf-1", limit=4, after=after):
        paged += [execution.id for execution in page]
        after = (page[-1].updated_at, page[-1].id)
    assert paged == whole

    # Old executions take signals; new ones keep their traceparent.
    running = population[0]
    sent = store.send_signal(Signal(execution_id=running.id, seq=0, name="go", sent_at=T0))
    assert sent is not None
    assert sent.seq == 1
    record, entries = next_checkpoint(running)
    store.checkpoint(record, entries, running.version, consumed=[1])
    assert store.signals(running.id) == []
    traced = make_execution(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    store.create(traced)
    assert store.load(traced.id) == traced
    schedule = Schedule(name="nightly", workflow_id="report", cron="0 3 * * *", created_at=T0)
    store.save_schedule(schedule)
    assert store.schedules() == [schedule]
    assert store.prune(before=T0 + timedelta(hours=1), statuses=["completed"]) == 20

    # And the halted execution resumes where release 2 left it.
    engine = flowkit.Engine(store=store, workflows=WorkflowRegistry())
    done = engine.resume(
        halted.id, approved=True, by="alice", response={"comment": "ok"}, workflow=workflow
    )
    assert done.status is Status.COMPLETED
    assert _upgrade(sql_url) == {"before": SCHEMA_VERSION, "after": SCHEMA_VERSION}


@pytest.mark.timeout(300)
def test_an_interrupted_upgrade_from_release_2_is_run_again(
    sql_url: str, open_store: Callable[..., SQLStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = open_store(create_schema=False)
    _release(old, 2)
    execution = make_execution(id="ex-kept", ctx={"a": 1}, seq=1)
    _write_as_release(old, execution, [make_entry(execution, 1)], 2)

    # The process dies after the column and the new indexes, before the new tables: on
    # MySQL those steps are committed already, on PostgreSQL and SQLite nothing is.
    create_table = _schema.DDL.create_table

    def failing(ddl: _schema.DDL, table: sa.Table) -> None:
        if table.name.endswith("signals"):
            raise OSError("the process died here")
        create_table(ddl, table)

    monkeypatch.setattr(_schema.DDL, "create_table", failing)
    with pytest.raises(OSError, match="the process died here"):
        SQLStore(sql_url)
    assert old.schema_version() == 2
    columns = {c["name"] for c in sa.inspect(old.engine).get_columns(f"{old.prefix}executions")}
    assert ("traceparent" in columns) is (old.engine.dialect.name == "mysql")
    monkeypatch.setattr(_schema.DDL, "create_table", create_table)

    assert _upgrade(sql_url) == {"before": 2, "after": SCHEMA_VERSION}
    store = open_store(create_schema=False)
    assert store.load(execution.id) == execution
    assert store.send_signal(Signal(execution_id=execution.id, seq=0, name="go", sent_at=T0))

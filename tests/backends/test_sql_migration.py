"""Migration 2 takes a database written by release 1 (ctx as one JSON column) forward.

The release-1 database is built with migration 1 only, and its rows are
written exactly as release 1 wrote them: every field of the execution,
ctx included, one column each, JSON as flowkit's text. Runs on a SQLite
file, PostgreSQL and MariaDB (or MySQL).
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Callable
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
from flowkit.records import ENTRY_FIELDS, EXECUTION_FIELDS, RecordCodec
from flowkit.testing.conformance import make_entry, make_execution

from . import sql_helpers

sql_url = sql_helpers.sql_url
open_store = sql_helpers.open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "expense_approval.yml"


def _release_1(store: SQLStore) -> None:
    """The tables as release 1 created them (migration 1 only). Private: no public way
    makes an old release's schema."""
    store._retrying(functools.partial(store._migrate, target=1))


def _write_as_release_1(store: SQLStore, execution: Execution, entries: list[Entry]) -> None:
    """Insert an execution and its entries with release 1's statements and encoding."""
    sql = store._sql  # the dialect's placeholder style, JSON casts and time format
    codec = RecordCodec(time_in=sql.time_in, time_out=sql.time_out, json_text=True)
    kinds = flowkit.records.field_kinds(Execution)
    json_fields = {name for name, kind in kinds.items() if kind.value == "json"}
    columns = ", ".join(sql.q(name) for name in EXECUTION_FIELDS)
    marks = ", ".join(sql.json_in if name in json_fields else "?" for name in EXECUTION_FIELDS)
    insert = sql.p(f"INSERT INTO {sql.executions} ({columns}) VALUES ({marks})")
    row = codec.encoder(Execution, EXECUTION_FIELDS)(execution)
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
        fairy.commit()
    finally:
        fairy.close()


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
            f"{store.prefix}executions_{name}" for name in ("workflow", "status", "wake", "lease")
        }
        for execution in population:
            loaded = store.load(execution.id)
            assert loaded is not None
            assert list(loaded.ctx.items()) == list(execution.ctx.items())
            assert loaded.created_at == execution.created_at
    finally:
        store.close()

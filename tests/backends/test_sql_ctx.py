"""ctx values as rows of ``<prefix>ctx_values``: a checkpoint writes only the values it names.

Every test runs against a SQLite file, the PostgreSQL server and the MariaDB
(or MySQL) server. Several look at the table itself, or write to it behind the
store's back, to show which rows a checkpoint touched.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

import flowkit
from flowkit import Execution, Status
from flowkit.backends.sqlalchemy import SQLStore
from flowkit.definitions import WorkflowRegistry
from flowkit.testing.conformance import make_execution, next_checkpoint

from . import sql_helpers
from .sql_helpers import MYSQL_URL, scratch_store

sql_url = sql_helpers.sql_url
open_store = sql_helpers.open_store

#: Names that are awkward somewhere: empty, case and trailing space (ids compare byte for
#: byte), NUL (PostgreSQL text cannot hold it), quotes and backslashes (JSON escapes),
#: non-ASCII, and names too long for the name column (kept whole in full_name).
NAMES = [
    "plain",
    "",
    "a",
    "A",
    "a ",
    "nul\x00name",
    "\x00",
    '"quoted"',
    "back\\slash",
    "ké 😀 שלום",
    "x" * 253,  # its JSON text is 255 characters: the longest kept as it is
    "y" * 254,
    "é" * 300,
]


def _created(store: SQLStore, **overrides: Any) -> Execution:
    execution = make_execution(**overrides)
    store.create(execution)
    return execution


def _rows(store: SQLStore, execution_id: str) -> list[tuple[str, str | None, int, Any]]:
    """The execution's ctx rows as stored: (name, full_name, position, value), by position."""
    table = store.schema.ctx_values
    select = (
        sa.select(table.c.name, table.c.full_name, table.c.position, table.c.value)
        .where(table.c.execution_id == execution_id)
        .order_by(table.c.position)
    )
    with store.engine.connect() as connection:
        return [(row[0], row[1], row[2], row[3]) for row in connection.execute(select)]


def _poke(store: SQLStore, execution_id: str, name: str, value_json: str) -> None:
    """Write a ctx value behind the store's back (the name is a plain one: its JSON text
    is the name in quotes)."""
    table = store.schema.ctx_values.name
    value = "CAST(:value AS json)" if store.engine.dialect.name == "postgresql" else ":value"
    with store.engine.begin() as connection:
        updated = connection.execute(
            sa.text(
                f"UPDATE {table} SET value = {value} WHERE execution_id = :id AND name = :name"
            ),
            {"value": value_json, "id": execution_id, "name": f'"{name}"'},
        )
        assert updated.rowcount == 1


def _load(store: SQLStore, execution_id: str) -> Execution:
    loaded = store.load(execution_id)
    assert loaded is not None
    return loaded


def test_a_checkpoint_writes_only_the_values_it_names(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    big = "x" * 1_000_000
    execution = _created(store, ctx={"a": 1, "big": big, "c": [1]})
    # Behind the store's back: if a checkpoint rewrote these, the marks would be gone.
    _poke(store, execution.id, "big", '"untouched"')
    _poke(store, execution.id, "c", '["untouched"]')

    ctx = {**execution.ctx, "a": 2, "new": {"n": 1}}
    record, entries = next_checkpoint(execution, 1, ctx=ctx)
    store.checkpoint(record, entries, execution.version, changed=("a", "new"))
    loaded = _load(store, execution.id)
    assert list(loaded.ctx.items()) == [
        ("a", 2),
        ("big", "untouched"),
        ("c", ["untouched"]),
        ("new", {"n": 1}),
    ]

    # Nothing named: the record and the entry only.
    after, entries = next_checkpoint(record, 1)
    store.checkpoint(after, entries, record.version, changed=())
    assert _load(store, execution.id).ctx["big"] == "untouched"

    # None: ctx is written whole, so the caller's values replace the marks.
    whole, entries = next_checkpoint(after, 1)
    store.checkpoint(whole, entries, after.version, changed=None)
    assert _load(store, execution.id).ctx == ctx


def test_key_order_survives_every_kind_of_write(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    execution = _created(store, ctx={"z": 0, "m": 0, "a": 0})
    ctx = {"z": 0, "m": 1, "a": 0, "b": 2, "0": 3}
    record, entries = next_checkpoint(execution, 1, ctx=ctx)
    store.checkpoint(record, entries, execution.version, changed=("m", "b", "0", "b"))
    assert list(_load(store, execution.id).ctx.items()) == list(ctx.items())
    positions = [row[2] for row in _rows(store, execution.id)]
    assert positions == sorted(set(positions))

    # Set again later: it keeps its place; a new name goes last.
    ctx2 = {**ctx, "z": 9, "new": 4}
    second, entries = next_checkpoint(record, 1, ctx=ctx2)
    store.checkpoint(second, entries, record.version, changed=("new", "z"))
    assert list(_load(store, execution.id).ctx) == ["z", "m", "a", "b", "0", "new"]

    # Whole: the caller's order, and the names it dropped are gone from the table.
    ctx3 = {"new": 5, "a": 0, "z": 9}
    third, entries = next_checkpoint(second, 1, ctx=ctx3)
    store.checkpoint(third, entries, second.version, changed=None)
    assert list(_load(store, execution.id).ctx.items()) == list(ctx3.items())
    assert [row[0] for row in _rows(store, execution.id)] == ['"new"', '"a"', '"z"']
    [found] = store.find()
    assert list(found.ctx.items()) == list(ctx3.items())


def test_a_big_value_then_many_small_checkpoints(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    big = {"blob": "b" * 1_000_000}
    execution = _created(store)
    record, entries = next_checkpoint(execution, 1, ctx={"big": big})
    store.checkpoint(record, entries, execution.version, changed=("big",))
    _poke(store, execution.id, "big", '{"blob": "kept"}')
    current = record
    for step in range(50):
        ctx = {**current.ctx, "i": step, f"s{step % 5}": [step]}
        following, entries = next_checkpoint(current, 1, ctx=ctx)
        store.checkpoint(following, entries, current.version, changed=("i", f"s{step % 5}"))
        current = following
    loaded = _load(store, execution.id)
    assert loaded.ctx == {**current.ctx, "big": {"blob": "kept"}}  # never rewritten
    assert list(loaded.ctx) == ["big", "i", "s0", "s1", "s2", "s3", "s4"]
    assert loaded.version == current.version
    assert [entry.seq for entry in store.entries(execution.id)] == list(range(1, 52))


def test_many_keys(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    ctx = {f"k{i}": {"i": i} for i in range(1_000)}
    execution = _created(store, ctx=ctx)
    assert list(_load(store, execution.id).ctx.items()) == list(ctx.items())

    changed = {**ctx, "k500": "changed", "k1000": 1000}
    record, entries = next_checkpoint(execution, 1, ctx=changed)
    store.checkpoint(record, entries, execution.version, changed=("k500", "k1000"))
    assert list(_load(store, execution.id).ctx.items()) == list(changed.items())

    backwards = dict(reversed(changed.items()))
    whole, entries = next_checkpoint(record, 1, ctx=backwards)
    store.checkpoint(whole, entries, record.version, changed=None)
    assert list(_load(store, execution.id).ctx.items()) == list(backwards.items())
    assert len(_rows(store, execution.id)) == 1_001

    # Every name at once, as a checkpoint naming them all.
    renamed = dict.fromkeys(backwards, 0)
    last, entries = next_checkpoint(whole, 1, ctx=renamed)
    store.checkpoint(last, entries, whole.version, changed=tuple(renamed))
    assert list(_load(store, execution.id).ctx.items()) == list(renamed.items())


def test_find_returns_each_executions_own_ctx(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    for n in range(120):
        _created(store, id=f"ex-{n:03d}", ctx={"n": n, "tag": f"t{n}", f"e{n}": n})
    found = store.find(limit=120)
    assert len(found) == 120
    for execution in found:
        n = int(execution.id[3:])
        assert list(execution.ctx.items()) == [("n", n), ("tag", f"t{n}"), (f"e{n}", n)]
    empty = _created(store, id="ex-empty")
    assert _load(store, empty.id).ctx == {}


@pytest.mark.sqlite
def test_find_reads_the_ctx_of_all_its_executions_in_one_query(tmp_path: Any) -> None:
    store = SQLStore(f"sqlite:///{tmp_path}/one.db", pool_size=1, max_overflow=0)
    try:
        for n in range(100):
            _created(store, ctx={"n": n, "m": [n]})
        statements: list[str] = []
        # The pool holds one connection: the store's next call uses the one traced here.
        fairy = store.engine.raw_connection()
        connection: Any = fairy.dbapi_connection
        assert isinstance(connection, sqlite3.Connection)
        connection.set_trace_callback(statements.append)
        fairy.close()
        assert len(store.find(limit=100)) == 100
        reads = [s for s in statements if "ctx_values" in s]
        assert len(reads) == 1, statements
        connection.set_trace_callback(None)
    finally:
        store.close()


def test_a_conflict_writes_nothing(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    execution = _created(store, ctx={"a": 1, "b": 2})
    record, entries = next_checkpoint(execution, 1, ctx={"a": 10, "b": 2})
    store.checkpoint(record, entries, execution.version, changed=("a",))
    rows, log = _rows(store, execution.id), store.entries(execution.id)
    for changed in (("a", "c"), None):
        stale, stale_entries = next_checkpoint(execution, 2, ctx={"a": 99, "b": 98, "c": 97})
        with pytest.raises(flowkit.ConflictError, match="expected version 1, but the store"):
            store.checkpoint(stale, stale_entries, execution.version, changed=changed)
        assert _rows(store, execution.id) == rows
        assert store.entries(execution.id) == log
    assert _load(store, execution.id).ctx == {"a": 10, "b": 2}


def test_names_and_values_round_trip(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    ctx = {name: {"value": name, "nul": "\x00", "n": index} for index, name in enumerate(NAMES)}
    execution = _created(store, ctx=ctx)
    assert list(_load(store, execution.id).ctx.items()) == list(ctx.items())
    stored = {row[0]: row[1] for row in _rows(store, execution.id)}
    assert stored['"' + "x" * 253 + '"'] is None  # kept as it is
    long_names = [name for name in stored if name.startswith("#")]
    assert len(long_names) == 2  # "y" * 254 and "é" * 300: their digests
    assert sorted(str(stored[name]) for name in long_names) == sorted(
        ['"' + "y" * 254 + '"', '"' + "é" * 300 + '"']
    )

    updated = {**ctx, "é" * 300: "new", "\x00": None, "a ": [1], "z\x00": "last"}
    record, entries = next_checkpoint(execution, 1, ctx=updated)
    store.checkpoint(record, entries, execution.version, changed=("é" * 300, "\x00", "a ", "z\x00"))
    assert list(_load(store, execution.id).ctx.items()) == list(updated.items())
    bad, entries = next_checkpoint(record, 1, ctx={**updated, "\ud800": 1})
    with pytest.raises(UnicodeEncodeError):
        store.checkpoint(bad, entries, record.version, changed=("\ud800",))
    assert _load(store, execution.id).version == record.version


def test_delete_removes_the_ctx_rows(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    execution = _created(store, ctx={"a": 1, "b": 2})
    assert store.delete(execution.id) is True
    assert _rows(store, execution.id) == []
    again = _created(store, id=execution.id, ctx={"c": 3})
    assert _load(store, again.id).ctx == {"c": 3}


def test_the_engine_runs_on_changed_values(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    services = flowkit.ServiceRegistry()
    services.register("Data", {"big": lambda: "d" * 500_000, "small": lambda i: i})
    steps: list[dict[str, Any]] = [
        {"id": "big", "type": "call", "service": "Data", "method": "big", "output": "big"}
    ]
    steps += [
        {
            "id": f"s{i}",
            "type": "call",
            "service": "Data",
            "method": "small",
            "input": {"i": i},
            "output": f"o{i % 3}",
        }
        for i in range(10)
    ]
    for step, following in itertools.pairwise(steps):
        step["next"] = following["id"]
    engine = flowkit.Engine(store=store, services=services, workflows=WorkflowRegistry())
    result = engine.run({"id": "changes", "steps": steps})
    assert result.status is Status.COMPLETED
    loaded = _load(store, result.execution_id)
    assert list(loaded.ctx) == ["big", "o0", "o1", "o2"]  # the input is kept apart
    assert (loaded.ctx["o0"], loaded.ctx["o1"], loaded.ctx["o2"]) == (9, 7, 8)


@pytest.mark.mysql
@pytest.mark.timeout(300)
def test_mysql_sends_each_value_in_a_statement_that_fits() -> None:
    # max_allowed_packet is 16 MiB: five 4 MB values go in separate statements, and a
    # single value longer than the limit is refused before anything is sent.
    store = scratch_store(MYSQL_URL)
    try:
        execution = _created(store, ctx={"a": 1})
        values = {f"v{i}": str(i) * 4_000_000 for i in range(5)}
        record, entries = next_checkpoint(execution, 1, ctx={"a": 1, **values})
        store.checkpoint(record, entries, execution.version, changed=tuple(values))
        assert _load(store, execution.id).ctx == record.ctx

        huge, entries = next_checkpoint(record, 1, ctx={**record.ctx, "huge": "h" * 17_000_000})
        with pytest.raises(ValueError, match="the checkpoint needs a statement of about 17000"):
            store.checkpoint(huge, entries, record.version, changed=("huge",))
        loaded = _load(store, execution.id)
        assert (loaded.version, loaded.ctx) == (record.version, record.ctx)

        whole, entries = next_checkpoint(record, 1, ctx=dict(reversed(record.ctx.items())))
        store.checkpoint(whole, entries, record.version, changed=None)
        assert list(_load(store, execution.id).ctx) == list(reversed(record.ctx))
    finally:
        store.close()


def test_values_are_json_data(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    execution = _created(store, ctx={"a": 1})
    record, entries = next_checkpoint(execution, 1, ctx={"a": {1, 2}})
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        store.checkpoint(record, entries, execution.version, changed=("a",))
    record = attrs.evolve(record, ctx={"a": float("nan")})
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        store.checkpoint(record, entries, execution.version, changed=("a",))
    assert _load(store, execution.id).ctx == {"a": 1}

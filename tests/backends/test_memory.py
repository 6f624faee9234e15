"""What only the in-memory store does: its warning, URLs, messages and internals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs
import pytest

import flowkit.backends.memory as memory_module
from flowkit import Store, connect
from flowkit.backends.memory import DurabilityWarning, MemoryStore
from flowkit.errors import ConfigError, ConflictError, FlowkitError
from flowkit.records import Status, encode_json
from flowkit.testing.conformance import T0, make_entry, make_execution, next_checkpoint

pytestmark = pytest.mark.memory


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    store = MemoryStore(warn=False)
    yield store
    store.close()


# --- opening -------------------------------------------------------------------------------------


def test_connect_warns_that_nothing_is_durable() -> None:
    with pytest.warns(DurabilityWarning, match=r"nothing is durable.*for tests") as record:
        store = connect("memory://")
    assert isinstance(store, MemoryStore)
    assert isinstance(store, Store)
    assert len(record) == 1
    assert record[0].filename == __file__  # the caller's line, not flowkit's
    assert issubclass(DurabilityWarning, UserWarning)
    store.close()


def test_warning_points_at_the_caller() -> None:
    with pytest.warns(DurabilityWarning) as record:
        MemoryStore()
    assert record[0].filename == __file__


def test_warn_false_is_silent() -> None:
    # pytest turns warnings into errors here, so constructing is the assertion.
    MemoryStore(warn=False).close()
    connect("memory://", warn=False).close()


def test_every_instance_is_a_separate_store() -> None:
    first = connect("memory://", warn=False)
    second = connect("memory://", warn=False)
    first.create(make_execution(id="ex-1"))
    assert second.load("ex-1") is None


def test_repr_names_the_url(store: MemoryStore) -> None:
    assert repr(store) == "MemoryStore('memory://')"


def test_other_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"MemoryStore needs a memory:// URL, got 'redis://x'"):
        MemoryStore("redis://x", warn=False)


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        connect("cassandra://db")
    message = str(raised.value)
    assert "no adapter for 'cassandra' in flowkit.stores" in message
    for scheme in ("memory", "mysql", "postgresql", "redis", "sqlite"):
        assert scheme in message


@pytest.mark.parametrize(
    ("url", "hint"),
    [("postgress://db", "postgres"), ("sqllite:///x.db", "sqlite"), ("redsi://x", "redis")],
)
def test_a_misspelled_scheme_gets_a_did_you_mean(url: str, hint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        connect(url)
    scheme = url.partition(":")[0]
    assert str(raised.value).startswith(
        f"no adapter for '{scheme}' in flowkit.stores (did you mean '{hint}'?) (known: mariadb, "
    )


@pytest.mark.parametrize("url", ["runs.db", "", "://nothing"])
def test_url_without_scheme_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"not a store URL: .*memory://"):
        connect(url)


# --- closing -------------------------------------------------------------------------------------


def test_calls_after_close_raise(store: MemoryStore) -> None:
    execution = make_execution()
    store.create(execution)
    store.close()
    store.close()
    with pytest.raises(FlowkitError, match=r"^store is closed$"):
        store.load(execution.id)
    with pytest.raises(FlowkitError, match=r"^store is closed$"):
        store.checkpoint(*next_checkpoint(execution), execution.version)
    with pytest.raises(FlowkitError, match=r"^store is closed$"):
        store.find()


# --- isolation -----------------------------------------------------------------------------------


def test_mutating_a_loaded_record_does_not_change_the_store(store: MemoryStore) -> None:
    execution = make_execution(ctx={"order": {"items": [1]}}, input={"a": 1})
    store.create(execution)
    loaded = store.load(execution.id)
    assert loaded is not None
    loaded.ctx["order"]["items"].append(2)
    loaded.ctx["new"] = True
    loaded.input.clear()
    again = store.load(execution.id)
    assert again is not None
    assert again.ctx == {"order": {"items": [1]}}
    assert again.input == {"a": 1}
    assert again is not loaded


def test_found_records_do_not_alias_the_store(store: MemoryStore) -> None:
    store.create(make_execution(id="ex-1", status=Status.HALTED, wake_at=T0, ctx={"n": [1]}))
    for found in (store.find(), store.due(T0)):
        found[0].ctx["n"].append(2)
    loaded = store.load("ex-1")
    assert loaded is not None
    assert loaded.ctx == {"n": [1]}


def test_stored_as_json_text(store: MemoryStore) -> None:
    execution = make_execution(id="ex-1", ctx={"t": (1, 2), "big": "x" * 1000})
    store.create(execution)
    slot = store._slots["ex-1"]
    # JSON fields as text, and each ctx value on its own.
    assert slot.record[list(memory_module._STATE).index("cursor")] == "{}"
    assert slot.ctx == {"t": "[1,2]", "big": encode_json("x" * 1000)}


def test_a_checkpoint_encodes_only_the_ctx_values_that_changed(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = make_execution(id="ex-1", ctx={"big": "x" * 1000})
    store.create(execution)
    encoded: list[Any] = []
    real = memory_module.encode_json

    def encode(value: Any) -> str:
        encoded.append(value)
        return real(value)

    monkeypatch.setattr(memory_module, "encode_json", encode)
    record, entries = next_checkpoint(execution, 1, ctx={"big": "x" * 1000, "n": 1})
    store.checkpoint(record, entries, execution.version, changed=("n",))
    assert "x" * 1000 not in encoded
    assert 1 in encoded


# --- messages ------------------------------------------------------------------------------------


def test_conflict_messages(store: MemoryStore) -> None:
    execution = make_execution(id="ex-1")
    store.create(execution)
    with pytest.raises(ConflictError, match=r"^execution 'ex-1' already exists$"):
        store.create(execution)
    record, entries = next_checkpoint(execution, 1)
    store.checkpoint(record, entries, execution.version)
    with pytest.raises(
        ConflictError,
        match=r"^checkpoint of execution 'ex-1': expected version 1, but the store holds "
        r"version 2 \(another writer got there first\); nothing was written$",
    ):
        store.checkpoint(record, entries, execution.version)
    ghost = make_execution(id="ghost")
    with pytest.raises(
        ConflictError,
        match=r"^checkpoint of execution 'ghost': it does not exist \(deleted, or never "
        r"created\); nothing was written$",
    ):
        store.checkpoint(*next_checkpoint(ghost), ghost.version)


def test_seq_conflict_message(store: MemoryStore) -> None:
    execution = make_execution(id="ex-1")
    store.create(execution)
    record, _ = next_checkpoint(execution, 0)
    record = attrs.evolve(record, seq=2)
    with pytest.raises(
        ConflictError,
        match=r"^checkpoint of execution 'ex-1': entries must continue at seq 1, got 2; "
        r"nothing was written$",
    ):
        store.checkpoint(record, [make_entry(execution, 2)], execution.version)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "version",
            r"^checkpoint of execution 'ex-1': execution.version must be "
            r"expected_version \+ 1 = 2, got 3$",
        ),
        (
            "owner",
            r"^checkpoint of execution 'ex-1': entry 'other:1' belongs to execution 'other'$",
        ),
        ("gap", r"^checkpoint of execution 'ex-1': entry seqs must be consecutive, got 1, 3$"),
        (
            "id",
            r"^checkpoint of execution 'ex-1': entry id must be '<execution_id>:<seq>' = "
            r"'ex-1:1', got 'log-1'$",
        ),
        (
            "seq",
            r"^checkpoint of execution 'ex-1': execution.seq must be the seq of its last "
            r"entry \(1\), got 2$",
        ),
        ("zero", r"^checkpoint of execution 'ex-1': entry seqs start at 1, got 0$"),
    ],
)
def test_argument_error_messages(store: MemoryStore, change: str, message: str) -> None:
    execution = make_execution(id="ex-1")
    store.create(execution)
    record, entries = next_checkpoint(execution, 1)
    if change == "version":
        record = attrs.evolve(record, version=3)
    elif change == "owner":
        entries = [make_entry("other", 1)]
    elif change == "gap":
        record = attrs.evolve(record, seq=3)
        entries = [make_entry(execution, 1), make_entry(execution, 3)]
    elif change == "id":
        entries = [attrs.evolve(entries[0], id="log-1")]
    elif change == "seq":
        record = attrs.evolve(record, seq=2)
    elif change == "zero":
        record = attrs.evolve(record, seq=0)
        entries = [make_entry(execution, 0)]
    with pytest.raises(ValueError, match=message):
        store.checkpoint(record, entries, execution.version)


def test_naive_time_message(store: MemoryStore) -> None:
    with pytest.raises(
        ValueError,
        match=r"^updated_at is a naive datetime \(2024-01-01T00:00:00\): stores keep "
        r"timezone-aware times; use e.g. datetime.now\(UTC\)$",
    ):
        store.create(make_execution(updated_at=datetime(2024, 1, 1)))


def test_query_argument_messages(store: MemoryStore) -> None:
    with pytest.raises(
        ValueError,
        match=r"^unknown status 'done' \(expected one of: pending, running, waiting, "
        r"halted, completed, failed, cancelled\)$",
    ):
        store.find(status="done")
    with pytest.raises(ValueError, match=r"^limit must be 0 or more, got -1$"):
        store.due(T0, limit=-1)


# --- cost ----------------------------------------------------------------------------------------


def test_entries_after_decodes_only_what_it_returns(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = make_execution()
    store.create(execution)
    current = execution
    for _ in range(50):
        record, entries = next_checkpoint(current, 4)
        store.checkpoint(record, entries, current.version)
        current = record
    decoded: list[object] = []
    real = memory_module._entry

    def counting_entry(values: list[object]) -> object:
        decoded.append(values)
        return real(values)

    monkeypatch.setattr(memory_module, "_entry", counting_entry)
    assert [entry.seq for entry in store.entries(execution.id, after=197)] == [198, 199, 200]
    assert len(decoded) == 3

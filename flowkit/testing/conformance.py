"""The store conformance suite: the contract every store adapter must pass.

An adapter's test module imports the suite and provides a ``store_factory``
fixture: a callable that returns a fresh, empty, isolated store each time it
is called (a new file, table prefix or key prefix), and that closes every
store it created when the test ends::

    import pytest

    import flowkit
    from flowkit.testing.conformance import *  # noqa: F403


    @pytest.fixture
    def store_factory(tmp_path):
        created = []

        def factory():
            store = flowkit.connect(f"sqlite:///{tmp_path}/store-{len(created)}.db")
            created.append(store)
            return store

        yield factory
        for store in created:
            store.close()

Call ``pytest.register_assert_rewrite("flowkit.testing.conformance")`` in a
``conftest.py`` before the import so that failures show pytest's detailed
assertion messages. The suite needs pytest and hypothesis (the ``testing`` extra:
``pip install 'flowkit-workflows[testing]'``).

The builders (:func:`make_execution`, :func:`make_entry`,
:func:`next_checkpoint`), :func:`snapshot` and :func:`assert_json_equal` are
meant for adapter-specific tests too; import them by name.
"""

from __future__ import annotations

import functools
import math
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from ..adapters import optional_import

optional_import("hypothesis", extra="testing", purpose="flowkit.testing.conformance")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402 - after the check above
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from ..abc import Store  # noqa: E402
from ..errors import ConflictError, ExecutionError, FlowkitError, NotFoundError  # noqa: E402
from ..records import (  # noqa: E402
    Action,
    Entry,
    Execution,
    Schedule,
    Signal,
    Status,
    encode_json,
    entry_to_dict,
    execution_to_dict,
)

__all__ = [
    "TestChangedCtx",
    "TestCheckpoint",
    "TestConcurrency",
    "TestCreateLoad",
    "TestDelete",
    "TestDueStale",
    "TestEntries",
    "TestFind",
    "TestFindPages",
    "TestJsonFidelity",
    "TestLifecycle",
    "TestMessages",
    "TestPrune",
    "TestSchedules",
    "TestSignals",
    "store",
    "test_store_matches_model",
]

StoreFactory = Callable[[], Store]

#: A fixed, non-round UTC time (microseconds set) the builders start from.
T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)


# --- builders and helpers (importable by adapter-specific tests) ---------------------------------


def make_execution(**overrides: Any) -> Execution:
    """An execution with a fresh unique id, created and updated at :data:`T0`."""
    fields: dict[str, Any] = {
        "id": f"ex-{uuid.uuid4().hex[:16]}",
        "workflow_id": "order",
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return Execution(**fields)


def make_entry(execution: Execution | str, seq: int, **overrides: Any) -> Entry:
    """Entry ``seq`` of an execution (id ``"<execution_id>:<seq>"``)."""
    execution_id = execution if isinstance(execution, str) else execution.id
    fields: dict[str, Any] = {
        "id": f"{execution_id}:{seq}",
        "execution_id": execution_id,
        "seq": seq,
        "step_id": f"step{seq}",
        "step_type": "call",
        "action": Action.COMPLETED,
        "output": {"seq": seq},
        "timestamp": T0 + timedelta(seconds=seq),
    }
    fields.update(overrides)
    return Entry(**fields)


def next_checkpoint(
    execution: Execution, entries: int = 1, **changes: Any
) -> tuple[Execution, list[Entry]]:
    """The record and entries of a valid checkpoint following ``execution``.

    The new record has ``version + 1``, ``seq + entries``, ``updated_at`` one
    second later (unless ``changes`` say otherwise) and ``changes`` applied;
    the entries continue the execution's log. Write it with
    ``store.checkpoint(record, entries, execution.version)``.
    """
    changes.setdefault("updated_at", execution.updated_at + timedelta(seconds=1))
    new_entries = [make_entry(execution, execution.seq + n) for n in range(1, entries + 1)]
    record = attrs.evolve(
        execution, version=execution.version + 1, seq=execution.seq + entries, **changes
    )
    return record, new_entries


def canonical(value: Execution | Entry) -> str:
    """A record as canonical JSON text: equal text means equal records, types included."""
    data = execution_to_dict(value) if isinstance(value, Execution) else entry_to_dict(value)
    return encode_json(data)


def snapshot(store: Store, execution_id: str) -> tuple[str | None, list[str]]:
    """What the store holds for an execution, as canonical JSON text, to compare before/after."""
    execution = store.load(execution_id)
    return (
        None if execution is None else canonical(execution),
        [canonical(entry) for entry in store.entries(execution_id)],
    )


def assert_json_equal(got: Any, expected: Any, path: str = "$") -> None:
    """Assert that a value came back from a store as the JSON data that went in.

    Types are kept apart (``True`` is not ``1``, ``1`` is not ``"1"``), tuples
    come back as lists, and mapping key order is not compared. Floats compare
    by value: a store that keeps numbers as decimals may return ``1e300`` as
    the integer ``10**300`` and ``-0.0`` as ``0``, which JSON cannot tell apart.
    """
    if expected is None or isinstance(expected, bool | str):
        assert type(got) is type(expected), f"{path}: {got!r} is not {expected!r}"
        assert got == expected, f"{path}: {got!r} != {expected!r}"
    elif isinstance(expected, int):
        assert type(got) is int, f"{path}: {got!r} ({type(got).__name__}) is not int"
        assert got == expected, f"{path}: {got} != {expected}"
    elif isinstance(expected, float):
        assert type(got) in (int, float), f"{path}: {got!r} is not a number"
        assert float(got) == expected, f"{path}: {got!r} != {expected!r}"
    elif isinstance(expected, list | tuple):
        assert type(got) is list, f"{path}: {got!r} is not a list"
        assert len(got) == len(expected), f"{path}: {len(got)} items, expected {len(expected)}"
        for index, (item, want) in enumerate(zip(got, expected, strict=True)):
            assert_json_equal(item, want, f"{path}[{index}]")
    elif isinstance(expected, dict):
        assert type(got) is dict, f"{path}: {got!r} is not a dict"
        assert set(got) == set(expected), f"{path}: keys {sorted(got)} != {sorted(expected)}"
        for key, want in expected.items():
            assert_json_equal(got[key], want, f"{path}.{key}")
    else:  # pragma: no cover - a mistake in the test itself
        raise TypeError(f"{path}: {expected!r} is not JSON data")


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    """A fresh, empty store from the including module's ``store_factory`` fixture."""
    return store_factory()


def _created(store: Store, **overrides: Any) -> Execution:
    execution = make_execution(**overrides)
    store.create(execution)
    return execution


def _ids(executions: list[Execution]) -> list[str]:
    return [execution.id for execution in executions]


# --- create / load -------------------------------------------------------------------------------


def _full_execution() -> Execution:
    """An execution with every field set to a non-default value."""
    return make_execution(
        workflow_id="expense_approval",
        workflow_version="2.1",
        status=Status.HALTED,
        input={"amount": 250, "note": "taxi"},
        ctx={"input": {"amount": 250}, "validation": {"ok": True, "score": 0.5}},
        current_step="ask",
        cursor={"loop": {"index": 3, "results": [1, 2, 3]}},
        result={"done": False},
        recover_to="decide",
        halt_data={"reason": "approval", "prompt": "Approve 250?"},
        error="ValueError: previous attempt",
        parent_id="ex-parent",
        version=7,
        seq=5,
        created_at=datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        updated_at=datetime(2024, 1, 2, 3, 4, 6, 1, tzinfo=UTC),
        wake_at=datetime(2024, 1, 3, 3, 4, 5, 999999, tzinfo=UTC),
        definition_hash="sha256:0123abcd",
        lease_owner="host-1:4242",
        lease_expires_at=datetime(2024, 1, 2, 3, 5, 0, 500000, tzinfo=UTC),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


class TestCreateLoad:
    """``create`` and ``load``."""

    def test_round_trip_of_every_field(self, store: Store) -> None:
        execution = _full_execution()
        store.create(execution)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded == execution
        assert canonical(loaded) == canonical(execution)
        assert isinstance(loaded.status, Status)
        for name in ("created_at", "updated_at", "wake_at", "lease_expires_at"):
            value = getattr(loaded, name)
            assert value.utcoffset() == timedelta(0), f"{name} is not UTC: {value!r}"
            assert value.microsecond == getattr(execution, name).microsecond

    def test_round_trip_of_defaults(self, store: Store) -> None:
        execution = Execution(id="ex-defaults", workflow_id="w", created_at=T0, updated_at=T0)
        store.create(execution)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert canonical(loaded) == canonical(execution)
        assert loaded.halt_data is None
        assert loaded.result is None
        assert loaded.wake_at is None
        assert loaded.lease_expires_at is None

    def test_load_unknown_id_is_none(self, store: Store) -> None:
        _created(store)
        assert store.load("no-such-execution") is None

    def test_create_existing_id_conflicts_and_changes_nothing(self, store: Store) -> None:
        execution = _created(store, ctx={"original": True})
        store.checkpoint(*next_checkpoint(execution, 2), execution.version)
        before = snapshot(store, execution.id)
        with pytest.raises(ConflictError):
            store.create(make_execution(id=execution.id, ctx={"original": False}))
        assert snapshot(store, execution.id) == before

    def test_times_come_back_in_utc(self, store: Store) -> None:
        india = timezone(timedelta(hours=5, minutes=30))
        local = datetime(2024, 3, 1, 17, 0, 0, 654321, tzinfo=india)
        execution = _created(store, created_at=local, updated_at=local, wake_at=local)
        loaded = store.load(execution.id)
        assert loaded is not None
        for value in (loaded.created_at, loaded.updated_at, loaded.wake_at):
            assert value == local
            assert value is not None
            assert value.utcoffset() == timedelta(0)
            assert value.microsecond == 654321

    def test_naive_times_are_rejected(self, store: Store) -> None:
        naive = datetime(2024, 3, 1, 17, 0, 0)
        with pytest.raises(ValueError, match="naive"):
            store.create(make_execution(id="ex-naive", updated_at=naive))
        assert store.load("ex-naive") is None

    def test_non_json_data_is_rejected(self, store: Store) -> None:
        with pytest.raises(TypeError):
            store.create(make_execution(id="ex-set", ctx={"tags": {"a", "b"}}))
        with pytest.raises(ValueError):  # noqa: PT011 - the message is the JSON encoder's
            store.create(make_execution(id="ex-nan", ctx={"x": math.nan}))
        assert store.load("ex-set") is None
        assert store.load("ex-nan") is None

    def test_records_never_alias_stored_state(self, store: Store) -> None:
        execution = make_execution(ctx={"items": [1, 2]}, cursor={"i": 0})
        store.create(execution)
        execution.ctx["items"].append(3)  # the caller changes what it passed
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"items": [1, 2]}
        loaded.ctx["items"].append(4)  # and what it loaded
        loaded.cursor["i"] = 99
        again = store.load(execution.id)
        assert again is not None
        assert again.ctx == {"items": [1, 2]}
        assert again.cursor == {"i": 0}

        stored = store.load(execution.id)
        assert stored is not None
        record, entries = next_checkpoint(stored, 1)
        entry = attrs.evolve(entries[0], output={"list": [1]})
        store.checkpoint(record, [entry], stored.version)
        entry.output["list"].append(2)
        store.entries(execution.id)[0].output["list"].append(3)
        assert store.entries(execution.id)[0].output == {"list": [1]}


# --- checkpoint ----------------------------------------------------------------------------------


def _bad_version(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 1)
    return attrs.evolve(record, version=base.version + 2), entries, base.version


def _duplicate_seq(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 2)
    return record, [entries[0], attrs.evolve(entries[1], seq=entries[0].seq, id=entries[0].id)], 3


def _gap_in_batch(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 2)
    late = make_entry(base, base.seq + 3)
    return attrs.evolve(record, seq=late.seq), [entries[0], late], base.version


def _entries_out_of_order(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 2)
    return record, entries[::-1], base.version


def _entry_of_other_execution(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 1)
    other = make_entry("ex-other", entries[0].seq)
    return record, [other], base.version


def _entry_id_mismatch(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 1)
    return record, [attrs.evolve(entries[0], id="entry-1")], base.version


def _seq_not_last_entry(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 2)
    return attrs.evolve(record, seq=record.seq + 1), entries, base.version


def _seq_zero(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, _ = next_checkpoint(base, 0)
    return attrs.evolve(record, seq=0), [make_entry(base, 0)], base.version


def _seq_reuses_stored(base: Execution) -> tuple[Execution, list[Entry], int]:
    entries = [make_entry(base, base.seq), make_entry(base, base.seq + 1)]
    record, _ = next_checkpoint(base, 0)
    return attrs.evolve(record, seq=base.seq + 1), entries, base.version


def _seq_skips_ahead(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, _ = next_checkpoint(base, 0)
    return attrs.evolve(record, seq=base.seq + 2), [make_entry(base, base.seq + 2)], base.version


def _seq_moves_without_entries(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, _ = next_checkpoint(base, 0)
    return attrs.evolve(record, seq=base.seq + 1), [], base.version


def _non_json_entry(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 2)
    return record, [entries[0], attrs.evolve(entries[1], output={1j})], base.version


def _infinity_in_ctx(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 1, ctx={"x": math.inf})
    return record, entries, base.version


def _lone_surrogate_in_ctx(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 1, ctx={"x": "bad\ud800"})
    return record, entries, base.version


def _lone_surrogate_in_entry_key(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 1)
    return record, [attrs.evolve(entries[0], output={"k\udc80": 1})], base.version


def _naive_updated_at(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 1, updated_at=datetime(2024, 1, 1))
    return record, entries, base.version


def _naive_entry_timestamp(base: Execution) -> tuple[Execution, list[Entry], int]:
    record, entries = next_checkpoint(base, 1)
    return record, [attrs.evolve(entries[0], timestamp=datetime(2024, 1, 1))], base.version


#: Checkpoints a store must refuse, writing nothing. Argument errors that need
#: no stored state raise ValueError (TypeError for non-JSON data); anything
#: that contradicts the stored state raises ConflictError.
INVALID_CHECKPOINTS: dict[
    str, tuple[Callable[[Execution], tuple[Execution, list[Entry], int]], type[Exception]]
] = {
    "version-not-expected-plus-one": (_bad_version, ValueError),
    "duplicate-seq-in-batch": (_duplicate_seq, ValueError),
    "gap-in-batch": (_gap_in_batch, ValueError),
    "entries-out-of-order": (_entries_out_of_order, ValueError),
    "entry-of-other-execution": (_entry_of_other_execution, ValueError),
    "entry-id-not-execution-id-colon-seq": (_entry_id_mismatch, ValueError),
    "execution-seq-not-last-entry-seq": (_seq_not_last_entry, ValueError),
    "seq-zero": (_seq_zero, ValueError),
    "seq-reuses-a-stored-seq": (_seq_reuses_stored, ConflictError),
    "seq-skips-ahead-of-stored": (_seq_skips_ahead, ConflictError),
    "seq-moves-without-entries": (_seq_moves_without_entries, ConflictError),
    "non-json-entry-output": (_non_json_entry, TypeError),
    "infinity-in-ctx": (_infinity_in_ctx, ValueError),
    # UTF-8 cannot encode a lone surrogate: every store refuses it (UnicodeEncodeError).
    "lone-surrogate-in-ctx": (_lone_surrogate_in_ctx, ValueError),
    "lone-surrogate-in-entry-key": (_lone_surrogate_in_entry_key, ValueError),
    "naive-updated-at": (_naive_updated_at, ValueError),
    "naive-entry-timestamp": (_naive_entry_timestamp, ValueError),
}


class TestCheckpoint:
    """``checkpoint``: atomic, version-guarded writes of a record and its entries."""

    def test_writes_record_and_entries_together(self, store: Store) -> None:
        execution = _created(store)
        record, entries = next_checkpoint(
            execution, 2, status=Status.RUNNING, ctx={"a": 1}, current_step="charge"
        )
        store.checkpoint(record, entries, expected_version=execution.version)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert canonical(loaded) == canonical(record)
        assert loaded.version == execution.version + 1
        assert loaded.seq == 2
        assert [canonical(e) for e in store.entries(execution.id)] == [
            canonical(e) for e in entries
        ]

    def test_successive_checkpoints_bump_version_and_append(self, store: Store) -> None:
        execution = _created(store)
        written: list[Entry] = []
        current = execution
        for count in (1, 0, 3, 1):
            record, entries = next_checkpoint(current, count, ctx={"step": current.version})
            store.checkpoint(record, entries, current.version)
            written += entries
            current = record
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.version == execution.version + 4
        assert loaded.seq == 5
        assert loaded.ctx == {"step": execution.version + 3}
        assert [e.seq for e in store.entries(execution.id)] == [1, 2, 3, 4, 5]
        assert [canonical(e) for e in store.entries(execution.id)] == [
            canonical(e) for e in written
        ]

    def test_checkpoint_without_entries(self, store: Store) -> None:
        execution = _created(store)
        record, entries = next_checkpoint(execution, 0, status=Status.COMPLETED, result=[1])
        assert entries == []
        store.checkpoint(record, [], execution.version)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert canonical(loaded) == canonical(record)
        assert store.entries(execution.id) == []

    def test_record_is_replaced_whole(self, store: Store) -> None:
        execution = _created(store, ctx={"a": 1, "b": 2}, wake_at=T0, error="x")
        record, entries = next_checkpoint(execution, 1, ctx={"c": 3}, wake_at=None, error=None)
        store.checkpoint(record, entries, execution.version)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"c": 3}
        assert loaded.wake_at is None
        assert loaded.error is None

    def test_fields_set_by_create_are_kept(self, store: Store) -> None:
        # id, workflow_id, input, parent_id and created_at never change after
        # create; a checkpoint does not rewrite them (a large input costs
        # nothing per step), so values passed to a checkpoint are ignored.
        execution = _created(
            store, workflow_id="w", input={"big": list(range(100))}, parent_id="ex-parent"
        )
        record, entries = next_checkpoint(
            execution,
            1,
            workflow_id="renamed",
            input={"other": True},
            parent_id=None,
            created_at=T0 + timedelta(days=1),
            ctx={"changed": True},
        )
        store.checkpoint(record, entries, execution.version)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.workflow_id == "w"
        assert loaded.input == {"big": list(range(100))}
        assert loaded.parent_id == "ex-parent"
        assert loaded.created_at == T0
        assert loaded.ctx == {"changed": True}
        assert loaded.version == record.version
        assert _ids(store.find(workflow_id="w")) == [execution.id]
        assert store.find(workflow_id="renamed") == []

    @pytest.mark.parametrize("drift", [-1, 1, 5], ids=["behind", "ahead", "far-ahead"])
    def test_stale_expected_version_conflicts_and_changes_nothing(
        self, store: Store, drift: int
    ) -> None:
        execution = _created(store)
        current, entries = next_checkpoint(execution, 2)
        store.checkpoint(current, entries, execution.version)
        before = snapshot(store, execution.id)
        stale = attrs.evolve(current, version=current.version + drift)
        record, entries = next_checkpoint(stale, 1, ctx={"lost": True})
        with pytest.raises(ConflictError):
            store.checkpoint(record, entries, stale.version)
        assert snapshot(store, execution.id) == before

    def test_missing_execution_conflicts_and_creates_nothing(self, store: Store) -> None:
        other = _created(store)
        ghost = make_execution(id="ex-ghost")
        record, entries = next_checkpoint(ghost, 2)
        with pytest.raises(ConflictError):
            store.checkpoint(record, entries, ghost.version)
        assert snapshot(store, "ex-ghost") == (None, [])
        assert _ids(store.find()) == [other.id]

    def test_deleted_execution_conflicts(self, store: Store) -> None:
        execution = _created(store)
        assert store.delete(execution.id)
        with pytest.raises(ConflictError):
            store.checkpoint(*next_checkpoint(execution, 1), execution.version)
        assert snapshot(store, execution.id) == (None, [])

    @pytest.mark.parametrize(
        ("build", "error"), list(INVALID_CHECKPOINTS.values()), ids=list(INVALID_CHECKPOINTS)
    )
    def test_invalid_checkpoint_writes_nothing(
        self,
        store: Store,
        build: Callable[[Execution], tuple[Execution, list[Entry], int]],
        error: type[Exception],
    ) -> None:
        execution = _created(store)
        base, entries = next_checkpoint(execution, 2, ctx={"n": 1})
        store.checkpoint(base, entries, execution.version)
        before = snapshot(store, execution.id)
        record, bad_entries, expected_version = build(base)
        with pytest.raises(error) as raised:
            store.checkpoint(record, bad_entries, expected_version)
        if error is not ConflictError:
            assert not isinstance(raised.value, ConflictError)
        assert snapshot(store, execution.id) == before
        # The store is still consistent: the right next checkpoint goes through.
        record, entries = next_checkpoint(base, 1, ctx={"n": 2})
        store.checkpoint(record, entries, base.version)
        assert [e.seq for e in store.entries(execution.id)] == [1, 2, 3]


# --- entries -------------------------------------------------------------------------------------


class TestEntries:
    """``entries``: one execution's log in seq order."""

    def test_in_seq_order_with_after(self, store: Store) -> None:
        execution = _created(store)
        current = execution
        for count in (3, 2, 1):
            record, entries = next_checkpoint(current, count)
            store.checkpoint(record, entries, current.version)
            current = record
        assert [e.seq for e in store.entries(execution.id)] == [1, 2, 3, 4, 5, 6]
        assert [e.seq for e in store.entries(execution.id, after=0)] == [1, 2, 3, 4, 5, 6]
        assert [e.seq for e in store.entries(execution.id, after=4)] == [5, 6]
        assert [e.seq for e in store.entries(execution.id, after=5)] == [6]
        assert store.entries(execution.id, after=6) == []
        assert store.entries(execution.id, after=100) == []
        assert [e.seq for e in store.entries(execution.id, after=-3)] == [1, 2, 3, 4, 5, 6]

    def test_every_entry_field_round_trips(self, store: Store) -> None:
        execution = _created(store)
        record, _ = next_checkpoint(execution, 1)
        entry = Entry(
            id=f"{execution.id}:1",
            execution_id=execution.id,
            seq=1,
            step_id="each:charge",
            step_type="call",
            action=Action.RETRIED,
            attempt=3,
            duration_ms=12.625,
            input={"amount": 5},
            output=["x", None],
            error="TimeoutError: slow",
            timestamp=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
            iteration=4,
        )
        store.checkpoint(record, [entry], execution.version)
        (loaded,) = store.entries(execution.id)
        assert loaded == entry
        assert canonical(loaded) == canonical(entry)
        assert isinstance(loaded.action, Action)
        assert loaded.timestamp.utcoffset() == timedelta(0)
        assert loaded.iteration == 4
        assert store.entries(execution.id) == [entry]

    def test_entry_times_come_back_in_utc(self, store: Store) -> None:
        execution = _created(store)
        record, entries = next_checkpoint(execution, 1)
        west = timezone(timedelta(hours=-7))
        local = datetime(2024, 3, 1, 1, 2, 3, 4, tzinfo=west)
        store.checkpoint(record, [attrs.evolve(entries[0], timestamp=local)], execution.version)
        (loaded,) = store.entries(execution.id)
        assert loaded.timestamp == local
        assert loaded.timestamp.utcoffset() == timedelta(0)

    def test_other_executions_never_mixed_in(self, store: Store) -> None:
        first = _created(store, id="ex-a")
        second = _created(store, id="ex-a2")  # an id that extends the other one
        third = _created(store, id="ex-")
        for execution, count in ((first, 2), (second, 3), (third, 1)):
            store.checkpoint(*next_checkpoint(execution, count), execution.version)
        assert {e.execution_id for e in store.entries("ex-a")} == {"ex-a"}
        assert [e.seq for e in store.entries("ex-a")] == [1, 2]
        assert [e.seq for e in store.entries("ex-a2")] == [1, 2, 3]
        assert [e.id for e in store.entries("ex-")] == ["ex-:1"]
        assert store.entries("ex-a", after=1)[0].id == "ex-a:2"

    def test_unknown_execution_has_no_entries(self, store: Store) -> None:
        _created(store)
        assert store.entries("no-such-execution") == []

    def test_log_continues_from_created_seq(self, store: Store) -> None:
        execution = _created(store, seq=4)
        store.checkpoint(*next_checkpoint(execution, 2), execution.version)
        assert [e.seq for e in store.entries(execution.id)] == [5, 6]
        assert [e.seq for e in store.entries(execution.id, after=5)] == [6]


# --- find ----------------------------------------------------------------------------------------


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


class TestFind:
    """``find``: filters, limit, newest updated first (ties by id, descending)."""

    @pytest.fixture
    def population(self, store: Store) -> Store:
        rows = [
            ("a1", "alpha", Status.RUNNING, 1),
            ("a2", "alpha", Status.HALTED, 5),
            ("a3", "alpha", Status.COMPLETED, 3),
            ("b1", "beta", Status.HALTED, 4),
            ("b2", "beta", Status.FAILED, 2),
            ("b3", "beta", Status.HALTED, 5),  # same updated_at as a2
        ]
        for execution_id, workflow_id, status, minutes in rows:
            _created(
                store,
                id=execution_id,
                workflow_id=workflow_id,
                status=status,
                updated_at=_at(minutes),
            )
        return store

    def test_all_newest_updated_first(self, population: Store) -> None:
        assert _ids(population.find()) == ["b3", "a2", "b1", "a3", "b2", "a1"]

    def test_by_workflow(self, population: Store) -> None:
        assert _ids(population.find(workflow_id="alpha")) == ["a2", "a3", "a1"]
        assert _ids(population.find(workflow_id="gamma")) == []

    @pytest.mark.parametrize("status", [Status.HALTED, "halted"], ids=["enum", "text"])
    def test_by_status(self, population: Store, status: Status | str) -> None:
        assert _ids(population.find(status=status)) == ["b3", "a2", "b1"]

    def test_by_workflow_and_status(self, population: Store) -> None:
        assert _ids(population.find(workflow_id="beta", status=Status.HALTED)) == ["b3", "b1"]
        assert _ids(population.find(workflow_id="alpha", status="failed")) == []

    def test_limit(self, population: Store) -> None:
        assert _ids(population.find(limit=2)) == ["b3", "a2"]
        assert _ids(population.find(status="halted", limit=1)) == ["b3"]
        assert population.find(limit=0) == []

    def test_returns_whole_records(self, population: Store) -> None:
        for found in population.find():
            loaded = population.load(found.id)
            assert loaded is not None
            assert canonical(found) == canonical(loaded)

    def test_follows_checkpoints_and_deletes(self, population: Store) -> None:
        a1 = population.load("a1")
        assert a1 is not None
        record, entries = next_checkpoint(
            a1, 1, status=Status.HALTED, workflow_id="alpha", updated_at=_at(9)
        )
        population.checkpoint(record, entries, a1.version)
        assert _ids(population.find(status="halted")) == ["a1", "b3", "a2", "b1"]
        assert _ids(population.find(status="running")) == []
        assert _ids(population.find()) == ["a1", "b3", "a2", "b1", "a3", "b2"]
        assert population.delete("b3")
        assert _ids(population.find(status="halted")) == ["a1", "a2", "b1"]
        assert _ids(population.find(workflow_id="beta")) == ["b1", "b2"]

    def test_unknown_status_is_refused(self, population: Store) -> None:
        with pytest.raises(ValueError, match="sleeping"):
            population.find(status="sleeping")

    def test_negative_limit_is_refused(self, population: Store) -> None:
        with pytest.raises(ValueError, match="limit"):
            population.find(limit=-1)


# --- delete --------------------------------------------------------------------------------------


class TestDelete:
    """``delete``: the record and its entries go."""

    def test_removes_record_and_entries(self, store: Store) -> None:
        execution = _created(store)
        keep = _created(store)
        store.checkpoint(*next_checkpoint(execution, 2), execution.version)
        store.checkpoint(*next_checkpoint(keep, 1), keep.version)
        assert store.delete(execution.id) is True
        assert store.load(execution.id) is None
        assert store.entries(execution.id) == []
        assert _ids(store.find()) == [keep.id]
        assert len(store.entries(keep.id)) == 1

    def test_unknown_id_is_false(self, store: Store) -> None:
        execution = _created(store)
        assert store.delete("no-such-execution") is False
        assert store.delete(execution.id) is True
        assert store.delete(execution.id) is False

    def test_id_can_be_reused_with_a_fresh_log(self, store: Store) -> None:
        execution = _created(store, ctx={"life": 1})
        store.checkpoint(*next_checkpoint(execution, 3), execution.version)
        store.delete(execution.id)
        again = _created(store, id=execution.id, ctx={"life": 2})
        assert store.entries(execution.id) == []
        store.checkpoint(*next_checkpoint(again, 1), again.version)
        assert [e.seq for e in store.entries(execution.id)] == [1]
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"life": 2}


# --- due / stale ---------------------------------------------------------------------------------


class TestDueStale:
    """``due`` (timers) and ``stale`` (expired leases)."""

    def test_due_only_halted_or_waiting_with_wake_at_passed_earliest_first(
        self, store: Store
    ) -> None:
        now = _at(10)
        rows: list[tuple[str, Status, datetime | None]] = [
            ("late", Status.HALTED, _at(9)),
            ("early", Status.HALTED, _at(1)),
            ("exact", Status.HALTED, now),
            ("tie-b", Status.WAITING, _at(5)),
            ("tie-a", Status.HALTED, _at(5)),
            ("sleeping", Status.WAITING, _at(2)),
            ("future", Status.WAITING, now + timedelta(microseconds=1)),
            ("no-timer", Status.HALTED, None),
            ("waits-for-a-signal", Status.WAITING, None),
            ("running", Status.RUNNING, _at(1)),
            ("done", Status.COMPLETED, _at(1)),
            ("failed", Status.FAILED, _at(1)),
            ("cancelled", Status.CANCELLED, _at(1)),
            ("pending", Status.PENDING, _at(1)),
        ]
        for execution_id, status, wake_at in rows:
            _created(store, id=execution_id, status=status, wake_at=wake_at)
        assert _ids(store.due(now)) == ["early", "sleeping", "tie-a", "tie-b", "late", "exact"]
        assert _ids(store.due(now, limit=2)) == ["early", "sleeping"]
        assert store.due(now, limit=0) == []
        assert store.due(_at(0)) == []

    def test_due_follows_checkpoints(self, store: Store) -> None:
        execution = _created(store, status=Status.HALTED, wake_at=_at(1))
        assert _ids(store.due(_at(2))) == [execution.id]
        record, entries = next_checkpoint(execution, 1, status=Status.RUNNING, wake_at=None)
        store.checkpoint(record, entries, execution.version)
        assert store.due(_at(2)) == []
        halted, entries = next_checkpoint(record, 1, status=Status.HALTED, wake_at=_at(3))
        store.checkpoint(halted, entries, record.version)
        assert store.due(_at(2)) == []
        assert _ids(store.due(_at(3))) == [execution.id]
        waiting, entries = next_checkpoint(halted, 1, status=Status.WAITING, wake_at=_at(4))
        store.checkpoint(waiting, entries, halted.version)
        assert store.due(_at(3)) == []
        assert _ids(store.due(_at(4))) == [execution.id]
        cancelled, entries = next_checkpoint(waiting, 1, status=Status.CANCELLED, wake_at=None)
        store.checkpoint(cancelled, entries, waiting.version)
        assert store.due(_at(4)) == []
        store.delete(execution.id)
        assert store.due(_at(4)) == []

    def test_stale_only_running_with_expired_lease_oldest_first(self, store: Store) -> None:
        now = _at(10)
        rows: list[tuple[str, Status, datetime | None]] = [
            ("late", Status.RUNNING, _at(9)),
            ("early", Status.RUNNING, _at(1)),
            ("exact", Status.RUNNING, now),
            ("tie-b", Status.RUNNING, _at(5)),
            ("tie-a", Status.RUNNING, _at(5)),
            ("fresh", Status.RUNNING, now + timedelta(microseconds=1)),
            ("no-lease", Status.RUNNING, None),
            ("halted", Status.HALTED, _at(1)),
            ("done", Status.COMPLETED, _at(1)),
            ("pending", Status.PENDING, _at(1)),
        ]
        for execution_id, status, lease in rows:
            _created(
                store, id=execution_id, status=status, lease_owner="w1", lease_expires_at=lease
            )
        assert _ids(store.stale(now)) == ["early", "tie-a", "tie-b", "late", "exact"]
        assert _ids(store.stale(now, limit=3)) == ["early", "tie-a", "tie-b"]
        assert store.stale(now, limit=0) == []
        assert store.stale(_at(0)) == []

    def test_stale_follows_checkpoints(self, store: Store) -> None:
        execution = _created(store, status=Status.RUNNING, lease_expires_at=_at(1))
        assert _ids(store.stale(_at(2))) == [execution.id]
        renewed, entries = next_checkpoint(execution, 1, lease_expires_at=_at(4))
        store.checkpoint(renewed, entries, execution.version)
        assert store.stale(_at(2)) == []
        assert _ids(store.stale(_at(4))) == [execution.id]
        done, entries = next_checkpoint(renewed, 1, status=Status.COMPLETED)
        store.checkpoint(done, entries, renewed.version)
        assert store.stale(_at(4)) == []

    def test_naive_now_and_negative_limit_are_refused(self, store: Store) -> None:
        naive = datetime(2024, 1, 1)
        for query in (store.due, store.stale):
            with pytest.raises(ValueError, match="naive"):
                query(naive)
            with pytest.raises(ValueError, match="limit"):
                query(T0, limit=-1)

    def test_now_in_another_timezone(self, store: Store) -> None:
        _created(store, id="due", status=Status.HALTED, wake_at=_at(0))
        _created(store, id="stale", status=Status.RUNNING, lease_expires_at=_at(0))
        tokyo = timezone(timedelta(hours=9))
        assert _ids(store.due(_at(0).astimezone(tokyo))) == ["due"]
        assert _ids(store.stale(_at(0).astimezone(tokyo))) == ["stale"]
        before = (_at(0) - timedelta(microseconds=1)).astimezone(tokyo)
        assert store.due(before) == []
        assert store.stale(before) == []


# --- JSON fidelity -------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"level": level, "down": [value]} if level % 2 else [value, level]
    return value


# Lone surrogates are not valid UTF-8: stores refuse them (INVALID_CHECKPOINTS).
FIDELITY_CASES: dict[str, Any] = {
    "nul": {"ke\x00y": "val\x00ue", "list": ["\x00"]},
    "emoji": "🦆 🚀 👩‍👩‍👧‍👦 🇯🇵 👍🏽",
    "cjk": "漢字 かな カナ 한국어 中文",
    "rtl": "שלום עולם مرحبا بالعالم",
    "combining-marks": "e\u0301 a\u0308 n\u0303 \u1e9b\u0323 Zalgo: Z\u0351\u036b\u0343",
    "escapes": 'quote " backslash \\ slash / newline \n tab \t cr \r bell \u0007 \u001f \u2028',
    "unicode-keys": {"ключ": 1, "🔑": 2, "": 3, "a.b": 4, "$ref": 5, " ": 6},
    "nested": {"a": [1, [2, [3, {"b": [], "c": {}}]], {}], "d": {"e": {"f": {"g": None}}}},
    "deep": _nested(30),
    "big-ints": [2**63 + 1, -(2**70), 2**63 - 1, -(2**63), 2**64, 10**30],
    "floats": [0.1, 1e300, -1e-300, 1.5, -2.25, 123456789.123456, 2.0**-1074],
    "negative-zero": [-0.0, 0.0],
    "integral-float": [1.0, -3.0, 1e16],
    "scalars": [None, True, False, 0, 1, -1, "", "0", "true", "null"],
    "bools-and-ints": {"t": True, "f": False, "one": 1, "zero": 0, "list": [True, 1, 0, False]},
    "empty-containers": {"list": [], "dict": {}, "nested": [[], {}, [[]], {"x": {}}]},
    "long-text": "x" * 100_000 + "ü",
    "plain-string": "just text",
    "null": None,
}


class TestJsonFidelity:
    """JSON data comes back as it went in, through every JSON field."""

    @pytest.mark.parametrize("value", list(FIDELITY_CASES.values()), ids=list(FIDELITY_CASES))
    def test_value_round_trips(self, store: Store, value: Any) -> None:
        execution = _created(
            store,
            input={"v": value},
            ctx={"v": value},
            cursor={"v": value},
            result=value,
            halt_data={"v": value},
        )
        loaded = store.load(execution.id)
        assert loaded is not None
        for name in ("input", "ctx", "cursor", "halt_data"):
            assert_json_equal(getattr(loaded, name), {"v": value}, name)
        assert_json_equal(loaded.result, value, "result")

        record, entries = next_checkpoint(execution, 1, ctx={"w": [value]}, result={"r": value})
        entry = attrs.evolve(entries[0], input=value, output={"v": value})
        store.checkpoint(record, [entry], execution.version)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert_json_equal(loaded.ctx, {"w": [value]}, "ctx")
        assert_json_equal(loaded.result, {"r": value}, "result")
        (stored,) = store.entries(execution.id)
        assert_json_equal(stored.input, value, "entry.input")
        assert_json_equal(stored.output, {"v": value}, "entry.output")
        (found,) = store.find()
        assert_json_equal(found.ctx, {"w": [value]}, "find().ctx")

    def test_tuples_come_back_as_lists(self, store: Store) -> None:
        execution = _created(store, ctx={"t": (1, (2, 3), ())}, result=(4, 5))
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"t": [1, [2, 3], []]}
        assert type(loaded.ctx["t"]) is list
        assert loaded.result == [4, 5]

    def test_key_order_is_kept(self, store: Store) -> None:
        # Resumed executions must see ctx exactly as a run that never stopped
        # would: `keys`/`values` transforms and dict iteration depend on order.
        # (PostgreSQL JSONB and MySQL JSON reorder keys; store text instead.)
        keys = ["zeta", "alpha", "mid", "b", "aa", "10", "9", "é", "e"]
        data = {key: index for index, key in enumerate(keys)}
        execution = _created(store, ctx={"d": data, "nested": [{"y": 1, "x": 2}]})
        loaded = store.load(execution.id)
        assert loaded is not None
        assert list(loaded.ctx) == ["d", "nested"]
        assert list(loaded.ctx["d"]) == keys
        assert list(loaded.ctx["nested"][0]) == ["y", "x"]


class TestMessages:
    """Error texts hold any text, and every store gives the same text back."""

    def test_nul_and_lone_surrogates_are_escaped_alike(self, store: Store) -> None:
        error = "Bad\x00Error: \ud800 and \udfff"
        escaped = "Bad\\x00Error: \\ud800 and \\udfff"
        execution = _created(store, error=error)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.error == escaped
        record, entries = next_checkpoint(execution, 1, error=error)
        store.checkpoint(record, [attrs.evolve(entries[0], error=error)], execution.version)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.error == escaped
        (stored,) = store.entries(execution.id)
        assert stored.error == escaped

    def test_other_text_is_kept_as_it_is(self, store: Store) -> None:
        error = "ValueError: ü 🦆 \\x00 tab\t \u2028"  # a written backslash stays one
        execution = _created(store, error=error)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.error == error


class TestChangedCtx:
    """Checkpoints that name the ctx values they set (``changed``): the others are kept."""

    def test_only_named_values_change_and_the_others_are_kept(self, store: Store) -> None:
        big = {"blob": "x" * 1_000_000, "rows": [{"i": i} for i in range(2_000)]}
        execution = _created(store, ctx={"a": 1, "big": big})
        current = execution
        for step in range(1, 6):
            ctx = {**current.ctx, "a": step, f"s{step}": [step]}
            record, entries = next_checkpoint(current, 1, ctx=ctx)
            store.checkpoint(record, entries, current.version, changed=("a", f"s{step}"))
            current = record
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == current.ctx
        assert list(loaded.ctx) == ["a", "big", "s1", "s2", "s3", "s4", "s5"]
        assert [found.ctx for found in store.find()] == [current.ctx]

    def test_new_names_go_last_in_the_order_they_were_set(self, store: Store) -> None:
        execution = _created(store, ctx={"m": 0, "a": 0})
        ctx = {"m": 1, "a": 0, "z": 2, "b": 3}
        record, entries = next_checkpoint(execution, 1, ctx=ctx)
        store.checkpoint(record, entries, execution.version, changed=("m", "z", "b"))
        loaded = store.load(execution.id)
        assert loaded is not None
        assert list(loaded.ctx.items()) == [("m", 1), ("a", 0), ("z", 2), ("b", 3)]

    def test_nothing_changed_keeps_ctx(self, store: Store) -> None:
        # A lease renewal, a claim: record-only checkpoints.
        execution = _created(store, ctx={"a": [1, 2], "b": {"c": None}})
        record, entries = next_checkpoint(execution, 0, ctx=execution.ctx)
        store.checkpoint(record, entries, execution.version, changed=())
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"a": [1, 2], "b": {"c": None}}

    def test_none_writes_ctx_whole(self, store: Store) -> None:
        execution = _created(store, ctx={"gone": 1, "kept": 2})
        record, entries = next_checkpoint(execution, 1, ctx={"kept": 3, "new": 4})
        store.checkpoint(record, entries, execution.version, changed=None)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert list(loaded.ctx.items()) == [("kept", 3), ("new", 4)]

    def test_many_names(self, store: Store) -> None:
        execution = _created(store, ctx={f"k{i}": i for i in range(2_000)})
        ctx = {**execution.ctx, "k7": "seven", "k2000": 2000}
        record, entries = next_checkpoint(execution, 1, ctx=ctx)
        store.checkpoint(record, entries, execution.version, changed=("k7", "k2000"))
        loaded = store.load(execution.id)
        assert loaded is not None
        assert list(loaded.ctx.items()) == list(ctx.items())

    def test_many_names_changed_at_once(self, store: Store) -> None:
        execution = _created(store, ctx={"first": 0})
        ctx = {"first": 1, **{f"n{i}": {"i": i} for i in range(1_000)}}
        record, entries = next_checkpoint(execution, 1, ctx=ctx)
        store.checkpoint(record, entries, execution.version, changed=tuple(ctx))
        loaded = store.load(execution.id)
        assert loaded is not None
        assert list(loaded.ctx.items()) == list(ctx.items())

    def test_names_of_any_text(self, store: Store) -> None:
        names = ["", "nul\x00in", "ü 🦆", 'q"uo\\te', "a.b[0]", "$input", "\u2028", "n" * 1_000]
        execution = _created(store, ctx={"seed": 0})
        ctx: dict[str, Any] = {"seed": 0, **{name: index for index, name in enumerate(names)}}
        record, entries = next_checkpoint(execution, 1, ctx=ctx)
        store.checkpoint(record, entries, record.version - 1, changed=tuple(names))
        current = record
        ctx = {**ctx, "nul\x00in": "again", "": [None]}
        record, entries = next_checkpoint(current, 1, ctx=ctx)
        store.checkpoint(record, entries, current.version, changed=("nul\x00in", ""))
        loaded = store.load(execution.id)
        assert loaded is not None
        assert list(loaded.ctx.items()) == list(ctx.items())

    def test_a_big_value_replaced_by_a_small_one_and_back(self, store: Store) -> None:
        big = "b" * 2_000_000
        execution = _created(store, ctx={"v": big, "w": 1})
        current = execution
        for value in ("small", big + "!", None):
            ctx = {**current.ctx, "v": value}
            record, entries = next_checkpoint(current, 1, ctx=ctx)
            store.checkpoint(record, entries, current.version, changed=("v",))
            current = record
            loaded = store.load(execution.id)
            assert loaded is not None
            assert loaded.ctx == {"v": value, "w": 1}

    def test_a_name_not_in_ctx_is_refused_and_nothing_written(self, store: Store) -> None:
        execution = _created(store, ctx={"a": 1})
        before = snapshot(store, execution.id)
        record, entries = next_checkpoint(execution, 1, ctx={"a": 2})
        with pytest.raises(ValueError, match="changed names 'b', which is not in ctx"):
            store.checkpoint(record, entries, execution.version, changed=("a", "b"))
        assert snapshot(store, execution.id) == before

    def test_a_conflict_writes_none_of_the_named_values(self, store: Store) -> None:
        execution = _created(store, ctx={"a": 1})
        record, entries = next_checkpoint(execution, 1, ctx={"a": 2})
        store.checkpoint(record, entries, execution.version, changed=("a",))
        stale, stale_entries = next_checkpoint(execution, 1, ctx={"a": 3, "b": 4})
        with pytest.raises(ConflictError):
            store.checkpoint(stale, stale_entries, execution.version, changed=("a", "b"))
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"a": 2}


# --- concurrency ---------------------------------------------------------------------------------


def _run_threads(count: int, work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a writer thread hung"


def _race(calls: list[Callable[[], object]]) -> list[str]:
    """Run the calls at once, one thread each: ``"ok"``, ``"conflict"`` or the unexpected error."""
    barrier = threading.Barrier(len(calls))
    outcomes = ["did not finish"] * len(calls)

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            calls[index]()
        except ConflictError:
            outcomes[index] = "conflict"
        except BaseException as exc:  # reported by the caller's assertion
            outcomes[index] = f"{type(exc).__name__}: {exc}"
        else:
            outcomes[index] = "ok"

    _run_threads(len(calls), run)
    return outcomes


class TestConcurrency:
    """Concurrent writers: exactly one wins, the rest get ConflictError."""

    WRITERS = 8
    ROUNDS = 4

    def test_concurrent_checkpoints_have_one_winner(self, store: Store) -> None:
        current = _created(store)
        expected_entries: list[str] = []
        for round_number in range(self.ROUNDS):
            attempts: list[tuple[Execution, list[Entry]]] = []
            for index in range(self.WRITERS):
                record, entries = next_checkpoint(current, 2, ctx={"writer": index})
                entries = [attrs.evolve(e, output={"writer": index}) for e in entries]
                attempts.append((record, entries))
            outcomes = _race(
                [
                    functools.partial(store.checkpoint, record, entries, current.version)
                    for record, entries in attempts
                ]
            )
            assert sorted(outcomes) == ["conflict"] * (self.WRITERS - 1) + ["ok"], (
                f"round {round_number}: {outcomes}"
            )
            record, entries = attempts[outcomes.index("ok")]
            expected_entries += [canonical(entry) for entry in entries]
            loaded = store.load(current.id)
            assert loaded is not None
            assert canonical(loaded) == canonical(record)
            assert [canonical(e) for e in store.entries(current.id)] == expected_entries
            current = record

    def test_concurrent_creates_have_one_winner(self, store: Store) -> None:
        executions = [
            make_execution(id="ex-contested", ctx={"creator": index})
            for index in range(self.WRITERS)
        ]
        outcomes = _race([functools.partial(store.create, execution) for execution in executions])
        assert sorted(outcomes) == ["conflict"] * (self.WRITERS - 1) + ["ok"], outcomes
        loaded = store.load("ex-contested")
        assert loaded is not None
        assert loaded.ctx == {"creator": outcomes.index("ok")}

    def test_writers_on_different_executions_do_not_conflict(self, store: Store) -> None:
        executions = [_created(store, id=f"ex-{index}") for index in range(self.WRITERS)]
        failures: list[str] = []

        def advance(index: int) -> None:
            current = executions[index]
            try:
                for _ in range(5):
                    record, entries = next_checkpoint(current, 1)
                    store.checkpoint(record, entries, current.version)
                    current = record
            except BaseException as exc:  # reported below
                failures.append(f"{index}: {type(exc).__name__}: {exc}")

        _run_threads(self.WRITERS, advance)
        assert failures == []
        for execution in executions:
            loaded = store.load(execution.id)
            assert loaded is not None
            assert loaded.version == execution.version + 5
            assert [e.seq for e in store.entries(execution.id)] == [1, 2, 3, 4, 5]


# --- lifecycle -----------------------------------------------------------------------------------


class TestLifecycle:
    """The protocol itself, and ``close``."""

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)

    def test_new_store_is_empty(self, store: Store) -> None:
        assert store.find() == []
        assert store.due(_at(10**6)) == []
        assert store.stale(_at(10**6)) == []

    def test_stores_from_the_factory_are_isolated(self, store_factory: StoreFactory) -> None:
        first, second = store_factory(), store_factory()
        execution = _created(first)
        assert second.load(execution.id) is None
        assert second.find() == []

    def test_close_twice_then_calls_raise(self, store_factory: StoreFactory) -> None:
        closing = store_factory()
        execution = _created(closing)
        closing.close()
        closing.close()
        calls: dict[str, Callable[[], object]] = {
            "create": lambda: closing.create(make_execution()),
            "load": lambda: closing.load(execution.id),
            "checkpoint": lambda: closing.checkpoint(
                *next_checkpoint(execution, 1), execution.version
            ),
            "entries": lambda: closing.entries(execution.id),
            "find": lambda: closing.find(),
            "delete": lambda: closing.delete(execution.id),
            "due": lambda: closing.due(T0),
            "stale": lambda: closing.stale(T0),
            "send_signal": lambda: closing.send_signal(_signal(execution, "go")),
            "signals": lambda: closing.signals(execution.id),
            "save_schedule": lambda: closing.save_schedule(_schedule("nightly")),
            "schedules": lambda: closing.schedules(),
            "delete_schedule": lambda: closing.delete_schedule("nightly"),
            "schedule_fired": lambda: closing.schedule_fired("nightly", T0),
            "prune": lambda: closing.prune(before=T0, statuses=["completed"]),
        }
        wrong: dict[str, str] = {}
        for name, call in calls.items():
            try:
                call()
            except FlowkitError as exc:
                if "closed" not in str(exc):
                    wrong[name] = f"{type(exc).__name__}: {exc}"
            else:
                wrong[name] = "no error"
        assert wrong == {}, "calls after close() must raise FlowkitError('store is closed')"


# --- find pages ----------------------------------------------------------------------------------


class TestFindPages:
    """``find(after=...)``: cursor pagination in find's order."""

    @pytest.fixture
    def population(self, store: Store) -> Store:
        # 13 executions over 5 distinct times: ties on updated_at are broken by id.
        for index in range(13):
            _created(
                store,
                id=f"p{index:02d}",
                workflow_id="alpha" if index % 2 else "beta",
                status=Status.COMPLETED if index % 3 else Status.HALTED,
                updated_at=_at(index % 5),
            )
        return store

    @staticmethod
    def _pages(store: Store, size: int, **filters: Any) -> list[list[str]]:
        pages: list[list[str]] = []
        after: tuple[datetime, str] | None = None
        while True:
            page = store.find(limit=size, after=after, **filters)
            if not page:
                return pages
            pages.append(_ids(page))
            after = (page[-1].updated_at, page[-1].id)

    @pytest.mark.parametrize("size", [1, 2, 5, 13])
    def test_pages_walk_the_whole_order_once(self, population: Store, size: int) -> None:
        whole = _ids(population.find(limit=100))
        pages = self._pages(population, size)
        assert [execution_id for page in pages for execution_id in page] == whole
        assert all(len(page) == size for page in pages[:-1])

    @pytest.mark.parametrize(
        "filters",
        [
            {"workflow_id": "alpha"},
            {"status": "halted"},
            {"workflow_id": "beta", "status": "completed"},
        ],
        ids=["workflow", "status", "both"],
    )
    def test_pages_with_filters(self, population: Store, filters: dict[str, Any]) -> None:
        whole = _ids(population.find(limit=100, **filters))
        assert whole
        pages = self._pages(population, 2, **filters)
        assert [execution_id for page in pages for execution_id in page] == whole

    def test_after_a_position_not_stored(self, population: Store) -> None:
        # Between p03 (minute 3) and p07 (minute 2): what follows is the same.
        got = _ids(population.find(after=(_at(2), "p99"), limit=3))
        assert got == ["p12", "p07", "p02"]
        assert population.find(after=(_at(0), "p00")) == []

    def test_after_in_another_timezone_and_naive(self, population: Store) -> None:
        plus_two = timezone(timedelta(hours=2))
        assert _ids(population.find(after=(_at(2).astimezone(plus_two), "p99"), limit=1)) == ["p12"]
        with pytest.raises(ValueError, match="naive"):
            population.find(after=(_at(2).replace(tzinfo=None), "p99"))


# --- signals -------------------------------------------------------------------------------------


def _signal(execution: Execution | str, name: str, payload: Any = None, **fields: Any) -> Signal:
    execution_id = execution if isinstance(execution, str) else execution.id
    return Signal(
        execution_id=execution_id, seq=0, name=name, payload=payload, sent_at=T0, **fields
    )


class TestSignals:
    """The mailbox: ``send_signal``, ``signals`` and ``checkpoint(consumed=...)``."""

    def test_sent_signals_are_pending_in_order_with_their_fields(self, store: Store) -> None:
        execution = _created(store, status=Status.RUNNING)
        first = store.send_signal(_signal(execution, "paid", {"amount": 3, "ok": True}))
        second = store.send_signal(_signal(execution, "note", [1, "two"], key="k-1"))
        third = store.send_signal(_signal(execution, "paid", None))
        assert first is not None
        assert second is not None
        assert third is not None
        assert [first.seq, second.seq, third.seq] == [1, 2, 3]
        pending = store.signals(execution.id)
        assert pending == [first, second, third]
        assert_json_equal(pending[0].payload, {"amount": 3, "ok": True})
        assert pending[1].key == "k-1"
        assert pending[2].payload is None
        assert all(signal.consumed is None for signal in pending)
        assert all(signal.sent_at == T0 and signal.sent_at.tzinfo is UTC for signal in pending)
        assert store.signals(execution.id, name="paid") == [first, third]
        assert store.signals(execution.id, name="other") == []
        assert store.signals("no-such-execution") == []

    def test_sending_leaves_the_record_alone(self, store: Store) -> None:
        execution = _created(store, status=Status.WAITING)
        before = snapshot(store, execution.id)
        store.send_signal(_signal(execution, "paid"))
        assert snapshot(store, execution.id) == before
        store.checkpoint(*next_checkpoint(execution), execution.version)  # no conflict

    def test_a_key_already_seen_is_dropped(self, store: Store) -> None:
        execution = _created(store, status=Status.RUNNING)
        sent = store.send_signal(_signal(execution, "paid", 1, key="pay-1"))
        assert sent is not None
        assert store.send_signal(_signal(execution, "paid", 2, key="pay-1")) is None
        assert store.send_signal(_signal(execution, "other", 3, key="pay-1")) is None
        record, entries = next_checkpoint(execution)
        store.checkpoint(record, entries, execution.version, consumed=[sent.seq])
        # Consumed keys are still seen; other executions have their own keys.
        assert store.send_signal(_signal(execution, "paid", 4, key="pay-1")) is None
        other = _created(store)
        assert store.send_signal(_signal(other, "paid", 5, key="pay-1")) is not None
        assert [s.payload for s in store.signals(execution.id)] == []

    @pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
    def test_a_finished_execution_takes_no_signals(self, store: Store, status: Status) -> None:
        execution = _created(store, status=status)
        with pytest.raises(ExecutionError, match=status.value):
            store.send_signal(_signal(execution, "paid"))
        assert store.signals(execution.id) == []

    @pytest.mark.parametrize(
        "status", [Status.PENDING, Status.RUNNING, Status.WAITING, Status.HALTED]
    )
    def test_unfinished_executions_take_signals(self, store: Store, status: Status) -> None:
        execution = _created(store, status=status)
        assert store.send_signal(_signal(execution, "paid")) is not None

    def test_an_unknown_execution_is_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError, match="no-such-execution"):
            store.send_signal(_signal("no-such-execution", "paid"))

    def test_bad_signals_are_refused(self, store: Store) -> None:
        execution = _created(store)
        with pytest.raises(ValueError, match="naive"):
            store.send_signal(
                attrs.evolve(_signal(execution, "x"), sent_at=T0.replace(tzinfo=None))
            )
        with pytest.raises(TypeError):
            store.send_signal(_signal(execution, "x", {"no": object()}))
        with pytest.raises(ValueError, match="JSON"):
            store.send_signal(_signal(execution, "x", math.inf))
        assert store.signals(execution.id) == []

    def test_a_checkpoint_consumes_signals_atomically(self, store: Store) -> None:
        execution = _created(store, status=Status.WAITING)
        sent = [store.send_signal(_signal(execution, name)) for name in ("a", "b", "a")]
        assert all(signal is not None for signal in sent)
        record, entries = next_checkpoint(execution, status=Status.RUNNING)
        store.checkpoint(record, entries, execution.version, consumed=[1, 3])
        assert [s.seq for s in store.signals(execution.id)] == [2]
        assert store.signals(execution.id, name="a") == []
        # Consumed again, or never sent: a conflict that writes nothing.
        before = snapshot(store, execution.id)
        for seq in (1, 4):
            again, more = next_checkpoint(record)
            with pytest.raises(ConflictError, match="signal"):
                store.checkpoint(again, more, record.version, consumed=[2, seq])
            assert snapshot(store, execution.id) == before
            assert [s.seq for s in store.signals(execution.id)] == [2]

    def test_a_stale_checkpoint_consumes_nothing(self, store: Store) -> None:
        execution = _created(store, status=Status.WAITING)
        store.send_signal(_signal(execution, "a"))
        store.checkpoint(*next_checkpoint(execution), execution.version)
        record, entries = next_checkpoint(execution)
        with pytest.raises(ConflictError):
            store.checkpoint(record, entries, execution.version, consumed=[1])
        assert [s.seq for s in store.signals(execution.id)] == [1]

    def test_seqs_continue_after_consumption(self, store: Store) -> None:
        execution = _created(store)
        store.send_signal(_signal(execution, "a"))
        store.checkpoint(*next_checkpoint(execution), execution.version, consumed=[1])
        later = store.send_signal(_signal(execution, "a"))
        assert later is not None
        assert later.seq == 2

    def test_delete_removes_the_mailbox(self, store: Store) -> None:
        execution = _created(store)
        store.send_signal(_signal(execution, "a", key="k"))
        store.delete(execution.id)
        again = _created(store, id=execution.id)
        assert store.signals(again.id) == []
        fresh = store.send_signal(_signal(again, "a", key="k"))
        assert fresh is not None
        assert fresh.seq == 1

    def test_concurrent_senders_get_distinct_consecutive_seqs(self, store: Store) -> None:
        execution = _created(store, status=Status.RUNNING)
        seqs: list[int] = []

        def send(index: int) -> None:
            for n in range(3):
                sent = store.send_signal(_signal(execution, "tick", {"sender": index, "n": n}))
                assert sent is not None
                seqs.append(sent.seq)

        _run_threads(8, send)
        assert sorted(seqs) == list(range(1, 25))
        pending = store.signals(execution.id)
        assert [s.seq for s in pending] == list(range(1, 25))
        for sender in range(8):  # each sender's signals keep their order
            mine = [s.payload["n"] for s in pending if s.payload["sender"] == sender]
            assert mine == [0, 1, 2]

    def test_concurrent_senders_with_one_key_deliver_once(self, store: Store) -> None:
        execution = _created(store, status=Status.RUNNING)
        outcomes = _race(
            [lambda: store.send_signal(_signal(execution, "paid", key="once")) for _ in range(8)]
        )
        assert outcomes == ["ok"] * 8
        assert len(store.signals(execution.id)) == 1


# --- schedules -----------------------------------------------------------------------------------


def _schedule(name: str, **fields: Any) -> Schedule:
    values: dict[str, Any] = {
        "name": name,
        "workflow_id": "report",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "input": {"region": "eu", "depth": [1, {"x": None}]},
        "created_at": T0,
    }
    values.update(fields)
    return Schedule(**values)


class TestSchedules:
    """``save_schedule``, ``schedules``, ``delete_schedule`` and ``schedule_fired``."""

    def test_saved_schedules_come_back_by_name(self, store: Store) -> None:
        nightly = _schedule("nightly")
        hourly = _schedule("hourly", cron="0 * * * *", timezone="UTC", input={})
        fired = _schedule("fired", last_slot=T0 + timedelta(hours=1))
        for schedule in (nightly, hourly, fired):
            store.save_schedule(schedule)
        assert store.schedules() == [fired, hourly, nightly]
        assert_json_equal(store.schedules()[2].input, nightly.input)

    def test_save_replaces_by_name(self, store: Store) -> None:
        store.save_schedule(_schedule("nightly", last_slot=T0))
        store.save_schedule(_schedule("nightly", cron="0 3 * * *"))
        assert store.schedules() == [_schedule("nightly", cron="0 3 * * *")]

    def test_times_in_utc_and_naive_refused(self, store: Store) -> None:
        plus_two = timezone(timedelta(hours=2))
        store.save_schedule(_schedule("x", created_at=T0.astimezone(plus_two)))
        (saved,) = store.schedules()
        assert saved.created_at == T0
        assert saved.created_at.tzinfo is UTC
        with pytest.raises(ValueError, match="naive"):
            store.save_schedule(_schedule("y", created_at=T0.replace(tzinfo=None)))
        with pytest.raises(ValueError, match="naive"):
            store.schedule_fired("x", T0.replace(tzinfo=None))

    def test_delete(self, store: Store) -> None:
        store.save_schedule(_schedule("a"))
        store.save_schedule(_schedule("b"))
        assert store.delete_schedule("a") is True
        assert store.delete_schedule("a") is False
        assert [s.name for s in store.schedules()] == ["b"]

    def test_fired_moves_only_forward(self, store: Store) -> None:
        store.save_schedule(_schedule("nightly"))
        assert store.schedule_fired("nightly", T0 + timedelta(days=1)) is True
        assert store.schedule_fired("nightly", T0 + timedelta(days=1)) is False
        assert store.schedule_fired("nightly", T0) is False
        assert store.schedules()[0].last_slot == T0 + timedelta(days=1)
        assert store.schedule_fired("nightly", T0 + timedelta(days=2)) is True
        assert store.schedules()[0].last_slot == T0 + timedelta(days=2)
        assert store.schedule_fired("gone", T0) is False

    def test_concurrent_fires_of_one_slot_have_one_winner(self, store: Store) -> None:
        store.save_schedule(_schedule("nightly"))
        slot = T0 + timedelta(days=1)
        won: list[bool] = []
        barrier = threading.Barrier(8)

        def fire(index: int) -> None:
            barrier.wait(timeout=30)
            won.append(store.schedule_fired("nightly", slot))

        _run_threads(8, fire)
        assert sorted(won) == [False] * 7 + [True]


# --- prune ---------------------------------------------------------------------------------------


class TestPrune:
    """``prune``: finished executions updated before a time go, with everything of theirs."""

    @pytest.fixture
    def population(self, store: Store) -> Store:
        for status in Status:
            for minutes in (1, 5):
                execution = _created(
                    store, id=f"{status.value}-{minutes}", status=status, updated_at=_at(minutes)
                )
                store.checkpoint(
                    *next_checkpoint(execution, 2, updated_at=_at(minutes)), execution.version
                )
        return store

    def test_only_old_finished_executions_go(self, population: Store) -> None:
        gone = population.prune(before=_at(3), statuses=["completed", "failed", "cancelled"])
        assert gone == 3
        left = set(_ids(population.find(limit=100)))
        assert left == {f"{status.value}-{m}" for status in Status for m in (1, 5)} - {
            "completed-1",
            "failed-1",
            "cancelled-1",
        }
        assert population.load("completed-1") is None
        assert population.entries("completed-1") == []
        assert population.load("completed-5") is not None

    def test_only_the_named_statuses(self, population: Store) -> None:
        assert population.prune(before=_at(9), statuses=[Status.FAILED]) == 2
        assert {e.status for e in population.find(limit=100)} == set(Status) - {Status.FAILED}

    def test_dry_run_counts_and_keeps(self, population: Store) -> None:
        before = _ids(population.find(limit=100))
        assert population.prune(before=_at(9), statuses=["completed"], dry_run=True) == 2
        assert _ids(population.find(limit=100)) == before

    def test_mailboxes_go_too(self, store: Store) -> None:
        execution = _created(store, status=Status.RUNNING)
        store.send_signal(_signal(execution, "a", key="k"))
        store.checkpoint(
            *next_checkpoint(execution, status=Status.COMPLETED, updated_at=_at(1)),
            execution.version,
        )
        assert store.prune(before=_at(2), statuses=["completed"]) == 1
        again = _created(store, id=execution.id)
        assert store.signals(again.id) == []
        assert store.send_signal(_signal(again, "a", key="k")) is not None

    @pytest.mark.parametrize("status", ["running", "waiting", "halted", "pending"])
    def test_unfinished_statuses_are_refused(self, population: Store, status: str) -> None:
        with pytest.raises(ValueError, match=status):
            population.prune(before=_at(9), statuses=["completed", status])
        assert len(population.find(limit=100)) == 2 * len(Status)

    def test_bad_arguments_are_refused(self, population: Store) -> None:
        with pytest.raises(ValueError, match="sleeping"):
            population.prune(before=_at(9), statuses=["sleeping"])
        with pytest.raises(ValueError, match="naive"):
            population.prune(before=_at(9).replace(tzinfo=None), statuses=["completed"])

    def test_many_executions_in_batches(self, store: Store) -> None:
        for index in range(1203):
            _created(store, id=f"old-{index}", status=Status.COMPLETED, updated_at=_at(1))
        keep = _created(store, status=Status.COMPLETED, updated_at=_at(4))
        assert store.prune(before=_at(2), statuses=["completed"]) == 1203
        assert _ids(store.find(limit=100)) == [keep.id]


# --- the store against a model -------------------------------------------------------------------

#: Settings that suit slow network stores too; every example gets a fresh store.
STATE_MACHINE_SETTINGS = settings(
    max_examples=30,
    stateful_step_count=20,
    deadline=None,
    # Shrink one failure, not every distinct one, and skip the explain phase:
    # both rerun the machine thousands of times, which takes minutes on a server.
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_ALL_IDS = ("e0", "e1", "e2", "e3")
_IDS = st.sampled_from(_ALL_IDS)
# Mostly an id that exists (so writes meet real records), sometimes any id.
_PICKS = st.integers(0, 7 + len(_ALL_IDS))
_WORKFLOWS = st.sampled_from(["wf-a", "wf-b"])
_STATUSES = st.sampled_from(list(Status))
_TIMES = st.integers(0, 4).map(_at)  # few distinct times: ties exercise the tie-breaks
_MAYBE_TIMES = st.none() | _TIMES
_TEXT = st.text(st.characters(codec="utf-8"), max_size=6)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_TEXT, children, max_size=3),
    max_leaves=6,
)
_CTX = st.dictionaries(_TEXT, _JSON, max_size=3)
# What a write sets: status, updated_at, wake_at, lease_expires_at, ctx.
_STATE = st.tuples(_STATUSES, _TIMES, _MAYBE_TIMES, _MAYBE_TIMES, _CTX)
_State = tuple[Status, datetime, datetime | None, datetime | None, dict[str, Any]]


def _with_state(execution: Execution, state: _State) -> dict[str, Any]:
    status, updated_at, wake_at, lease, ctx = state
    return {
        "status": status,
        "updated_at": updated_at,
        "wake_at": wake_at,
        "lease_expires_at": lease,
        "lease_owner": None if lease is None else "worker-1",
        "ctx": ctx,
    }


def test_store_matches_model(store_factory: StoreFactory) -> None:
    """Random sequences of operations leave the store equal to a plain-dict model.

    The model is the last record written per id and the list of entries per
    id; creates of existing ids, checkpoints with stale versions and
    checkpoints of missing executions must raise ConflictError and change
    nothing. Checkpoints that replace ctx whole (``changed=None``) and ones
    that name the values they set are mixed in any order.
    """

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.store = store_factory()
            self.records: dict[str, Execution] = {}
            self.logs: dict[str, list[Entry]] = {}

        def teardown(self) -> None:
            self.store.close()

        def pick(self, pick: int) -> str:
            if pick < 8 and self.records:
                existing = sorted(self.records)
                return existing[pick % len(existing)]
            return _ALL_IDS[pick % len(_ALL_IDS)]

        def write_new(self, execution_id: str, workflow_id: str, state: _State) -> None:
            execution = make_execution(id=execution_id, workflow_id=workflow_id)
            execution = attrs.evolve(execution, **_with_state(execution, state))
            if execution_id in self.records:
                with pytest.raises(ConflictError):
                    self.store.create(execution)
            else:
                self.store.create(execution)
                self.records[execution_id] = execution
                self.logs[execution_id] = []

        @initialize(
            rows=st.lists(st.tuples(_WORKFLOWS, _STATE), min_size=1, max_size=len(_ALL_IDS))
        )
        def populate(self, rows: list[tuple[str, _State]]) -> None:
            for execution_id, (workflow_id, state) in zip(_ALL_IDS, rows, strict=False):
                self.write_new(execution_id, workflow_id, state)

        # Hypothesis favours rules listed first: the write that matters most comes first.
        @rule(
            pick=_PICKS,
            drift=st.sampled_from([0, 0, 0, -1, 1]),
            count=st.integers(0, 3),
            state=_STATE,
            output=_JSON,
        )
        def checkpoint(self, pick: int, drift: int, count: int, state: _State, output: Any) -> None:
            execution_id = self.pick(pick)
            base = self.records.get(execution_id) or make_execution(id=execution_id)
            base = attrs.evolve(base, version=base.version + drift)
            record, entries = next_checkpoint(base, count, **_with_state(base, state))
            entries = [attrs.evolve(entry, output=output) for entry in entries]
            if execution_id not in self.records or drift:
                with pytest.raises(ConflictError):
                    self.store.checkpoint(record, entries, base.version)
            else:
                self.store.checkpoint(record, entries, base.version)
                self.records[execution_id] = record
                self.logs[execution_id] += entries
                written = self.store.entries(execution_id, after=base.seq)
                assert [canonical(e) for e in written] == [canonical(e) for e in entries]

        @rule(pick=_PICKS, updates=_CTX, state=_STATE, count=st.integers(0, 2))
        def checkpoint_changed(
            self, pick: int, updates: dict[str, Any], state: _State, count: int
        ) -> None:
            """A checkpoint that names the ctx values it sets (the engine's kind)."""
            execution_id = self.pick(pick)
            base = self.records.get(execution_id)
            if base is None:
                return
            changes = _with_state(base, state)
            changes["ctx"] = {**base.ctx, **updates}
            record, entries = next_checkpoint(base, count, **changes)
            self.store.checkpoint(record, entries, base.version, changed=tuple(updates))
            self.records[execution_id] = record
            self.logs[execution_id] += entries

        @rule(execution_id=_IDS, workflow_id=_WORKFLOWS, state=_STATE)
        def create(self, execution_id: str, workflow_id: str, state: _State) -> None:
            self.write_new(execution_id, workflow_id, state)

        @rule(pick=_PICKS)
        def delete(self, pick: int) -> None:
            execution_id = self.pick(pick)
            assert self.store.delete(execution_id) is (execution_id in self.records)
            self.records.pop(execution_id, None)
            self.logs.pop(execution_id, None)

        @rule(pick=_PICKS)
        def load(self, pick: int) -> None:
            execution_id = self.pick(pick)
            loaded = self.store.load(execution_id)
            expected = self.records.get(execution_id)
            if expected is None:
                assert loaded is None
            else:
                assert loaded is not None
                assert canonical(loaded) == canonical(expected)

        @rule(pick=_PICKS, after=st.integers(0, 8))
        def entries(self, pick: int, after: int) -> None:
            execution_id = self.pick(pick)
            got = [canonical(e) for e in self.store.entries(execution_id, after=after)]
            log = self.logs.get(execution_id, [])
            assert got == [canonical(e) for e in log if e.seq > after]

        def expected_find(
            self, workflow_id: str | None, status: Status | None, limit: int
        ) -> list[str]:
            found = sorted(
                (
                    (record.updated_at, record.id, canonical(record))
                    for record in self.records.values()
                    if (workflow_id is None or record.workflow_id == workflow_id)
                    and (status is None or record.status == status)
                ),
                reverse=True,
            )
            return [text for _, _, text in found[:limit]]

        def expected_due(self, now: datetime, limit: int) -> list[str]:
            found = sorted(
                (record.wake_at, record.id, canonical(record))
                for record in self.records.values()
                if record.status in (Status.HALTED, Status.WAITING)
                and record.wake_at is not None
                and record.wake_at <= now
            )
            return [text for _, _, text in found[:limit]]

        def expected_stale(self, now: datetime, limit: int) -> list[str]:
            found = sorted(
                (record.lease_expires_at, record.id, canonical(record))
                for record in self.records.values()
                if record.status == Status.RUNNING
                and record.lease_expires_at is not None
                and record.lease_expires_at <= now
            )
            return [text for _, _, text in found[:limit]]

        @rule(
            workflow_id=st.none() | _WORKFLOWS,
            status=st.none() | _STATUSES,
            as_text=st.booleans(),
            limit=st.integers(0, 5),
        )
        def find(
            self, workflow_id: str | None, status: Status | None, as_text: bool, limit: int
        ) -> None:
            query: Status | str | None = status.value if as_text and status else status
            got = self.store.find(workflow_id=workflow_id, status=query, limit=limit)
            assert [canonical(e) for e in got] == self.expected_find(workflow_id, status, limit)

        @rule(now=_TIMES, limit=st.integers(0, 5))
        def due(self, now: datetime, limit: int) -> None:
            got = self.store.due(now, limit=limit)
            assert [canonical(e) for e in got] == self.expected_due(now, limit)

        @rule(now=_TIMES, limit=st.integers(0, 5))
        def stale(self, now: datetime, limit: int) -> None:
            got = self.store.stale(now, limit=limit)
            assert [canonical(e) for e in got] == self.expected_stale(now, limit)

        @invariant()
        def queries_match(self) -> None:
            # Every record in order, every log, and the timers and leases at a time
            # that ties some of them.
            got = [canonical(e) for e in self.store.find()]
            assert got == self.expected_find(None, None, 100)
            now = _at(2)
            assert [canonical(e) for e in self.store.due(now)] == self.expected_due(now, 100)
            assert [canonical(e) for e in self.store.stale(now)] == self.expected_stale(now, 100)
            for execution_id, log in self.logs.items():
                got_log = [canonical(e) for e in self.store.entries(execution_id)]
                assert got_log == [canonical(e) for e in log], execution_id

    run_state_machine_as_test(StoreMachine, settings=STATE_MACHINE_SETTINGS)

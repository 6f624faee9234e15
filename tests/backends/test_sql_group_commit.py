"""Group commit: checkpoints that threads make at once share one transaction and one commit.

Each checkpoint keeps its own version check, so a conflict fails only its own
execution, and no checkpoint is lost or written twice. Runs against a SQLite
file, PostgreSQL and MariaDB (or MySQL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from flowkit import ConfigError, ConflictError, Execution
from flowkit.backends.batching import GroupCommit
from flowkit.backends.sqlalchemy import SQLStore
from flowkit.testing.conformance import make_entry, make_execution, next_checkpoint

from . import sql_helpers

sql_url = sql_helpers.sql_url
open_store = sql_helpers.open_store

THREADS = 8
ROUNDS = 25


def _batch_sizes(store: SQLStore) -> list[int]:
    """Record the size of every batch the store writes. (Private: how checkpoints were
    grouped is not observable through the Store protocol.)"""
    sizes: list[int] = []
    write_batch = store._write_batch

    def recording(items: Sequence[Any]) -> list[bool | BaseException]:
        sizes.append(len(items))
        return write_batch(items)

    store._commit = GroupCommit(recording)
    return sizes


@pytest.mark.timeout(300)
def test_threads_checkpointing_at_once_lose_nothing_and_conflict_only_where_injected(
    open_store: Callable[..., SQLStore],
) -> None:
    store = open_store(pool_size=THREADS + 2, group_commit=True)
    sizes = _batch_sizes(store)
    # Each thread advances two executions of its own, and all of them share one.
    own = [[make_execution(id=f"ex-{t}-{k}") for k in range(2)] for t in range(THREADS)]
    shared = make_execution(id="ex-shared")
    for execution in [shared, *(e for pair in own for e in pair)]:
        store.create(execution)
    barrier = threading.Barrier(THREADS)
    wins: list[int] = []
    problems: list[str] = []

    def advance(thread: int) -> None:
        current = {execution.id: execution for execution in own[thread]}
        for step in range(ROUNDS):
            barrier.wait(60)
            for execution_id, execution in list(current.items()):
                if (step + thread) % 4 == 0:  # a stale writer: one version behind
                    stale = attrs.evolve(execution, version=execution.version - 1)
                    record, entries = next_checkpoint(stale, 1, ctx={"stale": True})
                    try:
                        store.checkpoint(record, entries, stale.version, changed=("stale",))
                        problems.append(f"stale checkpoint of {execution_id} written")
                    except ConflictError as exc:
                        if "expected version" not in str(exc):
                            problems.append(str(exc))
                ctx = {**execution.ctx, "step": step, f"t{step % 3}": [thread, step]}
                record, entries = next_checkpoint(execution, 1, ctx=ctx)
                entries = [
                    attrs.evolve(entry, output={"t": thread, "s": step}) for entry in entries
                ]
                try:
                    store.checkpoint(
                        record, entries, execution.version, changed=("step", f"t{step % 3}")
                    )
                except Exception as exc:
                    problems.append(f"{execution_id} step {step}: {exc!r}")
                current[execution_id] = record
            # Everyone writes the shared execution from the version they read: one wins.
            latest = store.load(shared.id)
            assert latest is not None
            barrier.wait(60)
            record, entries = next_checkpoint(latest, 1, ctx={**latest.ctx, "winner": thread})
            try:
                store.checkpoint(record, entries, latest.version, changed=("winner",))
                wins.append(step)
            except ConflictError:
                pass

    threads = [threading.Thread(target=advance, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert problems == []
    for pair in own:
        for execution in pair:
            loaded = store.load(execution.id)
            assert loaded is not None
            log = store.entries(execution.id)
            assert [entry.seq for entry in log] == list(range(1, ROUNDS + 1))
            assert (loaded.version, loaded.seq) == (1 + ROUNDS, ROUNDS)
            assert "stale" not in loaded.ctx
            assert [entry.output["s"] for entry in log] == list(range(ROUNDS))
            assert loaded.ctx["step"] == ROUNDS - 1
    # Exactly one winner in each round on the shared execution, and its log agrees.
    assert sorted(wins) == list(range(ROUNDS))
    shared_loaded = store.load(shared.id)
    assert shared_loaded is not None
    assert shared_loaded.version == 1 + ROUNDS
    assert [e.seq for e in store.entries(shared.id)] == list(range(1, ROUNDS + 1))
    assert max(sizes) > 1  # checkpoints did share transactions


def _item(store: SQLStore, execution: Execution, version: int, **changes: Any) -> Any:
    record, entries = next_checkpoint(attrs.evolve(execution, version=version), 1, **changes)
    return store._prepare(record, entries, version, tuple(changes.get("ctx", ())))


def test_a_batch_keeps_each_checkpoints_outcome(open_store: Callable[..., SQLStore]) -> None:
    # The batch writer itself, given four checkpoints at once (private: which checkpoints
    # share a batch depends on timing otherwise).
    store = open_store()
    executions = [make_execution(id=f"ex-{n}") for n in range(4)]
    for execution in executions:
        store.create(execution)
    # ex-1's next entry exists already (written behind the store's back).
    entries = store.schema.entries
    row = make_entry(executions[1], 1)
    with store.engine.begin() as connection:
        connection.execute(
            sa.insert(entries).values(
                execution_id=row.execution_id,
                seq=row.seq,
                step_id=row.step_id,
                step_type=row.step_type,
                action=row.action.value,
                attempt=1,
                duration_ms=0.0,
                timestamp=row.timestamp,
            )
        )
    items = [
        _item(store, executions[0], 1, ctx={"a": 0}),
        _item(store, executions[1], 1, ctx={"a": 1}),  # its entry exists: fails alone
        _item(store, executions[2], 5, ctx={"a": 2}),  # stale: its guard does not match
        _item(store, executions[3], 1, ctx={"a": 3}),
    ]
    outcomes = store._write_batch(items)
    assert [outcomes[0], outcomes[2], outcomes[3]] == [True, False, True]
    assert isinstance(outcomes[1], ConflictError)
    assert "its entries were written by another writer first" in str(outcomes[1])
    for n, written in ((0, True), (1, False), (2, False), (3, True)):
        loaded = store.load(f"ex-{n}")
        assert loaded is not None
        assert (loaded.version, loaded.ctx) == ((2, {"a": n}) if written else (1, {}))


def test_a_batch_writes_a_whole_ctx_beside_changed_values(
    open_store: Callable[..., SQLStore],
) -> None:
    # A checkpoint that replaces ctx whole is written on its own within the batch; the
    # others' entries and values go in one statement each.
    store = open_store()
    executions = [make_execution(id=f"ex-{n}", ctx={"old": n}) for n in range(3)]
    for execution in executions:
        store.create(execution)
    whole, entries = next_checkpoint(executions[1], 1, ctx={"new": 1})
    items = [
        _item(store, executions[0], 1, ctx={"old": 0, "a": 0}),
        store._prepare(whole, entries, 1, None),
        _item(store, executions[2], 1, ctx={"old": 2, "a": 2}),
    ]
    assert store._write_batch(items) == [True, True, True]
    expected = [{"old": 0, "a": 0}, {"new": 1}, {"old": 2, "a": 2}]
    for execution, ctx in zip(executions, expected, strict=True):
        loaded = store.load(execution.id)
        assert loaded is not None
        assert (loaded.version, loaded.ctx) == (2, ctx)
        assert [entry.seq for entry in store.entries(execution.id)] == [1]


def test_group_commit_is_on_for_sqlite_and_can_be_switched(sql_url: str) -> None:
    # On by default on SQLite only: the servers group commits themselves (docs/stores.md).
    sqlite = sql_url.startswith("sqlite")
    separator = "&" if "?" in sql_url else "?"
    default = SQLStore(sql_url)
    switched = SQLStore(f"{sql_url}{separator}group_commit={'false' if sqlite else 'true'}")
    keyword = SQLStore(sql_url, group_commit=not sqlite)
    try:
        # Private: which writer the store uses is the option's only effect.
        assert isinstance(default._commit, GroupCommit) is sqlite
        for store in (switched, keyword):
            assert isinstance(store._commit, GroupCommit) is not sqlite
            execution = make_execution()
            store.create(execution)
            record, entries = next_checkpoint(execution, 1, ctx={"a": 1})
            store.checkpoint(record, entries, execution.version, changed=("a",))
            loaded = store.load(execution.id)
            assert loaded is not None
            assert loaded.ctx == {"a": 1}
    finally:
        for store in (default, switched, keyword):
            store.close()


@pytest.mark.sqlite
def test_the_group_commit_option_is_checked(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="'group_commit' must be true or false, got 'often'"):
        SQLStore(f"sqlite:///{tmp_path}/x.db?group_commit=often")

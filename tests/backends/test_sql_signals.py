"""Mailboxes of the SQL store under real concurrency, and the plans of their queries.

Each sender is a store of its own (its own engine and connections) on one
database, as separate processes are. Runs on a SQLite file, PostgreSQL and
MariaDB (or MySQL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import pytest

from flowkit import ConflictError, ExecutionError, Status
from flowkit.backends.sqlalchemy import SQLStore
from flowkit.records import Signal
from flowkit.testing.conformance import T0, make_execution, next_checkpoint

from . import sql_helpers
from .threads import at_once

sql_url = sql_helpers.sql_url
open_store = sql_helpers.open_store

SENDERS = 8


def _signal(execution_id: str, payload: Any = None, *, key: str | None = None) -> Signal:
    return Signal(
        execution_id=execution_id, seq=0, name="tick", payload=payload, key=key, sent_at=T0
    )


def _stored_rows(store: SQLStore, execution_id: str) -> int:
    """Every signal row of the execution, consumed or not."""
    sql = store._sql  # the table's quoted name and the driver's parameter style
    fairy = store.engine.raw_connection()
    try:
        cursor: Any = fairy.cursor()
        cursor.execute(
            sql.p(f"SELECT COUNT(*) FROM {sql.signals_table} WHERE execution_id = ?"),
            (execution_id,),
        )
        (count,) = cursor.fetchone()
        fairy.rollback()
    finally:
        fairy.close()
    return int(count)


def test_senders_on_their_own_connections_get_consecutive_seqs(
    open_store: Callable[..., SQLStore],
) -> None:
    store = open_store()
    execution = make_execution(status=Status.RUNNING)
    store.create(execution)

    def send(sender: SQLStore, index: int) -> list[int]:
        seqs = []
        for n in range(5):
            sent = sender.send_signal(_signal(execution.id, {"sender": index, "n": n}))
            assert sent is not None
            seqs.append(sent.seq)
        return seqs

    senders = [open_store() for _ in range(SENDERS)]
    outcomes = at_once([partial(send, sender, index) for index, sender in enumerate(senders)])
    assert sorted(seq for seqs in outcomes for seq in seqs) == list(range(1, 5 * SENDERS + 1))
    pending = store.signals(execution.id)
    assert [signal.seq for signal in pending] == list(range(1, 5 * SENDERS + 1))
    for index, seqs in enumerate(outcomes):
        mine = [signal for signal in pending if signal.payload["sender"] == index]
        assert [signal.seq for signal in mine] == seqs
        assert [signal.payload["n"] for signal in mine] == [0, 1, 2, 3, 4]


def test_one_key_from_eight_connections_is_stored_once(
    open_store: Callable[..., SQLStore],
) -> None:
    store = open_store()
    execution = make_execution(status=Status.WAITING)
    store.create(execution)
    senders = [open_store() for _ in range(SENDERS)]
    outcomes = at_once(
        [
            partial(sender.send_signal, _signal(execution.id, index, key="pay-1"))
            for index, sender in enumerate(senders)
        ]
    )
    stored = [outcome for outcome in outcomes if outcome is not None]
    assert len(stored) == 1
    assert stored[0].seq == 1
    assert store.signals(execution.id) == stored
    assert _stored_rows(store, execution.id) == 1


def test_a_checkpoint_that_finishes_the_execution_stops_every_sender(
    open_store: Callable[..., SQLStore],
) -> None:
    store = open_store()
    execution = make_execution(status=Status.RUNNING)
    store.create(execution)
    first_sent = threading.Event()
    refusals: list[str] = []

    def keep_sending(sender: SQLStore) -> list[int]:
        seqs: list[int] = []
        while len(seqs) < 10_000:
            try:
                sent = sender.send_signal(_signal(execution.id))
            except ExecutionError as exc:
                refusals.append(str(exc))
                return seqs
            assert sent is not None
            seqs.append(sent.seq)
            first_sent.set()
        raise AssertionError("the execution finished, but signals were still taken")

    def finish(finisher: SQLStore) -> list[int]:
        assert first_sent.wait(timeout=60)
        record, entries = next_checkpoint(execution, status=Status.COMPLETED)
        finisher.checkpoint(record, entries, execution.version)  # sending never conflicts
        return []

    senders = [open_store() for _ in range(SENDERS)]
    finisher = open_store()
    outcomes = at_once([*(partial(keep_sending, s) for s in senders), partial(finish, finisher)])
    assert len(refusals) == SENDERS
    assert all("it is completed" in refusal for refusal in refusals)
    accepted = sorted(seq for seqs in outcomes for seq in seqs)
    assert accepted == list(range(1, len(accepted) + 1))
    # What was accepted is stored, and nothing else: no signal slipped in after the end.
    assert [signal.seq for signal in store.signals(execution.id)] == accepted
    assert _stored_rows(store, execution.id) == len(accepted)
    loaded = store.load(execution.id)
    assert loaded is not None
    assert loaded.status is Status.COMPLETED


def test_a_consumed_signal_is_consumed_once(open_store: Callable[..., SQLStore]) -> None:
    # Two workers that both loaded version 1 consume signal 1: one checkpoint wins, and
    # the other writes nothing.
    store = open_store()
    execution = make_execution(status=Status.WAITING)
    store.create(execution)
    store.send_signal(_signal(execution.id, "paid"))
    workers = [open_store() for _ in range(4)]

    def consume(worker: SQLStore, index: int) -> str:
        record, entries = next_checkpoint(execution, ctx={"by": index})
        try:
            worker.checkpoint(record, entries, execution.version, consumed=[1])
        except ConflictError:
            return "conflict"
        return "ok"

    outcomes = at_once([partial(consume, worker, i) for i, worker in enumerate(workers)])
    assert sorted(outcomes) == ["conflict"] * 3 + ["ok"]
    assert store.signals(execution.id) == []
    loaded = store.load(execution.id)
    assert loaded is not None
    assert loaded.version == execution.version + 1
    assert loaded.ctx == {"by": outcomes.index("ok")}


def test_a_conflict_names_the_signal_that_is_not_pending(
    open_store: Callable[..., SQLStore],
) -> None:
    store = open_store()
    execution = make_execution(status=Status.WAITING)
    store.create(execution)
    store.send_signal(_signal(execution.id))
    record, entries = next_checkpoint(execution)
    with pytest.raises(ConflictError, match=r"signal 7 is not pending .* nothing was written"):
        store.checkpoint(record, entries, execution.version, consumed=[1, 7])
    assert [signal.seq for signal in store.signals(execution.id)] == [1]


def test_names_and_keys_longer_than_a_column_are_refused(
    open_store: Callable[..., SQLStore],
) -> None:
    store = open_store()
    execution = make_execution(status=Status.RUNNING)
    store.create(execution)
    with pytest.raises(ValueError, match="signal name is longer than 255"):
        store.send_signal(attrs.evolve(_signal(execution.id), name="n" * 256))
    with pytest.raises(ValueError, match="signal key contains a NUL"):
        store.send_signal(_signal(execution.id, key="a\x00b"))
    assert store.signals(execution.id) == []


# --- query plans ---------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_pending_signals_are_found_by_index(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    sql, dialect, prefix = store._sql, store.engine.dialect.name, store.prefix
    # 400 mailboxes of 40 signals, 35 of them consumed: written in bulk with the store's
    # own statement (private: no public call writes consumed signals in bulk).
    rows = [
        (f"ex-{e:04d}", seq, f"name-{seq % 4}", "null", None, sql.time_in(T0))
        for e in range(400)
        for seq in range(1, 41)
    ]
    fairy = store.engine.raw_connection()
    try:
        cursor = fairy.cursor()
        cursor.executemany(sql.insert_signal, rows)
        cursor.execute(sql.p(f"UPDATE {sql.signals_table} SET consumed = 1 WHERE seq <= 35"))
        fairy.commit()
        if dialect == "postgresql":
            cursor.execute(f"ANALYZE {prefix}signals")
        elif dialect != "sqlite":
            cursor.execute(f"ANALYZE TABLE {prefix}signals")
            cursor.fetchall()
        explain = "EXPLAIN QUERY PLAN" if dialect == "sqlite" else "EXPLAIN"
        # The mailbox's own indexes: by (execution_id, consumed, name, seq), or the key.
        indexes = (f"{prefix}signals_pending", f"{prefix}signals_pkey", "PRIMARY", "autoindex")
        for by_name, params in ((False, ("ex-0042",)), (True, ("ex-0042", "name-1"))):
            cursor.execute(f"{explain} {sql.read_signals[by_name]}", params)
            plan = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
            assert any(index in plan for index in indexes), plan
            assert "Seq Scan" not in plan
            assert "ALL" not in plan.split()  # MySQL's full table scan
            assert "SCAN" not in plan.split()  # SQLite's
            if dialect == "postgresql" or (dialect == "sqlite" and by_name):
                assert f"{prefix}signals_pending" in plan
        fairy.rollback()
    finally:
        fairy.close()
    assert [signal.seq for signal in store.signals("ex-0042", name="name-1")] == [37]
    assert [signal.seq for signal in store.signals("ex-0042")] == [36, 37, 38, 39, 40]

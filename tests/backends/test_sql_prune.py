"""Prune on PostgreSQL and MariaDB (or MySQL) while other executions keep checkpointing.

Prune deletes in batches of 500 executions, one transaction each. While a
batch's transaction is open, holding every lock it takes, checkpoints,
creates and signals of other executions must go on: the test holds each
batch at its commit until the other side has made progress, so a batch that
blocked it would fail the test instead of merely slowing it down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from flowkit import Status
from flowkit.backends.sqlalchemy import SQLStore
from flowkit.records import Execution, Signal
from flowkit.testing.conformance import T0, make_entry, make_execution, next_checkpoint

from .sql_helpers import MYSQL_URL, POSTGRESQL_URL, drop_tables, unique_prefix, with_prefix

OLD = 2_600  # five full batches and a part
CUTOFF = T0 + timedelta(days=1)


@pytest.fixture(
    params=[
        pytest.param(POSTGRESQL_URL, marks=pytest.mark.postgresql, id="postgresql"),
        pytest.param(MYSQL_URL, marks=pytest.mark.mysql, id="mysql"),
    ]
)
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = with_prefix(request.param, unique_prefix())
    yield url
    store = SQLStore(url, create_schema=False)
    try:
        drop_tables(store.engine, store.prefix)
    finally:
        store.close()


def _write_old(store: SQLStore, count: int) -> None:
    """``count`` completed executions updated before the cutoff, each with two entries, two
    ctx values and a consumed signal. In bulk, with the store's own statements and row
    encoders (private: thousands of executions one call each take minutes)."""
    sql = store._sql
    executions, entries, ctx, signals = [], [], [], []
    for n in range(count):
        execution = make_execution(
            id=f"old-{n:05d}",
            status=Status.COMPLETED,
            ctx={"n": n, "tag": "x" * 50},
            seq=2,
            version=3,
            updated_at=T0 + timedelta(seconds=n),
        )
        executions.append(store._execution_row(execution))
        entries += [store._entry_row(make_entry(execution, seq)) for seq in (1, 2)]
        ctx += store._ctx_rows(execution, execution.ctx)
        signals.append((execution.id, 1, "go", "null", f"key-{n}", sql.time_in(T0)))
    fairy = store.engine.raw_connection()
    try:
        cursor: Any = fairy.cursor()
        cursor.executemany(sql.insert_execution, executions)
        cursor.executemany(sql.insert_entries(1), entries)
        cursor.executemany(sql.insert_ctx(1, upsert=False), ctx)
        cursor.executemany(sql.insert_signal, signals)
        cursor.execute(sql.p(f"UPDATE {sql.signals_table} SET consumed = 3"))
        fairy.commit()
    finally:
        fairy.close()


def _left(store: SQLStore, table: str, column: str) -> int:
    """Rows of ``table`` that belong to the old executions."""
    sql = store._sql
    fairy = store.engine.raw_connection()
    try:
        cursor: Any = fairy.cursor()
        cursor.execute(
            sql.p(f"SELECT COUNT(*) FROM {sql.q(store.prefix + table)} WHERE {column} LIKE ?"),
            ("old-%",),
        )
        (count,) = cursor.fetchone()
        fairy.rollback()
    finally:
        fairy.close()
    return int(count)


class _Writer:
    """Keeps checkpointing some running executions, creating new ones and sending
    signals, on a store of its own, until stopped; counts what it got done."""

    def __init__(self, store: SQLStore, executions: list[Execution]) -> None:
        self.store = store
        self.executions = executions
        self.done = 0
        self.created: list[str] = []
        self.error: BaseException | None = None
        self.progress = threading.Condition()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        store = self.store
        try:
            while not self.stopping.is_set():
                for index, execution in enumerate(self.executions):
                    record, entries = next_checkpoint(execution, ctx={"step": execution.seq})
                    store.checkpoint(record, entries, execution.version, changed=["step"])
                    self.executions[index] = record
                    store.send_signal(
                        Signal(execution_id=record.id, seq=0, name="tick", sent_at=T0)
                    )
                    # Finished, and right next to the range prune deletes from.
                    new = make_execution(status=Status.COMPLETED, updated_at=CUTOFF)
                    store.create(new)
                    self.created.append(new.id)
                    with self.progress:
                        self.done += 1
                        self.progress.notify_all()
        except BaseException as exc:  # reported by the test
            self.error = exc
            with self.progress:
                self.progress.notify_all()

    def wait_for_more(self, steps: int, timeout: float) -> bool:
        """Wait until ``steps`` more rounds were done (False: timed out or failed)."""
        with self.progress:
            target = self.done + steps
            return self.progress.wait_for(
                lambda: self.done >= target or self.error is not None, timeout=timeout
            ) and (self.error is None)


@pytest.mark.timeout(300)
def test_prune_holds_no_lock_that_stops_other_executions(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pruner = SQLStore(server_url)
    writer_store = SQLStore(server_url)
    try:
        _write_old(pruner, OLD)
        # Running ones, updated as long ago as the old ones: prune must pass them by.
        live = [
            make_execution(id=f"live-{n}", status=Status.RUNNING, updated_at=T0) for n in range(4)
        ]
        for execution in live:
            writer_store.create(execution)
        assert pruner.prune(before=CUTOFF, statuses=["completed"], dry_run=True) == OLD

        writer = _Writer(writer_store, list(live))
        held = 0
        commit = pruner._sql.commit  # where each batch's transaction ends

        def commit_once_others_moved_on(connection: Any, cursor: Any) -> None:
            nonlocal held
            held += 1
            assert writer.wait_for_more(3, timeout=60), (
                f"while prune batch {held} held its locks, other executions could not "
                f"checkpoint: {writer.error!r}"
            )
            commit(connection, cursor)

        writer.thread.start()
        try:
            monkeypatch.setattr(pruner._sql, "commit", commit_once_others_moved_on)
            gone = pruner.prune(before=CUTOFF, statuses=["completed", "failed", "cancelled"])
            monkeypatch.undo()
        finally:
            writer.stopping.set()
            writer.thread.join(timeout=60)
        assert writer.error is None
        assert gone == OLD
        assert held == OLD // 500 + 1  # one transaction per batch

        for table, column in (
            ("executions", "id"),
            ("entries", "execution_id"),
            ("ctx_values", "execution_id"),
            ("signals", "execution_id"),
        ):
            assert _left(pruner, table, column) == 0, table
        for execution in writer.executions:
            loaded = pruner.load(execution.id)
            assert loaded == execution
            entries = pruner.entries(execution.id)
            assert [entry.seq for entry in entries] == list(range(1, execution.seq + 1))
            assert len(pruner.signals(execution.id)) == execution.version - 1
        assert all(pruner.load(execution_id) is not None for execution_id in writer.created)
        assert pruner.prune(before=CUTOFF, statuses=["completed"]) == 0
    finally:
        pruner.close()
        writer_store.close()

"""Find pages and prune in Redis: deep pages start at a rank, prune deletes in small batches.

The big populations live on a private ``redis-server`` (``server``), whose
MONITOR shows every command the store and its scripts run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowkit
from flowkit import Status
from flowkit.backends.redis import RedisStore
from flowkit.backends.redis._store import PRUNE_BATCH
from flowkit.records import Signal
from flowkit.testing.conformance import T0, make_execution, next_checkpoint

from .redis_helpers import (
    RedisServer,
    command_stats,
    create_many,
    drop_keys,
    monitor,
    scratch_store,
    store_keys,
)

pytestmark = pytest.mark.redis

DEEP = 100_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Executions per updated_at in the deep population: pages cut through ties.
TIES = 7


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server, stopped after the test."""
    private = RedisServer(tmp_path / "redis")
    private.start()
    yield private
    private.stop()


@pytest.fixture
def store() -> Iterator[RedisStore]:
    """A store on the shared server under a fresh prefix; its keys go when it closes."""
    opened = scratch_store()
    yield opened
    opened.close()


def _ids(executions: list[flowkit.Execution]) -> list[str]:
    return [execution.id for execution in executions]


def micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def _lua(commands: list[tuple[str, str]]) -> list[str]:
    return [command for kind, command in commands if kind == "lua"]


@pytest.mark.timeout(300)
def test_a_deep_page_starts_at_its_rank(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="d:")
    client = server.client()
    try:
        executions = [
            make_execution(
                id=f"ex-{n:06d}",
                status=Status.COMPLETED,
                updated_at=T0 + timedelta(seconds=n // TIES),
            )
            for n in range(DEEP)
        ]
        create_many(store, executions)
        assert client.zcard("d:i:all") == DEEP
        order = sorted(((e.updated_at, e.id) for e in executions), reverse=True)
        deep = 90_000  # the last execution of page 900 (pages of 100)
        last = order[deep - 1]
        expected = [execution_id for _, execution_id in order[deep : deep + 100]]

        page: list[flowkit.Execution] = []
        client.config_resetstat()
        commands = monitor(server, lambda: page.extend(store.find(limit=100, after=last)))
        assert _ids(page) == expected
        stats = command_stats(client)
        assert not {"keys", "scan", "zscan"} & set(stats)
        lua = _lua(commands)
        # The position's rank, then one range of the index from just after it.
        assert lua[:3] == [
            f"ZSCORE d:i:all {last[1]}",
            f"ZREVRANK d:i:all {last[1]}",
            f"ZREVRANGE d:i:all {deep} {deep + 99}",
        ]
        assert len(lua) == 3 + 2 * 100  # and per record: its hash, its (empty) ctx order

        # A position no execution holds, inside a run of ties: a search of those ties
        # (by halves), then the same one range.
        between = (last[0], last[1] + "~")  # sorts just after last[1]: last comes first
        page.clear()
        commands = monitor(server, lambda: page.extend(store.find(limit=100, after=between)))
        assert _ids(page) == [last[1], *expected[:99]]
        lua = _lua(commands)
        start = lua.index(f"ZREVRANGE d:i:all {deep - 1} {deep + 98}")
        assert lua[:3] == [
            f"ZSCORE d:i:all {between[1]}",
            f"ZCOUNT d:i:all ({micros(last[0])} +inf",
            f"ZCOUNT d:i:all {micros(last[0])} {micros(last[0])}",
        ]
        halves = lua[3:start]
        assert all(c.startswith("ZREVRANGE d:i:all ") for c in halves)
        assert 1 <= len(halves) <= TIES.bit_length()
    finally:
        store.close()
        client.close()


def test_pages_by_status_and_workflow_cut_through_ties(store: RedisStore) -> None:
    ids = ["a", "B", "b", "ä", "\U0001f600", "a ", "", "z"]
    for n, execution_id in enumerate(ids):
        store.create(
            make_execution(
                id=execution_id,
                workflow_id="w" if n % 2 else "v",
                status=Status.HALTED,
                updated_at=T0,
            )
        )
    whole = _ids(store.find(limit=100))
    assert whole == sorted(ids, reverse=True)  # ties: code-point order, descending
    for size in (1, 3):
        walked: list[str] = []
        after = None
        while page := store.find(status="halted", limit=size, after=after):
            walked += _ids(page)
            after = (page[-1].updated_at, page[-1].id)
        assert walked == whole
    assert _ids(store.find(workflow_id="w", after=(T0, "b"))) == [
        i for i in sorted(ids, reverse=True) if i < "b" and ids.index(i) % 2
    ]


#: Ids that sort in surprising ways: case, spaces, accents, astral characters, NUL.
_ID_TEXT = st.text(alphabet=st.sampled_from("aAbB z~\x00\x7fé\u00ff\u0100\U0001f600"), max_size=4)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    population=st.dictionaries(_ID_TEXT, st.integers(0, 3), min_size=1, max_size=25),
    position=st.tuples(st.integers(-1, 4), _ID_TEXT),
    limit=st.integers(1, 30),
)
def test_any_position_pages_as_the_order_says(
    store: RedisStore, population: dict[str, int], position: tuple[int, str], limit: int
) -> None:
    """Wherever the position is (stored or not, among ties or not), the page is what
    follows it in (updated_at, id) descending code-point order."""
    drop_keys(store.client, store.prefix)
    create_many(
        store,
        [
            make_execution(id=execution_id, updated_at=T0 + timedelta(seconds=second))
            for execution_id, second in population.items()
        ],
    )
    after = (T0 + timedelta(seconds=position[0]), position[1])
    order = sorted(((T0 + timedelta(seconds=s), i) for i, s in population.items()), reverse=True)
    expected = [i for t, i in order if (t, i) < after][:limit]
    assert _ids(store.find(limit=limit, after=after)) == expected


def _populate_finished(store: RedisStore, count: int) -> list[str]:
    """``count`` completed executions from long ago, each with entries, ctx and a mailbox."""
    ids = []
    for n in range(count):
        execution = make_execution(id=f"old-{n:05d}", status=Status.WAITING, ctx={"n": n})
        store.create(execution)
        store.send_signal(
            Signal(execution_id=execution.id, seq=0, name="go", key=f"k{n}", sent_at=T0)
        )
        record, entries = next_checkpoint(execution, 2, status=Status.COMPLETED)
        store.checkpoint(record, entries, execution.version, consumed=[1])
        ids.append(execution.id)
    return ids


@pytest.mark.timeout(300)
def test_prune_deletes_in_batches_while_others_checkpoint(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="p:")
    client = server.client()
    try:
        old = 5 * PRUNE_BATCH + 17
        _populate_finished(store, old)
        kept = make_execution(id="kept", status=Status.COMPLETED, updated_at=T0 + timedelta(days=9))
        store.create(kept)
        busy = make_execution(id="busy", status=Status.RUNNING, updated_at=T0)
        store.create(busy)
        assert (
            store.prune(before=T0 + timedelta(days=1), statuses=["completed"], dry_run=True) == old
        )

        started, stop = threading.Event(), threading.Event()
        written: list[int] = []
        errors: list[BaseException] = []

        def checkpointing() -> None:
            current = busy
            try:
                while not stop.is_set():
                    record, entries = next_checkpoint(current, 1)
                    store.checkpoint(record, entries, current.version)
                    current = record
                    written.append(current.version)
                    started.set()
            except BaseException as exc:  # reported below
                errors.append(exc)
                started.set()

        writer = threading.Thread(target=checkpointing)
        writer.start()
        try:
            assert started.wait(30)
            gone: list[int] = []
            commands = monitor(
                server,
                lambda: gone.append(
                    store.prune(before=T0 + timedelta(days=1), statuses=["completed", "failed"])
                ),
            )
        finally:
            stop.set()
            writer.join(60)
        assert not errors
        assert gone == [old]
        assert not {"KEYS", "SCAN", "ZSCAN"} & {c.split(" ", 1)[0] for _, c in commands}
        prunes = [c for c in _lua(commands) if c.startswith("ZRANGE p:i:st:")]
        # Completed: five full batches, the rest, each from the oldest left; then
        # failed's one empty read.
        batch = f"0 {PRUNE_BATCH - 1} WITHSCORES"
        completed, failed = f"ZRANGE p:i:st:completed {batch}", f"ZRANGE p:i:st:failed {batch}"
        assert prunes == [completed] * 6 + [failed]
        # Every key of the pruned executions went; the others are whole.
        assert [key for key in store_keys(client, "p:") if "old-" in key] == []
        for index in ("i:all", "i:wf:order", "i:st:completed", "i:sw:completed:order"):
            members = {m.decode() for m in client.zrange(f"p:{index}", 0, -1)}
            assert not any(m.startswith("old-") for m in members), index
        loaded = store.load("busy")
        assert loaded is not None
        assert loaded.version == written[-1]
        assert len(store.entries("busy")) == loaded.seq == len(written)
        assert _ids(store.find(status="completed")) == ["kept"]
    finally:
        store.close()
        client.close()


def test_a_dry_run_writes_nothing(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="n:")
    try:
        _populate_finished(store, PRUNE_BATCH + 3)
        commands = monitor(
            server,
            lambda: store.prune(
                before=T0 + timedelta(days=1), statuses=["completed"], dry_run=True
            ),
        )
        lua = [c.split(" ", 1)[0] for c in _lua(commands)]
        assert set(lua) == {"ZRANGE", "HMGET"}
        # Each batch is read from its rank (found in logarithmic time), not past an offset.
        reads = [c for c in _lua(commands) if c.startswith("ZRANGE ")]
        assert reads == [
            f"ZRANGE n:i:st:completed 0 {PRUNE_BATCH - 1} WITHSCORES",
            f"ZRANGE n:i:st:completed {PRUNE_BATCH} {2 * PRUNE_BATCH - 1} WITHSCORES",
        ]
        assert len(store.find(limit=1000)) == PRUNE_BATCH + 3
    finally:
        store.close()


def test_expired_executions_are_cleaned_not_counted(store: RedisStore) -> None:
    expiring = scratch_store(prefix=store.prefix, ttl=3600)
    try:
        for n in range(3):
            expiring.create(make_execution(id=f"x{n}", status=Status.COMPLETED))
        store.client.delete(f"{store.prefix}e:x1")  # as when its TTL ran out
        assert store.prune(before=T0 + timedelta(days=1), statuses=["completed"]) == 2
        assert store_keys(store.client, store.prefix) == []
    finally:
        expiring.close()

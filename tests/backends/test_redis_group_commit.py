"""Group commit on Redis: checkpoints from several threads share a round trip, never an outcome.

Many threads write checkpoints at once, on their own executions and on shared
ones (so that writers conflict), while scripts are flushed or connections are
killed: every checkpoint that was reported written is in the store exactly
once, every conflict wrote nothing, and each execution's log is whole.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis

import flowkit
from flowkit import ConflictError, Status, StoreError
from flowkit.backends.redis import RedisStore
from flowkit.testing.conformance import make_execution, next_checkpoint

from .redis_helpers import (
    REDIS_URL,
    RedisServer,
    drop_keys,
    dump_keys,
    scratch_store,
    unique_prefix,
)
from .threads import at_once

pytestmark = pytest.mark.redis


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server: its statistics count only what the test sends."""
    private = RedisServer(tmp_path / "redis")
    private.start()
    yield private
    private.stop()


def _tagged(current: flowkit.Execution, tag: str) -> tuple[flowkit.Execution, list[flowkit.Entry]]:
    """The next checkpoint of ``current``, its ctx and its two entries marked with ``tag``."""
    record, entries = next_checkpoint(current, 2, ctx={**current.ctx, "last": tag, tag: True})
    return record, [attrs.evolve(entry, output={"tag": tag}) for entry in entries]


def _reads(client: Any) -> int:
    return int(client.info("stats")["total_reads_processed"])


def _rounds(store: RedisStore, writers: int, rounds: int) -> list[flowkit.Execution]:
    """Each round, ``writers`` threads checkpoint their own execution at the same moment."""
    executions = [make_execution(status=Status.RUNNING) for _ in range(writers)]
    for execution in executions:
        store.create(execution)
    barrier = threading.Barrier(writers)

    def write(index: int) -> None:
        current = executions[index]
        for n in range(rounds):
            record, entries = _tagged(current, f"w{index}r{n}")
            barrier.wait(timeout=30)
            store.checkpoint(record, entries, current.version, changed=("last", f"w{index}r{n}"))
            current = record
        executions[index] = current

    at_once([partial(write, index) for index in range(writers)])
    return executions


def _assert_stored(store: RedisStore, expected: flowkit.Execution) -> None:
    loaded = store.load(expected.id)
    assert loaded is not None
    assert loaded.version == expected.version
    assert loaded.ctx == expected.ctx
    assert [e.seq for e in store.entries(expected.id)] == list(range(1, expected.seq + 1))


def test_checkpoints_written_together_share_round_trips(server: RedisServer) -> None:
    client = server.client()
    try:
        for group_commit in (True, False):
            store = RedisStore(server.url, prefix=f"gc{group_commit}:", group_commit=group_commit)
            before = _reads(client)
            executions = _rounds(store, writers=8, rounds=40)
            reads = _reads(client) - before
            for execution in executions:
                _assert_stored(store, execution)
            checkpoints = 8 * 40
            if group_commit:  # several scripts arrive in one read of the socket
                assert reads < checkpoints * 0.8, (reads, checkpoints)
            else:
                assert reads >= checkpoints, (reads, checkpoints)
            store.close()
    finally:
        client.close()


@pytest.mark.parametrize(
    "options",
    [{"single_connection_client": True}, {"protocol": 2}, {"decode_responses": True}],
    ids=["single-connection", "resp2", "decoded"],
)
def test_ready_clients_of_every_kind_commit_together(options: dict[str, Any]) -> None:
    client = redis.Redis.from_url(REDIS_URL, **options)
    prefix = unique_prefix()
    try:
        store = RedisStore(client, prefix=prefix)
        for execution in _rounds(store, writers=8, rounds=20):
            _assert_stored(store, execution)
        store.close()
    finally:
        drop_keys(client, prefix)
        client.close()


def test_a_conflict_fails_only_its_own_checkpoint() -> None:
    store = scratch_store()
    try:
        writers, rounds = 8, 30
        executions = [make_execution(status=Status.RUNNING) for _ in range(writers)]
        for execution in executions:
            store.create(execution)
        barrier = threading.Barrier(writers)
        outcomes: dict[int, list[str]] = {index: [] for index in range(writers)}

        def write(index: int) -> None:
            current = executions[index]
            for n in range(rounds):
                stale = (index + n) % 2 == 0  # half of every round's writes are stale
                base = attrs.evolve(current, version=current.version - 1) if stale else current
                record, entries = _tagged(base, f"w{index}r{n}")
                barrier.wait(timeout=30)
                try:
                    store.checkpoint(record, entries, base.version)
                except ConflictError as exc:
                    outcomes[index].append(
                        "conflict" if "nothing was written" in str(exc) else str(exc)
                    )
                else:
                    outcomes[index].append("ok")
                    current = record
            executions[index] = current

        for index, execution in enumerate(executions):  # at version 2: version 1 is stale
            record, entries = _tagged(execution, "first")
            store.checkpoint(record, entries, execution.version)
            executions[index] = record
        at_once([partial(write, index) for index in range(writers)])
        for index, seen in outcomes.items():
            assert seen == ["conflict" if (index + n) % 2 == 0 else "ok" for n in range(rounds)], (
                index
            )
            _assert_stored(store, executions[index])
    finally:
        store.close()


def test_many_threads_many_executions_nothing_lost_or_duplicated() -> None:
    store = scratch_store()
    try:
        threads, shared, rounds = 16, 24, 60
        ids = []
        for _ in range(shared):
            execution = make_execution(status=Status.RUNNING)
            store.create(execution)
            ids.append(execution.id)
        # Each execution's winners, in the order they were written: (version, tag).
        won: dict[str, list[tuple[int, str]]] = {execution_id: [] for execution_id in ids}
        lock = threading.Lock()
        counts = {"ok": 0, "conflict": 0}

        def write(index: int) -> None:
            chooser = random.Random(index)
            for n in range(rounds):
                execution_id = chooser.choice(ids)  # shared by several threads: they conflict
                current = store.load(execution_id)
                assert current is not None
                if chooser.random() < 0.2:  # a writer that read long ago
                    current = attrs.evolve(current, version=max(1, current.version - 1))
                tag = f"t{index}n{n}"
                record, entries = _tagged(current, tag)
                try:
                    store.checkpoint(record, entries, current.version, changed=("last", tag))
                except ConflictError:
                    outcome = "conflict"
                else:
                    outcome = "ok"
                    with lock:
                        won[execution_id].append((record.version, tag))
                with lock:
                    counts[outcome] += 1

        at_once([partial(write, index) for index in range(threads)])
        assert counts["ok"] + counts["conflict"] == threads * rounds
        assert counts["ok"] > 0
        assert counts["conflict"] > 0
        for execution_id, winners in won.items():
            winners.sort()
            loaded = store.load(execution_id)
            assert loaded is not None
            # Every reported write landed once, in version order; no other write landed.
            assert [version for version, _ in winners] == list(range(2, loaded.version + 1))
            tags = [entry.output["tag"] for entry in store.entries(execution_id)]
            assert tags == [tag for _, tag in winners for _ in range(2)]
            assert [entry.seq for entry in store.entries(execution_id)] == list(
                range(1, loaded.seq + 1)
            )
            expected = {"last": winners[-1][1], **{tag: True for _, tag in winners}}
            assert loaded.ctx == (expected if winners else {})
            assert list(loaded.ctx) == list(expected if winners else {})
    finally:
        store.close()


def test_a_full_redis_refuses_each_checkpoint_of_a_batch_on_its_own(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="oom:")
    client = server.client()
    try:
        executions = [make_execution(status=Status.RUNNING) for _ in range(8)]
        for execution in executions:
            store.create(execution)
        before = dump_keys(client, "oom:")
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        barrier = threading.Barrier(8)
        outcomes = [""] * 8

        def write(index: int) -> None:
            current = executions[index]
            stale = index % 2 == 0
            base = attrs.evolve(current, version=current.version + 1) if stale else current
            record, entries = _tagged(base, f"w{index}")
            for _ in range(10):
                barrier.wait(timeout=30)
                try:
                    store.checkpoint(record, entries, base.version)
                except ConflictError:
                    outcome = "conflict"  # found before the script's first write
                except StoreError as exc:
                    outcome = "full" if "maxmemory" in str(exc) else str(exc)
                else:
                    outcome = "written"
                assert outcome == ("conflict" if stale else "full"), outcome
                outcomes[index] = outcome

        at_once([partial(write, index) for index in range(8)])
        assert outcomes == ["conflict", "full"] * 4
        client.config_set("maxmemory", "0")
        assert dump_keys(client, "oom:") == before  # nothing was written
    finally:
        drop_keys(client, "oom:")
        store.close()
        client.close()


def test_scripts_flushed_while_checkpoints_travel_together(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="flush:")
    client = server.client()
    try:
        executions = [make_execution(status=Status.RUNNING) for _ in range(8)]
        for execution in executions:
            store.create(execution)
        barrier = threading.Barrier(9)

        def write(index: int) -> None:
            if index == 8:  # the flusher
                for _ in range(20):
                    barrier.wait(timeout=30)
                    client.script_flush()
                return
            current = executions[index]
            for n in range(20):
                record, entries = _tagged(current, f"w{index}r{n}")
                barrier.wait(timeout=30)
                store.checkpoint(
                    record, entries, current.version, changed=("last", f"w{index}r{n}")
                )
                current = record
            executions[index] = current

        at_once([partial(write, index) for index in range(9)])
        for execution in executions:
            _assert_stored(store, execution)
    finally:
        drop_keys(client, "flush:")
        store.close()
        client.close()


@pytest.mark.timeout(300)
def test_connections_killed_while_executions_run_at_once(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="kill8:", retry_timeout=10)
    killer_client = server.client()
    stop = threading.Event()
    kills = {"count": 0}

    def killer() -> None:
        while not stop.wait(0.01):
            kills["count"] += killer_client.client_kill_filter(_type="normal", skipme=True)

    services = flowkit.ServiceRegistry()
    services.register("Work", {"work": lambda i: i})
    steps: list[dict[str, Any]] = [{"id": "start", "type": "start", "next": "s0"}]
    for i in range(60):
        step: dict[str, Any] = {
            "id": f"s{i}",
            "type": "call",
            "service": "Work",
            "method": "work",
            "input": {"i": i},
            "output": f"s{i}",
        }
        if i + 1 < 60:
            step["next"] = f"s{i + 1}"
        steps.append(step)
    wf = flowkit.load({"id": "killed_at_once", "steps": steps})
    engine = flowkit.Engine(store=store, services=services, executor="thread")
    thread = threading.Thread(target=killer)
    thread.start()
    try:
        handles = [engine.start(wf) for _ in range(16)]
        results = [handle.result(timeout=240) for handle in handles]
    finally:
        stop.set()
        thread.join()
        engine.close()
        killer_client.close()
    assert kills["count"] >= 3
    for result in results:
        assert result.completed, result.error
        assert [e.step_id for e in store.entries(result.execution_id)] == [
            "start",
            *(f"s{i}" for i in range(60)),
        ]  # each step once: a batch sent again never lands twice
    store.close()

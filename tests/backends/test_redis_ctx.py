"""The Redis store keeps ctx values per name: a checkpoint writes only what changed.

Checked against the real server: what a checkpoint writes (and leaves alone),
the order of ctx, big and many values, whole writes, conflicts, prefixes, and
records written by the release that kept ctx inside the record (``d``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import flowkit
from flowkit import ConflictError, Status
from flowkit.backends.redis import RedisStore
from flowkit.testing.conformance import (
    T0,
    canonical,
    make_execution,
    next_checkpoint,
    snapshot,
)

from .redis_helpers import RedisServer, as_released, dump_keys, scratch_store, store_keys

pytestmark = pytest.mark.redis


@pytest.fixture
def store() -> Iterator[RedisStore]:
    """A store on the shared server under a fresh prefix; its keys go when it closes."""
    opened = scratch_store()
    yield opened
    opened.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server: its statistics count only what the test sends."""
    private = RedisServer(tmp_path / "redis")
    private.start()
    yield private
    private.stop()


def _created(store: RedisStore, **fields: Any) -> flowkit.Execution:
    execution = make_execution(status=Status.RUNNING, **fields)
    store.create(execution)
    return execution


def _step(
    store: RedisStore, current: flowkit.Execution, changed: tuple[str, ...] | None, **ctx: Any
) -> flowkit.Execution:
    """Checkpoint one entry that sets ``ctx`` (merged into the current ctx)."""
    record, entries = next_checkpoint(current, 1, ctx={**current.ctx, **ctx})
    store.checkpoint(record, entries, current.version, changed=changed)
    return record


def _stored_ctx(store: RedisStore, execution_id: str) -> tuple[dict[str, str], list[str]]:
    """The ctx hash (name -> JSON text) and the order list, as Redis holds them."""
    client, p = store.client, store.prefix
    values = client.hgetall(f"{p}c:{execution_id}")
    order = client.lrange(f"{p}o:{execution_id}", 0, -1)
    return {k.decode(): v.decode() for k, v in values.items()}, [n.decode() for n in order]


def _loaded(store: RedisStore, execution_id: str) -> flowkit.Execution:
    loaded = store.load(execution_id)
    assert loaded is not None
    return loaded


def _stat(client: Any, command: str) -> int:
    found = client.info("commandstats").get(f"cmdstat_{command}")
    return 0 if found is None else int(found["calls"])


# --- what a checkpoint writes --------------------------------------------------------------------


def test_a_checkpoint_writes_only_the_values_it_names(store: RedisStore) -> None:
    execution = _created(store, ctx={"a": 1, "other": "as created"})
    # Behind the store's back: a checkpoint that does not name 'other' leaves it alone.
    store.client.hset(f"{store.prefix}c:{execution.id}", "other", '"changed behind"')
    current = _step(store, execution, ("a", "new"), a=2, new=[3])
    assert _stored_ctx(store, execution.id) == (
        {"a": "2", "other": '"changed behind"', "new": "[3]"},
        ["a", "other", "new"],
    )
    assert _loaded(store, execution.id).ctx == {"a": 2, "other": "changed behind", "new": [3]}
    # A record-only checkpoint (a claim, a lease renewal) writes no ctx value at all.
    _step(store, current, ())
    assert _loaded(store, execution.id).ctx["other"] == "changed behind"


def test_a_name_set_again_keeps_its_place_and_new_names_go_last(store: RedisStore) -> None:
    execution = _created(store, ctx={"m": 0, "a": 0})
    current = _step(store, execution, ("z", "a", "b"), z=1, a=2, b=3)
    current = _step(store, current, ("m", "c"), m=4, c=5)
    assert _stored_ctx(store, execution.id)[1] == ["m", "a", "z", "b", "c"]
    loaded = _loaded(store, execution.id)
    assert list(loaded.ctx.items()) == [("m", 4), ("a", 2), ("z", 1), ("b", 3), ("c", 5)]
    assert canonical(loaded) == canonical(current)


def test_none_replaces_ctx_whole(store: RedisStore) -> None:
    execution = _created(store, ctx={"gone": 1, "kept": 2, "also": 3})
    store.client.hset(f"{store.prefix}c:{execution.id}", "kept", '"changed behind"')
    record, entries = next_checkpoint(execution, 1, ctx={"new": 4, "kept": 5})
    store.checkpoint(record, entries, execution.version, changed=None)
    assert _stored_ctx(store, execution.id) == ({"new": "4", "kept": "5"}, ["new", "kept"])
    assert list(_loaded(store, execution.id).ctx.items()) == [("new", 4), ("kept", 5)]
    # An empty ctx leaves no ctx keys behind.
    emptied, entries = next_checkpoint(record, 1, ctx={})
    store.checkpoint(emptied, entries, record.version, changed=None)
    assert _loaded(store, execution.id).ctx == {}
    assert not {f"{store.prefix}{kind}:{execution.id}" for kind in "co"} & set(
        store_keys(store.client, store.prefix)
    )


def test_a_big_value_is_sent_once_and_never_again(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="big:")
    client = server.client()
    try:
        big = "x" * 1_000_000
        execution = _created(store, ctx={"n": 0})
        current = _step(store, execution, ("blob",), blob=big)
        sent = int(client.info("stats")["total_net_input_bytes"])
        for n in range(1, 101):
            current = _step(store, current, ("n", f"s{n}"), n=n, **{f"s{n}": {"n": n}})
        per_checkpoint = (int(client.info("stats")["total_net_input_bytes"]) - sent) / 100
        assert per_checkpoint < 2_000  # the megabyte is not sent again…
        values, order = _stored_ctx(store, execution.id)
        assert values["blob"] == json.dumps(big)  # …and stays as it was written
        assert order == ["n", "blob", *(f"s{n}" for n in range(1, 101))]
        loaded = _loaded(store, execution.id)
        assert canonical(loaded) == canonical(current)
        assert [found.ctx for found in store.find()] == [current.ctx]
    finally:
        store.close()
        client.close()


def test_a_thousand_names(store: RedisStore) -> None:
    ctx = {f"k{i}": {"i": i} for i in range(1_000)}
    execution = _created(store, ctx=ctx)
    current = _step(store, execution, ("k500", "k999", "k1000"), k500="x", k999=None, k1000=[1])
    assert list(_loaded(store, execution.id).ctx.items()) == list(current.ctx.items())
    # Whole, in another order: the order is replaced too.
    reordered = dict(reversed(list(current.ctx.items())))
    record, entries = next_checkpoint(current, 1, ctx=reordered)
    store.checkpoint(record, entries, current.version, changed=None)
    assert list(_loaded(store, execution.id).ctx.items()) == list(reordered.items())
    assert _stored_ctx(store, execution.id)[1] == list(reordered)
    (found,) = store.find()
    assert list(found.ctx.items()) == list(reordered.items())


def test_find_reads_every_ctx_in_one_round_trip(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="find:")
    client = server.client()
    try:
        for n in range(100):
            _created(store, id=f"ex-{n:03d}", ctx={"n": n, "tag": f"t{n}", "big": [n] * 100})
        client.config_resetstat()
        found = store.find(limit=100)
        # One script (and the test's own commands): every other one ran inside the script.
        assert _stat(client, "evalsha") == 1
        ran = {name.removeprefix("cmdstat_") for name in client.info("commandstats")}
        assert ran == {"config|resetstat", "evalsha", "info", "zrevrange", "hmget", "lrange"}
        assert {e.id: e.ctx for e in found} == {
            f"ex-{n:03d}": {"n": n, "tag": f"t{n}", "big": [n] * 100} for n in range(100)
        }
    finally:
        store.close()
        client.close()


def test_a_conflict_writes_nothing(store: RedisStore) -> None:
    execution = _created(store, ctx={"a": 1})
    current = _step(store, execution, ("a",), a=2)
    before = dump_keys(store.client, store.prefix)
    for stale_version, seq_gap in ((execution.version, 0), (current.version, 1)):
        base = attrs.evolve(current, version=stale_version, seq=current.seq + seq_gap)
        record, entries = next_checkpoint(base, 1, ctx={"a": 3, "b": 4})
        for changed in (("a", "b"), None):
            with pytest.raises(ConflictError, match="nothing was written"):
                store.checkpoint(record, entries, stale_version, changed=changed)
    assert dump_keys(store.client, store.prefix) == before


def test_prefixes_keep_ctx_apart() -> None:
    first, second = scratch_store(), scratch_store()
    try:
        executions = {}
        for store, tag in ((first, "first"), (second, "second")):
            execution = _created(store, id="same", ctx={"tag": tag, "shared": 0})
            executions[tag] = _step(store, execution, ("shared", "own"), shared=tag, own=[tag])
        assert first.delete("same")
        assert _loaded(second, "same").ctx == {
            "tag": "second",
            "shared": "second",
            "own": ["second"],
        }
        assert store_keys(first.client, first.prefix) == []
        assert all(
            key.startswith(second.prefix) for key in store_keys(second.client, second.prefix)
        )
    finally:
        first.close()
        second.close()


# --- records written by the release that kept ctx inside the record ------------------------------


def _released(store: RedisStore, **fields: Any) -> flowkit.Execution:
    """An execution with two checkpoints, then put in the release's shape."""
    execution = _created(store, **fields)
    current = _step(store, execution, ("a",), a=1)
    current = _step(store, current, ("b",), b={"c": [1.5, None, "ü"]})
    as_released(store, execution.id)
    stored = store.client.hkeys(f"{store.prefix}e:{execution.id}")
    assert b"d" in stored
    assert b"r" not in stored
    return current


def test_released_records_are_read_as_they_were(store: RedisStore) -> None:
    current = _released(store, ctx={"z": 0}, lease_expires_at=T0, lease_owner="old")
    assert canonical(_loaded(store, current.id)) == canonical(current)
    assert [canonical(e) for e in store.find()] == [canonical(current)]
    assert [canonical(e) for e in store.stale(T0)] == [canonical(current)]
    assert [e.seq for e in store.entries(current.id)] == [1, 2]


def test_the_first_checkpoint_converts_a_released_record(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="old:")
    client = server.client()
    try:
        current = _released(store, ctx={"z": 0})
        client.config_resetstat()
        current = _step(store, current, ("a", "new"), a=2, new=3)
        # Refused as it names values (the record holds ctx whole), then sent whole: once.
        assert _stat(client, "evalsha") == 2
        fields = client.hkeys(f"old:e:{current.id}")
        assert b"r" in fields
        assert b"d" not in fields
        assert _stored_ctx(store, current.id) == (
            {"z": "0", "a": "2", "b": '{"c":[1.5,null,"ü"]}', "new": "3"},
            ["z", "a", "b", "new"],
        )
        client.config_resetstat()
        current = _step(store, current, ("a",), a=4)
        assert _stat(client, "evalsha") == 1
        assert canonical(_loaded(store, current.id)) == canonical(current)
        assert [e.seq for e in store.entries(current.id)] == [1, 2, 3, 4]
    finally:
        store.close()
        client.close()


def test_a_record_only_checkpoint_converts_a_released_record(store: RedisStore) -> None:
    current = _released(store, ctx={"z": 0})
    claimed, _ = next_checkpoint(current, 0, lease_owner="new", lease_expires_at=T0)
    store.checkpoint(claimed, (), current.version, changed=())
    assert canonical(_loaded(store, current.id)) == canonical(claimed)
    assert _stored_ctx(store, current.id)[1] == ["z", "a", "b"]


def test_a_conflict_on_a_released_record_writes_nothing(store: RedisStore) -> None:
    current = _released(store, ctx={"z": 0})
    before = dump_keys(store.client, store.prefix)
    record, entries = next_checkpoint(attrs.evolve(current, version=1), 1, ctx={"a": 9})
    with pytest.raises(ConflictError, match="expected version 1, but the store holds version 3"):
        store.checkpoint(record, entries, 1, changed=("a",))
    assert dump_keys(store.client, store.prefix) == before


def test_a_record_written_by_the_release_after_conversion_wins(store: RedisStore) -> None:
    # A process of the old release still running during an upgrade writes `d` again.
    current = _released(store, ctx={"z": 0})
    current = _step(store, current, ("a",), a=2)  # converted
    old_writer = _step(store, current, ("a",), a="old release")
    as_released(store, current.id)
    assert _loaded(store, current.id).ctx["a"] == "old release"
    latest = _step(store, old_writer, ("z",), z=1)
    assert canonical(_loaded(store, current.id)) == canonical(latest)


def test_deleting_a_released_record_leaves_nothing(store: RedisStore) -> None:
    current = _released(store, ctx={"z": 0})
    assert store.delete(current.id)
    assert store_keys(store.client, store.prefix) == []


def test_a_released_execution_halted_before_the_upgrade_resumes(store: RedisStore) -> None:
    services = flowkit.ServiceRegistry()
    services.register("Work", {"work": lambda i: {"i": i}})
    wf = flowkit.load(
        {
            "id": "upgraded",
            "steps": [
                {"id": "start", "type": "start", "next": "s0"},
                {"id": "s0", "type": "call", "service": "Work", "method": "work",
                 "input": {"i": 0}, "output": "s0", "next": "wait"},
                {"id": "wait", "type": "halt", "reason": "upgrade", "next": "s1"},
                {"id": "s1", "type": "call", "service": "Work", "method": "work",
                 "input": {"i": 1}, "output": "s1"},
            ],
        }
    )  # fmt: skip
    engine = flowkit.Engine(store=store, services=services)
    try:
        halted = engine.run(wf, {"n": 1})
        assert halted.halted
        before = snapshot(store, halted.execution_id)
        as_released(store, halted.execution_id)
        assert snapshot(store, halted.execution_id) == before
        done = engine.resume(halted.execution_id, response={"ok": True})
        assert done.completed, done.error
        loaded = _loaded(store, halted.execution_id)
        assert loaded.ctx == {"s0": {"i": 0}, "response": {"ok": True}, "s1": {"i": 1}}
        assert [e.step_id for e in store.entries(loaded.id)] == [
            "start",
            "s0",
            "wait",
            "wait",
            "s1",
        ]
    finally:
        engine.close()

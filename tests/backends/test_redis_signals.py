"""Mailboxes and schedules in Redis: their keys, concurrent senders, lost replies, commands.

Senders that race are stores of their own (their own connections) on one key
prefix, as separate processes are. Tests that watch every command Redis runs
use a private ``redis-server`` (``server``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from flowkit import ConflictError, Status
from flowkit.backends.redis import RedisStore
from flowkit.records import Schedule, Signal
from flowkit.testing.conformance import T0, make_execution, next_checkpoint

from .redis_helpers import (
    REDIS_URL,
    RedisServer,
    command_stats,
    monitor,
    scratch_store,
    store_keys,
)
from .threads import at_once

pytestmark = pytest.mark.redis

SENDERS = 8
#: Signal names of the mailbox model; the colon is the one in pending-set members.
NAMES = st.sampled_from(["a", "b:c"])


@pytest.fixture
def store() -> Iterator[RedisStore]:
    """A store on the shared server under a fresh prefix; its keys go when it closes."""
    opened = scratch_store()
    yield opened
    opened.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server, stopped after the test."""
    private = RedisServer(tmp_path / "redis")
    private.start()
    yield private
    private.stop()


def _signal(execution_id: str, name: str = "tick", payload: Any = None, **fields: Any) -> Signal:
    return Signal(
        execution_id=execution_id, seq=0, name=name, payload=payload, sent_at=T0, **fields
    )


def _schedule(name: str, **fields: Any) -> Schedule:
    return Schedule(name=name, workflow_id="report", cron="0 3 * * *", created_at=T0, **fields)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _senders(store: RedisStore) -> list[RedisStore]:
    """Stores of their own on ``store``'s keys (closed by the caller, not emptied)."""
    return [RedisStore(REDIS_URL, prefix=store.prefix) for _ in range(SENDERS)]


def test_mailbox_key_layout(store: RedisStore) -> None:
    client, p = store.client, store.prefix
    execution = make_execution(id="ex-1", status=Status.WAITING)
    store.create(execution)
    store.send_signal(_signal("ex-1", "paid", {"amount": 3}, key="pay-1"))
    store.send_signal(_signal("ex-1", "note:1", [1]))
    mailbox = {_text(k): _text(v) for k, v in client.hgetall(f"{p}m:ex-1").items()}
    writes = sorted(field for field in mailbox if field.startswith("w"))
    assert set(mailbox) == {"1", "2", "n", "kpay-1", *writes}
    assert sorted(mailbox[field] for field in writes) == ["1", "2"]  # write id -> seq
    assert (mailbox["n"], mailbox["kpay-1"]) == ("2", "1")
    assert json.loads(mailbox["1"]) == {
        "name": "paid",
        "key": "pay-1",
        "sent_at": T0.isoformat(),
        "payload": {"amount": 3},
    }
    pending = f"{p}mp:ex-1"
    assert client.zrange(pending, 0, -1, withscores=True) == [(b"1:paid", 1.0), (b"2:note:1", 2.0)]
    # A name holding the separator is read whole.
    assert [s.seq for s in store.signals("ex-1", name="note:1")] == [2]
    assert store.signals("ex-1", name="note") == []

    record, entries = next_checkpoint(execution, status=Status.RUNNING)
    store.checkpoint(record, entries, execution.version, consumed=[1])
    assert client.zrange(pending, 0, -1) == [b"2:note:1"]
    assert client.hget(f"{p}m:ex-1", "c1") == b"%d" % record.version
    assert store.delete("ex-1") is True
    assert store_keys(client, p) == []


def test_schedule_key_layout(store: RedisStore) -> None:
    client, p = store.client, store.prefix
    store.save_schedule(_schedule("nightly", input={"region": "eu"}))
    store.save_schedule(_schedule("hourly", last_slot=T0))
    assert store_keys(client, p) == [f"{p}sc:hourly", f"{p}sc:nightly", f"{p}schedules"]
    assert client.zrange(f"{p}schedules", 0, -1) == [b"hourly", b"nightly"]
    nightly = {_text(k): _text(v) for k, v in client.hgetall(f"{p}sc:nightly").items()}
    assert set(nightly) == {"d"}
    assert json.loads(nightly["d"]) == {
        "workflow_id": "report",
        "cron": "0 3 * * *",
        "timezone": "UTC",
        "input": {"region": "eu"},
        "created_at": T0.isoformat(),
    }
    slot = T0 + timedelta(hours=1)
    assert store.schedule_fired("nightly", slot) is True
    fired = client.hgetall(f"{p}sc:nightly")
    assert set(fired) == {b"d", b"ls", b"w"}
    assert store.schedules()[1].last_slot == slot
    assert store.delete_schedule("nightly") is True
    assert store.delete_schedule("hourly") is True
    assert store_keys(client, p) == []


def test_senders_with_one_key_store_one_signal(store: RedisStore) -> None:
    execution = make_execution(status=Status.WAITING)
    store.create(execution)
    senders = _senders(store)
    try:
        sent = at_once(
            [
                partial(sender.send_signal, _signal(execution.id, payload=n, key="once"))
                for n, sender in enumerate(senders)
            ]
        )
    finally:
        for sender in senders:
            sender.close()
    stored = [signal for signal in sent if signal is not None]
    assert len(stored) == 1
    assert store.signals(execution.id) == stored
    assert store.client.hget(f"{store.prefix}m:{execution.id}", "n") == b"1"


def test_concurrent_senders_get_unique_consecutive_seqs(store: RedisStore) -> None:
    execution = make_execution(status=Status.RUNNING)
    store.create(execution)
    senders = _senders(store)

    def send(sender: RedisStore, index: int) -> list[int]:
        seqs = []
        for n in range(25):
            signal = sender.send_signal(_signal(execution.id, payload={"from": index, "n": n}))
            assert signal is not None
            seqs.append(signal.seq)
        return seqs

    try:
        got = at_once([partial(send, sender, index) for index, sender in enumerate(senders)])
    finally:
        for sender in senders:
            sender.close()
    assert sorted(seq for seqs in got for seq in seqs) == list(range(1, SENDERS * 25 + 1))
    assert all(seqs == sorted(seqs) for seqs in got)  # each sender's seqs rise
    pending = store.signals(execution.id)
    assert [s.seq for s in pending] == list(range(1, SENDERS * 25 + 1))
    for index, seqs in enumerate(got):
        assert [s.seq for s in pending if s.payload["from"] == index] == seqs


def test_fires_racing_from_stores_of_their_own_win_each_slot_once(store: RedisStore) -> None:
    store.save_schedule(_schedule("nightly"))
    slots = [T0 + timedelta(days=day) for day in range(1, 21)]
    senders = _senders(store)

    def fire(index: int, sender: RedisStore) -> list[datetime]:
        ordered = slots[index % 3 :: 3] + slots[: index % 3]  # overlapping, out of order
        return [slot for slot in ordered if sender.schedule_fired("nightly", slot)]

    try:
        won = at_once([partial(fire, index, sender) for index, sender in enumerate(senders)])
    finally:
        for sender in senders:
            sender.close()
    winners = [slot for slots_won in won for slot in slots_won]
    assert len(winners) == len(set(winners))  # no slot won twice
    assert slots[-1] in winners  # the latest slot always wins, once
    assert all(slots_won == sorted(slots_won) for slots_won in won)  # each moved forward
    assert store.schedules()[0].last_slot == slots[-1]


def test_a_send_whose_reply_was_lost_is_not_appended_twice(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lose = {"replies": 0}
    read_response = redis.connection.Connection.read_response

    def lossy(self: Any, *args: Any, **options: Any) -> Any:
        reply = read_response(self, *args, **options)
        if lose["replies"] and reply in ([1, 1], 1):  # the send's "appended as 1", the fire's 1
            lose["replies"] -= 1
            self.disconnect()
            raise redis.ConnectionError("Connection closed by server.")
        return reply

    execution = make_execution(status=Status.WAITING)
    store.create(execution)
    store.save_schedule(_schedule("nightly"))
    monkeypatch.setattr(redis.connection.Connection, "read_response", lossy)
    lose["replies"] = 1
    sent = store.send_signal(_signal(execution.id))  # landed, reply lost, sent again
    assert lose["replies"] == 0
    assert sent is not None
    assert sent.seq == 1
    assert [s.seq for s in store.signals(execution.id)] == [1]
    lose["replies"] = 1
    assert store.schedule_fired("nightly", T0 + timedelta(days=1)) is True  # still the winner
    assert lose["replies"] == 0
    assert store.schedule_fired("nightly", T0 + timedelta(days=1)) is False


def test_checkpoints_consuming_signals_travel_together(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="g:")
    try:
        executions = [make_execution(status=Status.WAITING) for _ in range(SENDERS)]
        for execution in executions:
            store.create(execution)
            for name in ("a", "b"):
                store.send_signal(_signal(execution.id, name))

        def consume(index: int) -> str:
            execution = executions[index]
            record, entries = next_checkpoint(execution, status=Status.RUNNING)
            seqs = [2] if index else [2, 3]  # the first names a seq never sent
            try:
                store.checkpoint(record, entries, execution.version, consumed=seqs)
            except ConflictError as exc:
                return str(exc)
            return "ok"

        client = server.client()
        client.config_resetstat()
        outcomes = at_once([partial(consume, index) for index in range(SENDERS)])
        assert outcomes[1:] == ["ok"] * (SENDERS - 1)
        assert "signal 3 is not pending" in outcomes[0]
        assert command_stats(client)["evalsha"] == SENDERS
        client.close()
        assert [s.name for s in store.signals(executions[0].id)] == ["a", "b"]
        for execution in executions[1:]:
            assert [s.name for s in store.signals(execution.id)] == ["a"]
    finally:
        store.close()


def test_finished_mailboxes_expire_with_their_execution(store: RedisStore) -> None:
    expiring = scratch_store(prefix=store.prefix, ttl=3600)
    try:
        execution = make_execution(status=Status.WAITING)
        expiring.create(execution)
        expiring.send_signal(_signal(execution.id, key="k"))
        expiring.send_signal(_signal(execution.id))
        record, entries = next_checkpoint(execution, status=Status.COMPLETED)
        expiring.checkpoint(record, entries, execution.version, consumed=[1])
        client, p = store.client, store.prefix
        for key in ("e", "m", "mp"):
            assert 0 < client.pttl(f"{p}{key}:{execution.id}") <= 3_600_000, key
        retried = next_checkpoint(record, status=Status.RUNNING)
        expiring.checkpoint(*retried, record.version)  # running again: kept for good
        for key in ("e", "m", "mp"):
            assert client.pttl(f"{p}{key}:{execution.id}") == -1, key
    finally:
        expiring.close()


def test_mailboxes_and_schedules_never_scan(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="m:")
    client = server.client()
    try:
        execution = make_execution(id="ex-1", status=Status.WAITING)
        store.create(execution)
        for n in range(50):
            store.send_signal(_signal("ex-1", "even" if n % 2 == 0 else "odd", n))
        for n in range(20):
            store.save_schedule(_schedule(f"s{n:02d}"))
        record, entries = next_checkpoint(execution, status=Status.RUNNING)
        calls: dict[str, tuple[Any, list[str]]] = {
            "send": (
                lambda: store.send_signal(_signal("ex-1", "odd", key="k")),
                ["HGET", "HGET", "HEXISTS", "HINCRBY", "HSET", "HSET", "ZADD"],
            ),
            "signals of a name": (
                lambda: store.signals("ex-1", name="odd"),
                ["ZRANGE", "HMGET"],
            ),
            "every signal": (lambda: store.signals("ex-1"), ["ZRANGE", "HMGET"]),
            "schedules": (store.schedules, ["ZRANGE"] + ["HMGET"] * 20),
            "fire": (lambda: store.schedule_fired("s05", T0), ["HMGET", "HSET"]),
            "save a schedule": (
                lambda: store.save_schedule(_schedule("s20")),
                ["DEL", "HSET", "ZADD"],
            ),
            "delete a schedule": (lambda: store.delete_schedule("s20"), ["ZREM", "DEL"]),
            "consume": (
                lambda: store.checkpoint(record, entries, execution.version, consumed=[1, 3]),
                None,
            ),
        }
        for name, (call, expected) in calls.items():
            client.config_resetstat()
            commands = monitor(server, call)
            stats = command_stats(client)
            assert not {"keys", "scan", "zscan", "sscan", "hscan"} & set(stats), name
            assert [kind for kind, _ in commands].count("tcp") == 1, name
            lua = [command.split(" ", 1)[0] for kind, command in commands if kind == "lua"]
            if expected is not None:
                assert lua == expected, name
            else:  # the two consumed signals: checked, then marked
                assert lua.count("ZCOUNT") == 2, lua
                assert lua.count("ZREMRANGEBYSCORE") == 2, lua
        assert [s.seq for s in store.signals("ex-1", name="odd")][:2] == [2, 4]
        assert len(store.signals("ex-1", name="even")) == 23
    finally:
        store.close()
        client.close()


class MailboxMachine(RuleBasedStateMachine):
    """One mailbox in Redis against a model: a seq counter, the keys seen, the pending
    signals. Sends, consuming checkpoints (some naming a seq that is not pending) and
    reads, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.store = scratch_store()
        self.execution = make_execution(status=Status.WAITING)
        self.store.create(self.execution)
        self.last_seq = 0
        self.keys: set[str] = set()
        self.pending: dict[int, Signal] = {}

    @rule(name=NAMES, key=st.none() | st.sampled_from(["k1", "k2", "k3"]), payload=st.integers())
    def send(self, name: str, key: str | None, payload: int) -> None:
        sent = self.store.send_signal(_signal(self.execution.id, name, payload, key=key))
        if key in self.keys:
            assert sent is None
            return
        self.last_seq += 1
        expected = attrs.evolve(
            _signal(self.execution.id, name, payload, key=key), seq=self.last_seq
        )
        assert sent == expected
        self.pending[self.last_seq] = expected
        if key is not None:
            self.keys.add(key)

    @rule(data=st.data())
    def consume(self, data: st.DataObject) -> None:
        known = sorted(self.pending)
        seqs = data.draw(st.lists(st.sampled_from(known), unique=True) if known else st.just([]))
        stray = data.draw(st.none() | st.integers(min_value=1, max_value=self.last_seq + 2))
        if stray is not None:
            seqs.append(stray)
        record, entries = next_checkpoint(self.execution)
        if stray is not None and stray not in self.pending:  # a pending one twice is fine
            with pytest.raises(ConflictError):
                self.store.checkpoint(record, entries, self.execution.version, consumed=seqs)
            assert self.store.load(self.execution.id) == self.execution
            return
        self.store.checkpoint(record, entries, self.execution.version, consumed=seqs)
        self.execution = record
        for seq in set(seqs):
            del self.pending[seq]

    @invariant()
    def pending_in_seq_order(self) -> None:
        expected = [self.pending[seq] for seq in sorted(self.pending)]
        assert self.store.signals(self.execution.id) == expected
        for name in ("a", "b:c"):
            by_name = self.store.signals(self.execution.id, name=name)
            assert by_name == [signal for signal in expected if signal.name == name]

    def teardown(self) -> None:
        self.store.close()


MailboxMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=15, deadline=None, database=None
)
test_a_mailbox_behaves_as_its_model = MailboxMachine.TestCase

"""What only the Redis store has: URLs and clients, key layout, scripts, processes, faults, TTL.

Tests on the shared server use a fresh key prefix and delete their keys. Tests
that restart Redis, flush its script cache or watch every command it runs
start a private ``redis-server`` on another loopback port (``server``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
from click.testing import CliRunner

import flowkit
from flowkit import (
    ConfigError,
    ConflictError,
    FlowkitError,
    Status,
    Store,
    StoreError,
    StoreUnavailableError,
)
from flowkit.backends.redis import RedisStore
from flowkit.cli import main as cli
from flowkit.testing.conformance import T0, make_entry, make_execution, next_checkpoint

from .redis_helpers import (
    REDIS_URL,
    RedisServer,
    client_url,
    command_stats,
    drop_keys,
    dump_keys,
    free_port,
    monitor,
    scratch_store,
    shown_url,
    store_keys,
    unique_prefix,
    with_options,
)

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
FLOWKIT = str(Path(sys.executable).parent / "flowkit")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


@pytest.fixture
def store() -> Iterator[RedisStore]:
    """A store on the shared server under a fresh prefix; its keys go when it closes."""
    opened = scratch_store()
    yield opened
    opened.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (AOF, appendfsync always), stopped after the test."""
    private = RedisServer(tmp_path / "redis")
    private.start()
    yield private
    private.stop()


@pytest.fixture
def open_store() -> Iterator[Callable[..., RedisStore]]:
    """Opens stores (URL or client, with options) and closes them afterwards."""
    opened: list[RedisStore] = []

    def opener(url_or_client: Any, **options: Any) -> RedisStore:
        options.setdefault("prefix", unique_prefix())
        created = RedisStore(url_or_client, **options)
        opened.append(created)
        return created

    yield opener
    for created in opened:
        created.close()


def _ids(executions: list[flowkit.Execution]) -> list[str]:
    return [execution.id for execution in executions]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _assert_consistent(store: Store, execution_id: str) -> list[flowkit.Entry]:
    """The record and its log agree: seqs 1…n without gaps, and the record's seq is n."""
    record = store.load(execution_id)
    assert record is not None
    entries = store.entries(execution_id)
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert record.seq == len(entries)
    return entries


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _chain(n: int, service: str = "Work", pause_at: int | None = None) -> flowkit.WorkflowDef:
    steps: list[dict[str, Any]] = [{"id": "start", "type": "start", "next": "s0"}]
    for i in range(n):
        step: dict[str, Any] = {
            "id": f"s{i}",
            "type": "call",
            "service": service,
            "method": "pause" if i == pause_at else "work",
            "input": {"i": i},
            "output": f"s{i}",
        }
        if i + 1 < n:
            step["next"] = f"s{i + 1}"
        steps.append(step)
    return flowkit.load({"id": f"redis_chain_{uuid.uuid4().hex[:6]}", "steps": steps})


# --- URLs, options and clients -------------------------------------------------------------------


def test_connect_opens_the_redis_store_with_options_from_the_url() -> None:
    prefix = unique_prefix()
    url = with_options(
        REDIS_URL,
        prefix=prefix,
        ttl=60,
        retry_timeout=2,
        group_commit="false",
        socket_timeout=3,
        client_name="flowkit-options-test",
    )
    store = flowkit.connect(url)
    assert isinstance(store, RedisStore)
    try:
        assert isinstance(store, Store)
        assert store.prefix == prefix
        assert store.ttl == timedelta(seconds=60)
        assert store.group_commit is False
        kwargs = store.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 3.0
        assert kwargs["client_name"] == "flowkit-options-test"
        assert not {"prefix", "ttl", "retry_timeout", "group_commit"} & set(kwargs)
        assert repr(store) == f"RedisStore({shown_url()!r}, prefix={prefix!r})"
        store.create(make_execution())
        assert len(store.find()) == 1
    finally:
        drop_keys(store.client, prefix)
        store.close()


def test_keyword_options_win_over_the_url(open_store: Callable[..., RedisStore]) -> None:
    prefix = unique_prefix()
    store = open_store(with_options(REDIS_URL, prefix="from-url:", ttl=5), prefix=prefix, ttl=7)
    assert store.prefix == prefix
    assert store.ttl == timedelta(seconds=7)
    default = open_store(REDIS_URL, prefix=None)
    assert default.prefix == "flowkit:"  # the documented default
    assert default.ttl is None
    assert default.group_commit is True
    for text, expected in (("false", False), ("0", False), ("off", False), ("yes", True)):
        assert open_store(with_options(REDIS_URL, group_commit=text)).group_commit is expected
    alone = open_store(with_options(REDIS_URL, group_commit="true"), group_commit=False)
    assert alone.group_commit is False


def test_unix_socket_url() -> None:
    # A short directory: a socket path must fit in 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="fk-"))
    private = RedisServer(directory, unix_socket=True)
    private.start()
    try:
        store = flowkit.connect(f"unix://{private.socket}?db=2&prefix=sock:")
        assert isinstance(store, RedisStore)
        execution = make_execution()
        store.create(execution)
        assert private.client(db=2).exists(f"sock:e:{execution.id}") == 1
        assert repr(store) == f"RedisStore('unix://{private.socket}', prefix='sock:')"
        store.close()
    finally:
        private.stop()
        shutil.rmtree(directory)


def test_rediss_url_speaks_tls(server: RedisServer) -> None:
    # The private server speaks plain text, so a TLS handshake cannot succeed.
    url = f"rediss://127.0.0.1:{server.port}/0?socket_connect_timeout=0.5&socket_timeout=0.5"
    with pytest.raises(StoreUnavailableError) as raised:
        RedisStore(url)
    assert str(raised.value).startswith(
        f"cannot connect to the store rediss://127.0.0.1:{server.port}/0: "
    )


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        (
            with_options(REDIS_URL, ttl="soon"),
            {},
            "store option 'ttl' must be a number of seconds, got 'soon'",
        ),
        (
            with_options(REDIS_URL, ttl=0),
            {},
            "store option 'ttl' must be more than 0 seconds, got '0'",
        ),
        (REDIS_URL, {"ttl": -1}, "store option 'ttl' must be more than 0 seconds, got -1"),
        (
            REDIS_URL,
            {"retry_timeout": -1},
            "store option 'retry_timeout' must be 0 or more seconds, got -1",
        ),
        (
            with_options(REDIS_URL, group_commit="maybe"),
            {},
            "store option 'group_commit' must be true or false, got 'maybe'",
        ),
        (with_options(REDIS_URL, bogus=1), {}, f"bad Redis option for {shown_url()}: "),
        ("http://127.0.0.1:6379/0", {}, "RedisStore needs a redis://, rediss:// or unix:// URL"),
        (42, {}, "RedisStore needs a redis://, rediss:// or unix:// URL or a redis.Redis client"),
    ],
    ids=[
        "ttl-text",
        "ttl-zero",
        "ttl-negative",
        "retry-negative",
        "group-commit",
        "unknown",
        "scheme",
        "type",
    ],
)
def test_bad_options_are_config_errors(url: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        RedisStore(url, **options)
    assert str(raised.value).startswith(message), str(raised.value)


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    for open_ in (RedisStore, flowkit.connect):
        with pytest.raises(ConfigError) as raised:
            open_(REDIS_URL)
        assert "pip install 'flowkit-workflows[redis]'" in str(raised.value)
        assert "'redis'" in str(raised.value)


def _client_names(name: str) -> int:
    probe = redis.Redis.from_url(REDIS_URL)
    try:
        return sum(1 for client in probe.client_list() if client.get("name") == name)
    finally:
        probe.close()


def test_a_ready_client_is_used_and_never_closed() -> None:
    name = f"flowkit-ready-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL, client_name=name, decode_responses=True)
    prefix = unique_prefix()
    try:
        store = RedisStore(client, prefix=prefix)
        assert store.client is client
        assert repr(store) == f"RedisStore({client_url()!r}, prefix={prefix!r})"
        execution = make_execution(ctx={"ü": [1, 2**70]})
        store.create(execution)
        record, entries = next_checkpoint(execution, 2)
        store.checkpoint(record, entries, execution.version)  # decode_responses=True works too
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == record.ctx
        assert len(_assert_consistent(store, execution.id)) == 2
        assert _ids(store.find(status="pending")) == [execution.id]
        store.close()
        with pytest.raises(FlowkitError, match="closed"):
            store.load(execution.id)
        assert client.ping()
        assert _client_names(name) >= 1
        with pytest.raises(ConfigError, match="cannot be applied to a ready Redis client"):
            RedisStore(client, prefix=prefix, socket_timeout=1)
    finally:
        drop_keys(client, prefix)
        client.close()


@pytest.mark.parametrize(
    "options",
    [{"single_connection_client": True}, {"protocol": 2}, {"decode_responses": True}],
    ids=["single-connection", "resp2", "decoded"],
)
def test_ready_clients_of_every_kind(options: dict[str, Any]) -> None:
    client = redis.Redis.from_url(REDIS_URL, **options)
    prefix = unique_prefix()
    try:
        store = RedisStore(client, prefix=prefix)
        execution = make_execution(status=Status.RUNNING, lease_expires_at=T0)
        store.create(execution)
        record, entries = next_checkpoint(execution, 3, ctx={"k": "ü"})
        store.checkpoint(record, entries, execution.version)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"k": "ü"}
        assert len(_assert_consistent(store, execution.id)) == 3
        assert _ids(store.stale(T0)) == [execution.id]
        with pytest.raises(ConflictError):
            store.checkpoint(record, entries, execution.version)
        assert store.delete(execution.id)
        store.close()
        assert client.ping()
    finally:
        drop_keys(client, prefix)
        client.close()


def test_close_closes_the_client_it_created() -> None:
    name = f"flowkit-own-{uuid.uuid4().hex[:8]}"
    store = scratch_store(with_options(REDIS_URL, client_name=name))
    store.create(make_execution())
    assert _client_names(name) >= 1
    store.close()
    store.close()
    _wait_for(lambda: _client_names(name) == 0, 10, "the store's connections to close")


@pytest.mark.parametrize(
    ("credentials", "shown"),
    [("", ""), (":secret@", ":***@"), ("ada:secret@", "ada:***@")],
    ids=["none", "password", "user-and-password"],
)
def test_unreachable_redis_is_one_clear_line(credentials: str, shown: str) -> None:
    port = free_port()
    url = f"redis://{credentials}127.0.0.1:{port}/0?password=secret2&prefix=x:"
    with pytest.raises(StoreUnavailableError) as raised:
        RedisStore(url)
    text = str(raised.value)
    assert text.startswith(f"cannot connect to the store redis://{shown}127.0.0.1:{port}/0: "), text
    assert "onnection refused" in text
    assert "\n" not in text
    assert "secret" not in text
    assert isinstance(raised.value, ConnectionError)
    result = CliRunner().invoke(cli, ["list", "--store", url])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {text}"]


def test_wrong_password_is_one_clear_line_without_retries(server: RedisServer) -> None:
    server.client().config_set("requirepass", "right")
    url = f"redis://:wrong@127.0.0.1:{server.port}/0?retry_timeout=30"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        RedisStore(url)
    assert time.monotonic() - started < 5
    text = str(raised.value)
    assert text == (
        f"cannot connect to the store redis://:***@127.0.0.1:{server.port}/0: "
        "invalid username-password pair or user is disabled."
    )
    store = RedisStore(f"redis://:right@127.0.0.1:{server.port}/0", prefix="auth:")
    store.create(make_execution())
    store.close()


def test_lost_connection_is_retried_then_one_clear_line(
    server: RedisServer, open_store: Callable[..., RedisStore]
) -> None:
    store = open_store(server.url, retry_timeout=0.3)
    execution = make_execution()
    store.create(execution)
    server.shutdown()
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        store.load(execution.id)
    assert time.monotonic() - started >= 0.3
    text = str(raised.value)
    assert text.startswith(f"lost the connection to the store {server.url}: "), text
    assert re.search(r" \(retried for \d+\.\d s\)$", text), text
    assert "\n" not in text
    with pytest.raises(StoreUnavailableError) as raised:
        store.checkpoint(*next_checkpoint(execution, 1), execution.version)
    assert str(raised.value).endswith(
        f"the checkpoint of execution {execution.id!r} was written whole or not at all "
        "(load it to see which)"
    )
    # Back again (AOF kept the record; the script cache is empty): the store carries on.
    server.start()
    assert store.load(execution.id) == execution
    store.checkpoint(*next_checkpoint(execution, 1), execution.version)
    assert len(_assert_consistent(store, execution.id)) == 1


def test_reads_wait_for_redis_to_come_back(
    server: RedisServer, open_store: Callable[..., RedisStore]
) -> None:
    store = open_store(server.url, retry_timeout=30)
    execution = make_execution()
    store.create(execution)
    server.shutdown()
    restart = threading.Timer(0.5, server.start)
    restart.start()
    try:
        assert store.load(execution.id) == execution  # retried with backoff until it is back
    finally:
        restart.join()


def test_calls_after_close_raise(store: RedisStore) -> None:
    store.close()
    store.close()
    with pytest.raises(FlowkitError, match="store is closed"):
        store.find()


# --- key layout ----------------------------------------------------------------------------------


def test_key_layout(store: RedisStore) -> None:
    client, p = store.client, store.prefix
    lease = T0 + timedelta(minutes=1)
    execution = make_execution(
        id="ex-1",
        status=Status.RUNNING,
        input={"amount": 5},
        ctx={"z": 1, "a": [2]},
        parent_id="ex-0",
        lease_owner="w1",
        lease_expires_at=lease,
        traceparent=TRACEPARENT,
    )
    store.create(execution)
    assert store_keys(client, p) == sorted(
        f"{p}{key}"
        for key in (
            "e:ex-1",
            "c:ex-1",
            "o:ex-1",
            "i:all",
            "i:wf:order",
            "i:st:running",
            "i:sw:running:order",
            "i:lease",
        )
    )
    assert client.zscore(f"{p}i:lease", "ex-1") == _micros(lease)
    wake = T0 + timedelta(days=2, microseconds=7)
    record, entries = next_checkpoint(
        execution,
        2,
        status=Status.HALTED,
        wake_at=wake,
        lease_owner=None,
        lease_expires_at=None,
        ctx={"z": 1, "a": [3], "m": None},
    )
    store.checkpoint(record, entries, execution.version, changed=("a", "m"))
    assert store_keys(client, p) == sorted(
        f"{p}{key}"
        for key in (
            "e:ex-1",
            "c:ex-1",
            "o:ex-1",
            "l:ex-1",
            "i:all",
            "i:wf:order",
            "i:st:halted",
            "i:sw:halted:order",
            "i:wake",
        )
    )
    stored = {_text(k): _text(v) for k, v in client.hgetall(f"{p}e:ex-1").items()}
    assert set(stored) == {"f", "in", "wf", "b", "v", "s", "st", "w", "r"}
    assert json.loads(stored["f"]) == {
        "id": "ex-1",
        "workflow_id": "order",
        "parent_id": "ex-0",
        "created_at": T0.isoformat(),
        "traceparent": TRACEPARENT,
    }
    assert json.loads(stored["in"]) == {"amount": 5}
    assert (stored["wf"], stored["b"], stored["v"], stored["s"], stored["st"]) == (
        "order",
        "0",
        "2",
        "2",
        "halted",
    )
    state = json.loads(stored["r"])
    assert state["status"] == "halted"
    assert state["wake_at"] == wake.isoformat()
    assert not {"id", "workflow_id", "parent_id", "created_at", "input", "ctx"} & set(state)
    # ctx: one hash field per value (JSON text), and the names in order.
    assert client.hgetall(f"{p}c:ex-1") == {b"z": b"1", b"a": b"[3]", b"m": b"null"}
    assert client.lrange(f"{p}o:ex-1", 0, -1) == [b"z", b"a", b"m"]
    log = [json.loads(text) for text in client.lrange(f"{p}l:ex-1", 0, -1)]
    assert [entry["seq"] for entry in log] == [1, 2]
    assert "execution_id" not in log[0]
    for index in ("i:all", "i:wf:order", "i:st:halted", "i:sw:halted:order"):
        assert client.zscore(f"{p}{index}", "ex-1") == _micros(record.updated_at)
    assert client.zscore(f"{p}i:wake", "ex-1") == _micros(wake)
    # Delete removes the record, the entries, the ctx keys and every index membership.
    assert store.delete("ex-1") is True
    assert store_keys(client, p) == []


def test_records_written_before_traceparent_load_without_one(store: RedisStore) -> None:
    execution = make_execution(traceparent=TRACEPARENT)
    store.create(execution)
    key = f"{store.prefix}e:{execution.id}"
    fixed = json.loads(store.client.hget(key, "f"))
    del fixed["traceparent"]  # as the release before traceparent wrote it
    store.client.hset(key, "f", json.dumps(fixed))
    loaded = store.load(execution.id)
    assert loaded == attrs.evolve(execution, traceparent=None)
    record, entries = next_checkpoint(loaded)
    store.checkpoint(record, entries, loaded.version)  # a checkpoint never writes it
    assert json.loads(store.client.hget(key, "f")) == fixed


def test_a_checkpoint_does_not_send_what_create_wrote(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="fixed:")
    try:
        big = {"rows": list(range(5000))}
        execution = make_execution(input=big)
        store.create(execution)
        record, entries = next_checkpoint(execution, 1, ctx={"small": True})
        commands = monitor(server, lambda: store.checkpoint(record, entries, execution.version))
        (sent,) = [command for kind, command in commands if kind != "lua"]
        assert sent.startswith("EVALSHA ")
        assert len(sent) < 2000
        assert "4999" not in sent
        written = [command.split(" ", 3)[:3] for kind, command in commands if kind == "lua"]
        assert ["HSET", f"fixed:e:{execution.id}", "v"] in written  # v, s, st, w, r only
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.input == big
    finally:
        store.close()


def test_ties_are_ordered_by_id_in_code_point_order(store: RedisStore) -> None:
    ids = ["ex-a", "ex-A", "ex-a ", "ex-ä", "ex-\U0001f600", "ex-z", "ex-", "ex-\u00ff"]
    for execution_id in ids:
        store.create(make_execution(id=execution_id, status=Status.HALTED, wake_at=T0))
    for execution_id in ids:
        store.create(
            make_execution(id=f"run-{execution_id}", status=Status.RUNNING, lease_expires_at=T0)
        )
    halted = store.find(status="halted")
    assert _ids(halted) == sorted(ids, reverse=True)
    assert _ids(store.due(T0)) == sorted(ids)
    assert _ids(store.stale(T0)) == sorted(f"run-{i}" for i in ids)
    assert _ids(store.find(limit=100)) == sorted([*ids, *(f"run-{i}" for i in ids)], reverse=True)


def test_scores_are_exact_microseconds(store: RedisStore) -> None:
    base = datetime(2200, 1, 1, tzinfo=UTC)  # far from the epoch: still exact
    for n in range(5):
        store.create(make_execution(id=f"ex-{n}", updated_at=base + timedelta(microseconds=n)))
    assert _ids(store.find()) == ["ex-4", "ex-3", "ex-2", "ex-1", "ex-0"]
    store.create(make_execution(id="due", status=Status.HALTED, wake_at=base))
    assert store.due(base - timedelta(microseconds=1)) == []
    assert _ids(store.due(base)) == ["due"]


def test_ids_and_workflow_ids_that_look_like_key_names(store: RedisStore) -> None:
    rows = [
        ("a:1", "w", Status.HALTED),
        ("*", "w:halted", Status.RUNNING),
        ("e:x", "halted:w", Status.HALTED),
        ("nul\x00id", "", Status.COMPLETED),
        ("i:all", "i:all", Status.PENDING),
    ]
    for execution_id, workflow_id, status in rows:
        execution = make_execution(id=execution_id, workflow_id=workflow_id, status=status)
        store.create(execution)
        store.checkpoint(*next_checkpoint(execution, 1), execution.version)
    for execution_id, workflow_id, status in rows:
        assert _ids(store.find(workflow_id=workflow_id)) == [execution_id]
        assert _ids(store.find(workflow_id=workflow_id, status=status)) == [execution_id]
        assert [e.id for e in store.entries(execution_id)] == [f"{execution_id}:1"]
    assert _ids(store.find(status="halted")) == ["e:x", "a:1"]
    assert _ids(store.find(workflow_id="w", status="running")) == []
    for execution_id, _, _ in rows:
        assert store.delete(execution_id)
    assert store_keys(store.client, store.prefix) == []


def test_refused_writes_change_no_key(store: RedisStore) -> None:
    client, p = store.client, store.prefix
    execution = make_execution(status=Status.RUNNING, lease_expires_at=T0)
    store.create(execution)
    current, entries = next_checkpoint(execution, 2)
    store.checkpoint(current, entries, execution.version)
    before = dump_keys(client, p)
    stale, more = next_checkpoint(execution, 2, status=Status.HALTED, wake_at=T0)
    with pytest.raises(ConflictError, match="expected version 1, but the store holds version 2"):
        store.checkpoint(stale, more, execution.version)
    gap = attrs.evolve(current, version=current.version + 1, seq=current.seq + 2)
    with pytest.raises(ConflictError, match="entries must continue at seq 3, got 4"):
        store.checkpoint(gap, [make_entry(execution, 4)], current.version)
    with pytest.raises(ConflictError, match="already exists"):
        store.create(attrs.evolve(execution, status=Status.COMPLETED))
    ghost = make_execution(id="ghost")
    with pytest.raises(ConflictError, match="does not exist"):
        store.checkpoint(*next_checkpoint(ghost, 1), ghost.version)
    assert dump_keys(client, p) == before


def test_a_full_redis_refuses_the_checkpoint_whole(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="oom:")
    client = server.client()
    try:
        execution = make_execution(status=Status.RUNNING, lease_expires_at=T0)
        store.create(execution)
        before = dump_keys(client, "oom:")
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        record, entries = next_checkpoint(execution, 2, status=Status.HALTED)
        with pytest.raises(StoreError) as raised:
            store.checkpoint(record, entries, execution.version)
        assert not isinstance(raised.value, StoreUnavailableError)
        text = str(raised.value)
        assert text.startswith(
            f"the store {server.url} failed: command not allowed when used memory > 'maxmemory'"
        ), text
        assert "\n" not in text
        assert store.load(execution.id) == execution  # reads still work
        client.config_set("maxmemory", "0")
        assert dump_keys(client, "oom:") == before  # nothing was written
        store.checkpoint(record, entries, execution.version)
        assert len(_assert_consistent(store, execution.id)) == 2
    finally:
        store.close()
        client.close()


def test_many_entries_in_one_checkpoint(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="many:")
    try:
        execution = make_execution(seq=10)  # the log starts after seq 10
        store.create(execution)
        record, entries = next_checkpoint(execution, 2500)
        store.checkpoint(record, entries, execution.version)
        assert len(store.entries(execution.id)) == 2500
        stale, more = next_checkpoint(execution, 2500)
        with pytest.raises(ConflictError):
            store.checkpoint(stale, more, execution.version)

        got: list[flowkit.Entry] = []
        commands = monitor(server, lambda: got.extend(store.entries(execution.id, after=2500)))
        assert [e.seq for e in got] == list(range(2501, 2511))
        # Only the tail is read: the list index of seq 2501 is 2490.
        assert ("lua", f"LRANGE many:l:{execution.id} 2490 -1") in commands
    finally:
        store.close()


# --- scripts -------------------------------------------------------------------------------------


def test_scripts_are_registered_once_and_reloaded_when_flushed(server: RedisServer) -> None:
    client = server.client()
    store = RedisStore(server.url, prefix="s:")
    try:
        execution = make_execution()
        store.create(execution)
        client.config_resetstat()
        current = execution
        for _ in range(3):
            record, entries = next_checkpoint(current, 1)
            store.checkpoint(record, entries, current.version)
            current = record
        stats = command_stats(client)
        assert stats["evalsha"] == 3
        assert "eval" not in stats
        assert "script|load" not in stats
        client.script_flush()  # as after a restart
        client.config_resetstat()
        for _ in range(2):
            record, entries = next_checkpoint(current, 1)
            store.checkpoint(record, entries, current.version)
            current = record
        stats = command_stats(client)
        # The first EVALSHA answered NOSCRIPT; EVAL sent the text (and cached it) once.
        assert stats["evalsha"] == 2
        assert stats["eval"] == 1
        assert len(_assert_consistent(store, execution.id)) == 5
    finally:
        store.close()
        client.close()


def test_a_write_whose_reply_was_lost_is_not_applied_twice(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection dies after Redis ran the script, before the reply arrives.
    lose = {"replies": 0}
    read_response = redis.connection.Connection.read_response

    def lossy(self: Any, *args: Any, **options: Any) -> Any:
        reply = read_response(self, *args, **options)
        if lose["replies"] and reply == 1:  # a write script's "written"
            lose["replies"] -= 1
            self.disconnect()
            raise redis.ConnectionError("Connection closed by server.")
        return reply

    monkeypatch.setattr(redis.connection.Connection, "read_response", lossy)
    execution = make_execution()
    lose["replies"] = 1
    store.create(execution)  # landed, reply lost, sent again: no "already exists"
    assert lose["replies"] == 0
    record, entries = next_checkpoint(execution, 2)
    lose["replies"] = 2
    store.checkpoint(record, entries, execution.version)  # sent three times, applied once
    assert lose["replies"] == 0
    loaded = store.load(execution.id)
    assert loaded is not None
    assert loaded.version == 2
    assert len(_assert_consistent(store, execution.id)) == 2
    # Another writer's checkpoint at the same version still conflicts.
    other, more = next_checkpoint(execution, 2, ctx={"other": True})
    with pytest.raises(ConflictError):
        store.checkpoint(other, more, execution.version)


# --- the indexes answer the queries --------------------------------------------------------------


def _populate(store: RedisStore, count: int) -> datetime:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    for n in range(count):
        status, wake, lease = Status.COMPLETED, None, None
        if n % 10 == 1:
            status, wake = Status.HALTED, now - timedelta(minutes=n % 7)
        elif n % 10 == 2:
            status, lease = Status.RUNNING, now - timedelta(minutes=n % 5)
        store.create(
            make_execution(
                id=f"ex-{n:05d}",
                workflow_id=f"wf-{n % 60}",
                status=status,
                wake_at=wake,
                lease_expires_at=lease,
                updated_at=now - timedelta(seconds=n),
                ctx={"n": n},
            )
        )
    return now


@pytest.mark.timeout(300)
def test_queries_use_the_indexes(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="q:")
    client = server.client()
    try:
        now = _populate(store, 3000)
        queries: dict[str, tuple[Callable[[], list[flowkit.Execution]], str, int]] = {
            "find by status": (
                lambda: store.find(status="halted", limit=100),
                "ZREVRANGE q:i:st:halted 0 99",
                100,
            ),
            "find by workflow": (
                lambda: store.find(workflow_id="wf-7"),
                "ZREVRANGE q:i:wf:wf-7 0 99",
                50,
            ),
            "find by both": (
                lambda: store.find(workflow_id="wf-1", status="halted"),
                "ZREVRANGE q:i:sw:halted:wf-1 0 99",
                50,
            ),
            "find all": (lambda: store.find(limit=10), "ZREVRANGE q:i:all 0 9", 10),
            "due": (
                lambda: store.due(now),
                f"ZRANGEBYSCORE q:i:wake -inf {_micros(now)} LIMIT 0 100",
                100,
            ),
            "stale": (
                lambda: store.stale(now, limit=5),
                f"ZRANGEBYSCORE q:i:lease -inf {_micros(now)} LIMIT 0 5",
                5,
            ),
        }
        for name, (query, command, count) in queries.items():
            found: list[flowkit.Execution] = []
            client.config_resetstat()
            commands = monitor(server, lambda q=query, f=found: f.extend(q()))  # type: ignore[misc]
            assert len(found) == count, name
            stats = command_stats(client)
            assert not {"keys", "scan", "zscan", "sscan", "hscan", "smembers"} & set(stats), name
            assert ("lua", command) in commands, f"{name}: {commands[:3]}"
            # One script, one index read and per record: its hash, its ctx order, its
            # ctx values. Nothing else.
            assert [kind for kind, _ in commands].count("tcp") == 1, name
            lua = [c.split(" ", 1)[0] for kind, c in commands if kind == "lua"]
            assert lua == [command.split(" ", 1)[0]] + ["HMGET", "LRANGE", "HMGET"] * count, name
        assert all(e.ctx == {"n": int(e.id[3:])} for e in store.find(limit=1000))
        halted = store.find(status="halted", limit=100)
        assert all(e.status is Status.HALTED for e in halted)
        assert [e.updated_at for e in halted] == sorted(
            (e.updated_at for e in halted), reverse=True
        )
    finally:
        store.close()
        client.close()


# --- processes -----------------------------------------------------------------------------------


def _env(work: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["FLOWKIT_TEST_DIR"] = str(work)
    env.update(extra)
    return env


def _helper(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backends.redis_helpers", *args],
        cwd=ROOT,
        env=_env(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(240)
def test_two_processes_checkpointing_one_execution_one_wins(store: RedisStore) -> None:
    url = with_options(REDIS_URL, prefix=store.prefix)
    execution = make_execution()
    store.create(execution)
    expected_entries = 0
    for round_number in range(3):
        start_at = str(time.time() + 2.0)  # after both interpreters have started
        tags = [f"r{round_number}-a", f"r{round_number}-b"]
        version = str(execution.version + round_number)
        processes = [
            _helper("checkpoint", url, execution.id, version, start_at, tag) for tag in tags
        ]
        outcomes = {r["tag"]: r["outcome"] for r in (_finish(p) for p in processes)}
        assert sorted(outcomes.values()) == ["conflict", "ok"], outcomes
        (winner,) = [tag for tag, outcome in outcomes.items() if outcome == "ok"]
        expected_entries += 2
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"writer": winner}
        assert loaded.version == execution.version + round_number + 1
        entries = _assert_consistent(store, execution.id)
        assert len(entries) == expected_entries
        assert [e.output for e in entries[-2:]] == [{"writer": winner}] * 2


@pytest.mark.timeout(180)
def test_halted_in_one_process_resumed_in_another(store: RedisStore) -> None:
    url = with_options(REDIS_URL, prefix=store.prefix)
    example = str(ROOT / "examples" / "expense_approval.yml")

    def flowkit_cli(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [FLOWKIT, *args, "--store", url, "--json"],
            cwd=ROOT,
            env=_env(ROOT),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    halted = flowkit_cli("run", example, "-i", "amount=250", "-i", "employee=ada")
    assert halted["status"] == "halted"
    execution_id = halted["execution_id"]
    record = store.load(execution_id)
    assert record is not None
    assert record.status is Status.HALTED
    assert _ids(store.find(status="halted")) == [execution_id]
    assert store.client.pttl(f"{store.prefix}e:{execution_id}") == -1  # halted never expires

    done = flowkit_cli(
        "resume",
        execution_id,
        "--approve",
        "--by",
        "alice",
        "--response",
        '{"comment": "fine"}',
        "--workflow",
        example,
    )
    assert done["status"] == "completed"
    assert done["output"] == {
        "status": "approved",
        "employee": "ada",
        "amount": 250,
        "comment": "fine",
    }
    final = store.load(execution_id)
    assert final is not None
    assert final.status is Status.COMPLETED
    actions = [e.action.value for e in _assert_consistent(store, execution_id)]
    assert "halted" in actions
    assert "resumed" in actions
    assert store.find(status="halted") == []
    assert _ids(store.find(status="completed")) == [execution_id]


# --- Redis restarted, connections killed ---------------------------------------------------------


class _Gate:
    """A service whose ``pause`` method waits until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        self.calls: list[int] = []

    def services(self) -> flowkit.ServiceRegistry:
        registry = flowkit.ServiceRegistry()
        registry.register("Work", {"work": self.work, "pause": self.pause})
        return registry

    def work(self, i: int) -> int:
        self.calls.append(i)
        return i

    def pause(self, i: int) -> int:
        self.calls.append(i)
        self.entered.set()
        assert self.open.wait(60), "the test never opened the gate"
        return i


def _run_in_thread(
    engine: flowkit.Engine, wf: flowkit.WorkflowDef, execution_id: str
) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = engine.run(wf, execution_id=execution_id)
        except BaseException as exc:  # reported by the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.timeout(120)
def test_redis_restarted_during_a_run_the_run_continues(server: RedisServer) -> None:
    gate = _Gate()
    store = RedisStore(server.url, prefix="restart:", retry_timeout=30)
    engine = flowkit.Engine(store=store, services=gate.services())
    wf = _chain(4, pause_at=1)
    thread, outcome = _run_in_thread(engine, wf, "ex-restart")
    try:
        assert gate.entered.wait(30)
        server.shutdown()  # SHUTDOWN NOSAVE: only the AOF keeps what was written
        server.start()
        gate.open.set()
        thread.join(60)
        assert not thread.is_alive()
    finally:
        gate.open.set()
        engine.close()
    assert "error" not in outcome, outcome
    result = outcome["result"]
    assert result.completed, result.error
    steps = [e.step_id for e in _assert_consistent(store, "ex-restart")]
    assert steps == ["start", "s0", "s1", "s2", "s3"]
    assert gate.calls == [0, 1, 2, 3]
    # The restarted Redis had no scripts: the store sent each script's text once.
    assert command_stats(server.client())["eval"] >= 1
    store.close()


@pytest.mark.timeout(120)
def test_redis_down_during_a_run_fails_clearly_and_is_recovered(server: RedisServer) -> None:
    gate = _Gate()
    store = RedisStore(server.url, prefix="down:", retry_timeout=0.3)
    engine = flowkit.Engine(store=store, services=gate.services(), lease_seconds=1)
    wf = _chain(4, pause_at=1)
    thread, outcome = _run_in_thread(engine, wf, "ex-down")
    try:
        assert gate.entered.wait(30)
        server.shutdown()
        gate.open.set()  # the checkpoint after s1 finds Redis gone
        thread.join(60)
        assert not thread.is_alive()
    finally:
        gate.open.set()
        engine.close()
    error = outcome.get("error")
    assert isinstance(error, StoreUnavailableError), outcome
    text = str(error)
    assert text.startswith(f"lost the connection to the store {server.url}: "), text
    assert "\n" not in text

    server.start()
    # Nothing half-written: the record is at its last checkpoint, its log agrees.
    record = store.load("ex-down")
    assert record is not None
    assert record.status is Status.RUNNING
    assert record.current_step == "s1"
    assert [e.step_id for e in _assert_consistent(store, "ex-down")] == ["start", "s0"]

    # Its lease runs out; another engine continues it from the last checkpoint.
    again = flowkit.Engine(store=store, services=gate.services(), lease_seconds=1)
    _wait_for(lambda: "ex-down" in _ids(store.stale(datetime.now(UTC))), 30, "the lease to expire")
    (result,) = again.recover()
    again.close()
    assert result.status is Status.COMPLETED
    steps = [e.step_id for e in _assert_consistent(store, "ex-down")]
    assert steps == ["start", "s0", "s1", "s2", "s3"]
    assert gate.calls == [0, 1, 1, 2, 3]  # the step in flight ran again
    store.close()


@pytest.mark.timeout(180)
def test_connections_killed_during_a_run_leave_nothing_half_written(server: RedisServer) -> None:
    store = RedisStore(server.url, prefix="kill:", retry_timeout=10)
    killer_client = server.client()
    stop = threading.Event()
    kills = {"count": 0}

    def killer() -> None:
        while not stop.wait(0.01):
            kills["count"] += killer_client.client_kill_filter(_type="normal", skipme=True)

    gate = _Gate()
    gate.open.set()
    engine = flowkit.Engine(store=store, services=gate.services())
    wf = _chain(300)
    thread = threading.Thread(target=killer)
    thread.start()
    results = []
    try:
        for n in range(3):
            results.append(engine.run(wf, execution_id=f"ex-kill-{n}"))
    finally:
        stop.set()
        thread.join()
        engine.close()
        killer_client.close()
    assert kills["count"] >= 3
    for result in results:
        assert result.completed, result.error
        entries = _assert_consistent(store, result.execution_id)
        assert len(entries) == 301  # start + 300 steps, none twice
    store.close()


# --- TTL -----------------------------------------------------------------------------------------


def _finish_execution(store: RedisStore, execution_id: str, status: Status) -> flowkit.Execution:
    execution = make_execution(
        id=execution_id, status=Status.RUNNING, lease_expires_at=T0, ctx={"id": execution_id}
    )
    store.create(execution)
    record, entries = next_checkpoint(
        execution, 2, status=status, lease_expires_at=None, ctx={"id": execution_id, "end": 1}
    )
    store.checkpoint(record, entries, execution.version, changed=("end",))
    return record


#: An execution's keys: record, entries, ctx values, ctx order.
_KINDS = ("e", "l", "c", "o")


def _expired(client: Any, prefix: str, *ids: str) -> bool:
    return all(client.exists(*(f"{prefix}{kind}:{i}" for kind in _KINDS)) == 0 for i in ids)


@pytest.mark.timeout(120)
def test_finished_executions_expire_and_leave_no_index_entries(server: RedisServer) -> None:
    client = server.client()
    store = RedisStore(f"{server.url}?ttl=2", prefix="ttl:")
    try:
        assert store.ttl == timedelta(seconds=2)
        live = {
            "running": make_execution(
                id="running", status=Status.RUNNING, lease_expires_at=T0, ctx={"a": 1}
            ),
            "halted": make_execution(id="halted", status=Status.HALTED, wake_at=T0, ctx={"a": 1}),
            "pending": make_execution(id="pending", ctx={"a": 1}),
        }
        for execution in live.values():
            store.create(execution)
            store.checkpoint(*next_checkpoint(execution, 1), execution.version)
        _finish_execution(store, "done", Status.COMPLETED)
        _finish_execution(store, "broken", Status.FAILED)
        _finish_execution(store, "stopped", Status.CANCELLED)
        # A finished execution that is written again as running stops expiring.
        revived = _finish_execution(store, "revived", Status.COMPLETED)
        for kind in _KINDS:
            assert 0 < client.pttl(f"ttl:{kind}:revived") <= 2000
        back, entries = next_checkpoint(revived, 1, status=Status.RUNNING)
        store.checkpoint(back, entries, revived.version, changed=())

        for name in ("running", "halted", "pending", "revived"):
            for kind in _KINDS:
                assert client.pttl(f"ttl:{kind}:{name}") == -1, (kind, name)
        for name in ("done", "broken", "stopped"):
            for kind in _KINDS:  # the record, its entries and its ctx keys expire together
                assert 0 < client.pttl(f"ttl:{kind}:{name}") <= 2000, (kind, name)

        _wait_for(
            lambda: _expired(client, "ttl:", "done", "broken", "stopped"), 30, "the TTL to pass"
        )
        assert store.load("done") is None
        assert store.entries("done") == []
        # Until something cleans up, their ids are still in the indexes…
        assert client.zscore("ttl:i:st:completed", "done") is not None
        # …a query skips them and removes them from every index.
        assert sorted(_ids(store.find())) == ["halted", "pending", "revived", "running"]
        assert store.find(status="completed") == []
        assert store.find(status="cancelled") == []
        assert store_keys(client, "ttl:") == sorted(
            f"ttl:{key}"
            for key in (
                *(f"{kind}:{name}" for kind in _KINDS for name in (*live, "revived")),
                "i:all",
                "i:wf:order",
                "i:st:running",
                "i:st:halted",
                "i:st:pending",
                "i:sw:running:order",
                "i:sw:halted:order",
                "i:sw:pending:order",
                "i:wake",
                "i:lease",
            )
        )
        assert client.zcard("ttl:i:all") == 4
    finally:
        drop_keys(client, "ttl:")
        store.close()
        client.close()


@pytest.mark.timeout(120)
def test_finishing_an_execution_cleans_up_expired_ones(server: RedisServer) -> None:
    client = server.client()
    store = RedisStore(server.url, prefix="sweep:", ttl=0.3)
    try:
        _finish_execution(store, "first", Status.COMPLETED)
        _wait_for(lambda: _expired(client, "sweep:", "first"), 30, "the TTL to pass")
        assert client.zscore("sweep:i:all", "first") is not None  # nobody cleaned up yet
        _finish_execution(store, "second", Status.FAILED)  # its script cleans up "first"
        assert client.zscore("sweep:i:all", "first") is None
        assert client.zcard("sweep:ttl") == 1
        assert client.hkeys("sweep:ttl:meta") == [b"second"]
        # An expired id can be created again, with a fresh log.
        _wait_for(lambda: _expired(client, "sweep:", "second"), 30, "the TTL to pass")
        again = make_execution(id="second", workflow_id="other")
        store.create(again)
        assert store.entries("second") == []
        assert store.find(workflow_id="order") == []
        assert _ids(store.find(workflow_id="other")) == ["second"]
        assert store.find(status="failed") == []
        assert client.pttl("sweep:e:second") == -1
        assert store.delete("second")
        assert store_keys(client, "sweep:") == []
    finally:
        drop_keys(client, "sweep:")
        store.close()
        client.close()


@pytest.mark.timeout(120)
def test_a_workflow_expires_only_once_it_completes(server: RedisServer) -> None:
    client = server.client()
    store = RedisStore(server.url, prefix="wf:", ttl=3600)
    engine = flowkit.Engine(store=store)
    wf = flowkit.load(
        {
            "id": "ttl_approval",
            "steps": [
                {"id": "start", "type": "start", "next": "ask"},
                {"id": "ask", "type": "approval", "prompt": "ok?", "next": "done"},
                {"id": "done", "type": "end"},
            ],
        }
    )
    try:
        halted = engine.run(wf)
        assert halted.halted
        for kind in ("e", "l"):
            assert client.pttl(f"wf:{kind}:{halted.execution_id}") == -1, kind
        done = engine.resume(halted.execution_id, approved=True, response={"note": "fine"})
        assert done.completed
        for kind in _KINDS:
            assert 3_590_000 < client.pttl(f"wf:{kind}:{done.execution_id}") <= 3_600_000, kind
    finally:
        engine.close()
        drop_keys(client, "wf:")
        store.close()
        client.close()

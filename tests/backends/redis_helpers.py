"""Helpers for the Redis store tests: the server URL, scratch stores, private servers, subprocesses.

Every store a test opens on the shared Redis gets its own key prefix, and its
keys are deleted when it closes, so concurrent test runs never collide (the
shared server is never flushed). Tests that restart Redis or watch every
command it runs start a private ``redis-server`` on another loopback port.

Run as a module (``python -m tests.backends.redis_helpers COMMAND …``) it is
the other process of the multi-process tests.

redis-py is imported only by the helpers that talk to a server, so test modules
of other backends can import :data:`REDIS_URL` without the ``redis`` extra.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import attrs

import flowkit
from flowkit.backends.redis import RedisStore
from flowkit.records import CHECKPOINT_FIELDS, DOCUMENT, Execution, encode_json
from flowkit.testing.conformance import next_checkpoint

if TYPE_CHECKING:
    import redis


#: The shared server the tests use (loopback only); override with this variable.
REDIS_URL = os.environ.get("FLOWKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def shown_url(url: str = REDIS_URL) -> str:
    """``url`` as the store shows it in reprs and errors: no query, password masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user, colon, _ = credentials.partition(":")
        netloc = f"{user}:***@{host}" if colon else netloc
    return f"{parts.scheme}://{netloc}{parts.path}"


def client_url(url: str = REDIS_URL) -> str:
    """How the store describes a ready client made from ``url``: host, port and db only."""
    parts = urlsplit(url)
    db = dict(parse_qsl(parts.query)).get("db") or parts.path.strip("/") or "0"  # as redis-py
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}/{db}"


def unique_prefix() -> str:
    """A key prefix no other test run uses (hex only: no glob characters)."""
    return f"fkt{uuid.uuid4().hex[:12]}:"


def with_options(url: str, **query: Any) -> str:
    """``url`` with query options added."""
    options = "&".join(f"{key}={value}" for key, value in query.items())
    return f"{url}{'&' if '?' in url else '?'}{options}"


def store_keys(client: Any, prefix: str) -> list[str]:
    """Every key under a prefix (SCAN: for tests only; the store never scans)."""
    keys = client.scan_iter(match=f"{prefix}*", count=1000)
    return sorted(key.decode() if isinstance(key, bytes) else key for key in keys)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def dump_keys(client: Any, prefix: str) -> dict[str, Any]:
    """Everything stored under a prefix, to compare before and after."""
    found: dict[str, Any] = {}
    for key in store_keys(client, prefix):
        kind = _text(client.type(key))
        if kind == "hash":
            found[key] = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        elif kind == "list":
            found[key] = [_text(v) for v in client.lrange(key, 0, -1)]
        elif kind == "zset":
            found[key] = [(_text(m), s) for m, s in client.zrange(key, 0, -1, withscores=True)]
        else:  # pragma: no cover - the store keeps no other type
            found[key] = kind
    return found


def drop_keys(client: Any, prefix: str) -> None:
    """Delete every key under a prefix."""
    keys = store_keys(client, prefix)
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


class ScratchRedisStore(RedisStore):
    """A Redis store whose keys are deleted when it closes."""

    def close(self) -> None:
        if not getattr(self, "_dropped", False) and not self._closed:
            self._dropped = True
            drop_keys(self.client, self.prefix)
        super().close()


def scratch_store(url: str = REDIS_URL, **options: Any) -> ScratchRedisStore:
    """A store on ``url`` with a fresh key prefix, emptied when it closes."""
    options.setdefault("prefix", unique_prefix())
    return ScratchRedisStore(url, **options)


def create_many(store: RedisStore, executions: Iterable[Execution], *, batch: int = 1000) -> None:
    """Create executions fast: the store's create scripts, pipelined ``batch`` at a time."""
    pending: list[list[bytes]] = []
    for execution in executions:
        pending.append(store._create_command(execution))
        if len(pending) == batch:
            assert store._execute_many(pending) == [1] * len(pending)
            pending = []
    if pending:
        assert store._execute_many(pending) == [1] * len(pending)


#: How releases before ctx values had keys of their own wrote the record field ``d``:
#: every field a checkpoint rewrites, ctx included, as one JSON object.
_released_state = DOCUMENT.document(Execution, CHECKPOINT_FIELDS)


def as_released(store: RedisStore, execution_id: str) -> None:
    """Put a stored execution in the shape the release before per-value ctx wrote.

    That release kept ctx inside the record field ``d`` (in place of ``r``) and
    had no ``c:``/``o:`` keys; the other fields, the entries and the indexes
    are the same in both shapes.
    """
    execution = store.load(execution_id)
    assert execution is not None
    client, key = store.client, f"{store.prefix}e:{execution_id}"
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, "d", encode_json(_released_state(execution)))
        pipe.hdel(key, "r")
        pipe.delete(f"{store.prefix}c:{execution_id}", f"{store.prefix}o:{execution_id}")
        pipe.execute()


# --- private servers ----------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class RedisServer:
    """A private ``redis-server`` on a loopback port, its files in ``directory``.

    AOF is on with ``appendfsync always``: what a checkpoint wrote survives a
    restart, as the documentation requires of production servers.
    """

    def __init__(self, directory: Path, *, unix_socket: bool = False) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.socket = directory / "redis.sock" if unix_socket else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: Any) -> redis.Redis:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def start(self) -> None:
        import redis

        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is not on PATH"
        args = [
            executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if self.socket is not None:
            args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        probe = self.client(socket_timeout=1)
        try:
            while True:
                try:
                    if probe.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise
                time.sleep(0.02)
        finally:
            probe.close()

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``, and wait for the process to exit."""
        import redis

        assert self.process is not None
        probe = self.client(socket_timeout=5)
        try:
            probe.shutdown(nosave=True)
        except redis.ConnectionError:
            pass
        finally:
            probe.close()
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def monitor(server: RedisServer, action: Callable[[], object]) -> list[tuple[str, str]]:
    """The commands Redis ran while ``action`` ran, as (client type, command) pairs.

    The client type is ``lua`` for commands a script ran.
    """
    client = server.client(decode_responses=True)
    seen: list[tuple[str, str]] = []
    ready = threading.Event()
    marker = f"flowkit-monitor-{uuid.uuid4().hex}"

    def listen() -> None:
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]  # redis-py
            ready.set()
            for event in monitor.listen():
                if event["command"] == f"ECHO {marker}":
                    return
                seen.append((event.get("client_type", ""), event["command"]))

    thread = threading.Thread(target=listen)
    thread.start()
    assert ready.wait(10)
    try:
        action()
    finally:
        server.client().echo(marker)
        thread.join(30)
        client.close()
    # redis-py's own connection set-up is not the store's doing.
    return [
        (kind, command) for kind, command in seen if not command.startswith(("HELLO", "CLIENT"))
    ]


def command_stats(client: Any) -> dict[str, int]:
    """How many times Redis ran each command since the last ``CONFIG RESETSTAT``."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


# --- workflows and services for the subprocess tests -------------------------------------------


def _checkpoint(url: str, execution_id: str, version: str, start_at: str, tag: str) -> None:
    """At a given time, write the checkpoint that follows ``version``; print the outcome.

    A process that starts late and finds a newer version still writes on top of
    ``version``, as a slow writer would, so exactly one writer can win however
    the processes are scheduled.
    """
    store = RedisStore(url)
    current = store.load(execution_id)
    assert current is not None
    if current.version != int(version):
        current = attrs.evolve(current, version=int(version), seq=current.seq - 2)
    record, entries = next_checkpoint(current, 2, ctx={"writer": tag})
    entries = [attrs.evolve(entry, output={"writer": tag}) for entry in entries]
    while time.time() < float(start_at):
        time.sleep(0.001)
    try:
        store.checkpoint(record, entries, current.version)
    except flowkit.ConflictError:
        outcome = "conflict"
    else:
        outcome = "ok"
    print(json.dumps({"tag": tag, "outcome": outcome}))
    store.close()


COMMANDS = {"checkpoint": _checkpoint}


if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])

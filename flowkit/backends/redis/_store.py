"""The Redis store (SPEC §10): a hash per execution, its ctx values apart, sorted-set indexes.

Every write is one Lua script (see :mod:`._scripts`), so a checkpoint — the
version check, the record, the ctx values it changed, the entries and every
index change — happens whole or not at all. Queries read the indexes only.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs

from ...adapters import optional_import, scheme_of
from ...errors import (
    ConfigError,
    ConflictError,
    FlowkitError,
    StoreError,
    StoreUnavailableError,
)
from ...records import (
    CHECKPOINT_FIELDS,
    DOCUMENT,
    ENTRY_FIELDS,
    FIXED_FIELDS,
    Entry,
    Execution,
    Schedule,
    Signal,
    Status,
    decode_json,
    encode_json,
)
from ..batching import GroupCommit
from ..checks import (
    check_after,
    check_checkpoint,
    check_limit,
    check_prunable,
    check_status,
    signal_refused,
    utc,
    utc_entry,
    utc_execution,
    utc_schedule,
    utc_signal,
)
from ._scripts import (
    CHECKPOINT,
    CLEAN,
    CREATE,
    DELETE,
    DELETE_SCHEDULE,
    ENTRIES,
    LOAD,
    NOT_PENDING,
    OLD_SHAPE,
    PRUNE,
    QUERY,
    SAVE_SCHEDULE,
    SCHEDULE_FIRED,
    SCHEDULES,
    SCRIPTS,
    SEND,
    SIGNALS,
)

__all__ = ["RedisStore"]

DEFAULT_PREFIX = "flowkit:"
#: How long operations keep retrying after a lost connection, by default (seconds).
DEFAULT_RETRY_TIMEOUT = 5.0
_SCHEMES = ("redis", "rediss", "unix")
#: flowkit's own options; they are taken out of the URL before redis-py sees it.
_OPTIONS = ("prefix", "ttl", "retry_timeout", "group_commit")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: A script's text by its SHA1, for ``EVAL`` after ``NOSCRIPT``.
_BY_SHA = {script.sha.encode(): script.text.encode() for script in SCRIPTS}
#: What ``EVALSHA`` names each script by.
_CREATE = CREATE.sha.encode()
_CHECKPOINT = CHECKPOINT.sha.encode()
_DELETE = DELETE.sha.encode()
_CLEAN = CLEAN.sha.encode()
_PRUNE = PRUNE.sha.encode()
_ENTRIES = ENTRIES.sha.encode()
_LOAD = LOAD.sha.encode()
_QUERY = QUERY.sha.encode()
_SEND = SEND.sha.encode()
_SIGNALS = SIGNALS.sha.encode()
_SAVE_SCHEDULE = SAVE_SCHEDULE.sha.encode()
_DELETE_SCHEDULE = DELETE_SCHEDULE.sha.encode()
_SCHEDULE_FIRED = SCHEDULE_FIRED.sha.encode()
_SCHEDULES = SCHEDULES.sha.encode()
#: How many executions one call of the prune script looks at: each call holds Redis
#: (a script runs alone) for about a millisecond.
PRUNE_BATCH = 200
_STATUS = {status: status.value.encode() for status in Status}


def _micros(value: datetime) -> bytes:
    """A UTC time as whole microseconds since the epoch (a sorted-set score)."""
    return b"%d" % ((value - _EPOCH) // _US)


def _from_micros(value: bytes | str) -> datetime:
    return _EPOCH + int(value) * _US


#: The header of a bulk string of each short length: a checkpoint packs about 30.
_HEADERS = [b"$%d\r\n" % length for length in range(1024)]


def _pack(args: Sequence[bytes]) -> bytes:
    """A command in the Redis protocol (RESP): an array of bulk strings."""
    headers = _HEADERS
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        length = len(arg)
        parts += (headers[length] if length < 1024 else b"$%d\r\n" % length, arg, b"\r\n")
    return b"".join(parts)


def _one_line(error: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(error)).strip()
    if len(text) > 300:
        text = text[:297] + "..."
    return text or type(error).__name__


def _display(url: str) -> str:
    """The URL without its query, its password masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user, colon, _ = credentials.partition(":")
        netloc = f"{user}:***@{host}" if colon else netloc
    return f"{parts.scheme}://{netloc}{parts.path}"


def _describe(client: Any) -> str:
    """Where a ready client connects, as a URL without credentials."""
    pool = getattr(client, "connection_pool", None)
    kwargs: Mapping[str, Any] = getattr(pool, "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    if "host" in kwargs:
        connection_class = getattr(pool, "connection_class", None)
        scheme = "rediss" if "SSL" in getattr(connection_class, "__name__", "") else "redis"
        return f"{scheme}://{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    return repr(client)


def _seconds(name: str, value: Any, *, positive: bool) -> float:
    if isinstance(value, timedelta):
        number = value.total_seconds()
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"store option '{name}' must be a number of seconds, got {value!r}"
            ) from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "more than 0" if positive else "0 or more"
        raise ConfigError(f"store option '{name}' must be {bound} seconds, got {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"store option '{name}' must be true or false, got {value!r}")


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL for redis-py (flowkit's options removed) and flowkit's options from its query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in _OPTIONS}
    rest = [(key, value) for key, value in query if key not in _OPTIONS]
    # Not urlunsplit: it drops the "//" of unix:///path.
    query_text = f"?{urlencode(rest)}" if rest else ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}{query_text}", ours


#: An entry's fields as its JSON keeps them: the id and the execution id are implied
#: by the key and the seq.
_ENTRY_KEYS = tuple(name for name in ENTRY_FIELDS if name not in ("id", "execution_id"))
#: The fields ``create`` writes once (``f``), the input apart (``in``).
_FIXED_KEYS = tuple(name for name in FIXED_FIELDS if name != "input")
#: The fields every checkpoint rewrites as one JSON text (``r``): ctx is kept per value.
_STATE_KEYS = tuple(name for name in CHECKPOINT_FIELDS if name != "ctx")
_entry_document = DOCUMENT.document(Entry, _ENTRY_KEYS)
_fixed_document = DOCUMENT.document(Execution, _FIXED_KEYS)
_state_document = DOCUMENT.document(Execution, _STATE_KEYS)


def _entry_text(entry: Entry) -> bytes:
    return encode_json(_entry_document(entry)).encode()


def _entry(execution_id: str, text: bytes | str) -> Entry:
    return DOCUMENT.entry(decode_json(text), execution_id=execution_id)


def _fixed_text(execution: Execution) -> bytes:
    """``f``: the fields :meth:`RedisStore.create` writes once, as JSON."""
    return encode_json(_fixed_document(execution)).encode()


def _state_text(execution: Execution) -> bytes:
    """``r``: every field a checkpoint rewrites but ctx, as JSON."""
    return encode_json(_state_document(execution)).encode()


def _signal_text(signal: Signal, payload: str) -> bytes:
    """A mailbox's field for a signal: its name, key, sent_at and payload (already JSON)."""
    head = encode_json(
        {"name": signal.name, "key": signal.key, "sent_at": signal.sent_at.isoformat()}
    )
    return f'{head[:-1]},"payload":{payload}}}'.encode()


def _signal(execution_id: str, seq: bytes | str, text: bytes | str) -> Signal:
    data = decode_json(text)
    return Signal(
        execution_id=execution_id,
        seq=int(seq),
        name=data["name"],
        payload=data["payload"],
        key=data["key"],
        sent_at=datetime.fromisoformat(data["sent_at"]),
    )


def _schedule_text(schedule: Schedule) -> bytes:
    """A schedule's ``d``: every field but its name and last slot, as JSON."""
    return encode_json(
        {
            "workflow_id": schedule.workflow_id,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "input": schedule.input,
            "created_at": schedule.created_at.isoformat(),
        }
    ).encode()


def _schedule(name: bytes | str, text: bytes | str, last_slot: bytes | str) -> Schedule:
    data = decode_json(text)
    return Schedule(
        name=_text(name),
        workflow_id=data["workflow_id"],
        cron=data["cron"],
        timezone=data["timezone"],
        input=data["input"],
        created_at=datetime.fromisoformat(data["created_at"]),
        last_slot=_from_micros(last_slot) if last_slot else None,
    )


def _ctx_pairs(ctx: Mapping[str, Any], names: Iterable[str]) -> list[bytes]:
    """The ctx values ``names`` as the scripts take them: name, JSON text, name, JSON text…"""
    pairs: list[bytes] = []
    for name in names:
        pairs.append(name.encode())
        pairs.append(encode_json(ctx[name]).encode())
    return pairs


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _execution(found: Sequence[bytes | str]) -> Execution:
    """An execution from what the read scripts return: ``{f, in, r, ctx}`` or ``{f, in, d}``.

    ctx comes as one JSON object text, which the script joined from the values
    and their names, so each value is decoded once; a record of the old shape
    (``d``, written by an older release) holds ctx in its state.
    """
    data = decode_json(found[2])
    data.update(decode_json(found[0]))
    data["input"] = decode_json(found[1])
    if len(found) == 4:
        data["ctx"] = decode_json(found[3])
    return DOCUMENT.execution(data)


def _conflict(
    written: Any, execution_id: str, expected_version: int, previous_seq: int
) -> ConflictError:
    """The error for what the checkpoint script answered when it wrote nothing."""
    where = f"checkpoint of execution {execution_id!r}"
    code = int(written[0])
    if code == 0:
        return ConflictError(
            f"{where}: it does not exist (deleted, expired or never created); nothing was written"
        )
    if code == NOT_PENDING:
        return ConflictError(
            f"{where}: signal {int(written[1])} is not pending in its mailbox (consumed "
            "already, or never sent); nothing was written"
        )
    version, seq = int(written[1]), int(written[2])
    if code == -1:
        return ConflictError(
            f"{where}: expected version {expected_version}, but the store holds version "
            f"{version} (another writer got there first); nothing was written"
        )
    return ConflictError(
        f"{where}: entries must continue at seq {seq + 1}, got {previous_seq + 1}; "
        "nothing was written"
    )


class _Retry:
    """The backoff of one call after a lost connection: 20 ms, doubling up to 1 s."""

    __slots__ = ("delay", "started")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.delay = 0.02

    def waited(self) -> float:
        """Seconds since the first failure."""
        return time.monotonic() - self.started

    def next_delay(self) -> float:
        """How long to sleep before the next attempt."""
        delay, self.delay = self.delay, min(self.delay * 2, 1.0)
        return delay


class RedisStore:
    """A store in Redis: atomic Lua-script writes and sorted-set indexes.

    Each execution is a hash (``<prefix>e:<id>``), its ctx values (a hash
    ``<prefix>c:<id>`` and their order, a list ``<prefix>o:<id>``), a list
    of entries (``<prefix>l:<id>``) and a mailbox (a hash ``<prefix>m:<id>``
    and its pending signals, a sorted set ``<prefix>mp:<id>``); sorted sets
    index executions by workflow, by status, by timer and by lease, so
    ``find``, ``due``, ``stale`` and ``prune`` never scan. Each schedule is a
    hash (``<prefix>sc:<name>``). Every write is one Lua script:
    the version check, the record, the ctx values it changed, the entries and
    every index change happen together or not at all. Checkpoints that several
    threads write at the same time share one round trip (``group_commit``).
    See the Stores page of the documentation for the key layout.

    Durability is Redis's own: checkpoints survive a Redis crash only with AOF
    on (``appendonly yes`` with ``appendfsync always`` or ``everysec``).

    Args:
        url_or_client: a URL — ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://…`` (TLS) or ``unix:///path/to/redis.sock[?db=N]`` — or a
            ready ``redis.Redis`` client, which the store uses as it is and
            never closes. The URL's query may hold flowkit's options below and
            any redis-py connection option (``socket_timeout``,
            ``max_connections``, ``client_name``…).
        prefix: prepended to every key, so that several applications (or
            stores) share one Redis database; ``flowkit:`` by default.
        ttl: seconds (or a ``timedelta``) after which a *finished* (completed,
            failed or cancelled) execution and its entries expire; running,
            pending, waiting and halted executions never expire. None (the
            default) keeps everything.
        retry_timeout: how long an operation keeps retrying, with backoff,
            after a lost connection before raising
            :class:`~flowkit.StoreUnavailableError` (seconds; 5 by default,
            0 for no retries).
        group_commit: checkpoints that several threads write at the same
            time travel together, one pipeline of their scripts in one round
            trip (each script still atomic and version-checked on its own);
            True by default, False sends each alone.
        **client_options: passed to ``redis.Redis.from_url`` (a URL only).
            flowkit's options may also be given in the URL's query
            (``?prefix=app:&ttl=86400``); keyword arguments win.

    Raises:
        ConfigError: a bad URL or option, or redis-py is not installed (the
            message names the extra to install).
        StoreUnavailableError: Redis cannot be reached.
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str | None = None,
        ttl: float | timedelta | None = None,
        retry_timeout: float | None = None,
        group_commit: bool | None = None,
        **client_options: Any,
    ) -> None:
        redis = optional_import("redis", extra="redis", purpose="the Redis store")
        retry = optional_import("redis.retry", extra="redis", purpose="the Redis store")
        backoff = optional_import("redis.backoff", extra="redis", purpose="the Redis store")
        exceptions = redis.exceptions
        self._auth_error: type[Exception] = exceptions.AuthenticationError
        self._no_script: type[Exception] = exceptions.NoScriptError
        self._response_error: type[Exception] = exceptions.ResponseError
        self._redis_error: type[Exception] = exceptions.RedisError
        self._retryable: tuple[type[Exception], ...] = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            exceptions.ReadOnlyError,  # a replica promoted, or not yet: failover in progress
        )
        options: dict[str, Any] = {}
        if isinstance(url_or_client, str):
            scheme = scheme_of(url_or_client)
            if scheme not in _SCHEMES:
                raise ConfigError(
                    f"RedisStore needs a redis://, rediss:// or unix:// URL, got {url_or_client!r}"
                )
            client_url, options = _split_url(url_or_client)
            self._where = _display(url_or_client)
        elif hasattr(url_or_client, "execute_command"):
            if client_options:
                raise ConfigError(
                    f"client options ({', '.join(sorted(client_options))}) cannot be applied "
                    "to a ready Redis client: configure the client itself"
                )
            self._where = _describe(url_or_client)
        else:
            raise ConfigError(
                "RedisStore needs a redis://, rediss:// or unix:// URL or a redis.Redis client, "
                f"got {type(url_or_client).__name__}"
            )
        if prefix is not None:
            options["prefix"] = prefix
        if ttl is not None:
            options["ttl"] = ttl
        if retry_timeout is not None:
            options["retry_timeout"] = retry_timeout
        if group_commit is not None:
            options["group_commit"] = group_commit
        self.prefix: str = str(options.get("prefix", DEFAULT_PREFIX))
        ttl_seconds = (
            None if "ttl" not in options else _seconds("ttl", options["ttl"], positive=True)
        )
        self.ttl: timedelta | None = None if ttl_seconds is None else timedelta(seconds=ttl_seconds)
        self._ttl_ms = b"" if ttl_seconds is None else b"%d" % max(1, round(ttl_seconds * 1000))
        self._retry_timeout = _seconds(
            "retry_timeout", options.get("retry_timeout", DEFAULT_RETRY_TIMEOUT), positive=False
        )
        self.group_commit: bool = _flag("group_commit", options.get("group_commit", True))
        #: Sends a checkpoint's script: alone, or with those other threads send meanwhile.
        self._commit: Callable[[Sequence[bytes]], Any] = (
            GroupCommit(self._execute_batch) if self.group_commit else self._execute
        )
        self._prefix = self.prefix.encode()
        self._record_prefix = self._prefix + b"e:"
        self._log_prefix = self._prefix + b"l:"
        self._ctx_prefix = self._prefix + b"c:"
        self._order_prefix = self._prefix + b"o:"
        self._mailbox_prefix = self._prefix + b"m:"
        self._pending_prefix = self._prefix + b"mp:"
        self._schedule_prefix = self._prefix + b"sc:"
        self._schedules_key = self._prefix + b"schedules"
        # Every write carries an id unique to it: a write sent again after a lost
        # connection finds out whether it already landed (see _execute).
        self._writer = b""
        self._writer_pid = 0
        self._counter = itertools.count()
        self._closed = False
        self._lock = threading.Lock()

        if isinstance(url_or_client, str):
            kwargs: dict[str, Any] = {"retry": retry.Retry(backoff.NoBackoff(), 0)}
            kwargs.update(client_options)
            try:
                self._client: Any = redis.Redis.from_url(client_url, **kwargs)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"bad Redis URL or option {self._where}: {exc}") from None
            self._owns_client = True
        else:
            self._client = url_or_client
            self._owns_client = False
        # Commands go straight to connections the store holds (see _send_pooled); a
        # single-connection client (which owns its one connection) is used through its own API.
        self._pool: Any = getattr(self._client, "connection_pool", None)
        single = getattr(self._client, "connection", None) is not None
        pooled = not single and self._pool is not None
        self._send = self._send_pooled if pooled else self._send_client
        self._send_many = self._send_many_pooled if pooled else self._send_many_client
        self._idle: list[Any] = []  # connections the store holds that no call is using
        self._idle_lock = threading.Lock()
        self._idle_pid = os.getpid()
        try:
            self._load_scripts()
        except BaseException:
            self._release()
            raise

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client the store uses."""
        return self._client

    # --- connections and errors -------------------------------------------------------------------

    def _load_scripts(self) -> None:
        """Register every script once (this also checks that Redis is there)."""
        try:
            pipe = self._client.pipeline(transaction=False)
            for script in SCRIPTS:
                pipe.script_load(script.text)
            shas = [_text(sha) for sha in pipe.execute()]
        except self._auth_error as exc:
            raise self._unavailable(exc, connecting=True) from exc
        except self._retryable as exc:
            raise self._unavailable(exc, connecting=True) from exc
        except TypeError as exc:  # an unknown option reaches the connection class
            raise ConfigError(f"bad Redis option for {self._where}: {exc}") from None
        except self._redis_error as exc:
            raise self._failed(exc) from exc
        for script, sha in zip(SCRIPTS, shas, strict=True):
            if sha != script.sha:  # pragma: no cover - Redis hashes scripts with SHA1 too
                raise StoreError(f"the store {self._where} named script {script.name} {sha}")

    def _unavailable(
        self, error: BaseException, *, connecting: bool = False, waited: float = 0.0
    ) -> StoreUnavailableError:
        verb = "cannot connect to" if connecting else "lost the connection to"
        after = f" (retried for {waited:.1f} s)" if waited else ""
        return StoreUnavailableError(f"{verb} the store {self._where}: {_one_line(error)}{after}")

    def _failed(self, error: BaseException) -> StoreError:
        return StoreError(f"the store {self._where} failed: {_one_line(error)}")

    def _closed_error(self) -> FlowkitError:
        return FlowkitError("store is closed")

    def _take(self) -> Any:
        """A connection for one call: one the store holds, else a new one from the pool.

        Checking a connection out of redis-py's pool and in again costs a
        syscall (it polls the socket) and some bookkeeping on every command, so
        the store keeps the connections it took, as many as calls ran at once,
        and gives them back when it closes.
        """
        with self._idle_lock:
            if self._idle_pid != os.getpid():  # forked: the parent's connections are not ours
                self._idle, self._idle_pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return self._pool.get_connection()

    def _put_back(self, connection: Any) -> None:
        """Keep a connection whose replies were all read (the pool's, once closed)."""
        with self._idle_lock:
            if not self._closed and self._idle_pid == os.getpid():
                self._idle.append(connection)
                return
        self._pool.release(connection)

    def _drop(self, connection: Any) -> None:
        """Disconnect a connection (it may be mid-reply) and give it back to the pool."""
        try:
            connection.disconnect()
        finally:
            self._pool.release(connection)

    def _send_pooled(self, args: Sequence[bytes]) -> Any:
        """Send one command on a connection of the store's, and read its reply.

        The command is packed here: redis-py's general-purpose packing costs
        more than the rest of the call on a checkpoint's twenty arguments.
        """
        packed = _pack(args)
        connection = self._take()
        try:
            connection.send_packed_command([packed])
            reply = connection.read_response()
        except self._response_error:
            self._put_back(connection)  # a whole reply was read: the connection is fine
            raise
        except BaseException:
            self._drop(connection)  # never reuse a connection with a reply half-read
            raise
        self._put_back(connection)
        return reply

    def _send_many_pooled(self, commands: Sequence[Sequence[bytes]]) -> list[Any]:
        """Send commands in one write on one connection (a pipeline), and read their replies.

        Returns each command's reply, or the ``ResponseError`` Redis answered it with.
        """
        packed = b"".join([_pack(args) for args in commands])
        connection = self._take()
        replies: list[Any] = []
        try:
            connection.send_packed_command([packed])
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except self._response_error as exc:
                    replies.append(exc)
        except BaseException:
            self._drop(connection)
            raise
        self._put_back(connection)
        return replies

    def _send_client(self, args: Sequence[bytes]) -> Any:
        """Send one command through the client (a single-connection client)."""
        return self._client.execute_command(*args)

    def _send_many_client(self, commands: Sequence[Sequence[bytes]]) -> list[Any]:
        """Send commands through the client's pipeline; replies or ``ResponseError``s."""
        pipe = self._client.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies

    def _execute(self, args: Sequence[bytes]) -> Any:
        """Run one command, retrying with backoff after a lost connection.

        Every command the store sends may be sent twice: reads change nothing,
        and every write script first checks whether the write it carries (by
        its write id) already landed, and otherwise checks the version, so a
        write is never applied twice.

        Raises:
            StoreUnavailableError: the connection could not be had again
                within ``retry_timeout``.
            StoreError: Redis refused the command.
        """
        send = self._send
        retry: _Retry | None = None
        while True:
            try:
                try:
                    return send(args)
                except self._no_script:
                    # Redis restarted or flushed its script cache: send the text once.
                    return send((b"EVAL", _BY_SHA[args[1]], *args[2:]))
            except self._auth_error as exc:
                raise self._unavailable(exc, connecting=True) from exc
            except self._retryable as exc:
                retry = retry or _Retry()
                self._pause(retry, exc)
            except self._redis_error as exc:
                raise self._failed(exc) from exc

    def _execute_many(self, commands: Sequence[Sequence[bytes]]) -> list[Any]:
        """Run commands in one round trip (a pipeline), retrying as :meth:`_execute` does.

        Each command is its own script call, atomic and checked on its own:
        the outcome of one never depends on the others. After a lost
        connection the whole batch is sent again, which the write ids make safe.

        Returns:
            Each command's reply, or the :class:`StoreError` Redis refused it with.

        Raises:
            StoreUnavailableError: the connection could not be had again
                within ``retry_timeout``.
        """
        retry: _Retry | None = None
        while True:
            try:
                replies = self._send_many(commands)
                break
            except self._auth_error as exc:
                raise self._unavailable(exc, connecting=True) from exc
            except self._retryable as exc:
                retry = retry or _Retry()
                self._pause(retry, exc)
        outcomes: list[Any] = []
        for args, reply in zip(commands, replies, strict=True):
            if isinstance(reply, self._no_script):  # after a restart or a flush: rare
                reply = self._execute((b"EVAL", _BY_SHA[args[1]], *args[2:]))
            elif isinstance(reply, self._redis_error):
                failed = self._failed(reply)
                failed.__cause__ = reply
                reply = failed
            outcomes.append(reply)
        return outcomes

    def _execute_batch(self, commands: Sequence[Sequence[bytes]]) -> list[Any]:
        """What :class:`GroupCommit` calls: one command alone, or several pipelined."""
        if len(commands) == 1:
            return [self._execute(commands[0])]
        return self._execute_many(commands)

    def _pause(self, retry: _Retry, error: BaseException) -> None:
        """Wait before trying again after a lost connection.

        Raises:
            FlowkitError: the store was closed meanwhile.
            StoreUnavailableError: ``retry_timeout`` has passed.
        """
        if self._closed:
            raise self._closed_error() from error
        waited = retry.waited()
        if waited >= self._retry_timeout:
            raise self._unavailable(error, waited=waited) from error
        time.sleep(min(retry.next_delay(), self._retry_timeout - waited))

    def _keys(self, execution_id: str) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
        """The keys of the record, the log, the ctx values, their order, the mailbox and
        its pending signals."""
        encoded = execution_id.encode()
        return (
            self._record_prefix + encoded,
            self._log_prefix + encoded,
            self._ctx_prefix + encoded,
            self._order_prefix + encoded,
            self._mailbox_prefix + encoded,
            self._pending_prefix + encoded,
        )

    def _write_id(self) -> bytes:
        """An id no other write carries: random per process (a forked child draws anew)."""
        if self._writer_pid != os.getpid():
            self._writer_pid = os.getpid()
            self._writer = f"{self._writer_pid:x}.{os.urandom(8).hex()}.".encode()
        return b"%b%d" % (self._writer, next(self._counter))

    # --- the protocol -----------------------------------------------------------------------------

    def create(self, execution: Execution) -> None:
        """Store a new execution (one script: the record, its ctx values, its index entries).

        Raises:
            ConflictError: an execution with this id already exists.
            ValueError: a time is naive, or the record holds a value JSON cannot represent.
            TypeError: the record holds a value that is not JSON data.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        execution = utc_execution(execution)
        if self._execute(self._create_command(execution)) != 1:
            raise ConflictError(f"execution {execution.id!r} already exists")

    def _create_command(self, execution: Execution) -> list[bytes]:
        """The ``EVALSHA`` of the create script (see ``CREATE`` for its arguments)."""
        wake, lease = execution.wake_at, execution.lease_expires_at
        return [
            b"EVALSHA",
            _CREATE,
            b"6",
            *self._keys(execution.id),
            self._prefix,
            execution.id.encode(),
            execution.workflow_id.encode(),
            _fixed_text(execution),
            encode_json(execution.input).encode(),
            b"%d" % execution.seq,
            b"%d" % execution.version,
            _STATUS[execution.status],
            _micros(execution.updated_at),
            b"" if wake is None else _micros(wake),
            b"" if lease is None else _micros(lease),
            _state_text(execution),
            self._write_id(),
            self._ttl_ms,
            *_ctx_pairs(execution.ctx, execution.ctx),
        ]

    def load(self, execution_id: str) -> Execution | None:
        """The execution with this id, or None (one script: the record and its ctx values).

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        encoded = execution_id.encode()
        found = self._execute(
            (b"EVALSHA", _LOAD, b"1", self._record_prefix + encoded, self._prefix, encoded)
        )
        return None if found is None else _execution(found)

    def checkpoint(
        self,
        execution: Execution,
        entries: Sequence[Entry],
        expected_version: int,
        *,
        changed: Collection[str] | None = None,
        consumed: Collection[int] = (),
    ) -> None:
        """Replace the execution and append ``entries``, atomically.

        One Lua script checks the stored version and seq (and that the signals
        ``consumed`` names are pending), rewrites the record (not the fields
        ``create`` wrote), writes the ctx values ``changed`` names (ctx whole
        when it is None), appends the entries, marks the signals consumed and
        moves the execution between the indexes. A record written by an older release
        (ctx inside the record) is converted by its first checkpoint, which
        then sends ctx whole: one more round trip, once.

        Raises:
            ConflictError: the execution does not exist, its stored version is
                not ``expected_version``, the entries do not continue its
                stored log, or a consumed seq is not a pending signal; nothing
                was written.
            ValueError: the arguments are inconsistent (see ``Store.checkpoint``),
                a time is naive, or a value cannot be represented in JSON.
            TypeError: a value is not JSON data.
            StoreUnavailableError: Redis cannot be reached (the checkpoint was
                written whole or not at all; the message says so).
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        execution = utc_execution(execution)
        check_checkpoint(execution, entries, expected_version, changed)
        texts = [_entry_text(utc_entry(entry)) for entry in entries]
        seqs = b",".join([b"%d" % seq for seq in consumed]) if consumed else b""
        try:
            written = self._commit(
                self._checkpoint_command(execution, texts, expected_version, changed, seqs)
            )
            if written != 1 and int(written[0]) == OLD_SHAPE:
                written = self._commit(
                    self._checkpoint_command(execution, texts, expected_version, None, seqs)
                )
        except StoreUnavailableError as exc:
            raise StoreUnavailableError(
                f"{exc}; the checkpoint of execution {execution.id!r} was written whole or "
                "not at all (load it to see which)"
            ) from exc.__cause__
        if written != 1:
            raise _conflict(written, execution.id, expected_version, execution.seq - len(entries))

    def _checkpoint_command(
        self,
        execution: Execution,
        texts: Sequence[bytes],
        expected_version: int,
        changed: Collection[str] | None,
        consumed: bytes,
    ) -> list[bytes]:
        """The ``EVALSHA`` of the checkpoint script (see ``CHECKPOINT`` for its arguments)."""
        wake, lease = execution.wake_at, execution.lease_expires_at
        if changed is None:
            ctx, shape = _ctx_pairs(execution.ctx, execution.ctx), b"w"
        else:
            ctx, shape = _ctx_pairs(execution.ctx, changed), b"p"
        return [
            b"EVALSHA",
            _CHECKPOINT,
            b"6",
            *self._keys(execution.id),
            self._prefix,
            execution.id.encode(),
            b"%d" % expected_version,
            b"%d" % (execution.seq - len(texts)),
            b"%d" % execution.version,
            b"%d" % execution.seq,
            _STATUS[execution.status],
            _micros(execution.updated_at),
            b"" if wake is None else _micros(wake),
            b"" if lease is None else _micros(lease),
            _state_text(execution),
            self._write_id(),
            self._ttl_ms,
            consumed,
            shape,
            b"%d" % (len(ctx) // 2),
            *ctx,
            *texts,
        ]

    def entries(self, execution_id: str, *, after: int = 0) -> list[Entry]:
        """The entries with ``seq > after``, in ``seq`` order (one ``LRANGE``).

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        encoded = execution_id.encode()
        record_key, log_key = self._record_prefix + encoded, self._log_prefix + encoded
        texts = self._execute((b"EVALSHA", _ENTRIES, b"2", record_key, log_key, b"%d" % int(after)))
        return [_entry(execution_id, text) for text in texts]

    def _query(
        self, index: str, limit: int, upto: bytes, after: tuple[datetime, str] | None = None
    ) -> list[Execution]:
        if limit == 0:
            return []
        key = self._prefix + index.encode()
        position = () if after is None else (_micros(after[0]), after[1].encode())
        found, gone = self._execute(
            (b"EVALSHA", _QUERY, b"1", key, self._prefix, b"%d" % limit, upto, *position)
        )
        if gone:
            self._clean(key, gone)
        return [_execution(execution) for execution in found]

    def _clean(self, key: bytes, gone: Sequence[Any]) -> None:
        """Drop ids whose record expired from the indexes.

        Best effort: a query never fails because its clean-up did.
        """
        with contextlib.suppress(StoreError):
            self._execute((b"EVALSHA", _CLEAN, b"1", key, self._prefix, *gone))

    def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | str | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[Execution]:
        """Executions matching the filters, most recently updated first (ties: id descending),
        strictly after the position ``after`` when given.

        Reads one sorted-set index (``ZREVRANGE``) and the records it names; a
        page ``after`` a position starts at that position's rank, found in
        logarithmic time however deep the page is.

        Raises:
            ValueError: the status is unknown, ``limit`` is negative, or ``after``'s
                time is naive.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        check_limit(limit)
        wanted = check_status(status)
        position = check_after(after)
        if workflow_id is None:
            index = "i:all" if wanted is None else f"i:st:{wanted.value}"
        elif wanted is None:
            index = f"i:wf:{workflow_id}"
        else:
            index = f"i:sw:{wanted.value}:{workflow_id}"
        return self._query(index, limit, b"", position)

    def due(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Halted or waiting executions whose ``wake_at`` is at or before ``now``, earliest first.

        Ties are ordered by id. Reads the ``i:wake`` index.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        check_limit(limit)
        now = utc(now, "now")
        found = self._query("i:wake", limit, _micros(now))
        # Exact, also for times so far from 1970 that a score (a double) rounds them.
        return [e for e in found if e.wake_at is not None and e.wake_at <= now]

    def stale(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Running executions whose lease expired at or before ``now``, oldest first.

        Ties are ordered by id. Reads the ``i:lease`` index.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        check_limit(limit)
        now = utc(now, "now")
        found = self._query("i:lease", limit, _micros(now))
        return [e for e in found if e.lease_expires_at is not None and e.lease_expires_at <= now]

    def delete(self, execution_id: str) -> bool:
        """Delete an execution with its entries, ctx values, mailbox and index entries (one script).

        Returns False if it did not exist (or expired) — also when a delete
        whose reply was lost with the connection had deleted it already.

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        deleted = self._execute(
            (
                b"EVALSHA",
                _DELETE,
                b"6",
                *self._keys(execution_id),
                self._prefix,
                execution_id.encode(),
            )
        )
        return bool(deleted == 1)

    def send_signal(self, signal: Signal) -> Signal | None:
        """Append ``signal`` to its execution's mailbox; the stored signal, with its ``seq``.

        One script checks the execution's status and the key, and appends;
        None, writing nothing, when the key was seen before.

        Raises:
            NotFoundError: the execution does not exist.
            ExecutionError: the execution is completed, failed or cancelled.
            ValueError: ``sent_at`` is naive, or the payload holds NaN or an infinity.
            TypeError: the payload is not JSON data.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        signal, payload = utc_signal(signal)
        record_key, _, _, _, mailbox_key, pending_key = self._keys(signal.execution_id)
        key = signal.key
        code, *rest = self._execute(
            (
                b"EVALSHA",
                _SEND,
                b"3",
                record_key,
                mailbox_key,
                pending_key,
                self._write_id(),
                signal.name.encode(),
                b"" if key is None else key.encode(),
                b"0" if key is None else b"1",
                _signal_text(signal, payload),
            )
        )
        if code == 1:
            return attrs.evolve(signal, seq=int(rest[0]))
        if code == 0:
            return None
        raise signal_refused(signal, _text(rest[0]) if rest else None)

    def signals(self, execution_id: str, *, name: str | None = None) -> list[Signal]:
        """The execution's pending signals, of ``name`` if given, in seq order (one script).

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        _, _, _, _, mailbox_key, pending_key = self._keys(execution_id)
        which = (b"0",) if name is None else (b"1", name.encode())
        found = self._execute((b"EVALSHA", _SIGNALS, b"2", mailbox_key, pending_key, *which))
        return [
            _signal(execution_id, seq, text)
            for seq, text in zip(found[::2], found[1::2], strict=True)
        ]

    def save_schedule(self, schedule: Schedule) -> None:
        """Insert the schedule, or replace the one with its name (one script).

        Raises:
            ValueError: a time is naive, or the input holds NaN or an infinity.
            TypeError: the input is not JSON data.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        schedule = utc_schedule(schedule)
        last = schedule.last_slot
        name = schedule.name.encode()
        self._execute(
            (
                b"EVALSHA",
                _SAVE_SCHEDULE,
                b"2",
                self._schedule_prefix + name,
                self._schedules_key,
                name,
                _schedule_text(schedule),
                b"" if last is None else _micros(last),
            )
        )

    def schedules(self) -> list[Schedule]:
        """Every schedule, by name (one script).

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        found = self._execute((b"EVALSHA", _SCHEDULES, b"1", self._schedules_key, self._prefix))
        return [_schedule(*found[i : i + 3]) for i in range(0, len(found), 3)]

    def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there was none (one script).

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        encoded = name.encode()
        deleted = self._execute(
            (
                b"EVALSHA",
                _DELETE_SCHEDULE,
                b"2",
                self._schedule_prefix + encoded,
                self._schedules_key,
                encoded,
            )
        )
        return bool(deleted == 1)

    def schedule_fired(self, name: str, slot: datetime) -> bool:
        """Record ``slot`` as the schedule's last slot if it is later than the stored one.

        A compare-and-set in one script: of several callers with the same
        slot, one gets True (also when its reply was lost and it was sent again).

        Raises:
            ValueError: ``slot`` is naive.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        slot = utc(slot, "slot")
        fired = self._execute(
            (
                b"EVALSHA",
                _SCHEDULE_FIRED,
                b"1",
                self._schedule_prefix + name.encode(),
                _micros(slot),
                self._write_id(),
            )
        )
        return bool(fired == 1)

    def prune(
        self,
        *,
        before: datetime,
        statuses: Iterable[Status | str],
        dry_run: bool = False,
    ) -> int:
        """Delete finished executions last updated before ``before``; how many went.

        Reads each status's index oldest first and deletes in batches of
        :data:`PRUNE_BATCH` executions, one script each, so Redis serves other
        clients between batches. With ``dry_run`` the same batches are only counted.
        A batch sent again after a lost connection is not counted twice, but
        what it deleted before the reply was lost is not counted at all.

        Raises:
            ValueError: ``before`` is naive, or a status is unknown or not finished.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        before, wanted = check_prunable(before, statuses)
        upto, dry = _micros(before), b"1" if dry_run else b"0"
        count = 0
        for status in wanted:
            key = self._prefix + b"i:st:" + _STATUS[status]
            first = 0  # the rank of the oldest id not yet read
            while True:
                looked, went = self._execute(
                    (
                        b"EVALSHA",
                        _PRUNE,
                        b"1",
                        key,
                        self._prefix,
                        upto,
                        b"%d" % PRUNE_BATCH,
                        b"%d" % first,
                        dry,
                    )
                )
                count += went
                if looked < PRUNE_BATCH:
                    break
                if dry_run:  # nothing left the index: read on past what was counted
                    first += looked
        return count

    def close(self) -> None:
        """Close the connections the store opened; later calls raise :class:`FlowkitError`.

        Closing twice is fine. A client the store was given is left open.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    def _release(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
            ours = self._idle_pid == os.getpid()
        if ours:
            for connection in idle:
                self._pool.release(connection)
        if self._owns_client:
            self._client.close()

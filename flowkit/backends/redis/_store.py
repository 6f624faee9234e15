"""The Redis store (SPEC §10): one hash and one list per execution, sorted-set indexes.

Every write is one Lua script (see :mod:`._scripts`), so a checkpoint — the
version check, the record, the entries and every index change — happens
whole or not at all. Queries read the indexes only.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

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
    Status,
    decode_json,
    encode_json,
)
from ..checks import check_checkpoint, check_limit, check_status, utc, utc_entry, utc_execution
from ._scripts import CHECKPOINT, CREATE, DELETE, ENTRIES, PRUNE, QUERY, SCRIPTS

__all__ = ["RedisStore"]

DEFAULT_PREFIX = "flowkit:"
#: How long operations keep retrying after a lost connection, by default (seconds).
DEFAULT_RETRY_TIMEOUT = 5.0
_SCHEMES = ("redis", "rediss", "unix")
#: flowkit's own options; they are taken out of the URL before redis-py sees it.
_OPTIONS = ("prefix", "ttl", "retry_timeout")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: A script's text by its SHA1, for ``EVAL`` after ``NOSCRIPT``.
_BY_SHA = {script.sha.encode(): script.text.encode() for script in SCRIPTS}
_CREATE, _CHECKPOINT, _DELETE, _PRUNE, _ENTRIES, _QUERY = (
    script.sha.encode() for script in (CREATE, CHECKPOINT, DELETE, PRUNE, ENTRIES, QUERY)
)
_STATUS = {status: status.value.encode() for status in Status}


def _micros(value: datetime) -> bytes:
    """A UTC time as whole microseconds since the epoch (a sorted-set score)."""
    return b"%d" % ((value - _EPOCH) // _US)


def _pack(args: Sequence[bytes]) -> bytes:
    """A command in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        append(b"$%d\r\n" % len(arg))
        append(arg)
        append(b"\r\n")
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
_entry_document = DOCUMENT.document(Entry, _ENTRY_KEYS)
_fixed_document = DOCUMENT.document(Execution, _FIXED_KEYS)
_state_document = DOCUMENT.document(Execution, CHECKPOINT_FIELDS)


def _entry_text(entry: Entry) -> bytes:
    return encode_json(_entry_document(entry)).encode()


def _entry(execution_id: str, text: bytes | str) -> Entry:
    return DOCUMENT.entry(decode_json(text), execution_id=execution_id)


def _fixed_text(execution: Execution) -> bytes:
    """``f``: the fields :meth:`RedisStore.create` writes once, as JSON."""
    return encode_json(_fixed_document(execution)).encode()


def _state_text(execution: Execution) -> bytes:
    """``d``: every field a checkpoint rewrites, as JSON."""
    return encode_json(_state_document(execution)).encode()


def _execution(fixed: bytes | str, input_text: bytes | str, state: bytes | str) -> Execution:
    data = decode_json(state)
    data.update(decode_json(fixed))
    data["input"] = decode_json(input_text)
    return DOCUMENT.execution(data)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStore:
    """A store in Redis: atomic Lua-script writes and sorted-set indexes.

    Each execution is a hash (``<prefix>e:<id>``) and a list of entries
    (``<prefix>l:<id>``); sorted sets index executions by workflow, by status,
    by timer and by lease, so ``find``, ``due`` and ``stale`` never scan. Each
    ``create``, ``checkpoint`` and ``delete`` is one Lua script: the version
    check, the record, the entries and every index change happen together or
    not at all. See the Stores page of the documentation for the key layout.

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
        ttl: seconds (or a ``timedelta``) after which a *completed or failed*
            execution and its entries expire; running, pending and halted
            executions never expire. None (the default) keeps everything.
        retry_timeout: how long an operation keeps retrying, with backoff,
            after a lost connection before raising
            :class:`~flowkit.StoreUnavailableError` (seconds; 5 by default,
            0 for no retries).
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
        self.prefix: str = str(options.get("prefix", DEFAULT_PREFIX))
        ttl_seconds = (
            None if "ttl" not in options else _seconds("ttl", options["ttl"], positive=True)
        )
        self.ttl: timedelta | None = None if ttl_seconds is None else timedelta(seconds=ttl_seconds)
        self._ttl_ms = b"" if ttl_seconds is None else b"%d" % max(1, round(ttl_seconds * 1000))
        self._retry_timeout = _seconds(
            "retry_timeout", options.get("retry_timeout", DEFAULT_RETRY_TIMEOUT), positive=False
        )
        self._prefix = self.prefix.encode()
        self._record_prefix = self._prefix + b"e:"
        self._log_prefix = self._prefix + b"l:"
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
        # Commands go straight to a pooled connection; a single-connection client
        # (which owns its one connection) is used through its own API.
        self._pool: Any = getattr(self._client, "connection_pool", None)
        single = getattr(self._client, "connection", None) is not None
        self._send = self._send_client if single or self._pool is None else self._send_pooled
        self._hot: Any = None  # the connection the store keeps out of the pool
        self._hot_lock = threading.Lock()
        self._hot_pid = os.getpid()
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

    def _send_pooled(self, args: Sequence[bytes]) -> Any:
        """Send one command on a connection from the client's pool, and read its reply.

        The command is packed here: redis-py's general-purpose packing costs
        more than the rest of the call on a checkpoint's twenty arguments. The
        store keeps one connection out of the pool for itself (checking a
        connection out and in again costs a syscall and some bookkeeping on
        every command); a thread that finds it busy takes one from the pool.
        """
        packed = _pack(args)
        if self._hot_lock.acquire(blocking=False):
            try:
                connection = self._hot
                if connection is None or self._hot_pid != os.getpid():  # none yet, or forked
                    connection = self._hot = self._pool.get_connection()
                    self._hot_pid = os.getpid()
                try:
                    connection.send_packed_command([packed])
                    return connection.read_response()
                except self._response_error:
                    raise  # a whole reply was read: the connection is fine
                except BaseException:
                    self._hot = None
                    self._drop(connection)
                    raise
            finally:
                self._hot_lock.release()
        pool = self._pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([packed])
            return connection.read_response()
        except self._response_error:
            raise
        except BaseException:
            connection.disconnect()  # never reuse a connection with a reply half-read
            raise
        finally:
            pool.release(connection)

    def _drop(self, connection: Any) -> None:
        """Disconnect a connection (it may be mid-reply) and give it back to the pool."""
        try:
            connection.disconnect()
        finally:
            self._pool.release(connection)

    def _send_client(self, args: Sequence[bytes]) -> Any:
        """Send one command through the client (a single-connection client)."""
        return self._client.execute_command(*args)

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
        started = 0.0
        delay = 0.02
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
                if self._closed:
                    raise self._closed_error() from exc
                now = time.monotonic()
                if not started:
                    started = now
                waited = now - started
                if waited >= self._retry_timeout:
                    raise self._unavailable(exc, waited=waited) from exc
                time.sleep(min(delay, self._retry_timeout - waited))
                delay = min(delay * 2, 1.0)
            except self._redis_error as exc:
                raise self._failed(exc) from exc

    def _keys(self, execution_id: str) -> tuple[bytes, bytes]:
        """The record's and the log's keys."""
        encoded = execution_id.encode()
        return self._record_prefix + encoded, self._log_prefix + encoded

    def _write_id(self) -> bytes:
        """An id no other write carries: random per process (a forked child draws anew)."""
        if self._writer_pid != os.getpid():
            self._writer_pid = os.getpid()
            self._writer = f"{self._writer_pid:x}.{os.urandom(8).hex()}.".encode()
        return b"%b%d" % (self._writer, next(self._counter))

    # --- the protocol -----------------------------------------------------------------------------

    def create(self, execution: Execution) -> None:
        """Store a new execution (one script: the record and its index entries).

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
        fixed = _fixed_text(execution)
        input_text = encode_json(execution.input).encode()
        state = _state_text(execution)
        wake, lease = execution.wake_at, execution.lease_expires_at
        record_key, log_key = self._keys(execution.id)
        written = self._execute(
            (
                b"EVALSHA",
                _CREATE,
                b"2",
                record_key,
                log_key,
                self._prefix,
                execution.id.encode(),
                execution.workflow_id.encode(),
                fixed,
                input_text,
                b"%d" % execution.seq,
                b"%d" % execution.version,
                _STATUS[execution.status],
                _micros(execution.updated_at),
                b"" if wake is None else _micros(wake),
                b"" if lease is None else _micros(lease),
                state,
                self._write_id(),
                self._ttl_ms,
            )
        )
        if written != 1:
            raise ConflictError(f"execution {execution.id!r} already exists")

    def load(self, execution_id: str) -> Execution | None:
        """The execution with this id, or None.

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        key = self._record_prefix + execution_id.encode()
        found = self._execute((b"HMGET", key, b"f", b"in", b"d"))
        if found[0] is None:
            return None
        return _execution(*found)

    def checkpoint(
        self,
        execution: Execution,
        entries: Sequence[Entry],
        expected_version: int,
        *,
        changed: Collection[str] | None = None,
    ) -> None:
        """Replace the execution and append ``entries``, atomically.

        One Lua script checks the stored version and seq, rewrites the record
        (not the fields ``create`` wrote), appends the entries and moves the
        execution between the indexes.

        Raises:
            ConflictError: the execution does not exist, its stored version is
                not ``expected_version``, or the entries do not continue its
                stored log; nothing was written.
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
        wake, lease = execution.wake_at, execution.lease_expires_at
        execution_id = execution.id
        encoded_id = execution_id.encode()
        previous_seq = execution.seq - len(entries)
        try:
            written = self._execute(
                (
                    b"EVALSHA",
                    _CHECKPOINT,
                    b"2",
                    self._record_prefix + encoded_id,
                    self._log_prefix + encoded_id,
                    self._prefix,
                    encoded_id,
                    b"%d" % expected_version,
                    b"%d" % previous_seq,
                    b"%d" % execution.version,
                    b"%d" % execution.seq,
                    _STATUS[execution.status],
                    _micros(execution.updated_at),
                    b"" if wake is None else _micros(wake),
                    b"" if lease is None else _micros(lease),
                    _state_text(execution),
                    self._write_id(),
                    self._ttl_ms,
                    *texts,
                )
            )
        except StoreUnavailableError as exc:
            raise StoreUnavailableError(
                f"{exc}; the checkpoint of execution {execution_id!r} was written whole or "
                "not at all (load it to see which)"
            ) from exc.__cause__
        if written == 1:
            return
        where = f"checkpoint of execution {execution_id!r}"
        code = int(written[0])
        if code == 0:
            raise ConflictError(
                f"{where}: it does not exist (deleted, expired or never created); "
                "nothing was written"
            )
        version, seq = int(written[1]), int(written[2])
        if code == -1:
            raise ConflictError(
                f"{where}: expected version {expected_version}, but the store holds version "
                f"{version} (another writer got there first); nothing was written"
            )
        raise ConflictError(
            f"{where}: entries must continue at seq {seq + 1}, got {previous_seq + 1}; "
            "nothing was written"
        )

    def entries(self, execution_id: str, *, after: int = 0) -> list[Entry]:
        """The entries with ``seq > after``, in ``seq`` order (one ``LRANGE``).

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        record_key, log_key = self._keys(execution_id)
        texts = self._execute((b"EVALSHA", _ENTRIES, b"2", record_key, log_key, b"%d" % int(after)))
        return [_entry(execution_id, text) for text in texts]

    def _query(self, index: str, limit: int, upto: bytes) -> list[Execution]:
        if limit == 0:
            return []
        key = self._prefix + index.encode()
        found, gone = self._execute(
            (b"EVALSHA", _QUERY, b"1", key, self._prefix, b"%d" % limit, upto)
        )
        if gone:
            self._prune(key, gone)
        return [_execution(*found[i : i + 3]) for i in range(0, len(found), 3)]

    def _prune(self, key: bytes, gone: Sequence[Any]) -> None:
        """Drop ids whose record expired from the indexes.

        Best effort: a query never fails because its clean-up did.
        """
        with contextlib.suppress(StoreError):
            self._execute((b"EVALSHA", _PRUNE, b"1", key, self._prefix, *gone))

    def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | str | None = None,
        limit: int = 100,
    ) -> list[Execution]:
        """Executions matching the filters, most recently updated first (ties: id descending).

        Reads one sorted-set index (``ZREVRANGE``) and the records it names.

        Raises:
            ValueError: the status is unknown, or ``limit`` is negative.
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        check_limit(limit)
        wanted = check_status(status)
        if workflow_id is None:
            index = "i:all" if wanted is None else f"i:st:{wanted.value}"
        elif wanted is None:
            index = f"i:wf:{workflow_id}"
        else:
            index = f"i:sw:{wanted.value}:{workflow_id}"
        return self._query(index, limit, b"")

    def due(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Halted executions whose ``wake_at`` is at or before ``now``, earliest first.

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
        """Delete an execution, its entries and its index entries (one script).

        Returns False if it did not exist (or expired) — also when a delete
        whose reply was lost with the connection had deleted it already.

        Raises:
            StoreUnavailableError: Redis cannot be reached.
            StoreError: Redis failed.
            FlowkitError: the store is closed.
        """
        if self._closed:
            raise self._closed_error()
        record_key, log_key = self._keys(execution_id)
        deleted = self._execute(
            (b"EVALSHA", _DELETE, b"2", record_key, log_key, self._prefix, execution_id.encode())
        )
        return bool(deleted == 1)

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
        with self._hot_lock:
            hot, self._hot = self._hot, None
        if hot is not None and self._hot_pid == os.getpid():
            self._pool.release(hot)
        if self._owns_client:
            self._client.close()

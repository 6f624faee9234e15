"""The Dramatiq driver: executions move between workers as messages, so they scale out.

A worker that receives ``flowkit_step(execution_id, seq)`` drives the execution
through consecutive sequential steps, each one a call of the same
:meth:`Engine.step` every driver uses (one checkpoint per step). The first call
drops the message unless the execution's last entry is still ``seq`` (a
duplicate or redelivered message). The worker hands the execution over through
the broker when a step needs it to: one message per parallel branch
(``flowkit_branch``) at a fan-out, a delayed message for a retry
(``flowkit_step``) or a timer (``flowkit_timer``: a sleep, an approval
timeout), nothing at a halt or at the end, and the next ``flowkit_step`` once
its time slice
(``slice_seconds``, ``slice_steps``) is used up, so that other executions get
their turn. Parallel branches join through the version-checked parallel frame
in the store, so exactly one branch sends the join's message.

Select it with ``executor="dramatiq"`` and a broker URL (``FLOWKIT_BROKER`` /
``configure(broker=...)``): ``redis://…`` for Dramatiq's RedisBroker,
``amqp://…`` for its RabbitmqBroker. Run workers with ``flowkit worker MODULE…``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import telemetry
from ..abc import Drivable, Driver
from ..adapters import optional_import
from ..config import settings
from ..definitions.workflows import import_workflows
from ..engine import Advance, Engine, Retention
from ..engine.control import cancel_requested
from ..errors import ConfigError, ConflictError
from ..records import Execution, Status

if TYPE_CHECKING:
    from dramatiq import Actor, Broker

dramatiq = optional_import("dramatiq", extra="dramatiq", purpose="the dramatiq executor")

__all__ = [
    "DEFAULT_QUEUE",
    "DramatiqDriver",
    "Runtime",
    "boot",
    "close_runtimes",
    "get_runtime",
    "make_broker",
    "run_workers",
]

log = logging.getLogger("flowkit")

DEFAULT_QUEUE = "flowkit"
#: The environment variable that names the queue (``flowkit worker --queue`` sets it).
QUEUE_VAR = "FLOWKIT_QUEUE"
#: The environment variable that sets how often workers run recover() and wake_due().
MAINTENANCE_VAR = "FLOWKIT_MAINTENANCE_SECONDS"
#: The environment variable that tells worker processes which modules to import
#: (``flowkit worker MODULE…`` sets it): the workflows they define are registered.
MODULES_VAR = "FLOWKIT_WORKER_MODULES"
# Steps have their own timeouts; Dramatiq's default 10-minute limit would kill long ones.
ACTOR_TIME_LIMIT_MS = 7 * 24 * 3600 * 1000
MAINTENANCE_SECONDS = 5.0
#: The environment variables that say how worker processes print logs (``flowkit
#: worker --log-format --log-level`` sets them; see :func:`flowkit.telemetry.configure_logging`).
LOG_FORMAT_VAR = "FLOWKIT_LOG_FORMAT"
LOG_LEVEL_VAR = "FLOWKIT_LOG_LEVEL"
#: The environment variables that bound a step message's time slice in the
#: worker processes (``flowkit worker`` passes them on).
SLICE_SECONDS_VAR = "FLOWKIT_SLICE_SECONDS"
SLICE_STEPS_VAR = "FLOWKIT_SLICE_STEPS"
# A step message drives its execution for at most this long, and at most this
# many steps, before it sends the next step's message: enough steps that the
# message's own cost (a few hundred microseconds of worker CPU, a few broker
# round trips) is small next to theirs, short enough that a long execution
# holds a worker thread no longer than a slow step would.
SLICE_SECONDS = 0.1
SLICE_STEPS = 100
# How long an idle consumer waits on the delay queue before it looks at the
# delayed messages it holds (their eta): the precision of retries and timers.
DELAY_QUEUE_WAIT = 0.1


_BROKER_OPTIONS: dict[str, Any] = {
    "heartbeat_timeout": int,
    "maintenance_chance": int,
    "dead_message_ttl": int,
    "namespace": str,
}


def make_broker(url: str) -> Broker:
    """A Dramatiq broker for ``redis://``/``rediss://`` or ``amqp://``/``amqps://`` URLs.

    Redis URLs may carry the RedisBroker's options in their query:
    ``heartbeat_timeout`` (ms without a heartbeat before a worker counts as
    dead and its unacknowledged messages go to another), ``maintenance_chance``
    (how many commands in a million look for dead workers), ``dead_message_ttl``
    (ms) and ``namespace`` (the prefix of every key, ``dramatiq`` by default),
    e.g. ``redis://host:6379/0?heartbeat_timeout=10000&maintenance_chance=10000``.

    Idle Redis consumers block on their queue (``BLMOVE``, Redis 6.2 or later;
    older servers are polled every 50 ms) instead of polling it with growing
    sleeps, so a message is picked up as soon as it is sent.

    Raises:
        ConfigError: another scheme, an option that is not an integer, or the
            broker's client library is missing.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        optional_import("redis", extra="dramatiq", purpose="the Redis broker")
        base, _, query = url.partition("?")
        options: dict[str, Any] = {}
        kept = []
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            if key in _BROKER_OPTIONS:
                try:
                    options[key] = _BROKER_OPTIONS[key](value)
                except ValueError:
                    raise ConfigError(
                        f"broker URL option {key}={value!r} must be an integer"
                    ) from None
            else:
                kept.append(pair)
        url = base + ("?" + "&".join(kept) if kept else "")
        broker: Broker = _waiting_redis_broker()(url=url, **options)
        return broker
    if scheme in ("amqp", "amqps"):
        optional_import("pika", extra="dramatiq", purpose="the RabbitMQ broker")
        rabbitmq: Broker = _rabbitmq_broker()(url=url)
        return rabbitmq
    raise ConfigError(
        f"unsupported broker URL {url!r}: use redis://host:port/db (Redis) or "
        "amqp://user:password@host:port/ (RabbitMQ)"
    )


_redis_broker_class: Any = None


def _waiting_redis_broker() -> Any:
    """Dramatiq's RedisBroker with consumers that wait for messages instead of polling.

    Dramatiq's Redis consumer sleeps between empty fetches, doubling the sleep
    up to the worker timeout (1 s), and it sleeps the same way when its
    prefetched messages fill every slot. One message per step makes that a
    delay of up to a second per step, and idle threads while acknowledged
    slots wait for the sleep to end. This consumer blocks on the queue's list
    with ``BLMOVE list list RIGHT RIGHT`` (which wakes on a push and leaves the
    list as it was), and when its slots are full, on an event set when messages
    are acknowledged; it fetches again once half the slots are free, so a busy
    worker fetches a batch per round trip rather than one message.
    """
    global _redis_broker_class
    if _redis_broker_class is not None:
        return _redis_broker_class
    import redis
    from dramatiq.broker import MessageProxy
    from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
    from dramatiq.errors import ConnectionClosed
    from dramatiq.message import Message

    class WaitingRedisConsumer(_RedisConsumer):
        def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
            super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
            self.key = f"{broker.namespace}:{queue_name}"
            self.wait = timeout / 1000
            if queue_name.endswith(".DQ"):
                self.wait = min(self.wait, DELAY_QUEUE_WAIT)
            self.freed = threading.Event()
            self.blocking = True
            # Refill when half the slots are free: the other half keeps the
            # worker threads busy meanwhile.
            self.batch = max(1, min(prefetch // 2, 64))

        def ack(self, message: MessageProxy) -> None:
            try:
                super().ack(message)  # type: ignore[no-untyped-call]
            finally:
                self.freed.set()

        def nack(self, message: MessageProxy) -> None:
            try:
                super().nack(message)  # type: ignore[no-untyped-call]
            finally:
                self.freed.set()

        def idle(self) -> None:
            """Nothing is queued: wait until something is, without taking it."""
            if self.blocking:
                try:
                    self.broker.client.blmove(self.key, self.key, self.wait, "RIGHT", "RIGHT")
                    return
                except redis.ResponseError:  # Redis before 6.2 has no BLMOVE
                    self.blocking = False
            time.sleep(min(self.wait, 0.05))

        def __next__(self) -> MessageProxy | None:
            try:
                while True:
                    if self.message_cache:
                        data = self.message_cache.pop(0)
                        if data is None:  # its hash entry is gone (see dramatiq#266)
                            continue
                        message = Message.decode(data)
                        self.queued_message_ids.add(message.message_id)
                        return MessageProxy(message)
                    free = self.prefetch - self.outstanding_message_count
                    if free < self.batch:
                        # Most slots are taken: wait until enough messages are
                        # acknowledged to fetch a batch (one round trip for many).
                        if self.freed.wait(self.wait):
                            self.freed.clear()
                        return None
                    self.message_cache = self.broker.do_fetch(self.queue_name, free)
                    if not self.message_cache:
                        self.idle()
                        return None
            except redis.ConnectionError as exc:
                raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    class WaitingRedisBroker(RedisBroker):
        def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
            return WaitingRedisConsumer(self, queue_name, prefetch, timeout)

    _redis_broker_class = WaitingRedisBroker
    return WaitingRedisBroker


_rabbitmq_broker_class: Any = None


def _rabbitmq_broker() -> Any:
    """Dramatiq's RabbitmqBroker whose delay-queue consumers look at their etas every 0.1 s.

    RabbitMQ pushes messages, so consumers never poll; but a consumer holds the
    delayed messages it received until their eta and only looks at them when
    the queue has been idle for the worker timeout (1 s), which would make a
    retry or a timer up to a second late.
    """
    global _rabbitmq_broker_class
    if _rabbitmq_broker_class is None:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        class PromptRabbitmqBroker(RabbitmqBroker):
            def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
                if queue_name.endswith(".DQ"):
                    timeout = min(timeout, int(DELAY_QUEUE_WAIT * 1000))
                return super().consume(queue_name, prefetch, timeout)

        _rabbitmq_broker_class = PromptRabbitmqBroker
    return _rabbitmq_broker_class


def _ms_until(moment: datetime, now: datetime) -> int:
    """Milliseconds from ``now`` to ``moment``, rounded up (a timer never fires early)."""
    return max(math.ceil((moment - now).total_seconds() * 1000), 0)


class Runtime:
    """A broker with flowkit's actors declared on it, and the engine workers use.

    Args:
        broker: the Dramatiq broker.
        queue: the queue flowkit's messages go to.
        priority: the actors' priority (lower runs first, as in Dramatiq).
        maintenance_seconds: how often :meth:`maintain` runs (the maintenance
            lock lasts twice as long, so a dead holder is replaced quickly).
        slice_seconds: how long one step message may drive its execution
            through consecutive steps before it sends the next step's message
            (checked after each step, so a longer step ends the slice).
        slice_steps: at most this many steps per step message (``1``: one
            message per step).
        retention: prunes finished executions from :meth:`maintain`, if given.

    Raises:
        ConfigError: ``slice_seconds`` is not a positive number, or
            ``slice_steps`` is less than 1.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        maintenance_seconds: float = MAINTENANCE_SECONDS,
        slice_seconds: float = SLICE_SECONDS,
        slice_steps: int = SLICE_STEPS,
        retention: Retention | None = None,
    ) -> None:
        self.broker = broker
        self.retention = retention
        self.queue = queue
        self.maintenance_seconds = maintenance_seconds
        self.slice_seconds = _positive_seconds(slice_seconds, "slice_seconds")
        self.slice_steps = _at_least_one(slice_steps, "slice_steps")
        options = {
            "queue_name": queue,
            "priority": priority,
            "broker": broker,
            "time_limit": ACTOR_TIME_LIMIT_MS,
            "max_retries": 20,
        }
        self.step: Actor[..., None] = dramatiq.actor(
            self._step, actor_name="flowkit_step", **options
        )
        self.branch: Actor[..., None] = dramatiq.actor(
            self._branch, actor_name="flowkit_branch", **options
        )
        self.timer: Actor[..., None] = dramatiq.actor(
            self._timer, actor_name="flowkit_timer", **options
        )
        if not any(isinstance(found, _TraceContext) for found in broker.middleware):
            broker.add_middleware(_TraceContext())
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._lock_connection: Any = None

    # --- sending --------------------------------------------------------------------------------

    def send_step(self, execution: Execution, delay: float = 0.0) -> None:
        """Send the message that runs the execution's next step."""
        self.step.send_with_options(
            args=(execution.id, execution.seq), delay=math.ceil(delay * 1000) or None
        )

    def send_timer(self, execution: Execution, now: datetime) -> None:
        """Send the delayed message that fires a halted or waiting execution's timer at
        ``wake_at``."""
        assert execution.wake_at is not None
        self.timer.send_with_options(
            args=(execution.id,), delay=_ms_until(execution.wake_at, now) or None
        )

    def follow(self, engine: Engine, advance: Advance) -> None:
        """Send what comes after a step: the next step, branches, or a timer."""
        if advance.dropped:
            return
        execution = advance.execution
        fanout = advance.fanout
        if fanout is not None:
            delay = math.ceil(advance.delay * 1000) or None
            for branch in fanout.branches:
                self.branch.send_with_options(
                    args=(execution.id, fanout.path, branch, fanout.visit, fanout.epoch),
                    delay=delay,
                )
        elif execution.status is Status.RUNNING:
            self.send_step(execution, advance.delay)
        elif execution.status in _TIMED and execution.wake_at is not None:
            self.send_timer(execution, engine.clock.now())

    # --- the actors -----------------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Make the actors use ``engine`` (by default they build one from the configuration)."""
        with self._lock:
            self._engine = engine

    def engine(self) -> Engine:
        """The engine this process's actors use (built from the configuration)."""
        with self._lock:
            if self._engine is None:
                self._engine = Engine(executor=DramatiqDriver(runtime=self))
            return self._engine

    def _step(self, execution_id: str, seq: int) -> None:
        engine = self.engine()
        advance = self.run_slice(engine, execution_id, seq)
        if advance is not None:
            self.follow(engine, advance)

    def run_slice(self, engine: Engine, execution_id: str, seq: int) -> Advance | None:
        """Drive an execution through consecutive sequential steps, one checkpoint each.

        One call of :meth:`Engine.step` with ``expected_seq=seq`` (a stale or
        duplicate message is dropped there): it claims the lease once, runs up
        to ``slice_steps`` steps, starts none after ``slice_seconds``, stops
        after a step that needs the broker (a fan-out, a retry's delay, a halt
        or wait, the end), and releases the lease with its last checkpoint;
        :meth:`follow` then sends what comes next.

        A step's own failure is recorded by the engine (a retry or a failed
        execution), so what raises is trouble with the store. Raised by the
        message's first step, it goes to Dramatiq, which retries the message;
        raised by a later step, the engine logs it and the slice ends at the
        last checkpoint, whose step message is sent next (a worker of another
        process drops it until the lease expires and ``recover()`` takes the
        execution over, as with one message per step).

        Returns:
            The last step's :class:`Advance`, or None when another process
            changed the execution first (it sends what comes next).

        Raises:
            Exception: what the message's first step raised.
        """
        try:
            return engine.step(
                execution_id,
                expected_seq=seq,
                steps=self.slice_steps,
                seconds=self.slice_seconds,
            )
        except ConflictError:
            return None  # another worker advanced it first; it sends what comes next

    def _branch(
        self, execution_id: str, path: str, branch_id: str, visit: int, epoch: int | None = None
    ) -> None:
        # epoch is None in a message of a release before epochs: any epoch then.
        engine = self.engine()
        advance = engine.run_branch(execution_id, path, branch_id, visit, epoch=epoch)
        if advance.dropped:
            if advance.running and cancel_requested(advance.execution):
                # The branches of a cancelled fan-out never join: the step ends it
                # (one message wins; the others find the execution moved on).
                self.send_step(advance.execution)
            return
        if advance.delay:  # a retry of this branch
            self.branch.send_with_options(
                args=(execution_id, path, branch_id, visit, epoch),
                delay=math.ceil(advance.delay * 1000),
            )
        elif advance.joined:
            self.send_step(advance.execution)

    def _timer(self, execution_id: str) -> None:
        engine = self.engine()
        try:
            advance = engine.fire_timer(execution_id)
        except ConflictError:
            return
        if advance.dropped:
            execution = advance.execution
            now = engine.clock.now()
            if (
                execution.status in _TIMED
                and execution.wake_at is not None
                and execution.wake_at > now
            ):
                # Early (clocks differ between machines, or it was re-armed): wait again.
                self.send_timer(execution, now)
            return
        self.follow(engine, advance)
        engine.notify_parent(advance.execution)

    def close(self) -> None:
        """Close the broker's connections and give up the maintenance lock."""
        if self._lock_connection is not None:
            with contextlib.suppress(Exception):
                self._lock_connection.close()
            self._lock_connection = None
        self.broker.close()

    # --- maintenance ----------------------------------------------------------------------------

    def maintain(self) -> None:
        """Run ``recover()`` and ``wake_due()`` (which starts due schedules) once, and
        prune when the retention is due, if this process holds the lock."""
        if not self._hold_lock():
            return
        engine = self.engine()
        # Each sweep isolates its executions; this isolates the sweeps (a store outage).
        for sweep in (engine.recover, engine.wake_due, self._prune):
            try:
                sweep()
            except Exception:
                log.exception("maintenance (%s) failed", sweep.__name__)

    def _prune(self) -> None:
        if self.retention is not None:
            engine = self.engine()
            self.retention.apply(engine.store, engine.clock.now())

    def _hold_lock(self) -> bool:
        """A lease-style lock in the broker's Redis, or an exclusive RabbitMQ queue.

        Other brokers (Dramatiq's StubBroker) are private to one process: it holds the lock.
        """
        client = getattr(self.broker, "client", None)
        if client is not None:
            namespace = getattr(self.broker, "namespace", "dramatiq")
            key = f"{namespace}:flowkit.{self.queue}.maintenance"
            me = _process_id()
            ttl = max(int(self.maintenance_seconds * 2000), 100)
            try:
                if client.set(key, me, nx=True, px=ttl):
                    return True
                holder = client.get(key)
                if holder is not None and holder.decode() == me:
                    client.pexpire(key, ttl)
                    return True
            except Exception as exc:
                log.warning("cannot take the maintenance lock: %s", exc)
            return False
        if getattr(self.broker, "parameters", None) is None:
            return True
        return self._hold_queue_lock()

    def _hold_queue_lock(self) -> bool:
        """Hold the lock while this process's exclusive queue exists (RabbitMQ).

        The broker deletes an exclusive queue when its connection closes, so the
        lock passes on when the holder dies.
        """
        pika = optional_import("pika", extra="dramatiq", purpose="the RabbitMQ broker")
        if self._lock_connection is not None:
            try:
                # Answers heartbeats; raises if the broker closed the connection.
                self._lock_connection.process_data_events(time_limit=0)
            except pika.exceptions.AMQPError:
                self._lock_connection = None
            else:
                if self._lock_connection.is_open:
                    return True
                self._lock_connection = None
        parameters = self.broker.parameters  # type: ignore[attr-defined]
        connection = None
        try:
            connection = pika.BlockingConnection(parameters)
            channel = connection.channel()
            channel.queue_declare(f"flowkit.{self.queue}.maintenance-lock", exclusive=True)
        except pika.exceptions.ChannelClosedByBroker:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()  # type: ignore[union-attr]
            return False
        except pika.exceptions.AMQPError as exc:
            log.warning("cannot take the maintenance lock: %s", exc)
            if connection is not None:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    connection.close()
            return False
        self._lock_connection = connection
        return True


#: The statuses in which an execution may have a timer (``wake_at``).
_TIMED = (Status.HALTED, Status.WAITING)


_Middleware: Any = dramatiq.Middleware


class _TraceContext(_Middleware):  # type: ignore[misc]
    """Carries the current trace context in flowkit's messages (``flowkit.telemetry``).

    A worker makes the context its message carried current while it processes
    the message, so the spans of the steps it runs link to the span that moved
    the execution on (the ``start`` or ``resume`` call), and the messages it
    sends carry the same context on.
    """

    def __init__(self) -> None:
        self._scopes = threading.local()

    def before_enqueue(self, broker: Broker, message: Any, delay: int | None) -> None:
        if message.actor_name in _ACTORS:
            found = telemetry.carrier()
            if found:  # a delayed message moved to its queue keeps what it carried
                message.options[_TRACE_OPTION] = found

    def before_process_message(self, broker: Broker, message: Any) -> None:
        scope = telemetry.attached(message.options.get(_TRACE_OPTION))
        scope.__enter__()
        self._stack().append(scope)

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        stack = self._stack()
        if stack:
            stack.pop().__exit__(None, None, None)

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        self.after_process_message(broker, message)

    def _stack(self) -> list[contextlib.AbstractContextManager[None]]:
        stack: list[contextlib.AbstractContextManager[None]] | None = getattr(
            self._scopes, "stack", None
        )
        if stack is None:
            stack = self._scopes.stack = []
        return stack


_ACTORS = frozenset({"flowkit_step", "flowkit_branch", "flowkit_timer"})
#: The message option that holds the trace context (W3C ``traceparent``, ``tracestate``).
_TRACE_OPTION = "flowkit_trace"


def _positive_seconds(value: float, name: str) -> float:
    """``value`` if it is a positive finite number of seconds.

    Raises:
        ConfigError: it is not.
    """
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not (number and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _at_least_one(value: int, name: str) -> int:
    """``value`` if it is an integer of at least 1.

    Raises:
        ConfigError: it is not.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer of at least 1, got {value!r}")
    return value


def _process_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def _queue(queue: str | None) -> str:
    return queue or os.environ.get(QUEUE_VAR) or DEFAULT_QUEUE


_runtimes: dict[tuple[str, str], Runtime] = {}
_runtimes_lock = threading.Lock()


def get_runtime(broker_url: str | None = None, *, queue: str | None = None) -> Runtime:
    """The runtime for a broker URL and queue, made once per process.

    Args:
        broker_url: the broker (default: the configured ``broker``).
        queue: the queue (default: ``FLOWKIT_QUEUE``, else ``flowkit``).

    Raises:
        ConfigError: no broker is configured, or its URL is not supported.
    """
    url = broker_url or settings().broker
    if not url:
        raise ConfigError(
            "the dramatiq executor needs a broker: set FLOWKIT_BROKER (e.g. "
            "redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672/) or "
            "flowkit.configure(broker=...)"
        )
    key = (url, _queue(queue))
    with _runtimes_lock:
        found = _runtimes.get(key)
        if found is None:
            broker = make_broker(url)
            dramatiq.set_broker(broker)
            found = _runtimes[key] = Runtime(broker, queue=key[1])
        return found


def close_runtimes() -> None:
    """Close every runtime :func:`get_runtime` made in this process (tests, shutdown)."""
    with _runtimes_lock:
        made = list(_runtimes.values())
        _runtimes.clear()
    for runtime in made:
        runtime.close()


class DramatiqDriver(Driver):
    """Sends each step as a Dramatiq message; ``start`` returns at once.

    Args:
        broker: the broker URL (default: the configured ``broker``).
        queue: the queue name (default: ``FLOWKIT_QUEUE``, else ``flowkit``).
        runtime: an existing :class:`Runtime` (workers pass theirs).

    Raises:
        ConfigError: no broker is configured, or its URL is not supported.
    """

    name = "dramatiq"
    hands_off = True

    def __init__(
        self,
        broker: str | None = None,
        *,
        queue: str | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.runtime = runtime if runtime is not None else get_runtime(broker, queue=queue)

    def dispatch(self, engine: Drivable, execution_id: str) -> None:
        self.runtime.send_step(engine.load(execution_id))

    def wake(self, engine: Drivable, execution_id: str) -> None:
        """A signal came for a waiting execution: its timer message goes out now."""
        self.runtime.timer.send(execution_id)


class _Maintenance(threading.Thread):
    def __init__(self, rt: Runtime) -> None:
        super().__init__(name="flowkit-maintenance", daemon=True)
        self.runtime = rt
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = self.runtime.maintenance_seconds
        while not self.stopped.wait(interval * random.uniform(0.8, 1.2)):
            self.runtime.maintain()


def _seconds_from(var: str, default: float) -> float:
    """The positive number of seconds in the environment variable ``var``, or ``default``.

    Raises:
        ConfigError: it is not a positive number.
    """
    text = os.environ.get(var) or str(default)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{var} must be a positive number of seconds, got {text!r}")
    return seconds


def _maintenance_seconds() -> float:
    """``FLOWKIT_MAINTENANCE_SECONDS``, or the default.

    Raises:
        ConfigError: it is not a positive number.
    """
    return _seconds_from(MAINTENANCE_VAR, MAINTENANCE_SECONDS)


def _slice() -> tuple[float, int]:
    """``FLOWKIT_SLICE_SECONDS`` and ``FLOWKIT_SLICE_STEPS``, or their defaults.

    Raises:
        ConfigError: the seconds are not a positive number, or the steps not an
            integer of at least 1.
    """
    seconds = _seconds_from(SLICE_SECONDS_VAR, SLICE_SECONDS)
    text = os.environ.get(SLICE_STEPS_VAR) or str(SLICE_STEPS)
    try:
        steps = int(text)
    except ValueError:
        steps = 0
    if steps < 1:
        raise ConfigError(f"{SLICE_STEPS_VAR} must be an integer of at least 1, got {text!r}")
    return seconds, steps


def boot() -> None:
    """Set up this worker process (Dramatiq calls it through ``flowkit worker``).

    Declares the actors on the configured broker, imports the modules named by
    ``FLOWKIT_WORKER_MODULES`` and registers the workflows they define, and
    starts the periodic ``recover()``/``wake_due()`` thread (every
    ``FLOWKIT_MAINTENANCE_SECONDS``, 5 by default), which also starts due
    schedules and applies the ``retention`` setting (at most once per
    ``retention_interval``). A step message drives its execution for at most
    ``FLOWKIT_SLICE_SECONDS`` (0.1 by default) and ``FLOWKIT_SLICE_STEPS`` steps
    (100 by default).

    Raises:
        ConfigError: no broker is configured, ``FLOWKIT_MAINTENANCE_SECONDS``
            or ``FLOWKIT_SLICE_SECONDS`` is not a positive number,
            ``FLOWKIT_SLICE_STEPS`` is not an integer of at least 1, or a
            module cannot be imported.
    """
    log_format = os.environ.get(LOG_FORMAT_VAR)
    if log_format:  # Dramatiq set up this process's logging: flowkit's format replaces it
        telemetry.configure_logging(
            log_format, os.environ.get(LOG_LEVEL_VAR) or "info", replace=True
        )
    rt = get_runtime()
    rt.maintenance_seconds = _maintenance_seconds()
    rt.retention = Retention.configured(settings())
    rt.slice_seconds, rt.slice_steps = _slice()
    modules = os.environ.get(MODULES_VAR, "")
    import_workflows(name for name in modules.split(",") if name)
    _Maintenance(rt).start()


def run_workers(
    modules: Sequence[str],
    *,
    processes: int = 1,
    threads: int = 8,
    queue: str | None = None,
    log_format: str | None = None,
    log_level: str = "info",
) -> int:
    """Start Dramatiq worker processes that import ``modules`` and run flowkit's actors.

    Args:
        modules: modules to import in every worker process (they register
            workflows and services).
        processes: worker processes.
        threads: threads per process.
        queue: the queue to consume (default: ``FLOWKIT_QUEUE``, else ``flowkit``).
        log_format: ``text`` or ``json``: how the worker processes print logs
            (see :func:`flowkit.telemetry.configure_logging`); by default, as
            Dramatiq does.
        log_level: the least severe flowkit log record they print, with ``log_format``.

    Returns:
        Dramatiq's exit code.

    Raises:
        ConfigError: no broker is configured, ``FLOWKIT_MAINTENANCE_SECONDS``
            or ``FLOWKIT_SLICE_SECONDS`` is not a positive number, or
            ``FLOWKIT_SLICE_STEPS`` is not an integer of at least 1.
    """
    if not settings().broker:
        get_runtime()  # raises the ConfigError that explains how to configure one
    _maintenance_seconds()
    _slice()
    queue = os.environ[QUEUE_VAR] = _queue(queue)
    os.environ[MODULES_VAR] = ",".join(modules)
    if log_format is not None:
        os.environ[LOG_FORMAT_VAR] = log_format
        os.environ[LOG_LEVEL_VAR] = log_level
    from dramatiq.cli import main, make_argument_parser

    args = make_argument_parser().parse_args(  # type: ignore[no-untyped-call]
        [
            "flowkit.backends.dramatiq:boot",
            *modules,
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--queues",
            queue,
            "--path",
            os.getcwd(),
        ]
    )
    code: int = main(args)  # type: ignore[no-untyped-call]
    return code

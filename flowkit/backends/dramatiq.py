"""The Dramatiq executor: every step is a message, so executions scale out on workers.

A worker that receives ``flowkit_step(execution_id, seq)`` loads the
execution, drops the message unless the execution's last entry is still
``seq`` (a duplicate or redelivered message), runs the step through the same
:meth:`Engine.step` every executor uses, checkpoints, and sends the message for
what comes next: the next step, one message per parallel branch
(``flowkit_branch``), a delayed message for a retry or an approval timeout
(``flowkit_timer``). Parallel branches join through the version-checked
parallel frame in the store, so exactly one branch sends the join's message.

Select it with ``executor="dramatiq"`` and a broker URL (``FLOWKIT_BROKER`` /
``configure(broker=...)``): ``redis://…`` for Dramatiq's RedisBroker,
``amqp://…`` for its RabbitmqBroker. Run workers with ``flowkit worker MODULE…``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._config import settings
from .._errors import ConfigError, ConflictError
from .._executors import Executor
from .._records import Execution, Status
from .._results import Advance
from .._store import optional_import

if TYPE_CHECKING:
    from dramatiq import Actor, Broker

    from .._engine import Engine

dramatiq = optional_import("dramatiq", extra="dramatiq", purpose="the dramatiq executor")

__all__ = ["DramatiqExecutor", "Runtime", "boot", "get_runtime", "make_broker", "run_workers"]

log = logging.getLogger("flowkit")

DEFAULT_QUEUE = "flowkit"
# Steps have their own timeouts; Dramatiq's default 10-minute limit would kill long ones.
ACTOR_TIME_LIMIT_MS = 7 * 24 * 3600 * 1000
MAINTENANCE_SECONDS = 5.0


_BROKER_OPTIONS = {"heartbeat_timeout": int, "maintenance_chance": int, "dead_message_ttl": int}


def make_broker(url: str) -> Broker:
    """A Dramatiq broker for ``redis://``/``rediss://`` or ``amqp://``/``amqps://`` URLs.

    Redis URLs may carry the RedisBroker's tuning in their query, e.g.
    ``?heartbeat_timeout=10000&maintenance_chance=10`` (how soon the messages
    of a dead worker are given to another).

    Raises:
        ConfigError: another scheme, or the broker's client library is missing.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        optional_import("redis", extra="dramatiq", purpose="the Redis broker")
        from dramatiq.brokers.redis import RedisBroker

        base, _, query = url.partition("?")
        options: dict[str, Any] = {}
        kept = []
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            if key in _BROKER_OPTIONS:
                options[key] = _BROKER_OPTIONS[key](value)
            else:
                kept.append(pair)
        url = base + ("?" + "&".join(kept) if kept else "")
        return RedisBroker(url=url, **options)  # type: ignore[no-untyped-call]
    if scheme in ("amqp", "amqps"):
        optional_import("pika", extra="dramatiq", purpose="the RabbitMQ broker")
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise ConfigError(
        f"unsupported broker URL {url!r}: use redis://host:port/db (Redis) or "
        "amqp://user:password@host:port/ (RabbitMQ)"
    )


def _ms_until(moment: datetime, now: datetime) -> int:
    return max(int((moment - now).total_seconds() * 1000), 0)


class Runtime:
    """A broker with flowkit's actors declared on it, and the engine workers use.

    Args:
        broker: the Dramatiq broker.
        queue: the queue flowkit's messages go to.
        priority: the actors' priority (lower runs first, as in Dramatiq).
    """

    def __init__(self, broker: Broker, *, queue: str = DEFAULT_QUEUE, priority: int = 0) -> None:
        self.broker = broker
        self.queue = queue
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
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    # --- sending --------------------------------------------------------------------------------

    def send_step(self, execution: Execution, delay: float = 0.0) -> None:
        """Send the message that runs the execution's next step."""
        self.step.send_with_options(args=(execution.id, execution.seq), delay=int(delay * 1000))

    def follow(self, engine: Engine, advance: Advance) -> None:
        """Send what comes after a step: the next step, branches, or a timer."""
        if advance.dropped:
            return
        execution = advance.execution
        if advance.branches:
            from .._engine import _parallel_position

            path, frame = _parallel_position(engine.definition_of(execution), execution)
            for branch in advance.branches:
                self.branch.send_with_options(
                    args=(execution.id, path, branch, frame["start"]),
                    delay=int(advance.delay * 1000),
                )
        elif execution.status is Status.RUNNING:
            self.send_step(execution, advance.delay)
        elif execution.status is Status.HALTED and execution.wake_at is not None:
            delay = _ms_until(execution.wake_at, engine.clock.now())
            self.timer.send_with_options(args=(execution.id,), delay=delay)

    # --- the actors -----------------------------------------------------------------------------

    def engine(self) -> Engine:
        """The engine this process's actors use (built from the configuration)."""
        with self._lock:
            if self._engine is None:
                from .._engine import Engine

                self._engine = Engine(executor=DramatiqExecutor(runtime=self))
            return self._engine

    def _step(self, execution_id: str, seq: int) -> None:
        engine = self.engine()
        try:
            advance = engine.step(execution_id, expected_seq=seq)
        except ConflictError:
            return  # another worker advanced it first; it sends what comes next
        self.follow(engine, advance)

    def _branch(self, execution_id: str, path: str, branch_id: str, visit: int) -> None:
        engine = self.engine()
        advance = engine.run_branch(execution_id, path, branch_id, visit)
        if advance.dropped:
            return
        frames = advance.execution.cursor.get("frames") or [{}]
        if advance.delay:  # a retry of this branch
            self.branch.send_with_options(
                args=(execution_id, path, branch_id, visit), delay=int(advance.delay * 1000)
            )
        elif "joined" in frames[-1]:
            self.send_step(advance.execution)

    def _timer(self, execution_id: str) -> None:
        engine = self.engine()
        try:
            advance = engine.fire_timer(execution_id)
        except ConflictError:
            return
        if advance.dropped:
            return
        self.follow(engine, advance)
        engine.notify_parent(advance.execution)

    # --- maintenance ----------------------------------------------------------------------------

    def maintain(self) -> None:
        """Run ``recover()`` and ``wake_due()`` once, if this process holds the lock."""
        if not self._hold_lock():
            return
        engine = self.engine()
        try:
            engine.recover()
            engine.wake_due()
        except Exception:
            log.exception("flowkit: maintenance (recover, wake_due) failed")

    def _hold_lock(self) -> bool:
        """A lease-style lock in the broker's Redis, or an exclusive RabbitMQ queue."""
        client = getattr(self.broker, "client", None)
        if client is not None:
            key = f"flowkit:{self.queue}:maintenance"
            me = _process_id()
            ttl = int(MAINTENANCE_SECONDS * 2000)
            if client.set(key, me, nx=True, px=ttl):
                return True
            holder = client.get(key)
            if holder is not None and holder.decode() == me:
                client.pexpire(key, ttl)
                return True
            return False
        return self._hold_queue_lock()

    _lock_connection: Any = None

    def _hold_queue_lock(self) -> bool:
        if self._lock_connection is not None and self._lock_connection.is_open:
            return True
        pika = optional_import("pika", extra="dramatiq", purpose="the RabbitMQ broker")
        parameters = getattr(self.broker, "parameters", None) or [pika.ConnectionParameters()]
        try:
            connection = pika.BlockingConnection(parameters)
            channel = connection.channel()
            channel.queue_declare(f"flowkit.{self.queue}.maintenance-lock", exclusive=True)
        except pika.exceptions.ChannelClosedByBroker:
            connection.close()
            return False
        except pika.exceptions.AMQPError as exc:
            log.warning("flowkit: cannot take the maintenance lock: %s", exc)
            return False
        self._lock_connection = connection
        return True


def _process_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


_runtimes: dict[tuple[str, str], Runtime] = {}
_runtimes_lock = threading.Lock()


def get_runtime(broker_url: str | None = None, *, queue: str = DEFAULT_QUEUE) -> Runtime:
    """The runtime for a broker URL (default: the configured broker), made once per process.

    Raises:
        ConfigError: no broker is configured.
    """
    url = broker_url or settings().broker
    if not url:
        raise ConfigError(
            "the dramatiq executor needs a broker: set FLOWKIT_BROKER (e.g. "
            "redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672/) or "
            "flowkit.configure(broker=...)"
        )
    key = (url, queue)
    with _runtimes_lock:
        found = _runtimes.get(key)
        if found is None:
            broker = make_broker(url)
            dramatiq.set_broker(broker)
            found = _runtimes[key] = Runtime(broker, queue=queue)
        return found


class DramatiqExecutor(Executor):
    """Sends each step as a Dramatiq message; ``start`` returns at once.

    Args:
        broker: the broker URL (default: the configured ``broker``).
        queue: the queue name.
        runtime: an existing :class:`Runtime` (workers pass theirs).
    """

    name = "dramatiq"

    def __init__(
        self,
        broker: str | None = None,
        *,
        queue: str = DEFAULT_QUEUE,
        runtime: Runtime | None = None,
    ) -> None:
        self.runtime = runtime if runtime is not None else get_runtime(broker, queue=queue)

    def dispatch(self, engine: Engine, execution_id: str) -> None:
        execution = engine.load(execution_id)
        self.runtime.send_step(execution)


class _Maintenance(threading.Thread):
    def __init__(self, rt: Runtime, interval: float) -> None:
        super().__init__(name="flowkit-maintenance", daemon=True)
        self.runtime = rt
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval * random.uniform(0.8, 1.2)):
            self.runtime.maintain()


def boot() -> None:
    """Set up this worker process (Dramatiq calls it through ``flowkit worker``).

    Declares the actors on the configured broker and starts the periodic
    ``recover()``/``wake_due()`` thread.
    """
    queue = os.environ.get("FLOWKIT_QUEUE", DEFAULT_QUEUE)
    rt = get_runtime(queue=queue)
    interval = float(os.environ.get("FLOWKIT_MAINTENANCE_SECONDS", MAINTENANCE_SECONDS))
    _Maintenance(rt, interval).start()


def run_workers(
    modules: Sequence[str],
    *,
    processes: int = 1,
    threads: int = 8,
    queue: str = DEFAULT_QUEUE,
) -> int:
    """Start Dramatiq worker processes that import ``modules`` and run flowkit's actors.

    Returns:
        Dramatiq's exit code.

    Raises:
        ConfigError: no broker is configured.
    """
    if not settings().broker:
        get_runtime()  # raises the ConfigError that explains how to configure one
    os.environ["FLOWKIT_QUEUE"] = queue
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

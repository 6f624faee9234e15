"""A test's distributed setup: real ``flowkit worker`` processes, a live broker, PostgreSQL.

Every :class:`Cluster` has its own queue name, its own Redis key namespace, its
own table prefix and its own directory for the services' call log; ``close``
stops every worker process it started and deletes all of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import pytest
import redis

import flowkit
from flowkit.backends import dramatiq as fk_dramatiq
from tests.backends.sql_helpers import POSTGRESQL_URL, scratch_store, unique_prefix, with_prefix
from tests.distributed import flows

ROOT = Path(__file__).resolve().parents[2]
FLOWKIT = str(Path(sys.executable).parent / "flowkit")

#: The live servers (loopback only); override with these variables.
REDIS_BROKER_URL = os.environ.get("FLOWKIT_TEST_REDIS_BROKER_URL", "redis://127.0.0.1:6379/12")
RABBITMQ_URL = os.environ.get("FLOWKIT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

#: Short enough that a killed worker's execution is recovered within seconds.
LEASE_SECONDS = 2.0
MAINTENANCE_SECONDS = 0.5
#: The workers' time slice, in seconds (steps: the default, 100).
SLICE_SECONDS = 60.0
#: How long a test waits for something the workers do.
DEADLINE = 60.0


def wait_for(
    condition: Callable[[], Any], what: str, timeout: float = DEADLINE, pause: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)


class WorkerGroup:
    """One ``flowkit worker`` command (Dramatiq's main process and its workers)."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, processes: int) -> None:
        self.log = log
        self.processes = processes
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM Dramatiq's main process (it stops its workers), then SIGKILL the group."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole group at once: the end of a test needs no graceful stop (its
        queues, keys and tables go next), and a graceful one takes seconds."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = DEADLINE) -> None:
        """Wait until every worker process said it is ready (Dramatiq logs it)."""

        def ready() -> bool:
            if self.process.poll() is not None:
                code = self.process.returncode
                pytest.fail(f"flowkit worker exited with {code}:\n{self.output()}")
            return self.output().count("is ready for action") >= self.processes

        wait_for(ready, "the worker processes to start", timeout, pause=0.05)


class Cluster:
    """A broker, a store, a queue, a test directory, and the workers started on them."""

    def __init__(self, broker: str, directory: Path) -> None:
        self.broker = broker
        self.directory = directory
        tag = uuid.uuid4().hex[:10]
        self.queue = f"fkt-{tag}"
        if broker == "redis":
            self.namespace = f"fkt-{tag}"
            self.broker_url = (
                f"{REDIS_BROKER_URL}?namespace={self.namespace}"
                "&heartbeat_timeout=5000&maintenance_chance=100000"
            )
        else:
            self.namespace = ""
            self.broker_url = RABBITMQ_URL
        self.prefix = unique_prefix()
        self.store_url = with_prefix(POSTGRESQL_URL, self.prefix)
        self.groups: list[WorkerGroup] = []
        broker = fk_dramatiq.make_broker(self.broker_url)
        self.runtime = fk_dramatiq.Runtime(broker, queue=self.queue)
        self.store = scratch_store(POSTGRESQL_URL, prefix=self.prefix)  # dropped on close
        self.engine = flowkit.Engine(
            store=self.store,
            executor=fk_dramatiq.DramatiqDriver(runtime=self.runtime),
            lease_seconds=LEASE_SECONDS,
        )

    @property
    def env(self) -> dict[str, str]:
        """The environment of the worker processes (and of ``flowkit.configure``'s twin)."""
        return {
            **os.environ,
            "FLOWKIT_STORE": self.store_url,
            "FLOWKIT_BROKER": self.broker_url,
            "FLOWKIT_EXECUTOR": "dramatiq",
            "FLOWKIT_QUEUE": self.queue,
            "FLOWKIT_LEASE_SECONDS": str(LEASE_SECONDS),
            "FLOWKIT_MAINTENANCE_SECONDS": str(MAINTENANCE_SECONDS),
            # A slice ends by its steps (or a hand-over), never by how busy the machine
            # is, so the tests count messages exactly.
            fk_dramatiq.SLICE_SECONDS_VAR: str(SLICE_SECONDS),
            flows.TEST_DIR: str(self.directory),
            "PYTHONPATH": str(ROOT),
        }

    def start_workers(
        self,
        *,
        processes: int = 1,
        threads: int = 4,
        maintenance: float = MAINTENANCE_SECONDS,
        ready: bool = True,
        env: dict[str, str] | None = None,
    ) -> WorkerGroup:
        """Start ``flowkit worker tests.distributed.flows`` on this cluster's queue.

        With ``ready``, return once its worker processes are ready for messages;
        ``env`` adds to their environment (e.g. ``FLOWKIT_SLICE_STEPS``).
        """
        env = {**self.env, "FLOWKIT_MAINTENANCE_SECONDS": str(maintenance), **(env or {})}
        command = [
            FLOWKIT,
            "worker",
            "tests.distributed.flows",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--queue",
            self.queue,
        ]
        log = self.directory / f"worker-{len(self.groups)}.log"
        group = WorkerGroup(command, env, log, processes)
        self.groups.append(group)
        if ready:
            group.wait_ready()
        return group

    def entries(self, execution_id: str) -> list[flowkit.Entry]:
        return list(self.engine.store.entries(execution_id))

    def calls(self) -> Counter[tuple[str, str]]:
        """How many times each (step, execution id) ran."""
        return flows.calls(self.directory)

    def messages(self, execution_id: str) -> Counter[str]:
        """How many messages of each actor the workers processed for an execution."""
        return Counter(
            {
                actor: count
                for (actor, of), count in flows.messages(self.directory).items()
                if of == execution_id
            }
        )

    def assert_messages(self, execution_id: str, expected: dict[str, int]) -> None:
        """The workers processed ``expected`` messages (by actor) for an execution, and
        no more. A message is noted after its actor returned, so after its checkpoint:
        wait a little for the last one."""
        deadline = time.monotonic() + 10
        while (found := self.messages(execution_id)) != Counter(expected):
            if time.monotonic() > deadline:
                pytest.fail(f"messages of {execution_id}: {dict(found)}, expected {expected}")
            time.sleep(0.05)
        time.sleep(0.2)
        assert self.messages(execution_id) == Counter(expected)

    def pids(self, step: str | None = None) -> set[int]:
        """The processes that ran calls (of ``step``)."""
        return {pid for name, _, pid in flows.call_log(self.directory) if step in (None, name)}

    def wait_finished(self, execution_id: str, timeout: float = DEADLINE) -> flowkit.Execution:
        """Poll the store until the execution completed or failed (not just halted)."""

        def finished() -> flowkit.Execution | None:
            execution = self.engine.load(execution_id)
            return execution if execution.status.finished else None

        found: flowkit.Execution = wait_for(finished, f"{execution_id} to finish", timeout)
        return found

    def close(self) -> None:
        """Stop every worker, then delete the queues, the keys and the tables."""
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(self.store.close)  # drops the tables
            if self.broker == "redis":
                cleanup.callback(_delete_redis_keys, self.namespace)
            else:
                cleanup.callback(_delete_rabbitmq_queues, self.queue)
            cleanup.callback(self.runtime.close)
            cleanup.callback(self.engine.close)
            for group in self.groups:
                cleanup.callback(group.kill)

    def logs(self) -> str:
        return "\n".join(f"--- {group.log.name}\n{group.output()[-6000:]}" for group in self.groups)


def _delete_redis_keys(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_BROKER_URL)
    try:
        keys = [*client.scan_iter(match=f"{namespace}:*", count=1000)]  # the lock too
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def _delete_rabbitmq_queues(queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ", f"flowkit.{queue}.maintenance-lock"):
            channel = connection.channel()
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                channel.queue_delete(name)
            if channel.is_open:
                channel.close()
    finally:
        connection.close()

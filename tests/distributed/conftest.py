"""Fixtures of the distributed tests: a ``cluster`` per test, on each live broker.

The ``cluster`` fixture is parametrized over the brokers: Redis (marker
``dramatiq_redis``) and RabbitMQ (marker ``dramatiq_rabbitmq``), so
``pytest -m dramatiq_redis`` runs one. Workers are started by the tests and
always stopped, also when a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flowkit
from flowkit.backends import dramatiq as fk_dramatiq
from flowkit.config import reset
from tests.distributed.cluster import LEASE_SECONDS, Cluster

BROKERS = {"redis": pytest.mark.dramatiq_redis, "rabbitmq": pytest.mark.dramatiq_rabbitmq}


@pytest.fixture(params=[pytest.param(name, marks=mark, id=name) for name, mark in BROKERS.items()])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Workers are started by the test (``cluster.start_workers()``) and always stopped."""
    made = Cluster(request.param, tmp_path)
    try:
        yield made
    finally:
        logs = made.logs()
        made.close()
        # Shown by pytest when the test failed.
        print(logs)


@pytest.fixture
def configured(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """The test process configured like the workers: ``flowkit.run``/``resume`` use the queue."""
    monkeypatch.setenv(fk_dramatiq.QUEUE_VAR, cluster.queue)
    flowkit.configure(
        store=cluster.store_url,
        executor="dramatiq",
        broker=cluster.broker_url,
        lease_seconds=LEASE_SECONDS,
    )
    try:
        yield cluster
    finally:
        reset()
        fk_dramatiq.close_runtimes()

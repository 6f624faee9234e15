"""``flowkit worker --log-format json``: real worker processes print one JSON object per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import flowkit
from tests.distributed import flows
from tests.distributed.cluster import FLOWKIT, Cluster, WorkerGroup, wait_for

pytestmark = [pytest.mark.dramatiq_redis, pytest.mark.timeout(120)]


def _worker(cluster: Cluster, tmp_path: Path, *options: str) -> WorkerGroup:
    """One worker process of two threads, printing JSON lines, started and ready."""
    command = [
        *(FLOWKIT, "worker", "tests.distributed.flows"),
        *("--processes", "1", "--threads", "2", "--queue", cluster.queue),
        *("--log-format", "json", *options),
    ]
    group = WorkerGroup(command, cluster.env, tmp_path / "worker.log", processes=1)
    cluster.groups.append(group)
    group.wait_ready()
    return group


def test_worker_processes_print_each_step_as_a_json_line(tmp_path: Path) -> None:
    cluster = Cluster("redis", tmp_path)
    engine = cluster.engine
    try:
        group = _worker(cluster, tmp_path, "--log-level", "debug")
        execution_id = engine.start(flows.CHAIN).execution_id
        steps = ["start", *(f"s{i}" for i in range(flows.CHAIN_STEPS))]

        def logged() -> list[dict[str, Any]]:
            lines = [json.loads(line) for line in group.output().splitlines() if line[:1] == "{"]
            found = [line for line in lines if line.get("execution_id") == execution_id]
            finished = [line for line in found if line["level"] == "info"]
            return found if len(finished) == len(steps) else []

        found = wait_for(logged, "the worker's step logs")
        assert [(line["level"], line["step_id"]) for line in found] == [
            (level, step) for step in steps for level in ("debug", "info")
        ]
        for line in found:
            assert line["workflow_id"] == "dist_chain"
            assert line["attempt"] == 1
            assert line["logger"] == "flowkit.steps"
            assert isinstance(line["process"], int)
        assert engine.load(execution_id).status is flowkit.Status.COMPLETED
    finally:
        print(cluster.logs())
        cluster.close()


def test_by_default_a_worker_logs_a_failed_step_and_not_the_others(tmp_path: Path) -> None:
    # A line per step would cost a worker about as much CPU as the step itself.
    cluster = Cluster("redis", tmp_path)
    engine = cluster.engine
    try:
        group = _worker(cluster, tmp_path)
        execution_id = engine.start(flows.BROKEN).execution_id

        def logged() -> list[dict[str, Any]]:
            lines = [json.loads(line) for line in group.output().splitlines() if line[:1] == "{"]
            found = [line for line in lines if line.get("execution_id") == execution_id]
            return found if engine.load(execution_id).status is flowkit.Status.FAILED else []

        found = wait_for(logged, "the failed step's log line")
        assert [(line["level"], line["step_id"], line["action"]) for line in found] == [
            ("warning", "broken", "failed")
        ]
    finally:
        print(cluster.logs())
        cluster.close()

"""One trace across a halt and a resume in another process, on every store that keeps it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowkit
from tests.backends import redis_helpers, sql_helpers
from tests.telemetry.conftest import Spans
from tests.telemetry.elsewhere import APPROVAL

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store two processes can open; emptied afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    if request.param == "redis":
        scratch = redis_helpers.scratch_store()
        url = f"{redis_helpers.REDIS_URL}?prefix={scratch.prefix}"
    else:
        servers = {"postgresql": sql_helpers.POSTGRESQL_URL, "mysql": sql_helpers.MYSQL_URL}
        prefix = sql_helpers.unique_prefix()
        scratch = sql_helpers.scratch_store(servers[request.param], prefix=prefix)
        url = sql_helpers.with_prefix(servers[request.param], prefix)
    try:
        yield url
    finally:
        scratch.close()  # drops its tables or keys


def _trace_and_span(traceparent: str | None) -> tuple[int, int]:
    assert traceparent is not None
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def test_a_trace_spans_a_halt_and_a_resume_in_another_process(store_url: str, spans: Spans) -> None:
    with flowkit.Engine(store=store_url, executor="inline") as engine:
        halted = engine.run(APPROVAL, {})
        assert halted.halted
        trace_id, root_id = _trace_and_span(engine.load(halted.execution_id).traceparent)
    here = [span.name for span in spans.steps()]
    assert here == ["flowkit.step start", "flowkit.step before", "flowkit.step ask"]
    ran = subprocess.run(
        [sys.executable, "-m", "tests.telemetry.elsewhere", store_url, halted.execution_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    there = json.loads(ran.stdout)
    assert there["status"] == "completed"
    assert [span["name"] for span in there["spans"]] == ["flowkit.step ask", "flowkit.step after"]
    for span in there["spans"]:
        assert span["trace_id"] == trace_id
        assert span["parent_id"] == root_id
        assert span["links"] == 0

"""SIGKILL a process between two agent turns; recover in this process; no model call repeats.

The child runs an agent on a SQLite file. Its first model reply asks for two
tool calls: ``lookup`` finishes (and is checkpointed), ``wait`` blocks. The
test kills the child while it blocks, then recovers the execution here with a
scripted provider that logs to the same file: the log must hold exactly one
call from the child and one from this process, the second continuing the
first's conversation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import flowkit
import flowkit.ai as ai
from flowkit.ai import ScriptedProvider, reply
from flowkit.definitions import WorkflowRegistry
from flowkit.testing import FakeClock

from .crash_worker import WORKFLOW, Work

WORKER = Path(__file__).with_name("crash_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.mark.timeout(120)
def test_a_killed_agent_resumes_without_repeating_a_model_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {**os.environ, "CRASH_WORKER_BLOCK": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(WORKER), url, "ex-crash", str(tmp_path)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "blocked").exists():
            if child.poll() is not None:
                _, err = child.communicate()
                pytest.fail(f"the worker exited early ({child.returncode}): {err.decode()}")
            if time.monotonic() > deadline:
                pytest.fail("the worker never reached its blocking tool call")
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL

    store = flowkit.connect(url)
    engine = None
    try:
        record = store.load("ex-crash")
        assert record is not None
        assert record.status is flowkit.Status.RUNNING
        state = record.cursor["state"]
        assert state["turns"] == 1
        assert [m["role"] for m in state["messages"]] == ["user", "assistant", "tool"]

        # Recover here, later than the dead worker's lease.
        services = flowkit.ServiceRegistry()
        services.register("Work", Work(tmp_path, block=False))
        clock = FakeClock(start=datetime.now(UTC) + timedelta(hours=1))
        workflows = WorkflowRegistry()
        workflows.register(flowkit.load(WORKFLOW))
        engine = flowkit.Engine(store=store, services=services, workflows=workflows, clock=clock)
        provider = ScriptedProvider([reply("A-1 has shipped.")], log=tmp_path / "model_calls.jsonl")
        ai.set_provider(provider, engine=engine)
        [result] = engine.recover()
        assert result.completed, result.error
        assert engine.load("ex-crash").ctx["answer"] == "A-1 has shipped."
    finally:
        if engine is not None:
            engine.close()
        store.close()

    calls = _lines(tmp_path / "model_calls.jsonl")
    assert [call["pid"] for call in calls] == [child.pid, os.getpid()]  # one each, none repeated
    first, second = (call["messages"] for call in calls)
    assert first == [{"role": "user", "content": "Order A-1"}]
    assert second[: len(first)] == first
    assert [m["role"] for m in second] == ["user", "assistant", "tool", "tool"]
    assert second[3] == {"role": "tool", "tool_call_id": "c2", "content": "waited"}

    tools = _lines(tmp_path / "tool_calls.jsonl")
    # lookup finished before the crash and is not run again; wait was in flight and runs
    # again (at least once), with the same idempotency key.
    assert [(t["tool"], t["pid"]) for t in tools] == [
        ("lookup", child.pid),
        ("wait", child.pid),
        ("wait", os.getpid()),
    ]
    assert tools[1]["key"] == tools[2]["key"]

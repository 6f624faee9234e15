"""Executors: the thread executor returns at once; handles wait, report status and time out."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import flowkit
from flowkit import Status

from .conftest import EngineFactory
from .helpers import workflow


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def _blocking(services: flowkit.ServiceRegistry, release: threading.Event) -> threading.Event:
    entered = threading.Event()

    def block() -> str:
        entered.set()
        assert release.wait(10)
        return "released"

    services.register("S", {"block": block})
    return entered


def _wf() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "b"},
        {
            "id": "b",
            "type": "call",
            "service": "S",
            "method": "block",
            "output": "out",
            "next": "done",
        },
        {"id": "done", "type": "end", "result": "$out"},
    )


def test_thread_executor_start_returns_at_once(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, release: threading.Event
) -> None:
    entered = _blocking(services, release)
    engine = make_engine(executor="thread")
    assert isinstance(engine.driver, flowkit.ThreadDriver)
    handle = engine.start(_wf(), execution_id="t1")
    assert handle.execution_id == "t1"
    assert handle.status() in (Status.PENDING, Status.RUNNING)
    assert entered.wait(5)
    assert handle.status() is Status.RUNNING
    with pytest.raises(TimeoutError, match=r"'t1' is still running after 0\.05s"):
        handle.result(timeout=0.05)
    release.set()
    result = handle.result(timeout=5)
    assert result.completed
    assert result.output == "released"
    assert handle.status() is Status.COMPLETED


def test_run_with_a_timeout_on_the_thread_executor(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, release: threading.Event
) -> None:
    _blocking(services, release)
    engine = make_engine(executor="thread")
    with pytest.raises(TimeoutError):
        engine.run(_wf(), timeout=0.05)
    release.set()


def test_inline_executor_start_runs_to_the_end(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, release: threading.Event
) -> None:
    release.set()
    _blocking(services, release)
    engine = make_engine(executor="inline")
    handle = engine.start(_wf())
    assert handle.status() is Status.COMPLETED
    assert handle.result(timeout=0).output == "released"


def test_thread_executor_resume_runs_in_the_background(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, release: threading.Event
) -> None:
    entered = _blocking(services, release)
    engine = make_engine(executor=flowkit.ThreadDriver(max_workers=2))
    wf = workflow(
        {"id": "start", "type": "start", "next": "ask"},
        {"id": "ask", "type": "approval", "prompt": "go?", "next": "b"},
        {"id": "b", "type": "call", "service": "S", "method": "block", "output": "out"},
    )
    halted = engine.start(wf).result(timeout=5)
    assert halted.halted
    release.set()
    result = engine.resume(halted.execution_id, approved=True)
    assert entered.is_set()
    assert result.completed
    assert engine.load(halted.execution_id).ctx["out"] == "released"


def test_several_executions_run_side_by_side(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry
) -> None:
    barrier = threading.Barrier(3, timeout=5)
    services.register("S", {"block": lambda: barrier.wait()})
    engine = make_engine(executor=flowkit.ThreadDriver(max_workers=3))
    handles = [engine.start(_wf()) for _ in range(3)]
    results = [h.result(timeout=10) for h in handles]
    assert all(r.completed for r in results), [r.error for r in results]


def test_an_unknown_executor_name_is_a_config_error(make_engine: EngineFactory) -> None:
    with pytest.raises(flowkit.ConfigError):
        make_engine(executor="no-such-executor")

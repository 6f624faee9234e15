"""The async API: run_async, resume_async and result_async never block the event loop,
give what their sync twins give, and a cancelled await leaves the execution running."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs
import pytest

import flowkit
from flowkit.abc import Drivable
from flowkit.config import ENV_VARS, reset

from .conftest import EngineFactory
from .helpers import log, workflow


class BackgroundDriver(flowkit.Driver):
    """Drives each execution on a thread of its own and returns no future, as a queue
    does: waiting for a result polls the store."""

    name = "background"

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def dispatch(self, engine: Drivable, execution_id: str) -> Future[Any] | None:
        thread = threading.Thread(target=engine.drive, args=(execution_id,))
        thread.start()
        self.threads.append(thread)
        return None

    def close(self) -> None:
        for thread in self.threads:
            thread.join()


DRIVERS: dict[str, Callable[[], flowkit.Driver]] = {
    "inline": flowkit.InlineDriver,
    "thread": flowkit.ThreadDriver,
    "background": BackgroundDriver,
}
every_driver = pytest.mark.parametrize("driver", list(DRIVERS))


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def entered(services: flowkit.ServiceRegistry, release: threading.Event) -> threading.Event:
    """Service ``S.block``: sets the event returned, then waits for ``release``."""
    event = threading.Event()

    def block() -> str:
        event.set()
        assert release.wait(10), "nothing released the service: was the event loop blocked?"
        return "released"

    services.register("S", {"block": block})
    return event


def _blocking_wf() -> flowkit.WorkflowDef:
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


def _greet_wf() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "greet"},
        {
            "id": "greet",
            "type": "assign",
            "set": {"greeting": "Hello, $input.name!"},
            "next": "done",
        },
        {"id": "done", "type": "end", "result": "$greeting"},
        inputs={"name": {"type": "string"}},
    )


def _approval_wf() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "ask"},
        {"id": "ask", "type": "approval", "prompt": "Ship it?", "next": "done"},
        {"id": "done", "type": "end", "result": "$response"},
        id="ship",
    )


# --- same arguments, same results ----------------------------------------------------------------


@every_driver
def test_run_async_gives_what_run_gives(make_engine: EngineFactory, driver: str) -> None:
    engine = make_engine(executor=DRIVERS[driver]())
    expected = engine.run(_greet_wf(), {"name": "Ada"}, execution_id="sync", timeout=10)

    result = asyncio.run(
        engine.run_async(_greet_wf(), {"name": "Ada"}, execution_id="async", timeout=10)
    )

    assert result == attrs.evolve(expected, execution_id="async")
    assert result.output == "Hello, Ada!"
    assert log(engine, "async") == log(engine, "sync")


@every_driver
def test_resume_async_gives_what_resume_gives(make_engine: EngineFactory, driver: str) -> None:
    engine = make_engine(executor=DRIVERS[driver]())

    async def main() -> tuple[flowkit.Result, flowkit.Result]:
        halted = await engine.run_async(_approval_wf(), execution_id="s-1", timeout=10)
        done = await engine.resume_async("s-1", approved=True, response="yes", by="ana")
        return halted, done

    halted, done = asyncio.run(main())

    assert halted.halted
    assert halted.halt is not None
    assert halted.halt.prompt == "Ship it?"
    assert done.completed
    assert done.output == "yes"
    assert log(engine, "s-1") == [
        ("start", "completed"),
        ("ask", "halted"),
        ("ask", "resumed"),
        ("done", "completed"),
    ]


def test_the_async_twins_raise_what_the_sync_ones_raise(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.run(_approval_wf(), execution_id="s-1")
    engine.resume("s-1", approved=True)

    with pytest.raises(flowkit.ValidationError) as invalid:
        asyncio.run(engine.run_async(_greet_wf(), {"name": 3}))
    assert invalid.value.problems == ["input 'name' must be of type string, got int 3"]
    with pytest.raises(flowkit.ConflictError):
        asyncio.run(engine.run_async(_approval_wf(), execution_id="s-1"))
    with pytest.raises(flowkit.ExecutionError) as refused:
        asyncio.run(engine.resume_async("s-1", approved=True))
    assert str(refused.value) == "execution 's-1' is completed and cannot be resumed"
    with pytest.raises(flowkit.NotFoundError) as missing:
        asyncio.run(engine.resume_async("nope", approved=True))
    assert str(missing.value) == "no execution 'nope' in the store"


def test_run_async_times_out_like_run(
    make_engine: EngineFactory, entered: threading.Event, release: threading.Event
) -> None:
    engine = make_engine(executor="thread")

    with pytest.raises(TimeoutError) as caught:
        asyncio.run(engine.run_async(_blocking_wf(), execution_id="t-1", timeout=0.05))

    assert str(caught.value) == "execution 't-1' is still running after 0.05s, at step 'b'"
    release.set()
    assert engine.wait("t-1", timeout=10).completed


# --- the event loop is never blocked -------------------------------------------------------------


@every_driver
def test_the_loop_runs_while_a_step_runs(
    make_engine: EngineFactory, driver: str, entered: threading.Event, release: threading.Event
) -> None:
    engine = make_engine(executor=DRIVERS[driver]())

    async def main() -> flowkit.Result:
        running = asyncio.create_task(engine.run_async(_blocking_wf()))
        assert await asyncio.to_thread(entered.wait, 10)
        # The service is running and waits for this coroutine: only a free loop gets here.
        release.set()
        return await running

    result = asyncio.run(main())

    assert result.completed, result.error
    assert result.output == "released"


@every_driver
def test_the_loop_runs_while_a_resumed_step_runs(
    make_engine: EngineFactory, driver: str, entered: threading.Event, release: threading.Event
) -> None:
    engine = make_engine(executor=DRIVERS[driver]())
    wf = workflow(
        {"id": "start", "type": "start", "next": "ask"},
        {"id": "ask", "type": "approval", "prompt": "Go?", "next": "b"},
        {"id": "b", "type": "call", "service": "S", "method": "block", "output": "out"},
    )
    engine.run(wf, execution_id="r-1", timeout=10)

    async def main() -> flowkit.Result:
        running = asyncio.create_task(engine.resume_async("r-1", approved=True))
        assert await asyncio.to_thread(entered.wait, 10)
        release.set()
        return await running

    result = asyncio.run(main())

    assert result.completed, result.error
    assert engine.load("r-1").ctx["out"] == "released"


@pytest.mark.parametrize("driver", ["inline", "thread"])
def test_an_async_service_runs_on_a_loop_of_its_own(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, driver: str
) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def greet(name: str) -> str:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return f"Hello, {name}!"

    services.register("Greeter", {"greet": greet})
    wf = workflow(
        {"id": "start", "type": "start", "next": "greet"},
        {
            "id": "greet",
            "type": "call",
            "service": "Greeter",
            "method": "greet",
            "input": {"name": "Ada"},
            "output": "out",
            "next": "done",
        },
        {"id": "done", "type": "end", "result": "$out"},
    )

    async def main() -> tuple[flowkit.Result, asyncio.AbstractEventLoop]:
        return await engine.run_async(wf), asyncio.get_running_loop()

    with make_engine(executor=DRIVERS[driver]()) as engine:
        result, application_loop = asyncio.run(main())

    assert result.output == "Hello, Ada!"
    assert loops.pop() is not application_loop
    gc.collect()  # the loops of the threads that ended are closed, not left to warn


# --- cancelling the await ------------------------------------------------------------------------


@every_driver
def test_cancelling_run_async_leaves_the_execution_running(
    make_engine: EngineFactory, driver: str, entered: threading.Event, release: threading.Event
) -> None:
    engine = make_engine(executor=DRIVERS[driver]())

    async def main() -> None:
        running = asyncio.create_task(engine.run_async(_blocking_wf(), execution_id="c-1"))
        assert await asyncio.to_thread(entered.wait, 10)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        release.set()

    asyncio.run(main())

    assert engine.wait("c-1", timeout=10).output == "released"
    assert log(engine, "c-1") == [("start", "completed"), ("b", "completed"), ("done", "completed")]


def test_a_wait_that_times_out_or_is_cancelled_leaves_a_queued_execution_queued(
    make_engine: EngineFactory, entered: threading.Event, release: threading.Event
) -> None:
    engine = make_engine(executor=flowkit.ThreadDriver(max_workers=1))
    busy = engine.start(_blocking_wf(), execution_id="busy")
    assert entered.wait(10)
    queued = engine.start(_blocking_wf(), execution_id="queued")  # waits for the only worker

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await queued.result_async(timeout=0.01)
        waiting = asyncio.create_task(queued.result_async())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
    release.set()

    assert busy.result(timeout=10).completed
    assert queued.result(timeout=10).output == "released"


def test_result_async_raises_what_the_driver_raised(make_engine: EngineFactory) -> None:
    class Failing(flowkit.Driver):
        def dispatch(self, engine: Drivable, execution_id: str) -> Future[Any] | None:
            future: Future[Any] = Future()
            future.set_exception(TimeoutError("the store did not answer"))
            return future

    engine = make_engine(executor=Failing())
    handle = engine.start(_approval_wf())

    with pytest.raises(TimeoutError, match=r"^the store did not answer$"):
        handle.result(timeout=10)
    with pytest.raises(TimeoutError, match=r"^the store did not answer$"):
        asyncio.run(handle.result_async(timeout=10))


# --- flowkit.run_async and flowkit.resume_async --------------------------------------------------


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The default engine on a SQLite file of this test's own."""
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    flowkit.configure(store=f"sqlite:///{tmp_path / 'runs.db'}", executor="inline")
    yield
    reset()


@pytest.mark.usefixtures("configured")
def test_the_module_level_twins_use_the_default_engine() -> None:
    async def main() -> tuple[flowkit.Result, flowkit.Result]:
        halted = await flowkit.run_async(_approval_wf(), execution_id="m-1")
        done = await flowkit.resume_async("m-1", approved=True, response="shipped")
        return halted, done

    halted, done = asyncio.run(main())

    assert halted.halted
    assert done.output == "shipped"
    assert flowkit.engine.default_engine().load("m-1").status is flowkit.Status.COMPLETED

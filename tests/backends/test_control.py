"""Operating on executions from outside their run, on every store (SPEC §15): retry, cancel.

A service that fails until the test "deploys a fix" stands for a real outage;
each test counts the calls, so a step that ran again where it should not is
caught.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

import flowkit
from flowkit import Action, Status, Store
from flowkit.definitions import WorkflowRegistry
from flowkit.engine.fanout import Fanout


class Flaky:
    """``Flaky.work(name)`` returns ``name`` upper-cased, or raises while ``name`` is broken."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.keys: list[tuple[str, str | None]] = []
        self.gates: dict[str, threading.Event] = {}  # a call of name waits for its gate

    def work(self, name: str) -> str:
        if name in self.gates:
            assert self.gates[name].wait(timeout=30), f"{name}'s gate never opened"
        self.calls[name] += 1
        self.keys.append((name, flowkit.current().idempotency_key))
        if name in self.broken:
            raise RuntimeError(f"{name} is down")
        return name.upper()


def _call(step_id: str, name: str, **more: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "call",
        "service": "Flaky",
        "method": "work",
        "input": {"name": name},
        **more,
    }


CHAIN = {
    "id": "chain",
    "steps": [
        {"id": "start", "type": "start", "next": "a"},
        _call("a", "a", output="a", next="b"),
        _call("b", "b", output="b", next="c", retries=1, retry_delay=0),
        _call("c", "c", output="c", next="done"),
        {"id": "done", "type": "end", "result": {"a": "$a", "b": "$b", "c": "$c"}},
    ],
}

LOOP = {
    "id": "each",
    "inputs": {"items": {"type": "array"}},
    "steps": [
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$input.items",
            "output": "done",
            "do": [_call("work", "$item")],
            "next": "end",
        },
        {"id": "end", "type": "end", "result": "$done"},
    ],
}

FANOUT = {
    "id": "fanout",
    "steps": [
        {"id": "start", "type": "start", "next": "all"},
        {
            "id": "all",
            "type": "parallel",
            "branches": [_call("x", "x"), _call("y", "y"), _call("z", "z")],
            "output": "outputs",
            "next": "end",
        },
        {"id": "end", "type": "end", "result": "$outputs"},
    ],
}

CHILD = {
    "id": "child",
    "steps": [
        {"id": "start", "type": "start", "next": "first"},
        _call("first", "first", output="first", next="second"),
        _call("second", "second", output="second", next="done"),
        {"id": "done", "type": "end", "result": ["$first", "$second"]},
    ],
}

PARENT = {
    "id": "parent",
    "steps": [
        {"id": "start", "type": "start", "next": "before"},
        _call("before", "before", next="sub"),
        {"id": "sub", "type": "workflow", "workflow_id": "child", "output": "got", "next": "end"},
        {"id": "end", "type": "end", "result": "$got"},
    ],
}


FLOWS = {source["id"]: flowkit.load(source) for source in (CHAIN, LOOP, FANOUT, CHILD, PARENT)}


@pytest.fixture(params=["inline", "thread"])
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def flaky() -> Flaky:
    return Flaky()


@pytest.fixture
def make_engine(
    store_factory: Callable[[], Store], flaky: Flaky, executor: str
) -> Iterator[Callable[[], flowkit.Engine]]:
    """Engines on one store, as separate processes would open them."""
    store = store_factory()
    services = flowkit.ServiceRegistry()
    services.register("Flaky", flaky)
    workflows = WorkflowRegistry()
    for wf in FLOWS.values():
        workflows.register(wf)
    made: list[flowkit.Engine] = []

    def make() -> flowkit.Engine:
        engine = flowkit.Engine(
            store=store, services=services, workflows=workflows, executor=executor
        )
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


def _actions(engine: flowkit.Engine, execution_id: str) -> list[tuple[str, str]]:
    return [(e.step_id, e.action.value) for e in engine.store.entries(execution_id)]


def test_a_retried_execution_continues_at_the_failed_step_with_its_ctx(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    flaky.broken = {"b"}
    failed = make_engine().run(FLOWS["chain"])
    assert failed.failed
    assert failed.error == "RuntimeError: b is down"
    assert flaky.calls == {"a": 1, "b": 2}  # one retry of its own

    flaky.broken = set()  # the fix is deployed
    result = make_engine().retry(failed.execution_id)  # e.g. another process
    assert result.completed, result.error
    assert result.output == {"a": "A", "b": "B", "c": "C"}
    assert flaky.calls == {"a": 1, "b": 3, "c": 1}  # a did not run again
    assert _actions(make_engine(), failed.execution_id)[1:] == [
        ("a", "completed"),
        ("b", "retried"),
        ("b", "failed"),
        ("b", "retried"),
        ("b", "completed"),
        ("c", "completed"),
        ("done", "completed"),
    ]
    # The step kept its idempotency key across the retry of the execution.
    assert len({key for name, key in flaky.keys if name == "b"}) == 1


def test_the_failed_step_gets_its_retries_afresh(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    flaky.broken = {"b"}
    engine = make_engine()
    failed = engine.run(FLOWS["chain"])
    again = engine.retry(failed.execution_id)
    assert again.failed
    assert flaky.calls["b"] == 4  # two attempts each time
    flaky.broken = set()
    assert engine.retry(failed.execution_id).completed


def test_a_retried_loop_runs_only_the_iterations_not_yet_done(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    flaky.broken = {"p3"}
    engine = make_engine()
    failed = engine.run(FLOWS["each"], {"items": ["p0", "p1", "p2", "p3", "p4"]})
    assert failed.failed
    assert flaky.calls == {"p0": 1, "p1": 1, "p2": 1, "p3": 1}
    flaky.broken = set()
    result = engine.retry(failed.execution_id)
    assert result.completed, result.error
    assert result.output == ["P0", "P1", "P2", "P3", "P4"]
    assert flaky.calls == {"p0": 1, "p1": 1, "p2": 1, "p3": 2, "p4": 1}


def test_an_execution_recovery_gave_up_on_is_retried_where_it_was(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    flaky.broken = {"p2"}
    engine = make_engine()
    failed = engine.run(FLOWS["each"], {"items": ["p0", "p1", "p2", "p3"]})
    # As if every process that ran p2 had died in it: running, lease gone, recovered too often.
    record = engine.load(failed.execution_id)
    stale = attrs.evolve(
        record,
        status=Status.RUNNING,
        error=None,
        cursor={**record.cursor, "recoveries": engine.max_recoveries},
        lease_owner="dead-host:1",
        lease_expires_at=record.updated_at,
        version=record.version + 1,
    )
    engine.store.checkpoint(stale, (), record.version)
    (gave_up,) = engine.recover()
    assert gave_up.failed
    assert "recovery gave up" in (gave_up.error or "")
    assert engine.load(failed.execution_id).cursor == record.cursor  # its position, no count
    flaky.broken = set()
    result = engine.retry(failed.execution_id)
    assert result.completed, result.error
    assert flaky.calls == {"p0": 1, "p1": 1, "p2": 2, "p3": 1}


def test_a_retried_parallel_step_runs_only_the_failed_branches(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    flaky.broken = {"y"}
    engine = make_engine()
    failed = engine.run(FLOWS["fanout"])
    assert failed.failed
    assert flaky.calls["y"] == 1
    recorded = {
        entry.step_id.partition(":")[2]
        for entry in engine.store.entries(failed.execution_id)
        if entry.step_id.startswith("all:") and entry.action is Action.COMPLETED
    }
    flaky.broken = set()
    calls_before = dict(flaky.calls)
    result = engine.retry(failed.execution_id)
    assert result.completed, result.error
    assert result.output == ["X", "Y", "Z"]
    # Branches recorded as completed keep their results; the failed one runs again, and
    # so does one that finished only after the step had failed (it was not recorded).
    assert all(flaky.calls[branch] == calls_before[branch] for branch in recorded)
    assert flaky.calls["y"] == 2
    assert all(flaky.calls[branch] <= 2 for branch in ("x", "z"))


def test_branch_outputs_are_joined_from_their_entries(
    make_engine: Callable[[], flowkit.Engine],
) -> None:
    # Each branch runs in a run of its own, as on Dramatiq: the frame each one reads
    # back keeps no output, and the join reads them from the branches' entries.
    wf = flowkit.load(
        {
            "id": "outputs",
            "steps": [
                {"id": "start", "type": "start", "next": "all"},
                {
                    "id": "all",
                    "type": "parallel",
                    "branches": [_call("x", "x", output="first"), _call("y", "y"), _call("z", "z")],
                    "output": "outputs",
                    "next": "end",
                },
                {"id": "end", "type": "end", "result": {"all": "$outputs", "first": "$first"}},
            ],
        }
    )
    engine = make_engine()
    execution = engine.create(wf)
    engine.step(execution.id)  # start
    fanout = engine.step(execution.id).fanout
    assert fanout is not None
    for branch in fanout.branches:
        make_engine().run_branch(execution.id, "all", branch, fanout.visit)
    [frame] = engine.load(execution.id).cursor["frames"]
    assert all("output" not in result for result in frame["done"].values())
    result = engine.drive(execution.id)
    assert result.completed, result.error
    assert result.output == {"all": ["X", "Y", "Z"], "first": "X"}


def test_a_branch_that_ends_after_its_run_failed_is_not_recorded_in_the_retry(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky, monkeypatch: pytest.MonkeyPatch
) -> None:
    # z is about to record its result when y fails the step, and records only once the
    # retry has begun: its result belongs to the failed run, so the retry runs z again.
    recording, go_on = threading.Event(), threading.Event()
    record = Fanout._record

    def late_z(self: Fanout, *args: Any) -> Any:
        if args[6].id == "z" and not go_on.is_set():
            recording.set()
            assert go_on.wait(timeout=30)
        return record(self, *args)

    monkeypatch.setattr(Fanout, "_record", late_z)
    flaky.broken = {"y"}
    flaky.gates = {"y": recording}
    engine = make_engine()
    failed = engine.run(FLOWS["fanout"])
    assert failed.failed
    flaky.broken = set()
    engine.retry_step(failed.execution_id)
    go_on.set()
    for thread in threading.enumerate():
        if thread.name.startswith("flowkit-branch"):
            thread.join(timeout=30)
            assert not thread.is_alive()
    assert ("all:z", "completed") not in _actions(engine, failed.execution_id)
    result = engine.drive(failed.execution_id)
    assert result.completed, result.error
    assert result.output == ["X", "Y", "Z"]
    assert flaky.calls["z"] == 2


def test_a_retry_retries_the_failed_sub_workflow_where_it_failed(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    flaky.broken = {"second"}
    engine = make_engine()
    failed = engine.run(FLOWS["parent"])
    assert failed.failed
    assert "sub-workflow 'child'" in (failed.error or "")
    (child,) = engine.store.find(workflow_id="child")
    assert child.status is Status.FAILED
    flaky.broken = set()
    result = engine.retry(failed.execution_id)
    assert result.completed, result.error
    assert result.output == ["FIRST", "SECOND"]
    assert flaky.calls == {"before": 1, "first": 1, "second": 2}
    assert engine.load(child.id).status is Status.COMPLETED
    assert engine.store.find(workflow_id="child") == [engine.load(child.id)]


def test_only_a_failed_execution_can_be_retried(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    engine = make_engine()
    done = engine.run(FLOWS["chain"])
    assert done.completed
    with pytest.raises(flowkit.ExecutionError, match="is completed; only a failed execution"):
        engine.retry(done.execution_id)
    with pytest.raises(flowkit.NotFoundError):
        engine.retry("no-such-execution")
    assert engine.load(done.execution_id).version == engine.load(done.execution_id).version


def test_two_retries_at_once_run_the_step_once(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    flaky.broken = {"c"}
    failed = make_engine().run(FLOWS["chain"])
    flaky.broken = set()
    first, second = make_engine(), make_engine()
    record = first.retry_step(failed.execution_id)
    assert record.status is Status.RUNNING
    with pytest.raises(flowkit.ExecutionError, match="is running"):
        second.retry(failed.execution_id)
    assert first.drive(failed.execution_id).completed
    assert flaky.calls["c"] == 2
    entries = first.store.entries(failed.execution_id)
    assert [e.action for e in entries].count(Action.RETRIED) == 1


# --- cancel ----------------------------------------------------------------------------------

APPROVAL = {
    "id": "approval",
    "steps": [
        {"id": "start", "type": "start", "next": "ask"},
        {"id": "ask", "type": "approval", "prompt": "ok?", "next": "after"},
        _call("after", "after", next="end"),
        {"id": "end", "type": "end"},
    ],
}

SLOW = {
    "id": "slow",
    "steps": [
        {"id": "start", "type": "start", "next": "wait"},
        {"id": "wait", "type": "call", "service": "Gate", "method": "hold", "next": "after"},
        _call("after", "after", next="end"),
        {"id": "end", "type": "end"},
    ],
}

SLOW_PARENT = {
    "id": "slow_parent",
    "steps": [
        {"id": "start", "type": "start", "next": "sub"},
        {"id": "sub", "type": "workflow", "workflow_id": "slow", "next": "after"},
        _call("after", "parent-after", next="end"),
        {"id": "end", "type": "end"},
    ],
}

HALTED_PARENT = {
    "id": "halted_parent",
    "steps": [
        {"id": "start", "type": "start", "next": "sub"},
        {"id": "sub", "type": "workflow", "workflow_id": "approval", "next": "end"},
        {"id": "end", "type": "end"},
    ],
}

SLOW_BRANCH = {
    "id": "slow_branch",
    "steps": [
        {"id": "start", "type": "start", "next": "all"},
        {
            "id": "all",
            "type": "parallel",
            "branches": [
                {"id": "wait", "type": "call", "service": "Gate", "method": "hold"},
                _call("quick", "quick"),
            ],
            "next": "after",
        },
        _call("after", "after", next="end"),
        {"id": "end", "type": "end"},
    ],
}

FLOWS.update(
    {
        source["id"]: flowkit.load(source)
        for source in (APPROVAL, SLOW, SLOW_PARENT, HALTED_PARENT, SLOW_BRANCH)
    }
)


class Gate:
    """``Gate.hold()`` blocks until the test opens the gate; it reports what it saw."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.saw_cancel: list[bool] = []

    def hold(self) -> str:
        self.entered.set()
        assert self.opened.wait(30), "the test never opened the gate"
        self.saw_cancel.append(flowkit.current().cancel_requested)
        return "held"


@pytest.fixture
def gate(make_engine: Callable[[], flowkit.Engine]) -> Gate:
    opened = Gate()
    make_engine().services.register("Gate", opened)
    return opened


def test_a_halted_execution_is_cancelled_at_once(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky
) -> None:
    engine = make_engine()
    halted = engine.run(FLOWS["approval"])
    assert halted.halted
    result = make_engine().cancel(halted.execution_id, reason="order withdrawn", by="ops")
    assert result.cancelled
    assert result.error == "order withdrawn"
    stored = engine.load(halted.execution_id)
    assert (stored.status, stored.wake_at, stored.lease_owner) == (Status.CANCELLED, None, None)
    last = engine.store.entries(halted.execution_id)[-1]
    assert (last.step_id, last.action) == ("ask", Action.CANCELLED)
    assert last.input == {"reason": "order withdrawn", "by": "ops"}
    assert [e.id for e in engine.store.find(status="cancelled")] == [halted.execution_id]
    with pytest.raises(flowkit.ExecutionError, match="is cancelled and cannot be resumed"):
        engine.resume(halted.execution_id, approved=True)
    with pytest.raises(flowkit.ExecutionError, match="is cancelled; only an execution that"):
        engine.cancel(halted.execution_id)
    assert flaky.calls == {}


def test_a_running_execution_stops_after_its_step(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky, gate: Gate
) -> None:
    engine = make_engine()
    runner = threading.Thread(target=engine.run, args=(FLOWS["slow"],))
    runner.start()
    assert gate.entered.wait(30)
    (running,) = engine.store.find(status="running")
    asked = make_engine().cancel(running.id, reason="too slow")
    assert asked.status is Status.RUNNING  # asked; the step is still under way
    gate.opened.set()
    runner.join(30)
    assert not runner.is_alive()
    final = engine.wait(running.id, timeout=30)
    assert final.cancelled
    assert final.error == "too slow"
    assert gate.saw_cancel == [True]
    assert flaky.calls == {}  # the next step never ran
    actions = _actions(engine, running.id)
    assert actions[-1] == ("wait", "cancelled")
    assert ("wait", "completed") not in actions  # its result was not recorded


def test_cancelling_a_parent_cancels_its_halted_sub_workflow(
    make_engine: Callable[[], flowkit.Engine],
) -> None:
    engine = make_engine()
    halted = engine.run(FLOWS["halted_parent"])
    assert halted.halted
    (child,) = engine.store.find(workflow_id="approval")
    assert engine.cancel(halted.execution_id, reason="stop").cancelled
    assert engine.load(child.id).status is Status.CANCELLED
    assert engine.load(halted.execution_id).status is Status.CANCELLED


def test_cancelling_a_running_parent_cancels_the_sub_workflow_it_runs(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky, gate: Gate
) -> None:
    engine = make_engine()
    runner = threading.Thread(target=engine.run, args=(FLOWS["slow_parent"],))
    runner.start()
    assert gate.entered.wait(30)
    (parent,) = engine.store.find(workflow_id="slow_parent")
    (child,) = engine.store.find(workflow_id="slow")
    make_engine().cancel(parent.id, reason="stop")
    gate.opened.set()
    runner.join(30)
    assert not runner.is_alive()
    assert engine.load(child.id).status is Status.CANCELLED
    assert engine.load(parent.id).status is Status.CANCELLED
    assert gate.saw_cancel == [True]
    assert flaky.calls == {}


def test_only_an_unfinished_execution_can_be_cancelled(
    make_engine: Callable[[], flowkit.Engine],
) -> None:
    engine = make_engine()
    done = engine.run(FLOWS["chain"])
    before = engine.load(done.execution_id)
    with pytest.raises(flowkit.ExecutionError, match="is completed; only an execution that"):
        engine.cancel(done.execution_id)
    assert engine.load(done.execution_id) == before
    with pytest.raises(flowkit.NotFoundError):
        engine.cancel("no-such-execution")


def test_a_parallel_step_stops_at_its_join_once_cancelled(
    make_engine: Callable[[], flowkit.Engine], flaky: Flaky, gate: Gate
) -> None:
    engine = make_engine()
    runner = threading.Thread(target=engine.run, args=(FLOWS["slow_branch"],))
    runner.start()
    assert gate.entered.wait(30)
    (running,) = engine.store.find(status="running")
    make_engine().cancel(running.id, reason="enough")
    gate.opened.set()
    runner.join(30)
    assert not runner.is_alive()
    assert engine.wait(running.id, timeout=30).cancelled
    assert flaky.calls["after"] == 0
    assert _actions(engine, running.id)[-1] == ("all", "cancelled")

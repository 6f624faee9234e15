"""Parallel steps: wait modes, output order, ctx merge, failures, retries, concurrency, crashes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

import flowkit
from flowkit import Action, Status
from flowkit.backends.memory import MemoryStore

from .conftest import EngineFactory, FakeClock
from .helpers import log, workflow


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()
    _join_branch_threads()


def _join_branch_threads() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("flowkit-branch"):
            thread.join(5)


def _call(id: str, method: str, **more: Any) -> dict[str, Any]:
    return {"id": id, "type": "call", "service": "S", "method": method, **more}


def _parallel_wf(*branches: dict[str, Any], **parallel: Any) -> flowkit.WorkflowDef:
    steps: list[dict[str, Any]] = [
        {"id": "start", "type": "start", "next": "par"},
        {
            "id": "par",
            "type": "parallel",
            "output": "outs",
            "next": "done",
            "branches": list(branches),
            **parallel,
        },
        {"id": "done", "type": "end", "result": "$outs"},
    ]
    if parallel.get("on_error") == "handle":
        steps.append({"id": "handle", "type": "end", "result": "$_last_error"})
    return workflow(*steps)


def test_outputs_are_in_branch_order_whatever_the_finishing_order(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    second_done = threading.Event()
    order: list[str] = []

    def first() -> str:
        assert second_done.wait(5)
        order.append("first")
        return "one"

    def second() -> str:
        order.append("second")
        second_done.set()
        return "two"

    services.register("S", {"first": first, "second": second})
    result = engine.run(_parallel_wf(_call("b1", "first"), _call("b2", "second")))
    assert result.output == ["one", "two"]
    assert order == ["second", "first"]
    entries = engine.store.entries(result.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [
        ("start", Action.COMPLETED),
        ("par:b2", Action.COMPLETED),
        ("par:b1", Action.COMPLETED),
        ("par", Action.COMPLETED),
        ("done", Action.COMPLETED),
    ]
    assert entries[3].output == ["one", "two"]
    assert engine.load(result.execution_id).cursor == {}


def test_ctx_changes_merge_in_branch_order(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    third_done = threading.Event()

    def slow() -> str:
        assert third_done.wait(5)
        return "from b1"

    def fast() -> str:
        third_done.set()
        return "from b3"

    services.register("S", {"slow": slow, "fast": fast})
    wf = _parallel_wf(
        _call("b1", "slow", output="shared"),
        {"id": "b2", "type": "assign", "set": {"only2": 2, "other": "b2"}},
        _call("b3", "fast", output="shared"),
    )
    result = engine.run(wf)
    ctx = engine.load(result.execution_id).ctx
    assert ctx["shared"] == "from b3"  # the later branch wins, although it finished first
    assert ctx["only2"] == 2
    assert ctx["other"] == "b2"
    assert ctx["outs"] == ["from b1", {"only2": 2, "other": "b2"}, "from b3"]


def test_branches_run_concurrently(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    barrier = threading.Barrier(3, timeout=5)

    def meet(n: int) -> int:
        barrier.wait()  # raises BrokenBarrierError unless all three run at the same time
        return n

    services.register("S", {"meet": meet})
    wf = _parallel_wf(*(_call(f"b{n}", "meet", input={"n": n}) for n in range(3)))
    result = engine.run(wf)
    assert result.completed, result.error
    assert result.output == [0, 1, 2]


def test_a_failing_branch_fails_the_step_with_wait_all(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def bad() -> None:
        raise ValueError("broken")

    services.register("S", {"ok": lambda: "ok", "bad": bad})
    result = engine.run(_parallel_wf(_call("b1", "ok"), _call("b2", "bad")))
    assert result.failed
    assert result.error == (
        "ExecutionError: parallel step 'par': branch 'b2' failed: ValueError: broken"
    )
    entries = engine.store.entries(result.execution_id)
    failed = [e for e in entries if e.step_id == "par:b2"]
    assert [(e.action, e.error) for e in failed] == [(Action.FAILED, "ValueError: broken")]
    assert (entries[-1].step_id, entries[-1].action) == ("par", Action.FAILED)


def test_a_failing_parallel_step_goes_to_on_error(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def bad() -> None:
        raise ValueError("broken")

    services.register("S", {"ok": lambda: "ok", "bad": bad})
    result = engine.run(_parallel_wf(_call("b1", "ok"), _call("b2", "bad"), on_error="handle"))
    assert result.completed
    assert result.output == {
        "step": "par",
        "type": "ExecutionError",
        "message": "parallel step 'par': branch 'b2' failed: ValueError: broken",
    }


def test_wait_any_returns_with_the_first_success(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, release: threading.Event
) -> None:
    slow_calls: list[int] = []

    def slow() -> str:
        slow_calls.append(1)
        release.wait(10)
        return "slow"

    services.register("S", {"slow": slow, "fast": lambda: "fast"})
    wf = _parallel_wf(_call("b1", "slow", output="s"), _call("b2", "fast", output="f"), wait="any")
    result = engine.run(wf)
    assert result.completed
    assert result.output == [None, "fast"]
    ctx = engine.load(result.execution_id).ctx
    assert ctx["f"] == "fast"
    assert "s" not in ctx
    before = engine.store.entries(result.execution_id)
    release.set()
    _join_branch_threads()
    assert slow_calls == [1]
    assert engine.store.entries(result.execution_id) == before  # the late result is dropped
    assert engine.load(result.execution_id).ctx == ctx


def test_wait_any_fails_only_when_every_branch_fails(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def bad(n: int) -> None:
        raise ValueError(f"bad {n}")

    services.register("S", {"bad": bad, "ok": lambda: "ok"})
    one_ok = _parallel_wf(_call("b1", "bad", input={"n": 1}), _call("b2", "ok"), wait="any")
    assert engine.run(one_ok).output == [None, "ok"]
    none_ok = _parallel_wf(
        _call("b1", "bad", input={"n": 1}), _call("b2", "bad", input={"n": 2}), wait="any"
    )
    result = engine.run(none_ok)
    assert result.failed
    assert result.error is not None
    assert result.error.startswith(
        "ExecutionError: parallel step 'par': only 0 of 2 branches succeeded and 1 were needed"
    )
    assert "b1: ValueError: bad 1" in result.error
    assert "b2: ValueError: bad 2" in result.error


def test_wait_n_succeeds_with_n_successes(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def bad() -> None:
        raise ValueError("no")

    def ok(n: int) -> int:
        return n

    services.register("S", {"bad": bad, "ok": ok})
    wf = _parallel_wf(
        _call("b1", "ok", input={"n": 1}),
        _call("b2", "bad"),
        _call("b3", "ok", input={"n": 3}),
        wait=2,
    )
    result = engine.run(wf)
    assert result.completed
    assert result.output == [1, None, 3]


def test_wait_n_fails_when_n_cannot_be_reached(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def bad(n: int) -> None:
        raise ValueError(f"no {n}")

    services.register("S", {"bad": bad, "ok": lambda: "ok"})
    wf = _parallel_wf(
        _call("b1", "ok"),
        _call("b2", "bad", input={"n": 2}),
        _call("b3", "bad", input={"n": 3}),
        wait=2,
    )
    result = engine.run(wf)
    assert result.failed
    assert result.error is not None
    assert "only 1 of 3 branches succeeded and 2 were needed" in result.error


def test_branches_retry(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(flowkit.current().attempt)
        if len(attempts) < 3:
            raise RuntimeError("flake")
        return "ok"

    services.register("S", {"flaky": flaky, "ok": lambda: 1})
    wf = _parallel_wf(_call("b1", "flaky", retries=2, retry_delay=0.5), _call("b2", "ok"))
    result = engine.run(wf)
    assert result.completed
    assert result.output == ["ok", 1]
    assert attempts == [1, 2, 3]
    assert clock.sleeps == [0.5, 1.0]
    b1 = [e for e in engine.store.entries(result.execution_id) if e.step_id == "par:b1"]
    assert [(e.action, e.attempt) for e in b1] == [
        (Action.RETRIED, 1),
        (Action.RETRIED, 2),
        (Action.COMPLETED, 3),
    ]


def test_branch_idempotency_keys_are_distinct_and_stable(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    keys: list[tuple[str, str]] = []
    lock = threading.Lock()

    def key() -> None:
        with lock:
            keys.append((flowkit.current().step_id, flowkit.current().idempotency_key))

    services.register("S", {"key": key})
    engine.run(_parallel_wf(_call("b1", "key"), _call("b2", "key")))
    assert sorted(step for step, _ in keys) == ["par:b1", "par:b2"]
    assert len({k for _, k in keys}) == 2


def test_parallel_inside_a_loop(engine: flowkit.Engine, services: flowkit.ServiceRegistry) -> None:
    services.register("S", {"add": lambda a, b: a + b, "mul": lambda a, b: a * b})
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2, 3],
            "output": "out",
            "do": [
                {
                    "id": "par",
                    "type": "parallel",
                    "output": "pair",
                    "branches": [
                        _call("plus", "add", input={"a": "$item", "b": 10}),
                        _call("times", "mul", input={"a": "$item", "b": 10}),
                    ],
                }
            ],
        },
    )
    result = engine.run(wf)
    assert engine.load(result.execution_id).ctx["out"] == [[11, 10], [12, 20], [13, 30]]
    branch_entries = [
        (e.step_id, e.iteration)
        for e in engine.store.entries(result.execution_id)
        if e.step_id.startswith("each:par:")
    ]
    assert sorted(branch_entries) == sorted(
        (f"each:par:{b}", i) for b in ("plus", "times") for i in range(3)
    )


def test_a_halt_inside_a_branch_is_a_validation_error() -> None:
    with pytest.raises(flowkit.ValidationError):
        workflow(
            {"id": "start", "type": "start", "next": "par"},
            {
                "id": "par",
                "type": "parallel",
                "branches": [
                    {"id": "h", "type": "halt"},
                    {"id": "a", "type": "assign", "set": {"x": 1}},
                ],
            },
        )
    with pytest.raises(flowkit.ValidationError):
        workflow(
            {"id": "start", "type": "start", "next": "par"},
            {
                "id": "par",
                "type": "parallel",
                "branches": [
                    {"id": "h", "type": "approval"},
                    {"id": "a", "type": "assign", "set": {"x": 1}},
                ],
            },
        )


def test_a_crash_after_some_branches_finished_reruns_only_the_others(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> str:
        with lock:
            calls.append(name)
        return name.upper()

    services.register("S", {"work": work})
    wf = _parallel_wf(
        *(
            _call(name, "work", input={"name": name}, output=f"o_{name}")
            for name in ("b1", "b2", "b3")
        ),
    )
    first = make_engine()
    execution = first.create(wf)
    first.step(execution.id)  # start
    fan_out = first.step(execution.id)
    assert fan_out.branches == ("b1", "b2", "b3")
    [frame] = fan_out.execution.cursor["frames"]
    visit = frame["start"]
    assert first.run_branch(execution.id, "par", "b1", visit).running
    assert first.run_branch(execution.id, "par", "b2", visit).running
    duplicate = first.run_branch(execution.id, "par", "b1", visit)
    assert duplicate.dropped
    assert calls == ["b1", "b2"]
    # ...and the process dies before b3 ran.

    clock.advance(3600)
    second = make_engine()
    [recovered] = second.recover()
    assert recovered.execution_id == execution.id
    final = second.load(execution.id)
    assert final.status is Status.COMPLETED
    assert final.result == ["B1", "B2", "B3"]
    assert sorted(calls) == ["b1", "b2", "b3"]
    assert [k for k in final.ctx if k.startswith("o_")] == ["o_b1", "o_b2", "o_b3"]
    assert log(second, execution.id) == [
        ("start", "completed"),
        ("par:b1", "completed"),
        ("par:b2", "completed"),
        ("par:b3", "completed"),
        ("par", "completed"),
        ("done", "completed"),
    ]


def test_the_frame_keeps_whether_each_branch_succeeded_and_its_entry_the_rest(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry
) -> None:
    # Every branch checkpoint writes the frame again, with the branches done so far: a
    # big input or output of a branch must be written once, in its entry.
    services.register("S", {"copy": lambda doc: doc, "size": lambda doc: len(doc)})
    document = "x" * 100_000
    wf = _parallel_wf(
        _call("b1", "copy", input={"doc": "$input.doc"}, output="first"),
        _call("b2", "copy", input={"doc": "$input.doc"}),
        _call("b3", "size", input={"doc": "$input.doc"}, output="size"),
    )
    engine = make_engine()
    execution = engine.create(wf, {"doc": document})
    engine.step(execution.id)  # start
    fan_out = engine.step(execution.id)
    [frame] = fan_out.execution.cursor["frames"]
    for name in ("b1", "b2"):
        # Each branch in a run of its own, as on Dramatiq: the join reads the frame back.
        assert make_engine().run_branch(execution.id, "par", name, frame["start"]).running
    [frame] = engine.load(execution.id).cursor["frames"]
    assert frame["done"] == {
        "b1": {"ok": True, "updates": {"first": None}, "from_output": ["first"]},
        "b2": {"ok": True},
    }
    entries = [e for e in engine.store.entries(execution.id) if e.step_id.startswith("par:")]
    assert [(e.input, e.output) for e in entries] == [({"doc": document}, document)] * 2
    assert make_engine().run_branch(execution.id, "par", "b3", frame["start"]).joined
    result = engine.drive(execution.id)
    assert result.output == [document, document, 100_000]
    ctx = engine.load(execution.id).ctx
    assert (ctx["first"], ctx["size"]) == (document, 100_000)


def test_a_join_whose_branch_entries_are_gone_says_so(
    make_engine: EngineFactory,
    services: flowkit.ServiceRegistry,
    store: MemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services.register("S", {"work": lambda name: name.upper()})
    wf = _parallel_wf(*(_call(name, "work", input={"name": name}) for name in ("b1", "b2")))
    engine = make_engine()
    execution = engine.create(wf)
    engine.step(execution.id)  # start
    fan_out = engine.step(execution.id)
    [frame] = fan_out.execution.cursor["frames"]
    assert make_engine().run_branch(execution.id, "par", "b1", frame["start"]).running
    monkeypatch.setattr(store, "entries", lambda *args, **kwargs: [])  # lost behind our back
    with pytest.raises(flowkit.FlowkitError, match=r"branches b1 are missing .* cancel"):
        make_engine().run_branch(execution.id, "par", "b2", frame["start"])


def test_a_frame_written_with_the_outputs_in_it_still_joins(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, store: MemoryStore
) -> None:
    # Frames written before the outputs were left to the entries keep them: they are
    # read as they are.
    services.register("S", {"work": lambda name: name.upper()})
    wf = _parallel_wf(
        _call("b1", "work", input={"name": "b1"}, output="one"),
        _call("b2", "work", input={"name": "b2"}),
    )
    engine = make_engine()
    execution = engine.create(wf)
    engine.step(execution.id)  # start
    fan_out = engine.step(execution.id)
    [frame] = fan_out.execution.cursor["frames"]
    assert engine.run_branch(execution.id, "par", "b1", frame["start"]).running
    record = engine.load(execution.id)
    old = {"ok": True, "output": "B1", "updates": {"one": "B1"}, "error": None}
    cursor = {"frames": [{**record.cursor["frames"][0], "done": {"b1": old}}]}
    store.checkpoint(
        attrs.evolve(record, cursor=cursor, version=record.version + 1), [], record.version
    )
    assert make_engine().run_branch(execution.id, "par", "b2", frame["start"]).joined
    result = engine.drive(execution.id)
    assert result.output == ["B1", "B2"]
    assert engine.load(execution.id).ctx["one"] == "B1"


def test_a_branch_sent_before_a_retry_is_dropped(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry
) -> None:
    # On Dramatiq a branch message of the failed run may arrive after the retry: it
    # belongs to an earlier epoch and is dropped; the retry sends its own.
    calls: list[str] = []
    broken = {"b1"}

    def work(name: str) -> str:
        calls.append(name)
        if name in broken:
            raise RuntimeError(f"{name} is down")
        return name.upper()

    services.register("S", {"work": work})
    wf = _parallel_wf(*(_call(name, "work", input={"name": name}) for name in ("b1", "b2")))
    engine = make_engine()
    execution = engine.create(wf)
    engine.step(execution.id)  # start
    first = engine.step(execution.id)
    assert first.fanout is not None
    assert first.fanout.epoch == 0
    visit = first.fanout.visit
    assert engine.run_branch(execution.id, "par", "b1", visit, epoch=0).joined
    assert engine.step(execution.id).execution.status is Status.FAILED
    broken.clear()
    engine.retry_step(execution.id)

    late = engine.run_branch(execution.id, "par", "b2", visit, epoch=0)  # the failed run's
    assert late.dropped
    assert calls == ["b1"]
    again = engine.step(execution.id)
    assert again.fanout is not None
    assert (again.fanout.epoch, again.fanout.branches) == (1, ("b1", "b2"))
    assert not engine.run_branch(execution.id, "par", "b1", visit, epoch=1).joined
    assert engine.run_branch(execution.id, "par", "b2", visit, epoch=1).joined
    assert engine.drive(execution.id).output == ["B1", "B2"]
    assert calls == ["b1", "b1", "b2"]

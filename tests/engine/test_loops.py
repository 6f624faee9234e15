"""Loops: foreach and while, body graphs, break, max, nesting, halts and crashes inside."""

from __future__ import annotations

import json
from typing import Any

import pytest

import flowkit
from flowkit import Action, Status

from .conftest import EngineFactory, FakeClock
from .helpers import log, workflow


class Crash(BaseException):
    """Stands for the process dying in the middle of a step."""


def _recorder(services: flowkit.ServiceRegistry) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    def double(x: int) -> int:
        calls.append(("double", x, flowkit.current().iteration))
        return x * 2

    services.register("S", {"double": double})
    return calls


def test_foreach_runs_the_body_for_each_item(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls = _recorder(services)
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$input.items",
            "as": "x",
            "index_as": "i",
            "output": "results",
            "next": "done",
            "do": [
                {
                    "id": "d",
                    "type": "call",
                    "service": "S",
                    "method": "double",
                    "input": {"x": "$x"},
                    "output": "y",
                },
                {"id": "a", "type": "assign", "set": {"pair": ["$i", "$y"]}},
            ],
        },
        {"id": "done", "type": "end", "result": "$results"},
        inputs={"items": {"type": "array"}},
    )
    result = engine.run(wf, {"items": [5, 6, 7]})
    assert result.output == [{"pair": [0, 10]}, {"pair": [1, 12]}, {"pair": [2, 14]}]
    assert calls == [("double", 5, 0), ("double", 6, 1), ("double", 7, 2)]
    entries = engine.store.entries(result.execution_id)
    assert [(e.step_id, e.iteration, e.action.value) for e in entries] == [
        ("start", None, "completed"),
        ("each:d", 0, "completed"),
        ("each:a", 0, "completed"),
        ("each:d", 1, "completed"),
        ("each:a", 1, "completed"),
        ("each:d", 2, "completed"),
        ("each:a", 2, "completed"),
        ("each", None, "completed"),
        ("done", None, "completed"),
    ]
    assert entries[-2].output == result.output
    ctx = engine.load(result.execution_id).ctx
    assert ctx["results"] == result.output
    assert ctx["y"] == 14  # body outputs are ordinary ctx variables
    for name in ("x", "i", "item", "index"):  # loop variables live only inside the body
        assert name not in ctx
    assert engine.load(result.execution_id).cursor == {}


def test_default_loop_variable_names_are_item_and_index(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": ["a", "b"],
            "output": "out",
            "do": [{"id": "a", "type": "assign", "set": {"v": "${index}:${item}"}}],
        },
    )
    result = engine.run(wf)
    assert engine.load(result.execution_id).ctx["out"] == [{"v": "0:a"}, {"v": "1:b"}]


def test_body_steps_follow_next_routes_and_listing_order(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2, 3, 4],
            "output": "out",
            "do": [
                {
                    "id": "route",
                    "type": "router",
                    "routes": [{"when": {"field": "item", "op": "gt", "value": 2}, "then": "big"}],
                    "default": "small",
                },
                {"id": "small", "type": "assign", "set": {"kind": "small"}, "next": "tag"},
                {"id": "big", "type": "assign", "set": {"kind": "big"}},
                {"id": "tag", "type": "assign", "set": {"tag": "${kind}-${item}"}},
            ],
        },
    )
    result = engine.run(wf)
    out = engine.load(result.execution_id).ctx["out"]
    assert out == [{"tag": "small-1"}, {"tag": "small-2"}, {"tag": "big-3"}, {"tag": "big-4"}]
    steps = [
        (e.step_id, e.iteration)
        for e in engine.store.entries(result.execution_id)
        if e.iteration is not None
    ]
    assert steps[:3] == [("each:route", 0), ("each:small", 0), ("each:tag", 0)]
    assert steps[6:9] == [("each:route", 2), ("each:big", 2), ("each:tag", 2)]


def test_on_error_inside_a_body_names_a_body_step(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def check(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n

    services.register("S", {"check": check})
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2, 3],
            "output": "out",
            "do": [
                {
                    "id": "c",
                    "type": "call",
                    "service": "S",
                    "method": "check",
                    "input": {"n": "$item"},
                    "on_error": "fix",
                    "next": "ok",
                },
                {
                    "id": "fix",
                    "type": "assign",
                    "set": {"r": "$_last_error.message"},
                    "next": "end",
                },
                {"id": "ok", "type": "assign", "set": {"r": "$item"}},
                {"id": "end", "type": "assign", "set": {"last": "$r"}},
            ],
        },
    )
    result = engine.run(wf)
    ctx = engine.load(result.execution_id).ctx
    assert ctx["out"] == [{"last": 1}, {"last": "two"}, {"last": 3}]
    assert ctx["_last_error"] == {"step": "each:c", "type": "ValueError", "message": "two"}


def _inc_service(services: flowkit.ServiceRegistry) -> list[int]:
    calls: list[int] = []

    def inc(n: int) -> int:
        calls.append(n)
        return n + 1

    services.register("S", {"inc": inc})
    return calls


def _while_wf(limit: int, **loop: Any) -> flowkit.WorkflowDef:
    steps: list[dict[str, Any]] = [
        {"id": "start", "type": "start", "next": "init"},
        {"id": "init", "type": "assign", "set": {"n": 0}, "next": "grow"},
        {
            "id": "grow",
            "type": "loop",
            "while": {"field": "n", "op": "lt", "value": limit},
            "output": "seen",
            "next": "done",
            **loop,
            "do": [
                {
                    "id": "inc",
                    "type": "call",
                    "service": "S",
                    "method": "inc",
                    "input": {"n": "$n"},
                    "output": "n",
                },
                {
                    "id": "stop",
                    "type": "router",
                    "routes": [{"when": {"field": "n", "op": "gte", "value": 4}, "then": "brk"}],
                    "default": "keep",
                },
                {"id": "keep", "type": "assign", "set": {"kept": "$n"}, "next": "tail"},
                {"id": "brk", "type": "assign", "set": {"break_loop": True}, "next": "tail"},
                {
                    "id": "tail",
                    "type": "transform",
                    "input": "n",
                    "expression": [],
                    "output": "last",
                },
            ],
        },
        {"id": "done", "type": "end", "result": {"seen": "$seen", "n": "$n"}},
    ]
    if "on_exhausted" in loop:
        steps.append({"id": "tired", "type": "end", "result": {"tired": "$n"}})
    return workflow(*steps)


def test_while_loop_runs_while_the_condition_holds(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls = _inc_service(services)
    result = engine.run(_while_wf(3))
    assert calls == [0, 1, 2]
    assert result.output == {"seen": [1, 2, 3], "n": 3}
    entries = engine.store.entries(result.execution_id)
    assert [e.iteration for e in entries if e.step_id == "grow:inc"] == [0, 1, 2]
    assert entries[-2].step_id == "grow"
    assert entries[-2].output == [1, 2, 3]


def test_while_loop_that_never_holds_runs_zero_iterations(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls = _inc_service(services)
    result = engine.run(_while_wf(0))
    assert calls == []
    assert result.output == {"seen": [], "n": 0}
    assert log(engine, result.execution_id) == [
        ("start", "completed"),
        ("init", "completed"),
        ("grow", "completed"),
        ("done", "completed"),
    ]


def test_break_loop_stops_a_while_loop_and_is_reset(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls = _inc_service(services)
    result = engine.run(_while_wf(100))
    assert calls == [0, 1, 2, 3]
    assert result.output == {"seen": [1, 2, 3, 4], "n": 4}
    assert engine.load(result.execution_id).ctx["break_loop"] is False


def test_break_loop_stops_a_foreach_loop(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2, 3, 4],
            "output": "out",
            "do": [
                {
                    "id": "stop",
                    "type": "router",
                    "routes": [{"when": {"field": "item", "op": "eq", "value": 2}, "then": "brk"}],
                    "default": "keep",
                },
                {"id": "brk", "type": "assign", "set": {"break_loop": True}},
                {"id": "keep", "type": "assign", "set": {"kept": "$item"}},
            ],
        },
    )
    result = engine.run(wf)
    ctx = engine.load(result.execution_id).ctx
    # the break takes effect when the iteration ends
    assert ctx["out"] == [{"kept": 1}, {"kept": 2}]
    assert ctx["break_loop"] is False


def test_while_loop_beyond_max_fails(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls = _inc_service(services)
    result = engine.run(_while_wf(3, max=2))
    assert result.failed
    assert result.error == (
        "ExecutionError: loop 'grow' ran 2 iterations, its max, and was not done: raise its "
        "'max' if it needs more, or set 'on_exhausted' to go to another step instead"
    )
    assert calls == [0, 1]
    assert log(engine, result.execution_id)[-1] == ("grow", "failed")


def test_while_loop_beyond_max_goes_to_on_exhausted(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    _inc_service(services)
    result = engine.run(_while_wf(3, max=2, on_exhausted="tired"))
    assert result.completed
    assert result.output == {"tired": 2}


def test_while_loop_ending_exactly_at_max_succeeds(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    _inc_service(services)
    result = engine.run(_while_wf(3, max=3))
    assert result.completed
    assert result.output["n"] == 3


def _foreach_wf(**loop: Any) -> flowkit.WorkflowDef:
    steps: list[dict[str, Any]] = [
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$input.items",
            "output": "out",
            "next": "done",
            **loop,
            "do": [{"id": "a", "type": "assign", "set": {"v": "$item"}}],
        },
        {"id": "done", "type": "end", "result": "$out"},
    ]
    if "on_exhausted" in loop:
        steps.append({"id": "tired", "type": "end", "result": "too many"})
    return workflow(*steps, inputs={"items": {"type": "array"}})


def test_foreach_over_more_items_than_max_fails(engine: flowkit.Engine) -> None:
    result = engine.run(_foreach_wf(max=2), {"items": [1, 2, 3]})
    assert result.failed
    assert result.error == (
        "ExecutionError: loop 'each' has 3 items, more than its max of 2: raise its 'max' to "
        "at least 3, or set 'on_exhausted' to go to another step instead"
    )
    assert log(engine, result.execution_id) == [("start", "completed"), ("each", "failed")]


def test_foreach_over_more_items_than_max_goes_to_on_exhausted(engine: flowkit.Engine) -> None:
    result = engine.run(_foreach_wf(max=2, on_exhausted="tired"), {"items": [1, 2, 3]})
    assert result.output == "too many"
    entry = engine.store.entries(result.execution_id)[1]
    assert (entry.step_id, entry.action) == ("each", Action.FAILED)
    # the loop has an `on_exhausted`: the error tells what happened, not how to fix it
    assert entry.error == "ExecutionError: loop 'each' has 3 items, more than its max of 2"


def test_foreach_max_defaults_to_100(engine: flowkit.Engine) -> None:
    assert engine.run(_foreach_wf(), {"items": list(range(100))}).completed
    result = engine.run(_foreach_wf(), {"items": list(range(101))})
    assert result.error == (
        "ExecutionError: loop 'each' has 101 items, more than its max of 100: raise its 'max' "
        "to at least 101, or set 'on_exhausted' to go to another step instead"
    )


def test_a_foreach_with_a_max_as_long_as_its_list_runs_every_item(
    engine: flowkit.Engine,
) -> None:
    result = engine.run(_foreach_wf(max=101), {"items": list(range(101))})
    assert result.output == [{"v": item} for item in range(101)]


def test_foreach_over_nothing_runs_zero_iterations(engine: flowkit.Engine) -> None:
    result = engine.run(_foreach_wf(), {"items": []})
    assert result.output == []
    assert log(engine, result.execution_id) == [
        ("start", "completed"),
        ("each", "completed"),
        ("done", "completed"),
    ]


def test_foreach_over_a_non_list_fails(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$input.items",
            "do": [{"id": "a", "type": "assign", "set": {"v": "$item"}}],
        },
        inputs={"items": {"type": "any"}},
    )
    result = engine.run(wf, {"items": {"a": 1}})
    assert result.error == "ExecutionError: loop 'each': 'over' must give a list, got dict"


def test_nested_loops(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "rows"},
        {
            "id": "rows",
            "type": "loop",
            "over": [[1, 2], [3]],
            "as": "row",
            "index_as": "r",
            "output": "table",
            "do": [
                {
                    "id": "cells",
                    "type": "loop",
                    "over": "$row",
                    "as": "cell",
                    "index_as": "c",
                    "output": "line",
                    "do": [{"id": "mul", "type": "assign", "set": {"v": "${r}.${c}=${cell}"}}],
                },
            ],
        },
    )
    result = engine.run(wf)
    ctx = engine.load(result.execution_id).ctx
    assert ctx["table"] == [
        [{"v": "0.0=1"}, {"v": "0.1=2"}],
        [{"v": "1.0=3"}],
    ]
    entries = engine.store.entries(result.execution_id)
    assert [(e.step_id, e.iteration) for e in entries] == [
        ("start", None),
        ("rows:cells:mul", 0),
        ("rows:cells:mul", 1),
        ("rows:cells", 0),
        ("rows:cells:mul", 0),
        ("rows:cells", 1),
        ("rows", None),
    ]


# --- halts and crashes inside iterations --------------------------------------------------------


def _approval_loop(services: flowkit.ServiceRegistry) -> tuple[flowkit.WorkflowDef, list[Any]]:
    calls: list[Any] = []

    def work(x: int) -> int:
        calls.append((x, flowkit.current().idempotency_key))
        return x * 10

    services.register("S", {"work": work})
    wf = workflow(
        {"id": "start", "type": "start", "next": "init"},
        {"id": "init", "type": "assign", "set": {"said": "-"}, "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$input.items",
            "output": "out",
            "next": "done",
            "do": [
                {
                    "id": "work",
                    "type": "call",
                    "service": "S",
                    "method": "work",
                    "input": {"x": "$item"},
                    "output": "w",
                },
                {
                    "id": "check",
                    "type": "router",
                    "routes": [{"when": {"field": "w", "op": "gte", "value": 20}, "then": "ask"}],
                    "default": "record",
                },
                {
                    "id": "ask",
                    "type": "approval",
                    "prompt": "ok ${item}?",
                    "approvers": ["boss"],
                    "next": "answered",
                },
                {"id": "answered", "type": "assign", "set": {"said": "$response"}},
                {"id": "record", "type": "assign", "set": {"seen": "${item}:${said}"}},
            ],
        },
        {"id": "done", "type": "end", "result": "$out"},
        inputs={"items": {"type": "array"}},
    )
    return wf, calls


def test_an_approval_inside_iteration_k_resumes_in_iteration_k(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    wf, calls = _approval_loop(services)
    halted = engine.run(wf, {"items": [1, 2, 3]})
    assert halted.halted
    assert halted.halt is not None
    assert halted.halt.prompt == "ok 2?"
    execution = engine.load(halted.execution_id)
    assert execution.current_step == "each"
    [frame] = execution.cursor["frames"]
    assert (frame["step"], frame["index"], frame["at"]) == ("each", 1, "ask")
    halted_seq = execution.seq

    with pytest.raises(flowkit.ExecutionError):
        engine.resume(halted.execution_id, approved=True, by="intern")
    first = engine.resume(halted.execution_id, approved=True, by="boss", response="yes")
    # iteration 2 halts again at its own approval
    assert first.halted
    assert first.halt is not None
    assert first.halt.prompt == "ok 3?"
    result = engine.resume(halted.execution_id, approved=True, by="boss", response="fine")
    assert result.completed
    assert result.output == [{"seen": "1:-"}, {"seen": "2:yes"}, {"seen": "3:fine"}]
    assert [x for x, _ in calls] == [1, 2, 3]  # no iteration ran twice
    later = engine.store.entries(halted.execution_id, after=halted_seq)
    assert [(e.step_id, e.iteration, e.action) for e in later[:3]] == [
        ("each:ask", 1, Action.RESUMED),
        ("each:answered", 1, Action.COMPLETED),
        ("each:record", 1, Action.COMPLETED),
    ]
    assert all(e.iteration != 0 for e in later)


def test_a_halt_inside_a_nested_loop_resumes_there(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "outer"},
        {
            "id": "outer",
            "type": "loop",
            "over": ["a", "b"],
            "as": "o",
            "output": "out",
            "do": [
                {
                    "id": "inner",
                    "type": "loop",
                    "over": [1, 2],
                    "as": "i",
                    "output": "row",
                    "do": [
                        {
                            "id": "pause",
                            "type": "router",
                            "routes": [
                                {"when": {"field": "i", "op": "eq", "value": 2}, "then": "wait"}
                            ],
                            "default": "mark",
                        },
                        {"id": "wait", "type": "halt", "reason": "${o}${i}", "next": "mark"},
                        {"id": "mark", "type": "assign", "set": {"m": "${o}${i}"}},
                    ],
                },
            ],
        },
    )
    first = engine.run(wf)
    assert first.halt is not None
    assert first.halt.prompt == "a2"
    frames = engine.load(first.execution_id).cursor["frames"]
    assert [(f["step"], f["index"], f["at"]) for f in frames] == [
        ("outer", 0, "inner"),
        ("inner", 1, "wait"),
    ]
    second = engine.resume(first.execution_id)
    assert second.halt is not None
    assert second.halt.prompt == "b2"
    done = engine.resume(first.execution_id)
    assert engine.load(done.execution_id).ctx["out"] == [
        [{"m": "a1"}, {"m": "a2"}],
        [{"m": "b1"}, {"m": "b2"}],
    ]
    marks = [
        e.step_id for e in engine.store.entries(done.execution_id) if e.step_id.endswith("mark")
    ]
    assert marks == ["outer:inner:mark"] * 4


def test_a_crash_between_steps_of_iteration_k_continues_at_k(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry
) -> None:
    calls = _recorder(services)
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$input.items",
            "output": "out",
            "next": "done",
            "do": [
                {
                    "id": "d",
                    "type": "call",
                    "service": "S",
                    "method": "double",
                    "input": {"x": "$item"},
                    "output": "y",
                },
                {"id": "a", "type": "assign", "set": {"v": "$y"}},
            ],
        },
        {"id": "done", "type": "end", "result": "$out"},
        inputs={"items": {"type": "array"}},
    )
    first = make_engine()
    execution = first.create(wf, {"items": [1, 2, 3, 4]})
    for _ in range(6):  # start, iterations 0 and 1, then `d` of iteration 2
        advance = first.step(execution.id)
        assert advance.running
        assert not advance.dropped
    stored = first.load(execution.id)
    [frame] = stored.cursor["frames"]
    assert (frame["index"], frame["at"]) == (2, "a")
    assert calls == [("double", 1, 0), ("double", 2, 1), ("double", 3, 2)]

    second = make_engine()  # "another process": nothing but the store is shared
    result = second.drive(execution.id)
    assert result.completed
    assert result.output == [{"v": 2}, {"v": 4}, {"v": 6}, {"v": 8}]
    assert calls == [("double", 1, 0), ("double", 2, 1), ("double", 3, 2), ("double", 4, 3)]
    assert [(e.step_id, e.iteration) for e in second.store.entries(execution.id)][6:] == [
        ("each:a", 2),
        ("each:d", 3),
        ("each:a", 3),
        ("each", None),
        ("done", None),
    ]


def test_a_crash_inside_a_step_of_iteration_k_reruns_only_that_step(
    make_engine: EngineFactory, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    calls: list[tuple[int, str]] = []
    crash = {"at": 2}

    def work(x: int) -> int:
        calls.append((x, flowkit.current().idempotency_key))
        if x == crash["at"]:
            crash["at"] = -1
            raise Crash
        return x

    services.register("S", {"work": work})
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [0, 1, 2, 3],
            "output": "out",
            "do": [
                {
                    "id": "w",
                    "type": "call",
                    "service": "S",
                    "method": "work",
                    "input": {"x": "$item"},
                }
            ],
        },
    )
    first = make_engine(lease_seconds=30)
    execution = first.create(wf)
    with pytest.raises(Crash):
        first.drive(execution.id)
    assert first.load(execution.id).status is Status.RUNNING

    second = make_engine()
    assert second.recover() == []  # the lease is still alive
    clock.advance(31)
    [recovered] = second.recover()
    assert recovered.execution_id == execution.id
    final = second.load(execution.id)
    assert final.status is Status.COMPLETED
    assert final.ctx["out"] == [0, 1, 2, 3]
    assert [x for x, _ in calls] == [0, 1, 2, 2, 3]
    assert calls[2][1] == calls[3][1]  # the re-run step sees the same idempotency key
    ws = [e for e in second.store.entries(execution.id) if e.step_id == "each:w"]
    assert [(e.iteration, e.action) for e in ws] == [(i, Action.COMPLETED) for i in range(4)]


def test_a_loop_over_a_thousand_items_stays_flat(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    calls = _recorder(services)
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$input.items",
            "output": "out",
            "max": 1000,
            "do": [
                {
                    "id": "d",
                    "type": "call",
                    "service": "S",
                    "method": "double",
                    "input": {"x": "$item"},
                }
            ],
        },
        inputs={"items": {"type": "array"}},
    )
    items = list(range(1000))
    execution = engine.create(wf, {"items": items})
    sizes = []
    for _ in range(1000):
        engine.step(execution.id)
        stored = engine.load(execution.id)
        sizes.append(len(json.dumps(stored.cursor)))
        assert len(json.dumps(stored.ctx)) < 100  # ctx does not accumulate outputs
    assert max(sizes) < 200  # the cursor does not grow with the iterations
    result = engine.drive(execution.id)
    assert result.completed
    stored = engine.load(execution.id)
    assert stored.ctx["out"] == [x * 2 for x in items]
    assert len(calls) == 1000
    assert stored.seq == 1 + 1000 + 1


def test_retries_inside_a_body_keep_their_iteration(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    seen: list[flowkit.StepContext] = []

    def flaky(x: int) -> int:
        seen.append(flowkit.current())
        if sum(1 for c in seen if c.iteration == flowkit.current().iteration) == 1:
            raise RuntimeError(f"first try of {x}")
        return x

    services.register("S", {"flaky": flaky})
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [7, 8],
            "output": "out",
            "do": [
                {
                    "id": "f",
                    "type": "call",
                    "service": "S",
                    "method": "flaky",
                    "input": {"x": "$item"},
                    "retries": 1,
                    "retry_delay": 0.25,
                },
                {"id": "a", "type": "assign", "set": {"done": "$item"}},
            ],
        },
    )
    result = engine.run(wf)
    assert engine.load(result.execution_id).ctx["out"] == [{"done": 7}, {"done": 8}]
    assert [(c.iteration, c.attempt) for c in seen] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert seen[0].idempotency_key == seen[1].idempotency_key
    assert seen[1].idempotency_key != seen[2].idempotency_key
    assert seen[2].idempotency_key == seen[3].idempotency_key
    assert clock.sleeps == [0.25, 0.25]
    body = [
        (e.step_id, e.iteration, e.action.value, e.attempt)
        for e in engine.store.entries(result.execution_id)
        if e.iteration is not None
    ]
    assert body == [
        ("each:f", 0, "retried", 1),
        ("each:f", 0, "completed", 2),
        ("each:a", 0, "completed", 1),
        ("each:f", 1, "retried", 1),
        ("each:f", 1, "completed", 2),
        ("each:a", 1, "completed", 1),
    ]


def test_an_approval_timeout_inside_a_body_continues_in_that_iteration(
    engine: flowkit.Engine, clock: FakeClock
) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": ["a", "b"],
            "output": "out",
            "do": [
                {
                    "id": "ask",
                    "type": "approval",
                    "prompt": "ok ${item}?",
                    "timeout": 60,
                    "on_timeout": "late",
                    "next": "yes",
                },
                {"id": "yes", "type": "assign", "set": {"r": "yes ${item}"}, "next": "tail"},
                {"id": "late", "type": "assign", "set": {"r": "late ${item}"}},
                {"id": "tail", "type": "assign", "set": {"v": "$r"}},
            ],
        },
    )
    halted = engine.run(wf)
    assert engine.resume(halted.execution_id, approved=True).halted  # now asking about "b"
    clock.advance(60)
    [woken] = engine.wake_due()
    assert woken.completed
    assert engine.load(halted.execution_id).ctx["out"] == [{"v": "yes a"}, {"v": "late b"}]


def test_a_failing_body_step_goes_to_the_loops_on_error(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    def check(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n

    services.register("S", {"check": check})
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2, 3],
            "on_error": "handle",
            "next": "done",
            "do": [
                {
                    "id": "c",
                    "type": "call",
                    "service": "S",
                    "method": "check",
                    "input": {"n": "$item"},
                }
            ],
        },
        {"id": "done", "type": "end", "result": "finished"},
        {"id": "handle", "type": "end", "result": "$_last_error"},
    )
    result = engine.run(wf)
    assert result.completed
    assert result.output["type"] == "ValueError"
    assert result.output["message"] == "two"
    assert engine.load(result.execution_id).cursor == {}
    assert [
        (e.step_id, e.iteration, e.action.value) for e in engine.store.entries(result.execution_id)
    ] == [
        ("start", None, "completed"),
        ("each:c", 0, "completed"),
        ("each:c", 1, "failed"),
        ("handle", None, "completed"),
    ]


def test_a_sub_workflow_in_a_body_runs_one_child_per_iteration(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry
) -> None:
    services.register("C", {"double": lambda n: n * 2})
    engine.workflows.register(
        workflow(
            {"id": "start", "type": "start", "next": "d"},
            {
                "id": "d",
                "type": "call",
                "service": "C",
                "method": "double",
                "input": {"n": "$input.n"},
            },
            id="child",
            inputs={"n": {"type": "integer"}},
        )
    )
    wf = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2, 3],
            "output": "out",
            "do": [
                {"id": "sub", "type": "workflow", "workflow_id": "child", "input": {"n": "$item"}}
            ],
        },
    )
    result = engine.run(wf, execution_id="p")
    assert result.completed
    children = engine.store.find(workflow_id="child")
    assert len({c.id for c in children}) == 3
    assert {c.parent_id for c in children} == {"p"}


def test_changing_the_list_a_loop_iterates_over_fails(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "init"},
        {"id": "init", "type": "assign", "set": {"items": [1, 2, 3]}, "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$items",
            "do": [{"id": "a", "type": "assign", "set": {"items": [1]}}],
        },
    )
    result = engine.run(wf)
    assert result.error == (
        "ExecutionError: loop 'each': the list in 'over' changed during the loop "
        "(it had 3 items); don't modify the list a loop iterates over"
    )

"""The Python DSL (SPEC §5): ``flowkit.Workflow`` compiles to the definition the YAML gives.

Every builder and option is compared with the same step written in YAML, the
implicit ``next`` rules and the automatic start step are spelled out, and
``@wf.step`` / ``@wf.route`` functions are run through the engine with the
pytest plugin's fixtures. The hypothesis properties at the end build generated
definitions through the DSL and compare them with their parsed YAML.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import _outputs, identifiers, inputs, json_values, texts, workflow_defs

import flowkit
from flowkit import (
    ApprovalConfig,
    AssignConfig,
    CallConfig,
    Condition,
    EndConfig,
    HaltConfig,
    LoopConfig,
    ParallelConfig,
    Route,
    RouterConfig,
    StartConfig,
    StepDef,
    TransformConfig,
    TransformOp,
    WorkflowConfig,
    WorkflowDef,
)
from flowkit.abc import IMPLICIT, Builder
from flowkit.cli import main
from flowkit.definitions import kinds
from flowkit.definitions.graph import successors_in
from flowkit.expressions import CONDITION_OPS
from flowkit.frozen import thaw
from flowkit.testing import StepResult, Stub

RunStep = Callable[..., StepResult]
StubService = Callable[[str, Any], Stub]

THIS_FILE = Path(__file__).name


@pytest.fixture(autouse=True)
def _isolated_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Services and workflows registered by a test (``@wf.step`` registers them
    globally) are forgotten after it."""
    from flowkit.definitions import default_registry as workflows
    from flowkit.services import default_registry as services

    monkeypatch.setattr(services, "_entries", dict(services._entries))
    monkeypatch.setattr(workflows, "_by_id", dict(workflows._by_id))
    monkeypatch.setattr(workflows, "_by_hash", dict(workflows._by_hash))


def here() -> int:
    """The line this is called from (``here() + 1`` is the line below the call)."""
    return sys._getframe(1).f_lineno


def yaml_step(**raw: Any) -> StepDef:
    """One step as the YAML parser reads it (``as_`` stands for the YAML key ``as``)."""
    if "as_" in raw:
        raw["as"] = raw.pop("as_")
    return flowkit.parse({"id": "w", "steps": [raw]}).steps[0]


def problems(exc: pytest.ExceptionInfo[flowkit.ValidationError]) -> list[flowkit.Problem]:
    found = exc.value.problems
    assert all(isinstance(problem, flowkit.Problem) for problem in found)
    return [problem for problem in found if isinstance(problem, flowkit.Problem)]


def edges(wf: flowkit.Workflow | WorkflowDef) -> list[tuple[str, str | None]]:
    definition = wf.definition if isinstance(wf, flowkit.Workflow) else wf
    return [(step.id, step.next) for step in definition.steps]


# --- every builder, with its defaults and with every option ------------------------------------


@pytest.mark.parametrize(
    ("declare", "raw"),
    [
        pytest.param(lambda wf: wf.start(), {"id": "start", "type": "start"}, id="start"),
        pytest.param(lambda wf: wf.end(), {"id": "end", "type": "end"}, id="end"),
        pytest.param(
            lambda wf: wf.call("c", service="S", method="m"),
            {"id": "c", "type": "call", "service": "S", "method": "m"},
            id="call",
        ),
        pytest.param(
            lambda wf: wf.assign("a", set={"x": 1}),
            {"id": "a", "type": "assign", "set": {"x": 1}},
            id="assign",
        ),
        pytest.param(
            lambda wf: wf.router("r", default="x"),
            {"id": "r", "type": "router", "default": "x"},
            id="router",
        ),
        pytest.param(
            lambda wf: wf.transform("t", expression={"count": None}, output="n"),
            {"id": "t", "type": "transform", "expression": {"count": None}, "output": "n"},
            id="transform",
        ),
        pytest.param(lambda wf: wf.halt("h"), {"id": "h", "type": "halt"}, id="halt"),
        pytest.param(lambda wf: wf.approval("a"), {"id": "a", "type": "approval"}, id="approval"),
        pytest.param(
            lambda wf: wf.subworkflow("s", workflow="child"),
            {"id": "s", "type": "workflow", "workflow_id": "child"},
            id="subworkflow",
        ),
    ],
)
def test_builder_defaults_are_the_yaml_defaults(
    declare: Callable[[flowkit.Workflow], StepDef], raw: dict[str, Any]
) -> None:
    step = declare(flowkit.Workflow("w"))
    assert step == yaml_step(**raw)


def test_call_defaults() -> None:
    config = flowkit.Workflow("w").call("c", service="S", method="m").config
    assert config == CallConfig(service="S", method="m")
    assert (config.retries, config.retry_delay, config.retry_backoff) == (0, 1.0, 2.0)
    assert (config.input, config.output, config.timeout) == (None, None, None)


def test_loop_and_parallel_defaults_are_the_yaml_defaults() -> None:
    wf = flowkit.Workflow("w", inputs={"items": list})
    with wf.loop("each", over="$input.items") as body:
        body.assign("a", set={"seen": "$item"})
    with wf.parallel("both") as branches:
        branches.assign("b", set={"x": 1})
    loop, parallel = wf.definition.steps[1:]
    assert loop == yaml_step(
        id="each",
        type="loop",
        over="$input.items",
        do=[{"id": "a", "type": "assign", "set": {"seen": "$item"}}],
        next="both",
    )
    assert (loop.config.as_, loop.config.index_as, loop.config.max) == ("item", "index", 100)
    assert parallel == yaml_step(
        id="both", type="parallel", branches=[{"id": "b", "type": "assign", "set": {"x": 1}}]
    )
    assert parallel.config.wait == "all"


EVERY_OPTION_YAML = """
id: everything
name: Every option
version: "2.1"
description: one of each
timeout: 600
inputs:
  amount: {type: number}
  items: {type: array, required: false, default: [], description: Lines.}
  tags: {type: any, required: false}
steps:
  - {id: begin, type: start, validate_input: false, next: fetch, on_error: broken}
  - id: fetch
    type: call
    service: Shop
    method: fetch
    input: {amount: "$input.amount"}
    output:
      key: order
      schema: {type: object, properties: {total: {type: number}}}
    timeout: 5
    retries: 3
    retry_delay: 0.5
    retry_backoff: 3
    next: remember
    on_error: broken
  - {id: remember, type: assign, set: {seen: true, total: "$order.total"}, next: pick,
     on_error: broken}
  - id: pick
    type: router
    routes:
      - when: {field: order.total, op: gt, value: 100}
        then: ask
      - when: {field: input.tags, op: exists}
        then: count
    default: count
    on_error: broken
  - id: ask
    type: approval
    prompt: "Approve $order.total?"
    context: {total: "$order.total"}
    approvers: [alice, bob]
    on_reject: broken
    timeout: 3600
    on_timeout: broken
    next: count
    on_error: broken
  - id: count
    type: transform
    input: input.items
    expression:
      - {pluck: price}
      - {sum: null}
    output: price_total
    next: each
    on_error: broken
  - id: each
    type: loop
    over: "$input.items"
    as: line
    index_as: position
    output: lines
    max: 7
    on_exhausted: broken
    do:
      - {id: note, type: assign, set: {last: "$line"}}
    next: again
    on_error: broken
  - id: again
    type: loop
    while: {field: seen, op: falsy}
    index_as: round
    max: 3
    do:
      - {id: look, type: assign, set: {seen: true}}
    next: fan
  - id: fan
    type: parallel
    wait: 1
    output: both
    branches:
      - {id: left, type: assign, set: {l: 1}}
      - {id: right, type: workflow, workflow_id: child, input: {n: 1}, output: r, timeout: 9}
    next: wait
    on_error: broken
  - id: wait
    type: halt
    reason: paused
    data: {total: "$order.total"}
    resume_step: child
    next: child
    on_error: broken
  - id: child
    type: workflow
    workflow_id: child
    input: {n: 2}
    output: child_result
    timeout: 30
    next: done
    on_error: broken
  - {id: done, type: end, result: {total: "$order.total"}, on_error: broken}
  - {id: broken, type: end}
"""


def test_every_builder_with_every_option_matches_the_yaml() -> None:
    wf = flowkit.Workflow(
        "everything",
        name="Every option",
        version="2.1",
        description="one of each",
        timeout=600,
        inputs={
            "amount": float,
            "items": flowkit.Input(type=list, required=False, default=[], description="Lines."),
            "tags": flowkit.Input(type=Any, required=False),
        },
    )
    wf.start("begin", validate_input=False, on_error="broken")
    wf.call(
        "fetch",
        service="Shop",
        method="fetch",
        input={"amount": "$input.amount"},
        output={
            "key": "order",
            "schema": {"type": "object", "properties": {"total": {"type": "number"}}},
        },
        timeout=5,
        retries=3,
        retry_delay=0.5,
        retry_backoff=3,
        on_error="broken",
    )
    wf.assign("remember", set={"seen": True, "total": "$order.total"}, on_error="broken")
    wf.router(
        "pick",
        routes=[
            flowkit.when("order.total", "gt", 100).then("ask"),
            flowkit.when("input.tags", "exists").then("count"),
        ],
        default="count",
        on_error="broken",
    )
    wf.approval(
        "ask",
        prompt="Approve $order.total?",
        context={"total": "$order.total"},
        approvers=["alice", "bob"],
        on_reject="broken",
        timeout=3600,
        on_timeout="broken",
        on_error="broken",
    )
    wf.transform(
        "count",
        input="input.items",
        expression=[("pluck", "price"), ("sum", None)],
        output="price_total",
        on_error="broken",
    )
    with wf.loop(
        "each",
        over="$input.items",
        as_="line",
        index_as="position",
        output="lines",
        max=7,
        on_exhausted="broken",
        on_error="broken",
    ) as body:
        body.assign("note", set={"last": "$line"})
    with wf.loop("again", while_=flowkit.when("seen", "falsy"), index_as="round", max=3) as body:
        body.assign("look", set={"seen": True})
    with wf.parallel("fan", wait=1, output="both", on_error="broken") as branches:
        branches.assign("left", set={"l": 1})
        branches.subworkflow("right", workflow="child", input={"n": 1}, output="r", timeout=9)
    wf.halt(
        "wait",
        reason="paused",
        data={"total": "$order.total"},
        resume_step="child",
        on_error="broken",
    )
    wf.subworkflow(
        "child",
        workflow="child",
        input={"n": 2},
        output="child_result",
        timeout=30,
        on_error="broken",
    )
    wf.end("done", result={"total": "$order.total"}, on_error="broken")
    wf.end("broken")

    assert wf.definition == flowkit.load(EVERY_OPTION_YAML)
    assert flowkit.parse(flowkit.to_yaml(wf.definition)) == wf.definition


def test_router_routes_can_be_route_objects_and_while_a_condition() -> None:
    wf = flowkit.Workflow("w")
    wf.assign("a", set={"n": 0})
    route = Route(when=Condition(field="n", op="eq", value=0), then="l")
    wf.router("r", routes=[route], default="done")
    with wf.loop("l", while_=Condition(field="n", op="lt", value=3)) as body:
        body.assign("inc", set={"n": 3})
    wf.end("done")
    assert wf.definition.step("r") is not None
    assert flowkit.when("n", "eq", 0).then("l") == route


def test_transform_expression_as_a_mapping_keeps_its_order() -> None:
    step = flowkit.Workflow("w").transform(
        "t", expression={"select": {"field": "ok", "op": "truthy"}, "count": True}, output="n"
    )
    assert step.config.expression == (
        TransformOp(op="select", arg={"field": "ok", "op": "truthy"}),
        TransformOp(op="count", arg=True),
    )


def test_a_call_output_may_be_an_output_spec() -> None:
    spec = flowkit.OutputSpec(key="order", schema={"type": "object"})
    step = flowkit.Workflow("w").call("c", service="S", method="m", output=spec)
    assert step.config.output == spec


# --- implicit next ------------------------------------------------------------------------------


def test_a_step_continues_with_the_step_declared_after_it() -> None:
    wf = flowkit.Workflow("w")
    wf.assign("a", set={"x": 1})
    wf.call("b", service="S", method="m")
    wf.halt("c")
    wf.approval("d")
    wf.transform("e", expression={"count": None}, output="n")
    wf.subworkflow("f", workflow="child")
    assert edges(wf) == [
        ("start", "a"),
        ("a", "b"),
        ("b", "c"),
        ("c", "d"),
        ("d", "e"),
        ("e", "f"),
        ("f", None),  # the last step ends the workflow
    ]


def test_routers_and_end_steps_get_no_implicit_next() -> None:
    wf = flowkit.Workflow("w")
    wf.router("r", routes=[flowkit.when("input.x", "truthy").then("yes")], default="no")
    wf.end("yes", result="yes")
    wf.end("no", result="no")
    assert edges(wf) == [("start", "r"), ("r", None), ("yes", None), ("no", None)]


def test_explicit_next_wins_and_next_none_ends_there() -> None:
    wf = flowkit.Workflow("w")
    wf.assign("a", set={"x": 1}, next="c")
    wf.assign("b", set={"x": 2}, next=None)
    wf.assign("c", set={"x": 3}, next="b")
    assert edges(wf) == [("start", "a"), ("a", "c"), ("b", None), ("c", "b")]


def test_loop_bodies_chain_and_the_loop_continues_after_the_block() -> None:
    wf = flowkit.Workflow("w", inputs={"items": list})
    with wf.loop("each", over="$input.items", output="seen") as body:
        body.assign("one", set={"a": "$item"})
        body.assign("two", set={"b": "$index"})
        body.assign("three", set={"c": 3}, next=None)
    wf.end("done")
    loop = wf.definition.steps[1]
    assert loop.next == "done"
    assert [(step.id, step.next) for step in loop.config.do] == [
        ("one", "two"),
        ("two", "three"),
        ("three", None),
    ]


def test_parallel_branches_get_no_next() -> None:
    wf = flowkit.Workflow("w")
    with wf.parallel("both", wait="any") as branches:
        branches.assign("left", set={"l": 1})
        branches.call("right", service="S", method="m", output="r")
    wf.end("done")
    parallel = wf.definition.steps[1]
    assert parallel.next == "done"
    assert [step.next for step in parallel.config.branches] == [None, None]


def test_nested_loops_and_parallels() -> None:
    wf = flowkit.Workflow("w", inputs={"rows": list})
    with wf.loop("rows", over="$input.rows", as_="row") as rows:
        with rows.loop("cells", over="$row", as_="cell", index_as="col") as cells:
            cells.assign("see", set={"last": "$cell"})
        with rows.parallel("fan") as branches:
            branches.assign("copy", set={"row_seen": "$row"})
    outer = wf.definition.steps[1]
    inner, fan = outer.config.do
    assert inner.next == "fan"
    assert inner.config.do[0].id == "see"
    assert fan.next is None
    assert fan.config.branches[0].config.set == {"row_seen": "$row"}


# --- the start step -----------------------------------------------------------------------------


def test_a_start_step_is_added_first() -> None:
    wf = flowkit.Workflow("w")
    wf.assign("a", set={"x": 1})
    first = wf.definition.steps[0]
    assert first == StepDef(id="start", type="start", config=StartConfig(), next="a")


def test_an_empty_workflow_is_a_start_step() -> None:
    assert edges(flowkit.Workflow("w")) == [("start", None)]


def test_a_declared_start_is_not_added_twice() -> None:
    wf = flowkit.Workflow("w")
    wf.start("begin", validate_input=False)
    wf.assign("a", set={"x": 1})
    assert edges(wf) == [("begin", "a"), ("a", None)]
    assert wf.definition.steps[0].config == StartConfig(validate_input=False)


def test_add_start_false_starts_with_the_first_declared_step() -> None:
    wf = flowkit.Workflow("w", add_start=False)
    wf.assign("a", set={"x": 1})
    wf.end("done", result="$x")
    assert edges(wf) == [("a", "done"), ("done", None)]


def test_without_a_start_step_input_can_still_be_read() -> None:
    wf = flowkit.Workflow("w", inputs={"x": int}, add_start=False)
    wf.assign("a", set={"y": "$input.x"})
    assert [step.id for step in wf.definition.steps] == ["a"]


# --- the definition -----------------------------------------------------------------------------


def test_the_definition_is_cached_until_a_step_is_added() -> None:
    wf = flowkit.Workflow("w")
    wf.assign("a", set={"x": 1})
    first = wf.definition
    assert wf.definition is first
    wf.assign("b", set={"y": 2})
    assert wf.definition is not first
    assert edges(wf) == [("start", "a"), ("a", "b"), ("b", None)]


def test_the_definition_round_trips_through_yaml_and_dict() -> None:
    wf = flowkit.Workflow("w", inputs={"name": flowkit.Input(required=False, default="you")})
    wf.assign("greet", set={"greeting": "Hello, $input.name!"})
    wf.end("done", result={"greeting": "$greeting"})
    assert flowkit.parse(flowkit.to_yaml(wf.definition)) == wf.definition
    assert flowkit.parse(flowkit.to_dict(wf.definition)) == wf.definition
    assert flowkit.check(wf.definition) == []


# --- inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (str, "string"),
        (int, "integer"),
        (float, "number"),
        (bool, "boolean"),
        (list, "array"),
        (dict, "object"),
        (Any, "any"),
        (object, "any"),
        (tuple, "array"),
        (list[int], "array"),
        (dict[str, float], "object"),
        ("number", "number"),
    ],
)
def test_input_types_from_python_types(hint: Any, expected: str) -> None:
    wf = flowkit.Workflow("w", inputs={"x": hint})
    assert wf.definition.inputs == (flowkit.InputDef(name="x", type=expected),)


def test_flowkit_input_sets_every_field() -> None:
    wf = flowkit.Workflow(
        "w",
        inputs={
            "plain": flowkit.Input(),
            "full": flowkit.Input(type=int, required=False, default=3, description="How many."),
            "named": flowkit.Input(type="object", default={"a": [1]}),
        },
    )
    assert wf.definition.inputs == (
        flowkit.InputDef(name="plain"),
        flowkit.InputDef(
            name="full", type="integer", required=False, default=3, description="How many."
        ),
        flowkit.InputDef(name="named", type="object", default={"a": [1]}),
    )
    assert flowkit.Input() == flowkit.Input(type=str, required=True, default=None, description=None)


def test_inputs_match_the_yaml() -> None:
    wf = flowkit.Workflow(
        "w",
        inputs={
            "amount": float,
            "note": flowkit.Input(type=str, required=False, default=""),
        },
    )
    assert wf.definition == flowkit.load(
        """
        id: w
        inputs:
          amount: {type: number}
          note: {type: string, required: false, default: ""}
        steps:
          - {id: start, type: start}
        """
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (complex, "input 'x': cannot map <class 'complex'> to an input type (use str, int,"),
        (int | None, "input 'x': cannot map int | None to an input type"),
        (flowkit.Input(type="nubmer"), "(did you mean 'number'?)"),
        (flowkit.Input(type=bytes), "input 'x': cannot map <class 'bytes'>"),
        (
            flowkit.Input(required="yes"),  # type: ignore[arg-type]
            "input 'x': 'required' must be <class 'bool'>",
        ),
        (
            flowkit.Input(description=3),  # type: ignore[arg-type]
            "input 'x': 'description' must be <class 'str'>",
        ),
    ],
)
def test_a_bad_input_type_fails_at_declaration(value: Any, message: str) -> None:
    line = here() + 2
    with pytest.raises(flowkit.ValidationError) as exc:
        flowkit.Workflow("w", inputs={"x": value})
    [problem] = problems(exc)
    assert message in problem
    assert problem.workflow_id == "w"
    assert problem.location is not None
    assert problem.location.file is not None
    assert problem.location.file.endswith(THIS_FILE)
    assert problem.location.line == line


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "'timeout' must be greater than 0"),
        ({"version": ""}, "'version' must be a non-empty string"),
        ({"name": 3}, "'name' must be <class 'str'>"),
    ],
)
def test_bad_workflow_options_fail_at_declaration(options: dict[str, Any], message: str) -> None:
    line = here() + 2
    with pytest.raises(flowkit.ValidationError) as exc:
        flowkit.Workflow("w", **options)
    [problem] = problems(exc)
    assert message in problem.message
    assert problem.location is not None
    assert problem.location.line == line


def test_an_empty_workflow_id_fails_at_declaration() -> None:
    with pytest.raises(flowkit.ValidationError, match="'id' must be a non-empty string"):
        flowkit.Workflow("")


# --- @wf.step -----------------------------------------------------------------------------------


def test_step_parameters_map_to_input_or_ctx_references() -> None:
    wf = flowkit.Workflow(
        "shop",
        inputs={"order_id": str, "limit": flowkit.Input(type=int, required=False, default=10)},
    )
    wf.assign("prepare", set={"total": 5})

    @wf.step(output="summary")
    def summarize(
        order_id: str, total: float, limit: int = 3, note: str = "", *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        return {"order": order_id, "total": total, "limit": limit, "note": note}

    step = wf.definition.step("summarize")
    assert step is not None
    assert step == yaml_step(
        id="summarize",
        type="call",
        service="shop",
        method="summarize",
        # a workflow input, even with a default; a ctx name; `note` has a default: left out
        input={"order_id": "$input.order_id", "total": "$total", "limit": "$input.limit"},
        output="summary",
    )


def test_a_step_without_parameters_has_no_input() -> None:
    wf = flowkit.Workflow("w")

    @wf.step
    def ping() -> str:
        return "pong"

    assert wf.definition.steps[1] == yaml_step(id="ping", type="call", service="w", method="ping")


def test_step_options_override_the_defaults() -> None:
    wf = flowkit.Workflow("w", inputs={"amount": float})

    @wf.step(
        id="charge_card",
        service="Payments",
        method="charge",
        input={"cents": "$input.amount"},
        output={"key": "payment", "schema": {"type": "object"}},
        timeout=3,
        retries=2,
        retry_delay=0.25,
        retry_backoff=4,
        on_error="failed",
    )
    def charge(cents: int) -> dict[str, Any]:
        return {"charged": cents}

    wf.end("done", result="$payment")
    wf.end("failed")
    assert wf.definition.steps[1] == yaml_step(
        id="charge_card",
        type="call",
        service="Payments",
        method="charge",
        input={"cents": "$input.amount"},
        output={"key": "payment", "schema": {"type": "object"}},
        timeout=3,
        retries=2,
        retry_delay=0.25,
        retry_backoff=4,
        on_error="failed",
        next="done",
    )
    assert set(wf.services) == {"Payments"}
    assert set(wf.services["Payments"]) == {"charge"}


def test_step_input_none_calls_without_arguments() -> None:
    wf = flowkit.Workflow("w")

    @wf.step(input=None, output="n")
    def count(items: list[Any] | None = None) -> int:
        return len(items or [])

    assert wf.definition.steps[1].config.input is None


def test_step_next_and_explicit_next_none() -> None:
    wf = flowkit.Workflow("w")

    @wf.step(next="c")
    def a() -> None: ...

    @wf.step(next=None)
    def b() -> None: ...

    @wf.step(next="b")
    def c() -> None: ...

    assert edges(wf) == [("start", "a"), ("a", "c"), ("b", None), ("c", "b")]


def test_decorated_functions_stay_plain_callables() -> None:
    wf = flowkit.Workflow("w", inputs={"amount": float})

    @wf.step(output="quote")
    def price(amount: float) -> dict[str, float]:
        """Add the tax."""
        return {"total": amount * 1.2}

    @wf.step(output="echo")
    async def echo(quote: dict[str, float]) -> dict[str, float]:
        return quote

    @wf.step(output="shout")
    def shout(text: str) -> str:
        return str(text).upper()

    assert price(10.0) == {"total": 12.0}
    assert price.__name__ == "price"
    assert price.__doc__ == "Add the tax."
    assert shout(3) == "3"  # type: ignore[arg-type]  # hints are checked when a step calls it
    assert inspect.iscoroutinefunction(echo)
    assert not inspect.iscoroutinefunction(price)


def test_step_functions_are_registered_as_services() -> None:
    wf = flowkit.Workflow("registered_here", register_services=False)

    @wf.step
    def hello(name: str) -> str:
        return f"hi {name}"

    registry = flowkit.ServiceRegistry()
    wf.register_services(registry)
    assert registry.resolve("registered_here", "hello")(name="Ada") == "hi Ada"


def test_step_functions_are_registered_globally_by_default() -> None:
    from flowkit.services import default_registry

    wf = flowkit.Workflow("registered_globally")

    @wf.step
    def hello(name: str) -> str:
        return f"hi {name}"

    assert default_registry.resolve("registered_globally", "hello")(name="Ada") == "hi Ada"


def test_a_step_function_runs_with_its_references_resolved(run_step: RunStep) -> None:
    wf = flowkit.Workflow("quotes", inputs={"amount": float})
    wf.assign("rate", set={"tax": 0.5})

    @wf.step(output="quote")
    def price(amount: float, tax: float) -> dict[str, float]:
        return {"total": amount * (1 + tax)}

    result = run_step(wf, "price", ctx={"tax": 0.5}, input={"amount": 10})
    assert result.output == {"total": 15.0}
    assert result.ctx["quote"] == {"total": 15.0}


def test_an_async_step_function_is_awaited(flowkit_engine: flowkit.Engine) -> None:
    wf = flowkit.Workflow("async_steps", inputs={"name": str})

    @wf.step(output="greeting")
    async def greet(name: str) -> str:
        return f"hello {name}"

    wf.end(result="$greeting")
    assert flowkit_engine.run(wf, {"name": "Ada"}).output == "hello Ada"


def test_a_stubbed_step_function_stays_stubbed(
    flowkit_engine: flowkit.Engine, stub_service: StubService
) -> None:
    wf = flowkit.Workflow("stubbed_steps")

    @wf.step(output="value")
    def fetch() -> int:
        return 1

    wf.end(result="$value")
    stub = stub_service("stubbed_steps", {"fetch": 99})
    assert flowkit_engine.run(wf).output == 99
    assert flowkit_engine.run(wf).output == 99
    assert len(stub.calls_to("fetch")) == 2


def test_steps_in_loop_bodies_and_branches() -> None:
    wf = flowkit.Workflow("nested", inputs={"items": list})
    with wf.loop("each", over="$input.items", output="doubled") as body:

        @body.step(output="double")
        def twice(item: int) -> int:
            return item * 2

    with wf.parallel("fan") as branches:

        @branches.step(output="size")
        def measure(items: list[int]) -> int:
            return len(items)

    loop, fan = wf.definition.steps[1:]
    assert loop.config.do[0].config.input == {"item": "$item"}
    assert fan.config.branches[0].config.input == {"items": "$input.items"}
    assert set(wf.services["nested"]) == {"twice", "measure"}


# --- type hints ---------------------------------------------------------------------------------


ANYTHING = flowkit.Input(type=Any, required=False)


def _typed_workflow() -> flowkit.Workflow:
    names = ["count", "maybe", "ratio", "lines", "meta", "value", "anything"]
    wf = flowkit.Workflow("typed", inputs=dict.fromkeys(names, ANYTHING))

    @wf.step(output="out")
    def whole(count: int) -> int:
        return count

    @wf.step(output="out")
    def optional(maybe: int | None) -> int | None:
        return maybe

    @wf.step(output="out")
    def number(ratio: float) -> float:
        return ratio

    @wf.step(output="out")
    def containers(lines: list[int], meta: dict[str, Any]) -> int:
        return len(lines) + len(meta)

    @wf.step(output="out")
    def either(value: int | str) -> str:
        return str(value)

    @wf.step(output="out")
    def untyped(anything):  # type: ignore[no-untyped-def]
        return anything

    return wf


@pytest.mark.parametrize(
    ("step", "given"),
    [
        ("whole", {"count": 3}),
        ("optional", {"maybe": None}),
        ("optional", {"maybe": 4}),
        ("number", {"ratio": 2}),  # an int is a fine float
        ("number", {"ratio": 2.5}),
        ("containers", {"lines": [1, 2], "meta": {"a": 1}}),
        ("either", {"value": "x"}),
        ("either", {"value": 1}),
        ("untyped", {"anything": object.__name__}),
    ],
)
def test_arguments_matching_the_type_hints_pass(
    run_step: RunStep, step: str, given: dict[str, Any]
) -> None:
    result = run_step(_typed_workflow(), step, input=given)
    assert result.status is flowkit.Status.COMPLETED, result.error


@pytest.mark.parametrize(
    ("step", "given", "error"),
    [
        ("whole", {"count": "3"}, "parameter 'count' expects int, got str '3'"),
        ("whole", {"count": True}, "parameter 'count' expects int, got bool True"),
        ("whole", {}, "parameter 'count' expects int, got NoneType None"),
        ("optional", {"maybe": "4"}, "parameter 'maybe' expects int | None, got str '4'"),
        ("number", {"ratio": "2.5"}, "parameter 'ratio' expects float, got str '2.5'"),
        # containers are checked for their type, not their elements'
        ("containers", {"lines": {}, "meta": {}}, "parameter 'lines' expects list, got dict {}"),
        ("containers", {"lines": [], "meta": []}, "parameter 'meta' expects dict, got list []"),
        ("either", {"value": 1.5}, "parameter 'value' expects int | str, got float 1.5"),
    ],
)
def test_a_wrong_argument_type_fails_the_step_naming_the_parameter(
    run_step: RunStep, step: str, given: dict[str, Any], error: str
) -> None:
    result = run_step(_typed_workflow(), step, input=given)
    assert result.status is flowkit.Status.FAILED
    assert result.error is not None
    assert result.error.startswith(f"TypeError: step '{step}': ")
    assert error in result.error


def test_every_wrong_argument_is_reported_at_once(run_step: RunStep) -> None:
    wf = flowkit.Workflow("typed_twice", inputs={"a": ANYTHING, "b": ANYTHING})

    @wf.step
    def both(a: int, b: str) -> None: ...

    result = run_step(wf, "both", input={"a": "x", "b": 1})
    assert result.error == (
        "TypeError: step 'both': parameter 'a' expects int, got str 'x'; "
        "parameter 'b' expects str, got int 1"
    )


def test_a_wrong_type_fails_the_whole_run(flowkit_engine: flowkit.Engine) -> None:
    wf = flowkit.Workflow("typed_run", inputs={"count": flowkit.Input(type=Any)})

    @wf.step(output="n")
    def double(count: int) -> int:
        return count * 2

    wf.end(result="$n")
    assert flowkit_engine.run(wf, {"count": 2}).output == 4
    failed = flowkit_engine.run(wf, {"count": "2"})
    assert failed.failed
    assert failed.error == "TypeError: step 'double': parameter 'count' expects int, got str '2'"


# --- @wf.route ----------------------------------------------------------------------------------


def _routing() -> flowkit.Workflow:
    wf = flowkit.Workflow("routing", inputs={"amount": float})

    @wf.route(targets=["small", "large"], default="unknown")
    def size(amount: float) -> str:
        return "large" if amount > 100 else "small" if amount > 0 else "neither"

    wf.end("small", result="small")
    wf.end("large", result="large")
    wf.end("unknown", result="unknown")
    return wf


def test_route_compiles_to_a_call_and_a_router() -> None:
    definition = _routing().definition
    assert definition == flowkit.load(
        """
        id: routing
        inputs:
          amount: {type: number}
        steps:
          - {id: start, type: start, next: size}
          - id: size
            type: call
            service: routing
            method: size
            input: {amount: "$input.amount"}
            output: size
            next: size_route
          - id: size_route
            type: router
            routes:
              - when: {field: size, op: eq, value: small}
                then: small
              - when: {field: size, op: eq, value: large}
                then: large
            default: unknown
          - {id: small, type: end, result: small}
          - {id: large, type: end, result: large}
          - {id: unknown, type: end, result: unknown}
        """
    )


@pytest.mark.parametrize(("amount", "outcome"), [(5, "small"), (500, "large"), (-1, "unknown")])
def test_route_goes_where_the_function_says(
    flowkit_engine: flowkit.Engine, amount: float, outcome: str
) -> None:
    assert flowkit_engine.run(_routing(), {"amount": amount}).output == outcome


def test_route_decision_in_isolation(run_step: RunStep) -> None:
    wf = _routing()
    assert run_step(wf, "size", input={"amount": 500}).ctx["size"] == "large"
    assert run_step(wf, "size_route", ctx={"size": "large"}).next == "large"
    assert run_step(wf, "size_route", ctx={"size": "huh"}).next == "unknown"


def test_route_without_default_fails_on_an_unknown_target(flowkit_engine: flowkit.Engine) -> None:
    wf = flowkit.Workflow("strict_routing")

    @wf.route(targets=["done"], id="pick", input={})
    def choose() -> str:
        return "elsewhere"

    wf.end("done")
    assert [step.id for step in wf.definition.steps] == ["start", "pick", "pick_route", "done"]
    result = flowkit_engine.run(wf)
    assert result.failed
    assert "no route matched and there is no default" in (result.error or "")


def test_route_with_an_unknown_target_fails_at_build() -> None:
    wf = flowkit.Workflow("bad_routing")
    line = here() + 2

    @wf.route(targets=["nowhere"], default="done")
    def choose() -> str:
        return "nowhere"

    wf.end("done")
    with pytest.raises(flowkit.ValidationError) as exc:
        _ = wf.definition
    [problem] = problems(exc)
    assert problem.message == "routes[].then: no step 'nowhere'"
    assert problem.step_id == "choose_route"
    assert problem.location is not None
    assert problem.location.line == line


# --- mistakes are reported with the file and line that declared them ----------------------------


def test_an_undefined_reference_names_the_function_file_and_line() -> None:
    wf = flowkit.Workflow("mistakes")
    line = here() + 2

    @wf.step(output="total")
    def add(subtotal: float, tax: float) -> float:
        return subtotal + tax

    with pytest.raises(flowkit.ValidationError) as exc:
        _ = wf.definition
    found = problems(exc)
    assert [problem.message for problem in found] == [
        "'$subtotal' reads 'subtotal', which no step sets (did you mean 'total'?)",
        "'$tax' reads 'tax', which no step sets",
    ]
    for problem in found:
        assert problem.step_id == "add"
        assert problem.location is not None
        assert problem.location.file is not None
        assert problem.location.file.endswith(THIS_FILE)
        assert problem.location.line == line
    assert f"{THIS_FILE}:{line}" in str(exc.value)
    assert "invalid workflow 'mistakes' (2 problems)" in str(exc.value)


def test_a_builder_mistake_names_the_line_of_the_call() -> None:
    wf = flowkit.Workflow("mistakes")
    wf.assign("a", set={"x": 1})
    line = here() + 1
    wf.router("r", routes=[flowkit.when("x", "eq", 1).then("b")], default="nowhere")
    wf.end("b")
    with pytest.raises(flowkit.ValidationError) as exc:
        _ = wf.definition
    [problem] = problems(exc)
    assert problem.message == "default: no step 'nowhere'"
    assert problem.location is not None
    assert problem.location.file is not None
    assert problem.location.file.endswith(THIS_FILE)
    assert problem.location.line == line


def test_a_mistake_in_a_loop_body_names_the_body_step_and_its_line() -> None:
    wf = flowkit.Workflow("mistakes", inputs={"items": list})
    loop_line = here() + 1
    with wf.loop("each", over="$input.items") as body:
        body.assign("ok", set={"x": "$item"})
        line = here() + 1
        body.assign("bad", set={"y": "$missing"})
    wf.halt("after", data={"item": "$item"})
    with wf.loop("again", over="$items") as body:
        body.assign("inner", set={"x": 1})
    with pytest.raises(flowkit.ValidationError) as exc:
        _ = wf.definition
    bad, after, again = problems(exc)
    assert bad.step_id == "each:bad"
    assert bad.location is not None
    assert bad.location.line == line
    assert after.step_id == "after"
    assert "the loop variable of loop 'each'" in after.message
    assert again.step_id == "again"
    assert again.location is not None
    assert again.location.line == loop_line + 5  # the `with` line of the loop


def test_halt_in_a_parallel_branch_is_reported() -> None:
    wf = flowkit.Workflow("mistakes")
    with wf.parallel("fan") as branches:
        line = here() + 1
        branches.halt("wait")
    with pytest.raises(flowkit.ValidationError) as exc:
        _ = wf.definition
    [problem] = problems(exc)
    assert problem.message.startswith("a 'halt' step cannot be a parallel branch")
    assert problem.step_id == "fan:wait"
    assert problem.location is not None
    assert problem.location.line == line


def test_every_problem_is_reported_at_once() -> None:
    wf = flowkit.Workflow("mistakes")
    wf.assign("a", set={"x": "$nope"})
    wf.router("r", routes=[flowkit.when("x", "truthy").then("done")], default="dnoe")
    wf.end("done", result="$x")
    wf.assign("a", set={"z": 1}, next=None)
    with pytest.raises(flowkit.ValidationError) as exc:
        _ = wf.definition
    assert [(problem.step_id, problem.message) for problem in problems(exc)] == [
        ("a", "'$nope' reads 'nope', which no step sets"),
        ("r", "default: no step 'dnoe' (did you mean 'done'?)"),
        ("a", "duplicate step id 'a' (step ids must be unique)"),
    ]
    assert "(3 problems)" in str(exc.value)


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (
            lambda wf: wf.call("c", service="S", method="m", retries=-1),
            "'retries' must be at least 0, got -1",
        ),
        (
            lambda wf: wf.call("c", service="", method="m"),
            "'service' must be a non-empty string",
        ),
        (
            lambda wf: wf.call("c", service="S", method="m", timeout=0),
            "'timeout' must be greater than 0, got 0",
        ),
        (
            lambda wf: wf.call("c", service="S", method="m", retry_backoff=0.5),
            "'retry_backoff' must be at least 1, got 0.5",
        ),
        (lambda wf: wf.start(validate_input="yes"), "'validate_input' must be <class 'bool'>"),
        (lambda wf: wf.assign("a", set=[1]), "expected a mapping, got list"),
        (lambda wf: wf.approval("a", timeout=-5), "'timeout' must be greater than 0, got -5"),
        (lambda wf: wf.approval("a", approvers=[""]), "'approvers' must be a non-empty string"),
        (lambda wf: wf.halt("h", data=[1]), "expected a mapping, got list"),
        (lambda wf: wf.subworkflow("s", workflow=""), "'workflow_id' must be a non-empty string"),
        (lambda wf: wf.transform("t", expression={}, output=""), "'output' must be a non-empty"),
        (lambda wf: wf.assign("", set={"x": 1}), "'id' must be a non-empty string"),
        (lambda wf: wf.end("e", result={1, 2}), "set"),
    ],
)
def test_bad_options_fail_at_declaration(
    declare: Callable[[flowkit.Workflow], Any], message: str
) -> None:
    wf = flowkit.Workflow("w")
    with pytest.raises(flowkit.ValidationError) as exc:
        declare(wf)
    [problem] = problems(exc)
    assert message in problem.message
    assert problem.workflow_id == "w"
    assert problem.location is not None
    assert problem.location.file is not None
    assert problem.location.file.endswith(THIS_FILE)  # the line of the lambda above


def test_a_bad_option_names_the_line_of_the_call() -> None:
    wf = flowkit.Workflow("w")
    line = here() + 2
    with pytest.raises(flowkit.ValidationError) as exc:
        wf.call("charge", service="Payments", method="charge", retries=-1)
    [problem] = problems(exc)
    assert str(problem) == (
        f"workflow 'w' step 'charge' ({__file__}:{line}): 'retries' must be at least 0, got -1"
    )
    assert edges(wf) == [("start", None)]  # nothing was added


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"over": "$input.items", "max": 0}, "'max' must be at least 1, got 0"),
        ({}, "a loop needs exactly one of 'over' (foreach) or 'while'"),
        (
            {"over": "$input.items", "while_": flowkit.when("x", "truthy")},
            "a loop needs exactly one of 'over' (foreach) or 'while'",
        ),
        ({"over": "$input.items", "as_": ""}, "'as_' must be a non-empty string"),
    ],
)
def test_bad_loop_options_fail_at_the_with_line(options: dict[str, Any], message: str) -> None:
    wf = flowkit.Workflow("w", inputs={"items": list})
    line = here() + 2
    with pytest.raises(flowkit.ValidationError) as exc:  # noqa: SIM117 (the line matters)
        with wf.loop("each", **options) as body:
            body.assign("never", set={"x": 1})
    [problem] = problems(exc)
    assert message in problem.message
    assert problem.step_id == "each"
    assert problem.location is not None
    assert problem.location.file is not None
    assert problem.location.file.endswith(THIS_FILE)
    assert problem.location.line == line
    assert edges(wf) == [("start", None)]  # nothing was added


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"wait": 0}, "'wait' must be 'all', 'any' or a positive integer, got 0"),
        ({"wait": "most"}, "'wait' must be 'all', 'any' or a positive integer, got 'most'"),
        ({"output": ""}, "'output' must be a non-empty string"),
    ],
)
def test_bad_parallel_options_fail_at_the_with_line(options: dict[str, Any], message: str) -> None:
    wf = flowkit.Workflow("w")
    line = here() + 2
    with pytest.raises(flowkit.ValidationError) as exc:  # noqa: SIM117 (the line matters)
        with wf.parallel("fan", **options) as branches:
            branches.assign("never", set={"x": 1})
    [problem] = problems(exc)
    assert message in problem.message
    assert problem.location is not None
    assert problem.location.line == line


def test_bad_step_options_name_the_function() -> None:
    wf = flowkit.Workflow("w")
    line = here() + 2
    with pytest.raises(flowkit.ValidationError) as exc:

        @wf.step(retries=-2)
        def flaky() -> None: ...

    [problem] = problems(exc)
    assert problem.message == "'retries' must be at least 0, got -2"
    assert problem.step_id == "flaky"
    assert problem.location is not None
    assert problem.location.file is not None
    assert problem.location.file.endswith(THIS_FILE)
    assert problem.location.line == line + 1


def test_an_unknown_step_option_is_named_with_a_suggestion() -> None:
    wf = flowkit.Workflow("w")
    with pytest.raises(flowkit.ValidationError) as exc:

        @wf.step(retires=3)  # type: ignore[call-overload, untyped-decorator]
        def flaky() -> None: ...

    [problem] = problems(exc)
    assert problem.message == "unknown option 'retires' (did you mean 'retries'?)"
    assert problem.step_id == "flaky"


def test_an_unknown_builder_is_an_attribute_error() -> None:
    wf = flowkit.Workflow("w")
    with pytest.raises(AttributeError, match=r"Workflow has no builder 'asign' \(core builders:"):
        wf.asign("a", set={})


# --- extensions ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NotifyConfig:
    """A made-up extension step type: ``notify`` posts ``message`` to ``channel``."""

    channel: str
    message: str = ""


def _notify(
    graph: Builder, id: str, *, channel: str, message: str = "", next: Any = IMPLICIT
) -> StepDef:
    config = graph.config(NotifyConfig, id, channel=channel, message=message)
    return graph.add_step(id, "notify", config, next)


class Notify(flowkit.StepType):
    name = "notify"
    config = NotifyConfig
    build = staticmethod(_notify)


@pytest.fixture
def notify_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``notify`` step type and its ``wf.notify(...)`` builder, for one test."""
    # Registered through the private registry so that the test can take it back out.
    monkeypatch.setitem(kinds._kinds, "notify", Notify())


@pytest.mark.usefixtures("notify_step")
def test_a_step_types_builder_becomes_a_workflow_method() -> None:
    wf = flowkit.Workflow("w")
    line = here() + 1
    wf.notify("tell", channel="#ops", message="hi")
    with wf.loop("each", over=[1, 2]) as body:
        body.notify("inner", channel="#loop")
    wf.notify("again", channel="#ops", next=None)
    steps = wf.definition.steps
    assert [(step.id, step.type, step.next) for step in steps] == [
        ("start", "start", "tell"),
        ("tell", "notify", "each"),
        ("each", "loop", "again"),
        ("again", "notify", None),
    ]
    assert steps[1].config == NotifyConfig(channel="#ops", message="hi")
    assert steps[1].source == flowkit.SourceLocation(file=__file__, line=line)
    assert steps[2].config.do[0].type == "notify"


@pytest.fixture
def labels_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """A made-up top-level key ``labels``: a list of strings, stored as a tuple."""

    def structure(raw: Any) -> tuple[str, ...]:
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise TypeError("labels must be a list of strings")
        return tuple(raw)

    # Registered through the private registry so that the test can take it back out.
    monkeypatch.setitem(
        kinds._extensions,
        "labels",
        flowkit.Extension(key="labels", structure=structure, unstructure=list),
    )


@pytest.mark.usefixtures("labels_extension")
def test_extension_values_are_structured_like_the_yaml() -> None:
    wf = flowkit.Workflow("w")
    wf.extension("labels", ["billing", "eu"])
    wf.end("done")
    assert wf.definition.extensions == {"labels": ("billing", "eu")}
    assert wf.definition == flowkit.load(
        "id: w\nlabels: [billing, eu]\nsteps:\n"
        "  - {id: start, type: start, next: done}\n  - {id: done, type: end}\n"
    )
    assert flowkit.parse(flowkit.to_yaml(wf.definition)) == wf.definition


@pytest.mark.usefixtures("labels_extension")
def test_a_bad_extension_value_fails_at_declaration() -> None:
    wf = flowkit.Workflow("w")
    line = here() + 2
    with pytest.raises(flowkit.ValidationError) as exc:
        wf.extension("labels", "billing")
    [problem] = problems(exc)
    assert problem.message == "'labels': labels must be a list of strings"
    assert problem.location is not None
    assert problem.location.line == line


def test_an_unknown_extension_key_fails_at_declaration() -> None:
    with pytest.raises(flowkit.ValidationError, match="unknown extension key 'agnets'"):
        flowkit.Workflow("w").extension("agnets", [])


# --- running, registering, exporting -------------------------------------------------------------


def _greeter(workflow_id: str = "greeter") -> flowkit.Workflow:
    wf = flowkit.Workflow(
        workflow_id, inputs={"name": flowkit.Input(required=False, default="you")}
    )

    @wf.step(output="greeting")
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    wf.end("done", result={"greeting": "$greeting"})
    return wf


def test_the_engine_runs_a_workflow_object(flowkit_engine: flowkit.Engine) -> None:
    result = flowkit_engine.run(_greeter(), {"name": "Ada"})
    assert result.completed
    assert result.output == {"greeting": "Hello, Ada!"}
    assert flowkit_engine.run(_greeter()).output == {"greeting": "Hello, you!"}


def test_an_engine_with_its_own_registry_gets_the_step_functions(
    flowkit_store: flowkit.Store,
) -> None:
    wf = _greeter("private_greeter")
    registry = flowkit.ServiceRegistry()
    with flowkit.Engine(store=flowkit_store, services=registry) as engine:
        assert engine.run(wf, {"name": "Bo"}).output == {"greeting": "Hello, Bo!"}
    assert registry.resolve("private_greeter", "greet")(name="x") == "Hello, x!"


def test_register_accepts_a_workflow_object() -> None:
    wf = _greeter("registered_greeter")
    assert flowkit.register(wf) == wf.definition


def test_subworkflow_accepts_a_workflow_object(flowkit_engine: flowkit.Engine) -> None:
    child = _greeter("child_greeter")
    parent = flowkit.Workflow("parent", inputs={"who": str})
    step = parent.subworkflow(
        "greet_child", workflow=child, input={"name": "$input.who"}, output="g"
    )
    parent.end("done", result="$g")
    assert step.config == WorkflowConfig(
        workflow_id="child_greeter", input={"name": "$input.who"}, output="g"
    )
    result = flowkit_engine.run(parent, {"who": "Cy"})
    assert result.output == {"greeting": "Hello, Cy!"}


def test_subworkflow_accepts_a_definition() -> None:
    child = flowkit.load("id: child_def\nsteps:\n  - {id: start, type: start}\n")
    step = flowkit.Workflow("parent").subworkflow("c", workflow=child)
    assert step.config.workflow_id == "child_def"


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module ``dsl_user_flows`` in the working directory defining ``flows = Workflow(...)``."""
    (tmp_path / "dsl_user_flows.py").write_text(
        textwrap.dedent(
            """
            import flowkit

            flows = flowkit.Workflow("user_flows", inputs={"name": str})
            flows.assign("greet", set={"greeting": "Hello, $input.name!"})
            flows.end("done", result="$greeting")
            not_a_workflow = 42
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI puts the working dir first
    monkeypatch.delitem(sys.modules, "dsl_user_flows", raising=False)
    yield "dsl_user_flows"
    sys.modules.pop("dsl_user_flows", None)


def test_export_prints_the_yaml_of_a_python_workflow(user_module: str) -> None:
    result = CliRunner().invoke(main, ["export", f"{user_module}:flows"])
    assert result.exit_code == 0, result.output
    exported = flowkit.parse(result.output)
    assert exported == sys.modules[user_module].flows.definition
    assert result.output.startswith("id: user_flows\n")


def test_export_of_something_else_is_one_clear_error(user_module: str) -> None:
    result = CliRunner().invoke(main, ["export", f"{user_module}:not_a_workflow"])
    assert result.exit_code == 1
    assert "is not a workflow" in result.output


def test_run_runs_a_python_workflow(user_module: str, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    result = CliRunner().invoke(
        main, ["run", f"{user_module}:flows", "-i", "name=Ada", "--store", store, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "Hello, Ada!" in result.output


# --- hypothesis: generated definitions built through the DSL -------------------------------------


PY_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
    "any": Any,
}


def build(wf: WorkflowDef) -> flowkit.Workflow:
    """The builder calls a user would write for ``wf``: explicit ``next``, no added start."""
    declared: dict[str, Any] = {}
    for spec in wf.inputs:
        if spec.required and spec.default is None and spec.description is None:
            declared[spec.name] = PY_TYPES[spec.type]
        else:
            declared[spec.name] = flowkit.Input(
                type=PY_TYPES[spec.type] if spec.required else spec.type,
                required=spec.required,
                default=thaw(spec.default),
                description=spec.description,
            )
    dsl = flowkit.Workflow(
        wf.id,
        name=wf.name,
        version=wf.version,
        description=wf.description,
        timeout=wf.timeout,
        inputs=declared,
        add_start=False,
    )
    declare(dsl, wf.steps)
    return dsl


def declare(graph: Any, steps: Sequence[StepDef]) -> None:
    """Issue one builder call per step of one graph (nested graphs in ``with`` blocks)."""
    for step in steps:
        declare_step(graph, step)


def declare_step(graph: Any, step: StepDef) -> None:
    config = step.config
    edges = {"next": step.next, "on_error": step.on_error}
    match config:
        case StartConfig():
            graph.start(step.id, validate_input=config.validate_input, **edges)
        case EndConfig():
            graph.end(step.id, result=thaw(config.result), on_error=step.on_error)
        case CallConfig():
            output: Any = config.output
            if output is not None:
                schema = thaw(output.schema)
                output = output.key if schema is None else {"key": output.key, "schema": schema}
            graph.call(
                step.id,
                service=config.service,
                method=config.method,
                input=thaw(config.input),
                output=output,
                timeout=config.timeout,
                retries=config.retries,
                retry_delay=config.retry_delay,
                retry_backoff=config.retry_backoff,
                **edges,
            )
        case AssignConfig():
            graph.assign(step.id, set=thaw(config.set), **edges)
        case RouterConfig():
            graph.router(
                step.id,
                routes=[
                    flowkit.when(route.when.field, route.when.op, thaw(route.when.value)).then(
                        route.then
                    )
                    for route in config.routes
                ],
                default=config.default,
                **edges,
            )
        case TransformConfig():
            graph.transform(
                step.id,
                expression=[(op.op, thaw(op.arg)) for op in config.expression],
                output=config.output,
                input=config.input,
                **edges,
            )
        case HaltConfig():
            graph.halt(
                step.id,
                reason=config.reason,
                data=thaw(config.data),
                resume_step=config.resume_step,
                **edges,
            )
        case ApprovalConfig():
            graph.approval(
                step.id,
                prompt=config.prompt,
                context=thaw(config.context),
                approvers=list(config.approvers),
                on_reject=config.on_reject,
                timeout=config.timeout,
                on_timeout=config.on_timeout,
                **edges,
            )
        case WorkflowConfig():
            graph.subworkflow(
                step.id,
                workflow=config.workflow_id,
                input=thaw(config.input),
                output=config.output,
                timeout=config.timeout,
                **edges,
            )
        case LoopConfig():
            condition = config.while_
            with graph.loop(
                step.id,
                over=thaw(config.over),
                while_=None
                if condition is None
                else flowkit.when(condition.field, condition.op, thaw(condition.value)),
                as_=config.as_,
                index_as=config.index_as,
                output=config.output,
                max=config.max,
                on_exhausted=config.on_exhausted,
                **edges,
            ) as body:
                declare(body, config.do)
        case ParallelConfig():
            options = {"wait": config.wait, "output": config.output}
            with graph.parallel(step.id, **options, **edges) as branches:
                declare(branches, config.branches)
        case _:
            raise AssertionError(f"no builder for {step.type}")


# Definitions that validate: references read only names defined on every path
# (`input` after a first start step, `now`, `history`, loop variables inside
# bodies), targets are known, every step is reachable and none is stuck in a cycle.

RESERVED = frozenset({"input", "now", "history"})
NAMES = identifiers().filter(lambda name: name not in RESERVED)
TOP_TYPES = (
    "end", "call", "assign", "router", "loop", "parallel", "transform", "halt", "approval",
    "workflow",
)  # fmt: skip
BODY_TYPES = tuple(kind for kind in TOP_TYPES if kind != "end")
BRANCH_TYPES = ("call", "assign", "transform", "workflow")


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _positive() -> st.SearchStrategy[float]:
    return st.integers(1, 10**6) | st.floats(0.001, 1e9)


def _values(roots: Sequence[str]) -> st.SearchStrategy[Any]:
    """JSON values that may hold references to ``roots``."""
    reference = st.sampled_from(roots).map(lambda root: f"${root}")
    return st.one_of(
        reference,
        st.sampled_from(roots).map(lambda root: f"at ${{{root}}} now"),
        json_values(4),
        st.dictionaries(NAMES, reference | json_values(2), max_size=3),
        st.lists(reference, max_size=2),
    )


@st.composite
def _conditions(draw: st.DrawFn, roots: Sequence[str]) -> Condition:
    op = draw(st.sampled_from(sorted(CONDITION_OPS)))
    value: Any
    reference = st.sampled_from(roots).map(lambda root: f"${root}")
    if op == "matches":
        value = draw(st.sampled_from(["^a", "x+", "[0-9]{2}", "ok|fine"]) | reference)
    elif op in ("in", "not_in"):
        value = draw(st.lists(json_values(2), max_size=3) | st.text(max_size=5) | reference)
    elif op in ("gt", "gte", "lt", "lte"):
        value = draw(st.integers(-100, 100) | st.floats(-1e6, 1e6) | reference)
    else:
        value = draw(_opt(json_values(3) | reference))
    return Condition(field=draw(st.sampled_from(roots)), op=op, value=value)


def _op(name: str | Sequence[str], arg: st.SearchStrategy[Any]) -> st.SearchStrategy[TransformOp]:
    names = [name] if isinstance(name, str) else list(name)
    return st.builds(TransformOp, op=st.sampled_from(names), arg=arg)


TRANSFORM_OPS = st.one_of(
    _op("pluck", NAMES),
    _op(["first", "last"], _opt(st.integers(0, 5))),
    _op("flatten", _opt(st.integers(1, 3))),
    _op(["compact", "reverse", "keys", "values"], _opt(st.just(True))),
    _op(["uniq", "sum"], _opt(NAMES)),
    _op(
        "sort",
        st.fixed_dictionaries({"by": NAMES}, optional={"order": st.sampled_from(["asc", "desc"])}),
    ),
    _op(
        ["select", "reject"],
        st.fixed_dictionaries({"field": NAMES, "op": st.just("eq"), "value": json_values(2)}),
    ),
    _op("count", _opt(st.fixed_dictionaries({"field": NAMES, "op": st.just("truthy")}))),
    _op(["pick", "omit"], NAMES | st.lists(NAMES, min_size=1, max_size=3)),
    _op("merge", st.dictionaries(NAMES, json_values(2), max_size=2)),
    _op("map", st.dictionaries(NAMES, NAMES, min_size=1, max_size=2)),
)


def _config(
    draw: st.DrawFn,
    kind: str,
    roots: tuple[str, ...],
    forward: Sequence[str],
    anywhere: Sequence[str],
    depth: int,
) -> Any:
    values = _values(roots)
    ahead = st.sampled_from(forward) if forward else st.nothing()
    any_step = st.sampled_from(anywhere)
    if kind == "start":
        return StartConfig(validate_input=draw(st.booleans()))
    if kind == "end":
        return EndConfig(result=draw(_opt(values)))
    if kind == "call":
        return CallConfig(
            service=draw(NAMES),
            method=draw(NAMES),
            input=draw(_opt(values)),
            output=draw(_outputs(NAMES)),
            timeout=draw(_opt(_positive())),
            retries=draw(st.integers(0, 10)),
            retry_delay=draw(st.just(1.0) | st.integers(0, 60) | st.floats(0, 60)),
            retry_backoff=draw(st.just(2.0) | st.floats(1, 10)),
        )
    if kind == "assign":
        return AssignConfig(set=draw(st.dictionaries(NAMES, values, min_size=1, max_size=3)))
    if kind == "router":
        route = st.builds(Route, when=_conditions(roots), then=any_step)
        routes = draw(st.lists(route, min_size=0 if forward else 1, max_size=3))
        default = draw(_opt(ahead))
        if not routes and default is None:
            default = forward[0]
        return RouterConfig(routes=routes, default=default)
    if kind == "transform":
        source = st.sampled_from(roots)
        return TransformConfig(
            expression=draw(st.lists(TRANSFORM_OPS, max_size=3)),
            output=draw(NAMES),
            input=draw(_opt(source | source.map(lambda root: f"${root}"))),
        )
    if kind == "halt":
        return HaltConfig(
            reason=draw(_opt(texts())),
            data=draw(st.dictionaries(NAMES, values, max_size=2)),
            resume_step=draw(_opt(ahead)),
        )
    if kind == "approval":
        return ApprovalConfig(
            prompt=draw(_opt(texts() | st.sampled_from(roots).map(lambda root: f"ok ${root}?"))),
            context=draw(_opt(values)),
            approvers=draw(st.lists(NAMES, max_size=3)),
            on_reject=draw(_opt(any_step)),
            timeout=draw(_opt(_positive())),
            on_timeout=draw(_opt(any_step)),
        )
    if kind == "workflow":
        return WorkflowConfig(
            workflow_id=draw(NAMES),
            input=draw(_opt(values)),
            output=draw(_opt(NAMES)),
            timeout=draw(_opt(_positive())),
        )
    if kind == "loop":
        as_, index_as = draw(st.lists(NAMES, min_size=2, max_size=2, unique=True))
        foreach = draw(st.booleans())
        inner = (*roots, as_, index_as) if foreach else (*roots, index_as)
        common: dict[str, Any] = {
            "as_": as_,
            "index_as": index_as,
            "output": draw(_opt(NAMES)),
            "max": draw(st.just(100) | st.integers(1, 10**6)),
            "on_exhausted": draw(_opt(any_step)),
            "do": draw(_graphs(inner, depth - 1, "body")),
        }
        if foreach:
            reference = st.sampled_from(roots).map(lambda root: f"${root}")
            over = draw(reference | st.lists(json_values(2), max_size=3))
            return LoopConfig(over=over, **common)
        return LoopConfig(while_=draw(_conditions((*roots, index_as))), **common)
    assert kind == "parallel"
    branches = draw(_graphs(roots, depth - 1, "branches"))
    wait: Any = draw(st.sampled_from(["all", "any"]) | st.integers(1, len(branches)))
    return ParallelConfig(branches=branches, wait=wait, output=draw(_opt(NAMES)))


def _reached(steps: Sequence[StepDef], body: bool) -> set[str]:
    graph = successors_in(steps, body)
    seen = {steps[0].id}
    pending = [steps[0].id]
    while pending:
        for edge in graph[pending.pop()]:
            if edge.target in graph and edge.target not in seen:
                seen.add(edge.target)
                pending.append(edge.target)
    return seen


def _primary(step: StepDef) -> str | None:
    target: str | None = step.config.default if step.type == "router" else step.next
    return target


def _with_primary(step: StepDef, target: str | None) -> StepDef:
    if step.type == "router":
        return attrs.evolve(step, config=attrs.evolve(step.config, default=target))
    return attrs.evolve(step, next=target)


def _connect(steps: list[StepDef], body: bool) -> tuple[StepDef, ...]:
    """Point an edge of an earlier reached step at each unreached step, where one is free;
    drop the steps still unreached (only unreached steps lead to them)."""
    ids = [step.id for step in steps]
    for _ in steps:
        seen = _reached(steps, body)
        missing = [index for index, step in enumerate(steps) if step.id not in seen]
        if not missing:
            break
        k = missing[0]
        earlier = [i for i in range(k) if steps[i].id in seen and steps[i].type != "end"]
        free = [i for i in earlier if _primary(steps[i]) is None]
        spare = [i for i in earlier if steps[i].type != "start" and steps[i].on_error is None]
        if free:
            steps[free[-1]] = _with_primary(steps[free[-1]], ids[k])
        elif spare:
            steps[spare[-1]] = attrs.evolve(steps[spare[-1]], on_error=ids[k])
        elif steps[k].type != "end" and _primary(steps[k]) is None:
            before = _primary(steps[earlier[-1]])  # insert k: j -> k -> where j went
            steps[earlier[-1]] = _with_primary(steps[earlier[-1]], ids[k])
            if before is not None and ids.index(before) > k:
                steps[k] = _with_primary(steps[k], before)
        else:
            break
    seen = _reached(steps, body)
    return tuple(step for step in steps if step.id in seen)


@st.composite
def _graphs(
    draw: st.DrawFn, roots: tuple[str, ...], depth: int, where: str, start: bool = False
) -> tuple[StepDef, ...]:
    """One graph; primary edges (``next``, ``default``, ``resume_step``) only go forward, so
    every step can reach an end; other targets go anywhere."""
    most = 6 if where == "top" else 3
    ids = draw(st.lists(NAMES, min_size=1, max_size=most, unique=True))
    allowed = {"top": TOP_TYPES, "body": BODY_TYPES, "branches": BRANCH_TYPES}[where]
    if depth <= 0:
        allowed = tuple(kind for kind in allowed if kind not in ("loop", "parallel"))
    steps = []
    for index, step_id in enumerate(ids):
        if start and index == 0:
            kind = "start"
        else:
            kind = draw(st.sampled_from([k for k in allowed if index or k != "end"]))
        forward = ids[index + 1 :]
        config = _config(draw, kind, roots, forward, ids, depth)
        edged = where != "branches"
        steps.append(
            StepDef(
                id=step_id,
                type=kind,
                config=config,
                next=draw(_opt(st.sampled_from(forward)))
                if edged and forward and kind != "end"
                else None,
                # an on_error edge leaving the start step would reach steps without `input`
                on_error=draw(_opt(st.sampled_from(ids))) if edged and kind != "start" else None,
            )
        )
    return tuple(steps) if where == "branches" else _connect(steps, where == "body")


@st.composite
def valid_workflow_defs(draw: st.DrawFn) -> WorkflowDef:
    specs = draw(inputs(NAMES))
    start = draw(st.integers(0, 5)) > 0  # mostly with a start step first
    roots: tuple[str, ...] = ("now", "history")
    if start:
        roots += ("input", *(f"input.{spec.name}" for spec in specs))
    return WorkflowDef(
        id=draw(NAMES),
        name=draw(_opt(texts())),
        version=draw(st.just("1.0") | st.sampled_from(["2", "1.10"]) | NAMES),
        description=draw(_opt(texts())),
        timeout=draw(_opt(_positive())),
        inputs=specs,
        steps=draw(_graphs(roots, 2, "top", start=start)),
    )


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(valid_workflow_defs())
def test_building_a_definition_through_the_dsl_gives_the_parsed_yaml(wf: WorkflowDef) -> None:
    # About 1 in 60 draws holds a JSON text that happens to contain a `$name` reference.
    assume(not flowkit.check(wf))
    built = build(wf).definition
    assert built == flowkit.parse(flowkit.to_yaml(wf)) == wf
    assert flowkit.parse(flowkit.to_yaml(built)) == built


@PROPERTY
@given(workflow_defs())
def test_the_dsl_reports_the_problems_the_yaml_has(wf: WorkflowDef) -> None:
    found_in_yaml = flowkit.check(flowkit.to_yaml(wf))
    assert all(isinstance(p, flowkit.Problem) for p in found_in_yaml)
    expected = sorted((p.step_id or "", p.message) for p in found_in_yaml)  # type: ignore[attr-defined]
    dsl = build(wf)
    if not expected:
        assert dsl.definition == wf
        return
    with pytest.raises(flowkit.ValidationError) as exc:
        _ = dsl.definition
    found = problems(exc)
    assert sorted((p.step_id or "", p.message) for p in found) == expected
    for problem in found:
        assert problem.location is not None
        assert problem.location.file == __file__  # each step's builder call is in this file


def test_the_generated_definitions_are_mostly_valid_and_varied() -> None:
    """Guard the property above: the strategy must keep producing valid definitions."""
    kept = 0
    kinds: set[str] = set()
    nested = 0

    @settings(max_examples=100, deadline=None, database=None, derandomize=True)
    @given(valid_workflow_defs())
    def sample(wf: WorkflowDef) -> None:
        nonlocal kept, nested
        if not flowkit.check(wf):
            kept += 1
        nested += sum(isinstance(step.config, (LoopConfig, ParallelConfig)) for step in wf.steps)
        pending = list(wf.steps)
        while pending:
            step = pending.pop()
            kinds.add(step.type)
            pending.extend(getattr(step.config, "do", ()) + getattr(step.config, "branches", ()))

    sample()
    assert kept >= 90
    assert kinds == {"start", *TOP_TYPES}
    assert nested >= 20

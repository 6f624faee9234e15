"""The simple step types: start, end, assign, router, transform; input validation."""

from __future__ import annotations

import pytest

import flowkit
from flowkit import Action, Status

from .conftest import FakeClock
from .helpers import log, workflow


def test_start_stores_the_input_with_defaults(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start"},
        inputs={
            "amount": {"type": "number"},
            "note": {"type": "string", "required": False, "default": "none"},
        },
    )
    result = engine.run(wf, {"amount": 5})
    execution = engine.load(result.execution_id)
    assert execution.input == {"amount": 5, "note": "none"}
    # `$input` reads the stored input (the engine keeps it out of the checkpointed ctx).
    assert execution.ctx.get("input", execution.input) == {"amount": 5, "note": "none"}
    [entry] = engine.store.entries(result.execution_id)
    assert (entry.step_id, entry.step_type, entry.action) == ("start", "start", Action.COMPLETED)
    assert entry.output == {"amount": 5, "note": "none"}


def test_input_is_readable_by_reference_in_every_later_step(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "set"},
        {
            "id": "set",
            "type": "assign",
            "set": {"copy": "$input.amount", "all": "$input"},
            "next": "done",
        },
        {"id": "done", "type": "end", "result": {"a": "$input.amount", "b": "$copy"}},
        inputs={"amount": {"type": "number"}},
    )
    result = engine.run(wf, {"amount": 5})
    assert result.output == {"a": 5, "b": 5}
    assert engine.load(result.execution_id).ctx["all"] == {"amount": 5}


def test_start_without_validation_keeps_the_input_as_given(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "validate_input": False, "next": "done"},
        {"id": "done", "type": "end", "result": "$input"},
        inputs={"amount": {"type": "number"}},
    )
    result = engine.run(wf, {"amount": "not a number", "extra": 1})
    assert result.completed
    assert result.output == {"amount": "not a number", "extra": 1}


def test_workflow_without_end_step_completes_with_null_output(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "set"},
        {"id": "set", "type": "assign", "set": {"x": 1}},
    )
    result = engine.run(wf)
    assert result.status is Status.COMPLETED
    assert result.completed
    assert not result.failed
    assert not result.halted
    assert result.output is None
    execution = engine.load(result.execution_id)
    assert execution.status is Status.COMPLETED
    assert execution.current_step is None
    assert {k: v for k, v in execution.ctx.items() if k != "input"} == {"x": 1}
    assert execution.lease_owner is None
    assert execution.lease_expires_at is None
    assert log(engine, result.execution_id) == [("start", "completed"), ("set", "completed")]


def test_end_result_defaults_to_a_copy_of_ctx(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "set"},
        {"id": "set", "type": "assign", "set": {"x": 1, "y": [1, 2]}, "next": "done"},
        {"id": "done", "type": "end"},
        inputs={"a": {"type": "integer"}},
    )
    result = engine.run(wf, {"a": 3})
    execution = engine.load(result.execution_id)
    expected = {k: v for k, v in execution.ctx.items() if k != "result"}
    assert {k: v for k, v in expected.items() if k != "input"} == {"x": 1, "y": [1, 2]}
    assert result.output == expected
    assert execution.result == expected
    assert execution.ctx["result"] == expected
    assert engine.store.entries(result.execution_id)[-1].output == expected


def test_end_result_resolves_references(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "done"},
        {"id": "done", "type": "end", "result": {"total": "$input.a", "text": "a=${input.a}"}},
        inputs={"a": {"type": "integer"}},
    )
    assert engine.run(wf, {"a": 3}).output == {"total": 3, "text": "a=3"}


def test_assign_resolves_in_order_later_keys_see_earlier(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "set"},
        {
            "id": "set",
            "type": "assign",
            "set": {"a": "$input.n", "b": "$a", "c": "${b}-${a}", "d": {"nested": "$c"}},
            "next": "done",
        },
        {"id": "done", "type": "end", "result": {"a": "$a", "b": "$b", "c": "$c", "d": "$d"}},
        inputs={"n": {"type": "integer"}},
    )
    result = engine.run(wf, {"n": 7})
    assert result.output == {"a": 7, "b": 7, "c": "7-7", "d": {"nested": "7-7"}}
    entry = engine.store.entries(result.execution_id)[1]
    assert entry.step_id == "set"
    assert entry.output == {"a": 7, "b": 7, "c": "7-7", "d": {"nested": "7-7"}}


def test_assign_without_set_only_moves_on(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "noop"},
        {"id": "noop", "type": "assign", "next": "done"},
        {"id": "done", "type": "end", "result": "$input.n"},
        inputs={"n": {"type": "integer"}},
    )
    result = engine.run(wf, {"n": 7})
    assert result.output == 7
    entry = engine.store.entries(result.execution_id)[1]
    assert (entry.step_id, entry.action, entry.output) == ("noop", Action.COMPLETED, {})
    assert flowkit.to_dict(wf)["steps"][1] == {"id": "noop", "type": "assign", "next": "done"}


def test_the_dsl_assign_without_set_compiles_like_the_yaml_form() -> None:
    wf = flowkit.Workflow("noop")
    wf.assign("noop", next=None)
    assert wf.definition == workflow(
        {"id": "start", "type": "start", "next": "noop"},
        {"id": "noop", "type": "assign"},
        id="noop",
    )


def _router_wf() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "route"},
        {
            "id": "route",
            "type": "router",
            "routes": [
                {"when": {"field": "input.n", "op": "gt", "value": 10}, "then": "big"},
                {"when": {"field": "input.n", "op": "gt", "value": 5}, "then": "medium"},
            ],
            "default": "small",
        },
        {"id": "big", "type": "end", "result": "big"},
        {"id": "medium", "type": "end", "result": "medium"},
        {"id": "small", "type": "end", "result": "small"},
        inputs={"n": {"type": "integer"}},
    )


@pytest.mark.parametrize(("n", "expected"), [(20, "big"), (7, "medium"), (1, "small")])
def test_router_takes_the_first_matching_route_else_default(
    engine: flowkit.Engine, n: int, expected: str
) -> None:
    result = engine.run(_router_wf(), {"n": n})
    assert result.output == expected
    entries = engine.store.entries(result.execution_id)
    assert [e.step_id for e in entries] == ["start", "route", expected]
    assert entries[1].output == {"route": expected}


def test_router_without_match_and_default_fails(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "route"},
        {
            "id": "route",
            "type": "router",
            "routes": [{"when": {"field": "input.n", "op": "gt", "value": 10}, "then": "big"}],
        },
        {"id": "big", "type": "end"},
        inputs={"n": {"type": "integer"}},
    )
    result = engine.run(wf, {"n": 1})
    assert result.failed
    assert result.error == (
        "ExecutionError: router 'route': no route matched and there is no default"
    )
    assert log(engine, result.execution_id) == [("start", "completed"), ("route", "failed")]


def test_transform_applies_ops_in_order(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "t"},
        {
            "id": "t",
            "type": "transform",
            "input": "input.items",
            "expression": [{"select": {"field": "qty", "op": "gt", "value": 0}}, {"pluck": "sku"}],
            "output": "skus",
            "next": "count",
        },
        {
            "id": "count",
            "type": "transform",
            "input": "skus",
            "expression": {"count": None},
            "output": "n",
            "next": "done",
        },
        {"id": "done", "type": "end", "result": {"skus": "$skus", "n": "$n"}},
        inputs={"items": {"type": "array"}},
    )
    items = [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}, {"sku": "c", "qty": 2}]
    result = engine.run(wf, {"items": items})
    assert result.output == {"skus": ["a", "c"], "n": 2}
    assert engine.store.entries(result.execution_id)[1].output == ["a", "c"]


def test_transform_takes_the_gems_select_reject_and_map_forms(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "t"},
        {
            "id": "t",
            "type": "transform",
            "input": "input.orders",
            "expression": [
                {"select": {"status": "paid", "customer.tier": "$input.tier"}},
                {"reject": {"total": 0}},
                {"map": "id"},
            ],
            "output": "ids",
        },
        inputs={"orders": {"type": "array"}, "tier": {"type": "string"}},
    )
    orders = [
        {"id": 1, "status": "paid", "total": 5, "customer": {"tier": "gold"}},
        {"id": 2, "status": "open", "total": 7, "customer": {"tier": "gold"}},
        {"id": 3, "status": "paid", "total": 0, "customer": {"tier": "gold"}},
        {"id": 4, "status": "paid", "total": 9, "customer": {"tier": "basic"}},
        {"id": 5, "status": "paid", "total": 2, "customer": {"tier": "gold"}},
    ]
    result = engine.run(wf, {"orders": orders, "tier": "gold"})
    assert engine.load(result.execution_id).ctx["ids"] == [1, 5]


def test_a_malformed_transform_op_is_reported_naming_the_step_and_the_op() -> None:
    wf = flowkit.parse(
        {
            "id": "wf",
            "steps": [
                {"id": "start", "type": "start", "next": "t"},
                {
                    "id": "t",
                    "type": "transform",
                    "expression": {"select": "paid", "map": 3},
                    "output": "o",
                },
            ],
        }
    )
    assert [str(problem) for problem in flowkit.check(wf)] == [
        "workflow 'wf' step 't': expression: select: needs a condition {field, op, value} "
        "or a mapping of field paths to values, got a str",
        "workflow 'wf' step 't': expression: map: needs a field path or a mapping of output "
        "keys to field paths, got an int",
    ]


def test_transform_without_input_reads_the_whole_ctx(engine: flowkit.Engine) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "set"},
        {"id": "set", "type": "assign", "set": {"b": 1, "a": 2}, "next": "t"},
        {
            "id": "t",
            "type": "transform",
            "expression": [{"keys": None}, {"sort": None}],
            "output": "names",
        },
    )
    result = engine.run(wf)
    names = engine.load(result.execution_id).ctx["names"]
    assert [name for name in names if name != "input"] == ["a", "b"]


# --- input validation ---------------------------------------------------------------------------


def test_every_bad_input_is_reported_at_once_and_nothing_is_created(
    engine: flowkit.Engine,
) -> None:
    wf = workflow(
        {"id": "start", "type": "start"},
        inputs={
            "amount": {"type": "number"},
            "count": {"type": "integer"},
            "name": {"type": "string"},
            "flag": {"type": "boolean", "required": False},
        },
    )
    with pytest.raises(flowkit.ValidationError) as caught:
        engine.run(wf, {"amount": "12", "count": 1.5, "flag": "yes", "colour": "red"})
    problems = caught.value.problems
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    for fragment in ("'amount'", "'count'", "'name'", "'flag'", "'colour'"):
        assert fragment in text
    assert engine.store.find() == []


def test_an_input_that_is_not_json_is_refused(engine: flowkit.Engine) -> None:
    wf = workflow({"id": "start", "type": "start"}, inputs={"x": {"type": "any"}})
    with pytest.raises(flowkit.ValidationError):
        engine.run(wf, {"x": object()})
    assert engine.store.find() == []


def test_an_invalid_definition_is_refused_before_anything_runs(engine: flowkit.Engine) -> None:
    wf = flowkit.parse({"id": "wf", "steps": [{"id": "start", "type": "start", "next": "nowhere"}]})
    with pytest.raises(flowkit.ValidationError) as caught:
        engine.run(wf)
    assert any("nowhere" in problem for problem in caught.value.problems)
    assert engine.store.find() == []


def test_run_with_a_taken_execution_id_raises_conflict(engine: flowkit.Engine) -> None:
    wf = workflow({"id": "start", "type": "start"})
    engine.run(wf, execution_id="one")
    with pytest.raises(flowkit.ConflictError):
        engine.run(wf, execution_id="one")
    assert [e.id for e in engine.store.find()] == ["one"]


def test_execution_record_fields(engine: flowkit.Engine, clock: FakeClock) -> None:
    wf = workflow({"id": "start", "type": "start"}, id="fields", version="2.5")
    result = engine.run(wf, execution_id="x1")
    execution = engine.load("x1")
    assert result.execution_id == "x1"
    assert result.workflow_id == "fields"
    assert execution.workflow_id == "fields"
    assert execution.workflow_version == "2.5"
    assert execution.parent_id is None
    assert execution.seq == 1
    assert execution.version >= 2
    assert execution.created_at == execution.updated_at == clock.now()


def test_now_and_history_references(engine: flowkit.Engine, clock: FakeClock) -> None:
    wf = workflow(
        {"id": "start", "type": "start", "next": "a"},
        {"id": "a", "type": "assign", "set": {"t": "$now"}, "next": "done"},
        {"id": "done", "type": "end", "result": {"t": "$t", "h": "$history"}},
    )
    assert engine.run(wf).output == {"t": clock.now().isoformat(), "h": ["start", "a"]}

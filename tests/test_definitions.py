"""Typed definitions: defaults (SPEC §4), immutability, equality, validators, lean imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

import flowkit
from flowkit import (
    ApprovalConfig,
    AssignConfig,
    CallConfig,
    Condition,
    EndConfig,
    HaltConfig,
    InputDef,
    LoopConfig,
    OutputSpec,
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
from flowkit.definitions import SourceLocation
from flowkit.frozen import FrozenDict, JsonTypeError, thaw

BODY = (StepDef(id="inner", type="assign", config=AssignConfig(set={"x": 1})),)

# One minimal instance of every definition class: only the required keys.
MINIMAL: dict[type[Any], dict[str, Any]] = {
    StartConfig: {},
    EndConfig: {},
    CallConfig: {"service": "S", "method": "m"},
    AssignConfig: {"set": {"a": 1}},
    RouterConfig: {},
    LoopConfig: {"over": "$items", "do": BODY},
    ParallelConfig: {"branches": BODY},
    TransformConfig: {"expression": (), "output": "o"},
    HaltConfig: {},
    ApprovalConfig: {},
    WorkflowConfig: {"workflow_id": "child"},
    InputDef: {"name": "amount"},
    WorkflowDef: {"id": "w", "steps": BODY},
    StepDef: {"id": "s", "type": "start", "config": StartConfig()},
    Condition: {"field": "a.b", "op": "eq"},
    Route: {"when": Condition(field="a", op="truthy"), "then": "x"},
    OutputSpec: {"key": "o"},
    TransformOp: {"op": "pluck"},
}


def make(cls: type[Any], **overrides: Any) -> Any:
    return cls(**{**MINIMAL[cls], **overrides})


# --- defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "field", "expected"),
    [
        pytest.param(StartConfig, "validate_input", True, id="start.validate_input"),
        pytest.param(EndConfig, "result", None, id="end.result"),
        pytest.param(CallConfig, "input", None, id="call.input"),
        pytest.param(CallConfig, "output", None, id="call.output"),
        pytest.param(CallConfig, "timeout", None, id="call.timeout"),
        pytest.param(CallConfig, "retries", 0, id="call.retries"),
        pytest.param(CallConfig, "retry_delay", 1.0, id="call.retry_delay"),
        pytest.param(CallConfig, "retry_backoff", 2.0, id="call.retry_backoff"),
        pytest.param(RouterConfig, "routes", (), id="router.routes"),
        pytest.param(RouterConfig, "default", None, id="router.default"),
        pytest.param(LoopConfig, "as_", "item", id="loop.as"),
        pytest.param(LoopConfig, "index_as", "index", id="loop.index_as"),
        pytest.param(LoopConfig, "max", 100, id="loop.max"),
        pytest.param(LoopConfig, "while_", None, id="loop.while"),
        pytest.param(LoopConfig, "output", None, id="loop.output"),
        pytest.param(LoopConfig, "on_exhausted", None, id="loop.on_exhausted"),
        pytest.param(ParallelConfig, "wait", "all", id="parallel.wait"),
        pytest.param(ParallelConfig, "output", None, id="parallel.output"),
        pytest.param(TransformConfig, "input", None, id="transform.input"),
        pytest.param(HaltConfig, "reason", None, id="halt.reason"),
        pytest.param(HaltConfig, "data", {}, id="halt.data"),
        pytest.param(HaltConfig, "resume_step", None, id="halt.resume_step"),
        pytest.param(ApprovalConfig, "approvers", (), id="approval.approvers"),
        pytest.param(ApprovalConfig, "timeout", None, id="approval.timeout"),
        pytest.param(ApprovalConfig, "on_reject", None, id="approval.on_reject"),
        pytest.param(ApprovalConfig, "on_timeout", None, id="approval.on_timeout"),
        pytest.param(WorkflowConfig, "output", None, id="workflow.output"),
        pytest.param(InputDef, "type", "string", id="input.type"),
        pytest.param(InputDef, "required", True, id="input.required"),
        pytest.param(InputDef, "default", None, id="input.default"),
        pytest.param(WorkflowDef, "version", "1.0", id="workflow.version"),
        pytest.param(WorkflowDef, "name", None, id="workflow.name"),
        pytest.param(WorkflowDef, "timeout", None, id="workflow.timeout"),
        pytest.param(WorkflowDef, "inputs", (), id="workflow.inputs"),
        pytest.param(WorkflowDef, "extensions", {}, id="workflow.extensions"),
        pytest.param(StepDef, "next", None, id="step.next"),
        pytest.param(StepDef, "on_error", None, id="step.on_error"),
        pytest.param(Condition, "value", None, id="condition.value"),
        pytest.param(OutputSpec, "schema", None, id="output.schema"),
    ],
)
def test_defaults_match_the_spec(cls: type[Any], field: str, expected: Any) -> None:
    value = getattr(make(cls), field)
    assert value == expected
    assert type(value) is type(expected) or isinstance(value, FrozenDict)


# --- frozen, hashable, structural equality ----------------------------------------------------


@pytest.mark.parametrize("cls", list(MINIMAL), ids=lambda cls: cls.__name__)
def test_every_definition_is_frozen_hashable_and_equal_by_value(cls: type[Any]) -> None:
    first, second = make(cls), make(cls)
    assert first == second
    assert first is not second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1
    name = attrs.fields(cls)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(first, name, getattr(first, name))


def test_json_values_are_frozen_so_configs_stay_hashable() -> None:
    config = AssignConfig(set={"a": [1, {"b": [2, 3]}], "c": None})
    assert thaw(config.set) == {"a": [1, {"b": [2, 3]}], "c": None}
    assert isinstance(config.set, FrozenDict)
    assert config.set["a"] == (1, FrozenDict({"b": (2, 3)}))
    assert hash(config) == hash(AssignConfig(set={"a": [1, {"b": [2, 3]}], "c": None}))
    with pytest.raises(TypeError):
        config.set["a"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(make(CallConfig, retries=1), make(CallConfig, retries=2), id="call-retries"),
        pytest.param(
            make(AssignConfig, set={"a": 1}), make(AssignConfig, set={"a": 1.5}), id="set-value"
        ),
        pytest.param(make(StepDef, next="a"), make(StepDef, next="b"), id="step-next"),
        pytest.param(
            make(WorkflowDef, version="1.0"), make(WorkflowDef, version="2.0"), id="version"
        ),
        pytest.param(make(LoopConfig, as_="x"), make(LoopConfig, as_="y"), id="loop-as"),
        pytest.param(make(ParallelConfig, wait="any"), make(ParallelConfig, wait=1), id="wait"),
    ],
)
def test_different_values_are_not_equal(left: Any, right: Any) -> None:
    assert left != right


def test_source_location_is_not_part_of_equality() -> None:
    here = make(StepDef, source=SourceLocation(file="a.yml", line=3))
    there = make(StepDef, source=SourceLocation(file="b.yml", line=9))
    assert here == there
    assert hash(here) == hash(there)
    assert make(WorkflowDef, source=SourceLocation(file="a.yml")) == make(WorkflowDef)


@pytest.mark.parametrize(
    ("location", "text"),
    [
        pytest.param(SourceLocation(), "<unknown>", id="nothing"),
        pytest.param(SourceLocation(file="a.yml"), "a.yml", id="file"),
        pytest.param(SourceLocation(line=3), "line 3", id="line"),
        pytest.param(SourceLocation(file="a.yml", line=3), "a.yml:3", id="file-line"),
        pytest.param(
            SourceLocation(file="a.yml", line=3, column=7), "a.yml:3:7", id="file-line-column"
        ),
    ],
)
def test_source_location_text(location: SourceLocation, text: str) -> None:
    assert str(location) == text


# --- conversions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("bob", ("bob",), id="a-name"),
        pytest.param(["bob", "eve"], ("bob", "eve"), id="a-list"),
        pytest.param(("bob",), ("bob",), id="a-tuple"),
    ],
)
def test_approvers_accept_a_name_or_a_list(value: Any, expected: tuple[str, ...]) -> None:
    assert ApprovalConfig(approvers=value).approvers == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("total", OutputSpec(key="total"), id="a-name"),
        pytest.param(OutputSpec(key="t"), OutputSpec(key="t"), id="a-spec"),
        pytest.param(None, None, id="none"),
    ],
)
def test_call_output_accepts_a_name_or_a_spec(value: Any, expected: OutputSpec | None) -> None:
    assert make(CallConfig, output=value).output == expected


def test_output_schema_is_frozen() -> None:
    spec = OutputSpec(key="v", schema={"type": "object", "required": ["a"]})
    assert spec.schema == {"type": "object", "required": ("a",)}
    assert hash(spec) == hash(OutputSpec(key="v", schema={"type": "object", "required": ["a"]}))


def test_workflow_step_lookup_and_title() -> None:
    wf = WorkflowDef(id="w", steps=BODY)
    assert wf.step("inner") is BODY[0]
    assert wf.step("missing") is None
    assert wf.title == "w"
    assert WorkflowDef(id="w", name="Nice", steps=BODY).title == "Nice"


# --- validators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "overrides", "error", "message"),
    [
        pytest.param(
            CallConfig,
            {"retries": -1},
            ValueError,
            "'retries' must be at least 0, got -1",
            id="retries-negative",
        ),
        pytest.param(
            CallConfig,
            {"retries": True},
            TypeError,
            "'retries' must be an integer, got True",
            id="retries-bool",
        ),
        pytest.param(
            CallConfig,
            {"retries": 1.5},
            TypeError,
            "'retries' must be an integer, got 1.5",
            id="retries-float",
        ),
        pytest.param(
            CallConfig,
            {"retry_delay": -0.5},
            ValueError,
            "'retry_delay' must be at least 0, got -0.5",
            id="retry_delay-negative",
        ),
        pytest.param(
            CallConfig,
            {"retry_backoff": 0.5},
            ValueError,
            "'retry_backoff' must be at least 1, got 0.5",
            id="retry_backoff-below-1",
        ),
        pytest.param(
            CallConfig,
            {"retry_delay": "1"},
            ValueError,
            "'retry_delay': expected a number of seconds, a number with a unit",
            id="retry_delay-string",
        ),
        pytest.param(
            CallConfig,
            {"timeout": 0},
            ValueError,
            "'timeout' must be greater than 0, got 0",
            id="timeout-zero",
        ),
        pytest.param(
            CallConfig,
            {"service": ""},
            ValueError,
            "'service' must be a non-empty string",
            id="service-empty",
        ),
        pytest.param(
            CallConfig,
            {"output": 5},
            TypeError,
            "'output' must be a name or {key, schema}, got 5",
            id="output-number",
        ),
        pytest.param(
            LoopConfig, {"max": 0}, ValueError, "'max' must be at least 1, got 0", id="max-zero"
        ),
        pytest.param(
            LoopConfig,
            {"over": None},
            ValueError,
            "a loop needs exactly one of 'over' (foreach) or 'while'",
            id="loop-neither",
        ),
        pytest.param(
            LoopConfig,
            {"while_": Condition(field="x", op="truthy")},
            ValueError,
            "a loop needs exactly one of 'over' (foreach) or 'while'",
            id="loop-both",
        ),
        pytest.param(
            LoopConfig, {"as_": ""}, ValueError, "'as_' must be a non-empty string", id="as-empty"
        ),
        pytest.param(
            ParallelConfig,
            {"wait": 0},
            ValueError,
            "'wait' must be 'all', 'any' or a positive integer, got 0",
            id="wait-zero",
        ),
        pytest.param(
            ParallelConfig,
            {"wait": "some"},
            ValueError,
            "'wait' must be 'all', 'any' or a positive integer, got 'some'",
            id="wait-word",
        ),
        pytest.param(
            ParallelConfig,
            {"wait": True},
            ValueError,
            "'wait' must be 'all', 'any' or a positive integer, got True",
            id="wait-bool",
        ),
        pytest.param(
            AssignConfig, {"set": [1]}, TypeError, "expected a mapping, got list", id="set-list"
        ),
        pytest.param(
            AssignConfig,
            {"set": {"a": object()}},
            JsonTypeError,
            "object value at a is not JSON data",
            id="set-not-json",
        ),
        pytest.param(
            AssignConfig,
            {"set": {"a": [1, float("nan")]}},
            JsonTypeError,
            "float value at a[1] is not JSON data",
            id="set-nan",
        ),
        pytest.param(
            ApprovalConfig,
            {"approvers": ["bob", ""]},
            ValueError,
            "'approvers' must be a non-empty string",
            id="approver-empty",
        ),
        pytest.param(
            ApprovalConfig,
            {"timeout": -1},
            ValueError,
            "'timeout' must be greater than 0, got -1",
            id="approval-timeout",
        ),
        pytest.param(
            StartConfig,
            {"validate_input": "yes"},
            TypeError,
            "'validate_input' must be",
            id="validate_input-string",
        ),
        pytest.param(
            InputDef,
            {"type": "str"},
            ValueError,
            "'type' must be one of string, integer, number, boolean, array, object, any, "
            "got 'str' (did you mean 'string'?)",
            id="input-type",
        ),
        pytest.param(
            InputDef, {"required": 1}, TypeError, "'required' must be", id="input-required"
        ),
        pytest.param(
            StepDef, {"id": ""}, ValueError, "'id' must be a non-empty string", id="step-id"
        ),
        pytest.param(
            StepDef, {"next": ""}, ValueError, "'next' must be a non-empty string", id="step-next"
        ),
        pytest.param(
            WorkflowDef,
            {"version": ""},
            ValueError,
            "'version' must be a non-empty string",
            id="workflow-version",
        ),
        pytest.param(
            WorkflowDef,
            {"timeout": 0.0},
            ValueError,
            "'timeout' must be greater than 0, got 0.0",
            id="workflow-timeout",
        ),
        pytest.param(
            Condition,
            {"field": ""},
            ValueError,
            "'field' must be a non-empty string",
            id="condition-field",
        ),
        pytest.param(
            Route, {"then": ""}, ValueError, "'then' must be a non-empty string", id="route-then"
        ),
        pytest.param(
            Route,
            {"when": {"field": "a", "op": "eq"}},
            TypeError,
            "'when' must be",
            id="route-when-dict",
        ),
    ],
)
def test_validators_reject_bad_values_with_readable_messages(
    cls: type[Any], overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        make(cls, **overrides)
    text = info.value.args[0] if info.value.args else str(info.value)
    assert message in text


# --- the core stays lean --------------------------------------------------------------------


def test_importing_flowkit_does_not_import_optional_backends() -> None:
    code = (
        "import sys, flowkit\n"
        "flowkit.load(flowkit.to_dict(flowkit.parse("
        "'id: w\\nsteps: [{id: s, type: start}]')))\n"
        "print(','.join(sorted(name for name in ('redis', 'sqlalchemy', 'dramatiq') "
        "if name in sys.modules)))\n"
    )
    root = str(Path(flowkit.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_public_names_are_exported() -> None:
    for name in ("load", "parse", "check", "to_dict", "to_yaml", "graph", "ValidationError"):
        assert name in flowkit.__all__
        assert getattr(flowkit, name).__doc__


# --- durations (SPEC §19) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        pytest.param(CallConfig, "timeout", id="call.timeout"),
        pytest.param(CallConfig, "retry_delay", id="call.retry_delay"),
        pytest.param(ApprovalConfig, "timeout", id="approval.timeout"),
        pytest.param(WorkflowConfig, "timeout", id="workflow.timeout"),
        pytest.param(WorkflowDef, "timeout", id="workflow-def.timeout"),
    ],
)
def test_fields_of_seconds_take_a_duration_and_hold_the_number(cls: type[Any], field: str) -> None:
    for value in (90, "90s", "1m30s", "PT1M30S"):
        assert getattr(make(cls, **{field: value}), field) == 90
    assert make(cls, **{field: "1h"}) == make(cls, **{field: 3600})
    with pytest.raises(ValueError, match="expected a number of seconds") as info:
        make(cls, **{field: "1"})
    assert info.value.args[0] == (
        f"'{field}': expected a number of seconds, a number with a unit "
        "(500ms, 30s, 5m, 24h, 7d, 1h30m) or an ISO 8601 duration (PT1H, P1DT2H), got '1'"
    )

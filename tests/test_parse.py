"""Reading workflows: sources, the gem's YAML, YAML quirks and structural problems."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from cattrs.errors import ClassValidationError
from cli_helpers import invoke

import flowkit
from flowkit import (
    ApprovalConfig,
    CallConfig,
    Condition,
    InputDef,
    LoopConfig,
    OutputSpec,
    Problem,
    Route,
    RouterConfig,
    SourceLocation,
    StepDef,
    TransformConfig,
    TransformOp,
    ValidationError,
    WorkflowDef,
)
from flowkit.abc import step_types
from flowkit.definitions import converter, error_messages
from flowkit.definitions.loading import MAX_ALIAS_NODES

GEM_WORKFLOW = Path(__file__).parent / "data" / "gem_order_fulfillment.yml"

SMALL = """\
id: small
name: Small
inputs:
  who: {type: string}
steps:
  - id: start
    type: start
    next: hello
  - id: hello
    type: assign
    set: {greeting: "hi $input.who"}
"""

EXPECTED_SMALL = WorkflowDef(
    id="small",
    name="Small",
    inputs=(InputDef(name="who"),),
    steps=(
        StepDef(id="start", type="start", config=flowkit.StartConfig(), next="hello"),
        StepDef(
            id="hello",
            type="assign",
            config=flowkit.AssignConfig(set={"greeting": "hi $input.who"}),
        ),
    ),
)


def problems(src: Any) -> list[str]:
    """The problems parse reports for ``src`` (YAML text is dedented)."""
    if isinstance(src, str):
        src = textwrap.dedent(src)
    with pytest.raises(ValidationError) as info:
        flowkit.parse(src)
    return info.value.problems


def one_step(step_yaml: str) -> str:
    """A workflow 'w' whose only step (written from line 3) is ``step_yaml``."""
    return "id: w\nsteps:\n  - " + textwrap.indent(textwrap.dedent(step_yaml), "    ")[4:]


# --- sources --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["str-path", "Path", "yaml-text", "dict", "definition"], ids=lambda kind: kind
)
def test_every_kind_of_source_gives_the_same_definition(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "small.yml"
    path.write_text(SMALL, encoding="utf-8")
    src: Any = {
        "str-path": str(path),
        "Path": path,
        "yaml-text": SMALL,
        "dict": flowkit.to_dict(EXPECTED_SMALL),
        "definition": EXPECTED_SMALL,
    }[kind]
    assert flowkit.parse(src) == EXPECTED_SMALL
    assert flowkit.load(src) == EXPECTED_SMALL


def test_a_file_records_where_each_step_was_written(tmp_path: Path) -> None:
    path = tmp_path / "small.yml"
    path.write_text(SMALL, encoding="utf-8")
    wf = flowkit.parse(path)
    assert wf.source is not None
    assert wf.source.file == str(path)
    assert [(step.source.file, step.source.line) for step in wf.steps if step.source] == [
        (str(path), 6),
        (str(path), 9),
    ]


def test_a_json_file_is_read_too(tmp_path: Path) -> None:
    import json

    path = tmp_path / "small.json"
    path.write_text(json.dumps(flowkit.to_dict(EXPECTED_SMALL)), encoding="utf-8")
    assert flowkit.parse(str(path)) == EXPECTED_SMALL


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("missing.yml", id="str-yml"),
        pytest.param("dir/missing.yaml", id="str-yaml-in-dir"),
        pytest.param(Path("missing.yml"), id="Path"),
        pytest.param(Path("no-extension"), id="Path-no-extension"),
    ],
)
@pytest.mark.parametrize("function", [flowkit.parse, flowkit.load, flowkit.check])
def test_a_missing_file_raises_not_found(src: Any, function: Any, tmp_path: Path) -> None:
    src = tmp_path / src if isinstance(src, Path) else str(tmp_path / src)
    with pytest.raises(flowkit.NotFoundError) as info:
        function(src)
    assert str(info.value) == f"workflow file not found: {src}"
    assert issubclass(flowkit.NotFoundError, LookupError)


def test_a_file_that_is_not_utf8_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("id: café\n".encode("latin-1"))
    [problem] = problems(path)
    assert problem == f"{path}: not UTF-8 text (byte 0xe9 at offset 7)"
    assert flowkit.check(path) == [problem]


NOT_WORKFLOWS = [
    pytest.param(3, "a workflow must be a mapping, got an integer", id="int"),
    pytest.param(2.5, "a workflow must be a mapping, got a number", id="float"),
    pytest.param(True, "a workflow must be a mapping, got a boolean", id="bool"),
    pytest.param(None, "a workflow must be a mapping, got null", id="None"),
    pytest.param([{"id": "w"}], "a workflow must be a mapping, got a list", id="list"),
    pytest.param(("id", "w"), "a workflow must be a mapping, got a list", id="tuple"),
    pytest.param(b"id: w\n", "a workflow must be a mapping, got bytes", id="bytes"),
    pytest.param(object(), "a workflow must be a mapping, got object", id="object"),
    pytest.param("- id: w\n", "a workflow must be a mapping, got a list", id="yaml-of-a-list"),
    pytest.param("just words", "a workflow must be a mapping, got a string", id="yaml-of-text"),
    pytest.param(
        "[" + ", ".join(["1"] * 2000) + "]",
        "a workflow must be a mapping, got a list",
        id="yaml-longer-than-a-file-name",
    ),
]


@pytest.mark.parametrize(("src", "message"), NOT_WORKFLOWS)
@pytest.mark.parametrize("function", [flowkit.parse, flowkit.load])
def test_what_is_not_a_workflow_is_a_validation_error(
    src: Any, message: str, function: Any
) -> None:
    with pytest.raises(ValidationError) as info:
        function(src)
    assert info.value.problems == [message]
    assert str(info.value) == f"invalid workflow (1 problem):\n  - {message}"
    assert flowkit.check(src) == [message]


@pytest.mark.parametrize(
    ("src", "message"),
    [
        pytest.param(
            {"id": "w", "steps": [{"id": "a", "type": "end"}], 5: 1},
            "workflow 'w': unknown top-level key '5'",
            id="top-level",
        ),
        pytest.param(
            {"id": "w", "steps": [{"id": "a", "type": "end", 5: 1}]},
            "workflow 'w' step 'a': unknown key '5'",
            id="step",
        ),
        pytest.param(
            {"id": "w", "steps": [{"id": "a", "type": "end", 5: 1, "zzz": 2}]},
            "workflow 'w' step 'a': unknown key '5'; unknown key 'zzz'",
            id="step-mixed",
        ),
        pytest.param(
            {"id": "w", "inputs": {"a": {5: 1}}, "steps": [{"id": "a", "type": "end"}]},
            "workflow 'w': input 'a': unknown key '5'",
            id="input",
        ),
    ],
)
def test_keys_that_are_not_text_are_unknown_keys(src: Any, message: str) -> None:
    assert problems(src) == [message]


def test_a_step_type_that_is_not_text_is_named_as_written() -> None:
    assert problems({"id": "w", "steps": [{"id": "a", "type": ["end"]}]}) == [
        "workflow 'w' step 'a': 'type' must be the name of a step type, got ['end']"
    ]


# --- the gem's workflow ---------------------------------------------------------------------


def test_the_gem_workflow_loads_unchanged_and_is_valid(gem_workflow: WorkflowDef) -> None:
    assert flowkit.check(GEM_WORKFLOW) == []
    wf = gem_workflow
    assert (wf.id, wf.name, wf.version) == ("order_fulfillment", "Order Fulfillment", "1.0")
    assert wf.description == "E-commerce order processing pipeline"
    assert [(spec.name, spec.type, spec.required) for spec in wf.inputs] == [
        ("order_id", "string", True),
        ("customer", "object", True),
        ("items", "array", True),
        ("payment", "object", True),
        ("options", "object", False),
    ]
    assert len(wf.steps) == 17
    assert wf.steps[0] == StepDef(
        id="start", type="start", config=flowkit.StartConfig(), next="validate"
    )
    validate = wf.step("validate")
    assert validate == StepDef(
        id="validate",
        type="call",
        config=CallConfig(
            service="OrderService",
            method="validate_order",
            input={
                "order_id": "$input.order_id",
                "customer": "$input.customer",
                "items": "$input.items",
            },
            output=OutputSpec(key="validation"),
        ),
        next="check_validation",
        on_error="failed",
    )
    assert wf.step("check_validation") == StepDef(
        id="check_validation",
        type="router",
        config=RouterConfig(
            routes=(
                Route(
                    when=Condition(field="validation.valid", op="eq", value=True),
                    then="check_inventory",
                ),
            ),
            default="failed",
        ),
    )
    approval = wf.step("require_approval")
    assert approval is not None
    assert approval.config == ApprovalConfig(
        prompt="High-value order requires approval",
        context={"order_id": "$input.order_id", "total": "$totals.total"},
        on_reject="rejected",
    )
    out_of_stock = wf.step("out_of_stock")
    assert out_of_stock is not None
    assert out_of_stock.config.set["totals"] is None  # `null` is kept, not dropped


def test_the_gem_workflow_copy_is_the_reference() -> None:
    # the project's shared/ folder sits beside the repository (on developer machines and in CI)
    reference = Path(__file__).resolve().parents[2] / "shared/reference/gem-workflows"
    reference /= "order_fulfillment.yml"
    if not reference.exists():
        pytest.skip("shared/reference is not beside the repository here")
    assert GEM_WORKFLOW.read_bytes() == reference.read_bytes()


# --- YAML details ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2024-01-01", "2024-01-01", id="date"),
        pytest.param("2024-01-01T10:30:00Z", "2024-01-01T10:30:00Z", id="datetime"),
        pytest.param("2001-12-14 21:59:43.10 -5", "2001-12-14 21:59:43.10 -5", id="spaced"),
        pytest.param("12:30", "12:30", id="time-is-text"),
        pytest.param("1.5", 1.5, id="float"),
        pytest.param("0x1F", 31, id="hex-int"),
        pytest.param("~", None, id="null"),
        pytest.param("'2024-01-01'", "2024-01-01", id="quoted-date"),
    ],
)
def test_yaml_scalars_in_values(text: str, expected: Any) -> None:
    wf = flowkit.parse(one_step(f"id: a\ntype: assign\nset:\n  v: {text}\n"))
    value = wf.steps[0].config.set["v"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("written", "version"),
    [
        pytest.param("1.0", "1.0", id="float-1.0"),
        pytest.param("1.10", "1.10", id="float-1.10-keeps-its-zero"),
        pytest.param("2", "2", id="int"),
        pytest.param("'1.0'", "1.0", id="quoted"),
        pytest.param("2.0.1", "2.0.1", id="semver"),
        pytest.param(None, "1.0", id="missing"),
    ],
)
def test_version_is_always_the_text_written(written: str | None, version: str) -> None:
    head = "id: w\n" + (f"version: {written}\n" if written is not None else "")
    wf = flowkit.parse(head + "steps: [{id: s, type: start}]\n")
    assert wf.version == version


def test_version_from_a_dict_number_becomes_text() -> None:
    assert flowkit.parse({"id": "w", "version": 2, "steps": [{"id": "s", "type": "start"}]})


def test_only_the_top_level_version_is_kept_as_text() -> None:
    wf = flowkit.parse(one_step("id: a\ntype: assign\nset: {version: 1.10}\n"))
    assert wf.steps[0].config.set["version"] == 1.1


def test_keys_that_yaml_would_read_as_booleans_stay_text() -> None:
    wf = flowkit.parse(one_step("id: a\ntype: assign\nset: {on: 1, 'off': 2, 3: three}\n"))
    assert dict(wf.steps[0].config.set) == {"on": 1, "off": 2, "3": "three"}


@pytest.mark.parametrize(
    ("text", "location", "message"),
    [
        pytest.param(
            "id: w\nsteps:\n  - id: a\n    type: start\n   next: b\n",
            (5, 4),
            "YAML syntax error: while parsing a block collection did not find expected '-' "
            "indicator",
            id="bad-indent",
        ),
        pytest.param(
            "id: w\nsteps: [{id: a, type: start}\n",
            (3, 1),
            "YAML syntax error: while parsing a flow sequence did not find expected ',' or ']'",
            id="unclosed-flow",
        ),
        pytest.param(
            "id: w\nname: 'unterminated\n",
            (3, 1),
            "YAML syntax error: while scanning a quoted scalar found unexpected end of stream",
            id="unterminated-quote",
        ),
        pytest.param(
            "id: w\nsteps:\n  - id: a\n    type: start\n    type: end\n",
            (5, 5),
            "YAML syntax error: while constructing a mapping found duplicate key 'type' "
            "(each key may appear once)",
            id="duplicate-key",
        ),
        pytest.param(
            "id: w\nid: v\nsteps: []\n",
            (2, 1),
            "YAML syntax error: while constructing a mapping found duplicate key 'id' "
            "(each key may appear once)",
            id="duplicate-top-level-key",
        ),
        pytest.param(
            "id: w\nsteps: [*nowhere]\n",
            (2, 9),
            "YAML syntax error: found undefined alias",
            id="undefined-alias",
        ),
        pytest.param(
            "id: w\nsteps: &s [*s]\n",
            (2, 8),
            "YAML syntax error: found unconstructable recursive node",
            id="recursive-alias",
        ),
    ],
)
def test_yaml_errors_give_file_line_and_column(
    text: str, location: tuple[int, int], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text, encoding="utf-8")
    for src, file in ((path, str(path)), (text, "<string>")):
        [problem] = problems(src)
        line, column = location
        assert problem == f"{file}:{line}:{column}: {message}"
        assert isinstance(problem, Problem)
        assert problem.message == message
        assert problem.location is not None
        assert (problem.location.file, problem.location.line, problem.location.column) == (
            file,
            line,
            column,
        )
        assert problem.to_json()["line"] == line


@pytest.mark.parametrize(
    ("text", "location", "code"),
    [
        pytest.param("id: w\nname: a\x01b\n", (2, 8), "0001", id="control-character"),
        pytest.param("id: w\nname: \ud800\n", (2, 7), "d800", id="lone-surrogate"),
        pytest.param("id: w\nname: \u00e9\x7f\n", (2, 8), "007f", id="after-a-wide-character"),
        pytest.param("id: w\nname: '*\ud800'\n", (2, 9), "d800", id="with-an-alias-mark"),
    ],
)
def test_characters_yaml_cannot_hold_give_line_and_column(
    text: str, location: tuple[int, int], code: str
) -> None:
    message = (
        f"YAML syntax error: unacceptable character #x{code}: special characters are not allowed"
    )
    [problem] = problems(text)
    assert problem == f"<string>:{location[0]}:{location[1]}: {message}"
    assert problem.location == SourceLocation(file="<string>", line=location[0], column=location[1])
    assert flowkit.check(text) == [problem]


def test_yaml_errors_raise_validation_error_from_load_and_are_listed_by_check() -> None:
    text = "id: w\nsteps: [\n"
    with pytest.raises(ValidationError, match=r"invalid YAML \(1 problem\)"):
        flowkit.load(text)
    assert flowkit.check(text) == problems(text)


def test_a_second_document_is_an_error() -> None:
    [problem] = problems("id: w\n---\nid: v\n")
    assert "expected a single document in the stream" in problem


# --- YAML aliases: a budget, so that a small file cannot expand to a huge one -------------------

# "Billion laughs": 9**9 strings in under 600 bytes. Aliases repeat 90 nodes on line 8, 819 on
# line 9, 7380 on line 10; the first '*d' of line 11 takes the total past 10000.
ALIAS_BOMB = """\
id: bomb
steps:
  - {id: start, type: start, next: set}
  - id: set
    type: assign
    set:
      a: &a [x, x, x, x, x, x, x, x, x]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
      i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
    next: done
  - {id: done, type: end}
"""
TOO_MANY_ALIASES = (
    "YAML aliases repeat more than 10000 nodes in all, at '*d' (the limit for a workflow "
    "file); write the repeated values out, or alias fewer and smaller values"
)


@pytest.mark.timeout(10)  # without the budget, this test runs for minutes
def test_an_alias_bomb_is_refused_at_the_alias_past_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        flowkit.load(path)
    [problem] = info.value.problems
    assert problem == f"{path}:11:14: {TOO_MANY_ALIASES}"
    assert problem.location == SourceLocation(file=str(path), line=11, column=14)
    assert flowkit.check(ALIAS_BOMB) == [f"<string>:11:14: {TOO_MANY_ALIASES}"]


@pytest.mark.timeout(10)  # without the budget, this test runs for minutes
def test_validate_refuses_an_alias_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert result.stdout == f"error: {path}:11:14: {TOO_MANY_ALIASES}\n"
    assert result.stderr == "1 problem found\n"


def repeated(times: int) -> str:
    """A workflow whose aliases repeat a list of 99 strings (100 nodes) ``times`` times."""
    aliases = ", ".join(["*row"] * times)
    return (
        "id: w\nsteps:\n  - id: set\n    type: assign\n    set:\n"
        f"      row: &row [{', '.join(['x'] * 99)}]\n      rows: [{aliases}]\n"
    )


def test_aliases_may_repeat_up_to_the_budget() -> None:
    assert MAX_ALIAS_NODES == 10_000
    [step] = flowkit.load(repeated(100)).steps
    assert step.config.set["rows"] == (("x",) * 99,) * 100
    [problem] = problems(repeated(101))
    column = len("      rows: [") + len("*row, ") * 100 + 1  # the 101st alias
    assert problem.location == SourceLocation(file="<string>", line=7, column=column)
    assert "YAML aliases repeat more than 10000 nodes in all, at '*row'" in problem


def test_anchors_and_merge_keys_share_settings_between_steps() -> None:
    wf = flowkit.load(
        textwrap.dedent(
            """\
            id: shared
            steps:
              - {id: start, type: start, next: charge}
              - id: charge
                type: call
                service: Payments
                method: charge
                <<: &retry {retries: 3, retry_delay: 2}
                next: notify
              - {id: notify, type: call, service: Mail, method: send, <<: *retry}
            """
        )
    )
    assert [(step.config.retries, step.config.retry_delay) for step in wf.steps[1:]] == [
        (3, 2),
        (3, 2),
    ]


# --- structural problems: exact messages ------------------------------------------------------

STRUCTURE = [
    pytest.param(
        "id: a\ntype: call\nservice: S\nmethod: m\nretires: 3\n",
        "step 'a' (line 3): unknown key 'retires' (did you mean 'retries'?)",
        id="unknown-key",
    ),
    pytest.param(
        "id: a\ntype: start\nnxt: b\n",
        "step 'a' (line 3): unknown key 'nxt' (did you mean 'next'?)",
        id="unknown-key-suggests-step-keys",
    ),
    pytest.param(
        "id: a\ntype: call\nservice: S\nmethod: m\nzzz: 3\n",
        "step 'a' (line 3): unknown key 'zzz'",
        id="unknown-key-without-suggestion",
    ),
    pytest.param(
        "id: a\ntype: cal\n",
        "step 'a' (line 3): unknown step type 'cal' (did you mean 'call'?)",
        id="unknown-type",
    ),
    pytest.param(
        "id: a\ntype: frobnicate\n",
        "step 'a' (line 3): unknown step type 'frobnicate' (known types: "
        + ", ".join(sorted(step_types()))  # the core types and any installed extension's
        + ")",
        id="unknown-type-lists-known",
    ),
    pytest.param(
        "id: a\ntype: call\nservice: S\n",
        "step 'a' (line 3): missing required key 'method'",
        id="missing-required-key",
    ),
    pytest.param(
        "id: a\ntype: call\nservice: S\nmethod: m\nretries: '3'\n",
        "step 'a' (line 3): retries: expected an integer, got a string '3'",
        id="wrong-scalar-type",
    ),
    pytest.param(
        "id: a\ntype: call\nservice: S\nmethod: m\nretry_delay: true\n",
        "step 'a' (line 3): retry_delay: expected a number of seconds, a number with a unit "
        "(500ms, 30s, 5m, 24h, 7d, 1h30m) or an ISO 8601 duration (PT1H, P1DT2H), got True",
        id="bool-is-not-a-number",
    ),
    pytest.param(
        "id: a\ntype: start\nvalidate_input: 'yes'\n",
        "step 'a' (line 3): validate_input: expected true or false, got a string 'yes'",
        id="bool-expected",
    ),
    pytest.param(
        "id: a\ntype: call\nservice: 5\nmethod: m\n",
        "step 'a' (line 3): service: expected a string, got an integer 5",
        id="string-expected",
    ),
    pytest.param(
        "id: a\ntype: parallel\nwait: some\nbranches: []\n",
        "step 'a' (line 3): wait: expected 'all', 'any' or a positive number of branches, "
        "got 'some'",
        id="bad-wait",
    ),
    pytest.param(
        "id: a\ntype: parallel\nwait: 0\nbranches: []\n",
        "step 'a' (line 3): wait: expected 'all', 'any' or a positive number of branches, got 0",
        id="wait-zero",
    ),
    pytest.param(
        "id: a\ntype: parallel\nwait: 1.5\nbranches: []\n",
        "step 'a' (line 3): wait: expected 'all', 'any' or a positive number of branches, got 1.5",
        id="wait-float",
    ),
    pytest.param(
        "id: a\ntype: call\nservice: S\nmethod: m\nretries: -1\n",
        "step 'a' (line 3): 'retries' must be at least 0, got -1",
        id="out-of-range",
    ),
    pytest.param(
        "id: a\ntype: loop\ndo: [{id: x, type: assign, set: {}}]\n",
        "step 'a' (line 3): a loop needs exactly one of 'over' (foreach) or 'while'",
        id="loop-neither-over-nor-while",
    ),
    pytest.param(
        "id: a\ntype: start\nnext: 3\n",
        "step 'a' (line 3): 'next' must be a step id, got 3",
        id="next-not-a-string",
    ),
    pytest.param(
        "type: start\n",
        "step '#1' (line 3): every step needs an 'id' (a non-empty string)",
        id="missing-id",
    ),
    pytest.param(
        "id: ''\ntype: start\n",
        "step '#1' (line 3): every step needs an 'id' (a non-empty string)",
        id="empty-id",
    ),
    pytest.param("id: a\n", "step 'a' (line 3): missing 'type'", id="missing-type"),
    pytest.param(
        "id: a\ntype: call\nservice: S\nmethod: m\noutput: {schema: {type: object}}\n",
        "step 'a' (line 3): missing required key 'output.key'",
        id="output-without-key",
    ),
    pytest.param(
        "id: a\ntype: call\nservice: S\nmethod: m\noutput: {key: k, shema: {}}\n",
        "step 'a' (line 3): output: unknown key 'shema' (did you mean 'schema'?)",
        id="output-unknown-key",
    ),
    pytest.param(
        "id: a\ntype: call\nservice: S\nmethod: m\noutput: [k]\n",
        "step 'a' (line 3): output: expected a name or {key, schema}, got ['k']",
        id="output-list",
    ),
    pytest.param(
        "id: a\ntype: approval\napprovers: 5\n",
        "step 'a' (line 3): approvers: expected a name or a list of names, got 5",
        id="approvers-number",
    ),
    pytest.param(
        "id: a\ntype: transform\noutput: o\nexpression: [pluck]\n",
        "step 'a' (line 3): expression: expected a mapping of op: argument, or a list of "
        "one-key mappings, got ['pluck']",
        id="expression-shape",
    ),
    pytest.param(
        "id: a\ntype: router\nroutes:\n  - when: {field: x, op: eq}\n    thn: b\n",
        "step 'a' (line 3): routes[0]: unknown key 'thn' (did you mean 'then'?)",
        id="route-unknown-key",
    ),
    pytest.param(
        "id: a\ntype: router\nroutes:\n  - when: {fild: x, op: eq}\n    then: b\n",
        "step 'a' (line 3): routes[0].when: unknown key 'fild' (did you mean 'field'?)",
        id="condition-unknown-key",
    ),
    pytest.param(
        "id: a\ntype: assign\nset: [1]\n",
        "step 'a' (line 3): set: expected a mapping, got a list [1]",
        id="set-list",
    ),
]


@pytest.mark.parametrize(("step_yaml", "expected"), STRUCTURE)
def test_structural_problem_messages(step_yaml: str, expected: str) -> None:
    assert f"workflow 'w' {expected}" in problems(one_step(step_yaml))


def test_nested_steps_are_named_loop_colon_inner_with_their_own_line() -> None:
    text = """\
    id: w
    steps:
      - id: each
        type: loop
        over: $items
        do:
          - id: ok
            type: assign
            set: {a: 1}
          - id: inner
            type: call
            service: S
            method: m
            retry_delay: soon
          - id: deeper
            type: loop
            while: {field: x, op: truthy}
            do:
              - id: innermost
                type: assing
      - id: fan
        type: parallel
        branches:
          - id: b1
            type: call
            service: S
            methd: m
    """
    found = problems(text)
    assert found == [
        "workflow 'w' step 'each:inner' (line 10): retry_delay: expected a number of seconds, "
        "a number with a unit (500ms, 30s, 5m, 24h, 7d, 1h30m) or an ISO 8601 duration "
        "(PT1H, P1DT2H), got 'soon'",
        "workflow 'w' step 'each:deeper:innermost' (line 19): unknown step type 'assing' "
        "(did you mean 'assign'?)",
        "workflow 'w' step 'fan:b1' (line 24): missing required key 'method'",
        "workflow 'w' step 'fan:b1' (line 24): unknown key 'methd' (did you mean 'method'?)",
    ]
    assert [problem.step_id for problem in found] == [  # type: ignore[attr-defined]
        "each:inner",
        "each:deeper:innermost",
        "fan:b1",
        "fan:b1",
    ]


def test_every_structural_problem_is_reported_at_once() -> None:
    text = """\
    id: w
    timeout: soon
    stesp: 1
    inputs:
      amount: {type: nmber}
      note: {typ: string}
    steps:
      - id: a
        type: call
        service: S
        method: m
        retires: 3
      - id: b
        type: cal
      - id: c
        type: router
        default: 3
    """
    found = problems(text)
    assert found == [
        "workflow 'w': unknown top-level key 'stesp' (did you mean 'steps'?)",
        "workflow 'w': 'timeout': expected a number of seconds, a number with a unit "
        "(500ms, 30s, 5m, 24h, 7d, 1h30m) or an ISO 8601 duration (PT1H, P1DT2H), got 'soon'",
        "workflow 'w' (line 5): input 'amount': 'type' must be one of string, integer, number, "
        "boolean, array, object, any, got 'nmber' (did you mean 'number'?)",
        "workflow 'w' (line 6): input 'note': unknown key 'typ' (did you mean 'type'?)",
        "workflow 'w' step 'a' (line 8): unknown key 'retires' (did you mean 'retries'?)",
        "workflow 'w' step 'b' (line 13): unknown step type 'cal' (did you mean 'call'?)",
        "workflow 'w' step 'c' (line 15): default: expected a string, got an integer 3",
    ]
    for problem in found:
        assert isinstance(problem, Problem)
        assert problem.workflow_id == "w"
    # load goes on to check the graph of what could be read: 'a' has no next
    unreachable = (
        "unreachable: no path from the first step leads here (point a next, route or "
        "on_error at it, or remove it)"
    )
    with pytest.raises(ValidationError) as info:
        flowkit.load(textwrap.dedent(text))
    assert info.value.problems == [
        *found[:6],
        f"workflow 'w' step 'b' (line 13): {unreachable}",
        found[6],
        f"workflow 'w' step 'c' (line 15): {unreachable}",
    ]
    assert str(info.value).startswith("invalid workflow 'w' (9 problems):\n  - workflow 'w': ")


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        pytest.param("- a\n- b\n", "a workflow must be a mapping, got a list", id="list"),
        pytest.param("", "a workflow must be a mapping, got null", id="empty"),
        pytest.param(
            {"steps": [{"id": "s", "type": "start"}]},
            "missing 'id' (a non-empty string naming the workflow)",
            id="no-id",
        ),
        pytest.param(
            {"id": 5, "steps": [{"id": "s", "type": "start"}]},
            "'id' must be a non-empty string naming the workflow, got 5",
            id="id-number",
        ),
        pytest.param(
            {"id": "w", "steps": []},
            "workflow 'w': 'steps' must be a non-empty list of steps",
            id="no-steps",
        ),
        pytest.param(
            {"id": "w", "steps": [3]},
            "workflow 'w' step '#1': a step must be a mapping with 'id' and 'type', got 3",
            id="step-not-mapping",
        ),
        pytest.param(
            {"id": "w", "inputs": ["a"], "steps": [{"id": "s", "type": "start"}]},
            "workflow 'w': 'inputs' must be a mapping of input name to its spec",
            id="inputs-list",
        ),
        pytest.param(
            {"id": "w", "inputs": {"a": 3}, "steps": [{"id": "s", "type": "start"}]},
            "workflow 'w': input 'a': expected a mapping of type, required, default, description",
            id="input-spec-number",
        ),
        pytest.param(
            {
                "id": "w",
                "inputs": {"a": {"required": "no"}},
                "steps": [{"id": "s", "type": "start"}],
            },
            "workflow 'w': input 'a': required: expected true or false, got a string 'no'",
            id="input-required-string",
        ),
        pytest.param(
            {"id": "w", "name": 5, "steps": [{"id": "s", "type": "start"}]},
            "workflow 'w': 'name': expected a string, got an integer 5",
            id="name-number",
        ),
        pytest.param(
            {"id": "w", "timeout": 0, "steps": [{"id": "s", "type": "start"}]},
            "workflow 'w': 'timeout' must be greater than 0, got 0",
            id="timeout-zero",
        ),
        pytest.param(
            {"id": "w", "steps": [{"id": "s", "type": "assign", "set": {"a": float("inf")}}]},
            "workflow 'w' step 's': set: float value at a is not JSON data (use strings, "
            "numbers, booleans, null, lists and mappings with string keys)",
            id="not-json",
        ),
    ],
)
def test_workflow_level_problem_messages(src: Any, expected: str) -> None:
    assert expected in problems(src)


def test_a_renamed_key_is_named_as_written_in_yaml() -> None:
    assert problems(one_step("id: l\ntype: loop\nover: [1]\nas: 5\ndo: []\n")) == [
        "workflow 'w' step 'l' (line 3): as: expected a string, got an integer 5"
    ]


def test_nested_steps_that_are_not_a_list() -> None:
    assert problems(one_step("id: l\ntype: loop\nover: [1]\ndo: {id: x, type: end}\n")) == [
        "workflow 'w' step 'l' (line 3): do: expected a list of steps, got a mapping"
    ]


def test_the_converter_alone_does_not_read_nested_steps() -> None:
    with pytest.raises(ClassValidationError) as info:
        converter.structure({"over": [1], "do": [{"id": "x", "type": "end"}]}, LoopConfig)
    assert error_messages(info.value) == [
        "do[0]: nested steps are read with flowkit.parse, got {'id': 'x', 'type': 'end'}"
    ]


def test_parse_reports_what_it_could_not_read_and_leaves_the_graph_to_check() -> None:
    text = "id: w\nsteps:\n  - {id: a, type: end, zzz: 3}\n  - {id: b, type: end}\n"
    assert problems(text) == ["workflow 'w' step 'a' (line 3): unknown key 'zzz'"]
    assert flowkit.check(text) == [
        "workflow 'w' step 'a' (line 3): unknown key 'zzz'",
        "workflow 'w' step 'b' (line 4): unreachable: no path from the first step leads here "
        "(point a next, route or on_error at it, or remove it)",
    ]


# --- accepted shapes ------------------------------------------------------------------------


def _config(step_yaml: str) -> Any:
    return flowkit.parse(one_step(step_yaml)).steps[0].config


PLUCK_SUM = (TransformOp(op="pluck", arg="price"), TransformOp(op="sum", arg=None))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("{pluck: price, sum: null}", PLUCK_SUM, id="mapping"),
        pytest.param("[{pluck: price}, {sum: null}]", PLUCK_SUM, id="list-of-one-key-mappings"),
        pytest.param(
            "[{pluck: a}, {pluck: b}]",
            (TransformOp(op="pluck", arg="a"), TransformOp(op="pluck", arg="b")),
            id="list-repeats-an-op",
        ),
        pytest.param("{}", (), id="empty"),
    ],
)
def test_transform_expression_forms(expression: str, expected: tuple[TransformOp, ...]) -> None:
    config = _config(f"id: t\ntype: transform\noutput: o\nexpression: {expression}\n")
    assert config == TransformConfig(expression=expected, output="o")


def test_transform_expression_written_back_as_a_list_only_when_an_op_repeats() -> None:
    unique = flowkit.parse(one_step("id: t\ntype: transform\noutput: o\nexpression: [{a: 1}]\n"))
    repeated = flowkit.parse(
        one_step("id: t\ntype: transform\noutput: o\nexpression: [{a: 1}, {a: 2}]\n")
    )
    assert flowkit.to_dict(unique)["steps"][0]["expression"] == {"a": 1}
    assert flowkit.to_dict(repeated)["steps"][0]["expression"] == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param("total", OutputSpec(key="total"), id="name"),
        pytest.param("{key: total}", OutputSpec(key="total"), id="key-only"),
        pytest.param(
            "{key: total, schema: {type: number}}",
            OutputSpec(key="total", schema={"type": "number"}),
            id="key-and-schema",
        ),
    ],
)
def test_call_output_forms(output: str, expected: OutputSpec) -> None:
    config = _config(f"id: c\ntype: call\nservice: S\nmethod: m\noutput: {output}\n")
    assert config.output == expected


def test_call_output_written_back_as_a_name_unless_it_has_a_schema() -> None:
    plain = flowkit.parse(one_step("id: c\ntype: call\nservice: S\nmethod: m\noutput: {key: o}\n"))
    assert flowkit.to_dict(plain)["steps"][0]["output"] == "o"


@pytest.mark.parametrize(
    ("approvers", "expected"),
    [
        pytest.param("alice", ("alice",), id="name"),
        pytest.param("[alice, bob]", ("alice", "bob"), id="list"),
        pytest.param("[]", (), id="empty"),
    ],
)
def test_approvers_forms(approvers: str, expected: tuple[str, ...]) -> None:
    assert _config(f"id: a\ntype: approval\napprovers: {approvers}\n").approvers == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("{type: integer}", InputDef(name="a", type="integer"), id="mapping"),
        pytest.param("integer", InputDef(name="a", type="integer"), id="type-name"),
        pytest.param("", InputDef(name="a"), id="null"),
        pytest.param(
            "{required: false, default: [1], description: d}",
            InputDef(name="a", required=False, default=(1,), description="d"),
            id="all-keys",
        ),
    ],
)
def test_input_forms(spec: str, expected: InputDef) -> None:
    wf = flowkit.parse(f"id: w\ninputs:\n  a: {spec}\nsteps: [{{id: s, type: start}}]\n")
    assert wf.inputs == (expected,)


def test_loop_keys_as_and_while_are_spelled_as_in_yaml() -> None:
    config = _config(
        "id: l\ntype: loop\nwhile: {field: more, op: truthy}\nas: x\nindex_as: i\nmax: 5\n"
        "do: [{id: b, type: assign, set: {v: 1}}]\n"
    )
    assert isinstance(config, LoopConfig)
    assert (config.as_, config.index_as, config.max) == ("x", "i", 5)
    assert config.while_ == Condition(field="more", op="truthy")
    data = flowkit.to_dict(flowkit.parse(one_step("id: l\ntype: loop\nover: $xs\nas: x\ndo: []\n")))
    assert data["steps"][0] == {"id": "l", "type": "loop", "over": "$xs", "as": "x", "do": []}
    # nested steps are written last, so the loop's own keys stay next to its id
    assert list(data["steps"][0]) == ["id", "type", "over", "as", "do"]
    fan = flowkit.parse(one_step("id: p\ntype: parallel\nbranches: []\nwait: any\noutput: o\n"))
    assert list(flowkit.to_dict(fan)["steps"][0]) == ["id", "type", "wait", "output", "branches"]


def test_to_dict_leaves_defaults_out() -> None:
    data = flowkit.to_dict(flowkit.parse(one_step("id: c\ntype: call\nservice: S\nmethod: m\n")))
    assert data == {
        "id": "w",
        "version": "1.0",
        "steps": [{"id": "c", "type": "call", "service": "S", "method": "m"}],
    }


def test_to_yaml_writes_readable_yaml() -> None:
    wf = flowkit.parse(
        {
            "id": "w",
            "version": "1.10",
            "steps": [
                {"id": "a", "type": "halt", "reason": "line one\nline two\n", "next": "b"},
                {"id": "b", "type": "end", "result": {"when": "2024-01-01", "ok": "yes"}},
            ],
        }
    )
    assert flowkit.to_yaml(wf) == textwrap.dedent(
        """\
        id: w
        version: '1.10'
        steps:
        - id: a
          type: halt
          reason: |
            line one
            line two
          next: b
        - id: b
          type: end
          result:
            when: '2024-01-01'
            ok: 'yes'
        """
    )

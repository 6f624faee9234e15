"""The ``flowkit`` command line (SPEC §11).

Most tests run the CLI in this process with click's ``CliRunner``: on ``memory://``
when a command needs no state from an earlier command, else on a SQLite file in
``tmp_path``. A few tests run the installed ``flowkit`` script in separate processes,
to show that an execution halted by one process is resumed by another.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import (
    BROKEN_YML,
    EXPENSE,
    FAILING_YML,
    FLOWS_PY,
    HALT_YML,
    HELLO,
    INPUTS_YML,
    ROOT,
    SERVICES_YML,
    TWICE_YML,
    TYPO_YML,
    PastClock,
    error_line,
    flowkit_process,
    invoke,
    invoke_json,
)

import flowkit
from flowkit.definitions import WorkflowRegistry

MEMORY = ("--store", "memory://")
uses_memory = pytest.mark.filterwarnings("ignore::flowkit.backends.memory.DurabilityWarning")
RUN_KEYS = {"execution_id", "workflow_id", "status", "output", "error", "halt"}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configured store from the environment; sys.path restored (the CLI adds the cwd)."""
    for name in ("FLOWKIT_STORE", "FLOWKIT_EXECUTOR", "FLOWKIT_BROKER", "FLOWKIT_LEASE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A SQLite store URL in a file of this test's own."""
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``cli_flows``, a module in the working directory (where the CLI looks for it)."""
    (tmp_path / "cli_flows.py").write_text(FLOWS_PY)
    monkeypatch.chdir(tmp_path)
    yield "cli_flows"
    sys.modules.pop("cli_flows", None)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def halt_expense(*store: str, amount: int = 250) -> str:
    """Run expense_approval to its approval; the execution id."""
    data = invoke_json("run", EXPENSE, "-i", f"amount={amount}", "-i", "employee=bob", *store)
    assert data["status"] == "halted"
    execution_id: str = data["execution_id"]
    return execution_id


def show_json(execution_id: str, *store: str) -> Any:
    return invoke_json("show", execution_id, *store)


# --- validate -------------------------------------------------------------------------------------


def test_validate_reports_ok_files() -> None:
    result = invoke("validate", HELLO, EXPENSE)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"{HELLO}: ok", f"{EXPENSE}: ok"]
    assert result.stderr == ""


def test_validate_lists_every_problem_with_step_and_line(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yml", BROKEN_YML)
    result = invoke("validate", HELLO, broken)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{HELLO}: ok",
        f"error: workflow 'broken' step 'greet' ({broken}:6): next: no step 'nowhere'",
        f"error: workflow 'broken' step 'greet' ({broken}:6): "
        "'$nothing.here' reads 'nothing', which no step sets",
        f"error: workflow 'broken' step 'greet' ({broken}:11): "
        "duplicate step id 'greet' (step ids must be unique)",
        f"error: workflow 'broken' step 'orphan' ({broken}:13): "
        "unreachable: no path from the first step leads here "
        "(point a next, route or on_error at it, or remove it)",
    ]
    assert result.stderr == "4 problems found\n"


def test_validate_names_unknown_keys_and_step_types(tmp_path: Path) -> None:
    typo = write(tmp_path, "typo.yml", TYPO_YML)
    result = invoke("validate", typo)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"error: workflow 'typo' step 'charge' ({typo}:6): ")
    assert "unknown key 'retires' (did you mean 'retries'?)" in lines[0]
    assert lines[1].startswith(f"error: workflow 'typo' step 'done' ({typo}:12): ")
    assert "unknown step type 'bogus'" in lines[1]
    assert result.stderr == "2 problems found\n"


def test_validate_gives_the_line_and_column_of_a_yaml_syntax_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yml", "id: x\nsteps: [\n")
    result = invoke("validate", bad)
    assert result.exit_code == 1
    [line] = result.stdout.splitlines()
    assert line.startswith(f"error: {bad}:3:1: YAML syntax error")
    assert result.stderr == "1 problem found\n"


def test_validate_json_gives_the_line_and_column_of_a_yaml_syntax_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yml", "id: x\nname: a\x01b\nsteps: [\n")
    result = invoke("validate", bad, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "valid": False,
        "files": {
            str(bad): [
                {
                    "severity": "error",
                    "message": "YAML syntax error: unacceptable character #x0001: "
                    "special characters are not allowed",
                    "workflow": None,
                    "step": None,
                    "file": str(bad),
                    "line": 2,
                    "column": 8,
                }
            ]
        },
    }
    bad.write_text("id: x\nsteps: [\n")
    [problem] = json.loads(invoke("validate", bad, "--json").stdout)["files"][str(bad)]
    assert (problem["line"], problem["column"]) == (3, 1)


ROUTER_WITH_NEXT_YML = """\
id: routed
steps:
  - id: pick
    type: router
    routes: [{when: {field: input.big, op: truthy}, then: big}]
    default: small
    next: small
  - {id: big, type: end}
  - {id: small, type: end}
"""
NEXT_NEVER_USED = "'next' is never used: a 'router' step never continues to it; remove 'next'"


def test_validate_prints_warnings_and_exits_0_when_there_are_only_warnings(
    tmp_path: Path,
) -> None:
    routed = write(tmp_path, "routed.yml", ROUTER_WITH_NEXT_YML)
    result = invoke("validate", routed)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{routed}: ok",
        f"warning: workflow 'routed' step 'pick' ({routed}:3): {NEXT_NEVER_USED}",
    ]
    assert result.stderr == "1 warning\n"
    data = invoke_json("validate", routed, "--json")
    assert data["valid"] is True
    assert data["files"][str(routed)] == [
        {
            "severity": "warning",
            "message": NEXT_NEVER_USED,
            "workflow": "routed",
            "step": "pick",
            "file": str(routed),
            "line": 3,
            "column": None,
        }
    ]


def test_validate_counts_warnings_apart_from_problems(tmp_path: Path) -> None:
    routed = write(tmp_path, "routed.yml", ROUTER_WITH_NEXT_YML + "  - {id: lost, type: end}\n")
    result = invoke("validate", routed)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"warning: workflow 'routed' step 'pick' ({routed}:3): {NEXT_NEVER_USED}",
        f"error: workflow 'routed' step 'lost' ({routed}:10): unreachable: no path from the "
        "first step leads here (point a next, route or on_error at it, or remove it)",
    ]
    assert result.stderr == "1 problem found, 1 warning\n"


def test_validate_a_missing_file_is_one_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    result = invoke("validate", missing)
    assert result.exit_code == 1
    assert result.stdout == f"error: workflow file not found: {missing}\n"
    assert json.loads(invoke("validate", missing, "--json").stdout) == {
        "valid": False,
        "files": {
            str(missing): [{"severity": "error", "message": f"workflow file not found: {missing}"}]
        },
    }


def test_validate_json_lists_problems_per_file(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yml", BROKEN_YML)
    result = invoke("validate", HELLO, broken, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert list(data["files"]) == [str(HELLO), str(broken)]
    assert data["files"][str(HELLO)] == []
    problems = data["files"][str(broken)]
    assert [(p["step"], p["line"]) for p in problems] == [
        ("greet", 6),
        ("greet", 6),
        ("greet", 11),
        ("orphan", 13),
    ]
    assert problems[0] == {
        "severity": "error",
        "message": "next: no step 'nowhere'",
        "workflow": "broken",
        "step": "greet",
        "file": str(broken),
        "line": 6,
        "column": None,
    }

    assert invoke_json("validate", HELLO) == {"valid": True, "files": {str(HELLO): []}}


def test_validate_services_finds_missing_services_and_methods(tmp_path: Path) -> None:
    wf = write(tmp_path, "services.yml", SERVICES_YML)
    assert invoke("validate", wf).exit_code == 0  # names are resolved at run time by default

    result = invoke("validate", wf, "--services", "examples.services")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"error: workflow 'cli_services' step 'power' ({wf}:12): "
        "service 'Calculator' has no method 'power'",
        f"error: workflow 'cli_services' step 'ghost' ({wf}:17): unknown service 'Ghost': "
        "register it with @flowkit.service('Ghost') or flowkit.register_service('Ghost', obj), "
        'or map it in configuration (services = {Ghost = "module:attr"})',
    ]
    data = json.loads(invoke("validate", wf, "--services", "examples.services", "--json").stdout)
    assert [p["step"] for p in data["files"][str(wf)]] == ["power", "ghost"]

    calculator = ROOT / "examples" / "calculator.yml"
    assert invoke("validate", calculator, "--services", "examples.services").exit_code == 0


def test_validate_services_module_that_cannot_be_imported() -> None:
    line = error_line(invoke("validate", HELLO, "--services", "no_such_module_xyz"))
    assert line == (
        "error: cannot import module 'no_such_module_xyz': No module named 'no_such_module_xyz'"
    )


def test_validate_needs_a_file() -> None:
    result = invoke("validate")
    assert result.exit_code == 2
    assert "Missing argument 'FILES...'" in result.stderr


# --- graph and export -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_graph_prints_the_rendered_workflow(fmt: str) -> None:
    result = invoke("graph", EXPENSE, "--format", fmt)
    assert result.exit_code == 0
    assert result.stdout == flowkit.graph(flowkit.load(EXPENSE), fmt)
    first = {"mermaid": "flowchart TD", "dot": 'digraph "expense_approval" {'}[fmt]
    assert result.stdout.splitlines()[0] == first
    for step in ("check", "ask", "approved", "rejected", "expired", "auto_approved"):
        assert f'"{step}' in result.stdout


def test_graph_defaults_to_mermaid() -> None:
    assert invoke("graph", HELLO).stdout == invoke("graph", HELLO, "--format", "mermaid").stdout


def test_graph_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    assert error_line(invoke("graph", missing)) == f"error: workflow file not found: {missing}"
    result = invoke("graph", HELLO, "--format", "png")
    assert result.exit_code == 2
    assert "'png' is not one of 'mermaid', 'dot'" in result.stderr


def test_export_prints_the_yaml_of_a_python_workflow(flows: str) -> None:
    result = invoke("export", f"{flows}:greeter")
    assert result.exit_code == 0
    module = sys.modules[flows]
    assert flowkit.parse(result.stdout) == module.greeter.definition
    line = error_line(invoke("export", f"{flows}:not_a_workflow"))
    assert "is not a workflow" in line


# --- run ------------------------------------------------------------------------------------------


@uses_memory
def test_run_prints_status_id_and_output() -> None:
    result = invoke("run", HELLO, "-i", "name=Ada", *MEMORY)
    assert result.exit_code == 0
    status, *rest = result.stdout.splitlines()
    assert status.startswith("completed: ")
    assert len(status.removeprefix("completed: ")) == 32
    assert json.loads("\n".join(rest)) == {"greeting": "Hello, Ada!", "name": "Ada"}


def test_run_warns_that_memory_keeps_nothing() -> None:
    with pytest.warns(flowkit.backends.memory.DurabilityWarning, match="nothing is durable"):
        assert invoke("run", HELLO, *MEMORY).exit_code == 0


@uses_memory
def test_run_json_output() -> None:
    data = invoke_json("run", HELLO, *MEMORY)
    assert set(data) == RUN_KEYS
    assert data["workflow_id"] == "hello_world"
    assert data["status"] == "completed"
    assert data["output"] == {"greeting": "Hello, World!", "name": "World"}
    assert data["error"] is None
    assert data["halt"] is None


@uses_memory
def test_run_i_values_are_json_when_they_parse_and_text_otherwise(tmp_path: Path) -> None:
    wf = write(tmp_path, "inputs.yml", INPUTS_YML)
    pairs = {
        "count": "3",
        "ratio": "0.5",
        "name": "42",  # a string input keeps its text even when it looks like a number
        "flag": "true",
        "tags": "[1, 2]",
        "meta": '{"a": {"b": null}}',
        "anything": "hello world",  # not JSON: text
    }
    args = [arg for key, value in pairs.items() for arg in ("-i", f"{key}={value}")]
    data = invoke_json("run", wf, *args, *MEMORY)
    assert data["output"] == {
        "count": 3,
        "ratio": 0.5,
        "name": "42",
        "flag": True,
        "tags": [1, 2],
        "meta": {"a": {"b": None}},
        "anything": "hello world",
    }
    data = invoke_json("run", wf, *args, "-i", "anything=7", *MEMORY)  # the last one wins
    assert data["output"]["anything"] == 7
    data = invoke_json("run", wf, *args, "-i", "anything=a=b", *MEMORY)
    assert data["output"]["anything"] == "a=b"  # only the first '=' splits


@uses_memory
def test_run_input_json_and_i_pairs_override_it(tmp_path: Path) -> None:
    data = invoke_json("run", HELLO, "--input", '{"name": "Grace"}', *MEMORY)
    assert data["output"]["name"] == "Grace"
    data = invoke_json("run", HELLO, "--input", '{"name": "Grace"}', "-i", "name=Ada", *MEMORY)
    assert data["output"]["name"] == "Ada"


@uses_memory
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--input", "{"],
            "error: --input is not valid JSON: Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1)",
        ),
        (["--input", "[1]"], """error: --input must be a JSON object, e.g. '{"amount": 250}'"""),
        (["-i", "name"], "error: -i expects key=value, got 'name'"),
        (["-i", "=x"], "error: -i expects key=value, got '=x'"),
    ],
)
def test_run_bad_input_is_one_error_line(args: list[str], message: str) -> None:
    assert error_line(invoke("run", HELLO, *args, *MEMORY)) == message


@uses_memory
def test_run_reports_every_invalid_input_value() -> None:
    result = invoke("run", EXPENSE, "-i", "amount=lots", *MEMORY)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: input 'amount' must be of type number, got str 'lots'",
        "error: missing required input 'employee' of type string (Who claims the expense.)",
    ]


@uses_memory
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.yml", "error: workflow file not found: missing.yml"),
        (
            "just_a_word",
            "error: 'just_a_word' is neither a YAML file nor MODULE:ATTR (e.g. shop.flows:orders)",
        ),
        (
            "no_such_module_xyz:flow",
            "error: cannot import module 'no_such_module_xyz': "
            "No module named 'no_such_module_xyz'",
        ),
        ("cli_flows:missing", "error: module 'cli_flows' has no attribute 'missing'"),
        (
            "cli_flows:not_a_workflow",
            "error: 'cli_flows:not_a_workflow' is not a workflow "
            "(a flowkit.Workflow, WorkflowDef or dict), got int",
        ),
        (
            "cli_flows:Payments",
            "error: 'cli_flows:Payments' is not a workflow "
            "(a flowkit.Workflow, WorkflowDef or dict), got type",
        ),
    ],
)
def test_run_unknown_target_is_one_error_line(flows: str, target: str, message: str) -> None:
    assert error_line(invoke("run", target, *MEMORY)) == message


@uses_memory
def test_run_module_that_raises_on_import_is_one_error_line(tmp_path: Path, flows: str) -> None:
    write(tmp_path, "cli_exploding.py", "raise RuntimeError('kaput')\n")
    try:
        line = error_line(invoke("run", "cli_exploding:flow", *MEMORY))
        assert line == "error: cannot import module 'cli_exploding': RuntimeError: kaput"
        line = error_line(invoke("run", HELLO, "-m", "cli_exploding", *MEMORY))
        assert line == "error: cannot import module 'cli_exploding': RuntimeError: kaput"
    finally:
        sys.modules.pop("cli_exploding", None)


@uses_memory
def test_run_module_attr_targets(flows: str) -> None:
    data = invoke_json("run", f"{flows}:greeter", "-i", "name=Ada", "-i", "times=2", *MEMORY)
    assert data["workflow_id"] == "cli_greeter"
    assert data["output"] == {"message": "hi Ada hi Ada"}
    data = invoke_json("run", f"{flows}:as_definition", *MEMORY)
    assert data["output"] == {"ok": True}


@uses_memory
def test_run_module_attr_from_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "lib" / "cli_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(FLOWS_PY)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    try:
        data = invoke_json("run", "cli_pkg.flows:as_definition", *MEMORY)
    finally:
        for name in ("cli_pkg", "cli_pkg.flows"):
            sys.modules.pop(name, None)
    assert data["status"] == "completed"


@uses_memory
def test_run_a_failing_workflow_exits_1_with_its_error(tmp_path: Path, flows: str) -> None:
    wf = write(tmp_path, "failing.yml", FAILING_YML)
    result = invoke("run", wf, "-m", flows, *MEMORY)
    assert result.exit_code == 1
    status, error = result.stdout.splitlines()
    assert status.startswith("failed: ")
    assert error == "error: RuntimeError: card declined for 10"

    result = invoke("run", wf, "-m", flows, "--json", *MEMORY)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data) == RUN_KEYS
    assert data["status"] == "failed"
    assert data["error"] == "RuntimeError: card declined for 10"
    assert data["output"] is None


@uses_memory
def test_run_a_call_to_an_unregistered_service_fails(tmp_path: Path) -> None:
    wf = write(tmp_path, "failing.yml", FAILING_YML.replace("CliPayments", "CliNobody"))
    result = invoke("run", wf, "--json", *MEMORY)
    assert result.exit_code == 1
    assert "unknown service 'CliNobody'" in json.loads(result.stdout)["error"]


@uses_memory
def test_run_watch_shows_step_events_on_stderr(tmp_path: Path, flows: str) -> None:
    result = invoke("run", HELLO, "--watch", "--json", *MEMORY)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "completed"  # stdout stays machine-readable
    events = [line.split()[1:] for line in result.stderr.splitlines()]
    assert events == [
        ["workflow.started", "hello_world"],
        ["step.started", "start"],
        ["step.completed", "start"],
        ["step.started", "greet"],
        ["step.completed", "greet"],
        ["step.started", "done"],
        ["step.completed", "done"],
        ["workflow.completed", "hello_world"],
    ]

    wf = write(tmp_path, "failing.yml", FAILING_YML)
    result = invoke("run", wf, "-m", flows, "--watch", *MEMORY)
    assert result.exit_code == 1
    assert any(
        "step.failed" in line and "charge" in line and "card declined for 10" in line
        for line in result.stderr.splitlines()
    ), result.stderr
    assert "workflow.failed" in result.stderr


@uses_memory
def test_run_halted_prints_a_resume_hint() -> None:
    result = invoke("run", EXPENSE, "-i", "amount=250", "-i", "employee=bob", *MEMORY)
    assert result.exit_code == 0
    status, waiting, hint = result.stdout.splitlines()
    execution_id = status.removeprefix("halted: ")
    assert len(execution_id) == 32
    assert waiting.rstrip() == "waiting: Approve an expense of 250 from bob?"
    assert hint == (
        f"resume with: flowkit resume {execution_id} --approve --by alice "
        f"--workflow {EXPENSE} --store memory://   (or --reject; --response JSON adds data)"
    )
    data = invoke_json("run", EXPENSE, "-i", "amount=250", "-i", "employee=bob", *MEMORY)
    assert data["status"] == "halted"
    assert data["halt"]["approvers"] == ["alice", "bob"]
    assert data["halt"]["context"]["amount"] == 250


@uses_memory
def test_run_halted_on_a_halt_step_hints_at_a_response(tmp_path: Path) -> None:
    wf = write(tmp_path, "halt.yml", HALT_YML)
    result = invoke("run", wf, *MEMORY)
    assert result.exit_code == 0
    status, waiting, hint = result.stdout.splitlines()
    execution_id = status.removeprefix("halted: ")
    assert waiting == "waiting: need a signature"
    assert hint == (
        f"resume with: flowkit resume {execution_id} --workflow {wf} --store memory://   "
        "(--response JSON adds data)"
    )


def test_run_with_an_unknown_store_scheme_is_one_error_line() -> None:
    line = error_line(invoke("run", HELLO, "--store", "bogus://x"))
    assert line.startswith("error: no adapter for 'bogus' in flowkit.stores (known: ")


# --- resume, list, show (in this process, on a SQLite file) ---------------------------------------


def test_resume_approves_rejects_and_passes_a_response(db: str) -> None:
    store = ("--store", db)
    execution_id = halt_expense(*store)
    answer = ("--approve", "--by", "bob", "--response", '{"comment": "ok"}')
    result = invoke("resume", execution_id, *answer, *store)
    assert result.exit_code == 0
    status, *output = result.stdout.splitlines()
    assert status == f"completed: {execution_id}"
    assert json.loads("\n".join(output)) == {
        "status": "approved",
        "employee": "bob",
        "amount": 250,
        "comment": "ok",
    }

    rejected = halt_expense(*store)
    data = invoke_json(
        "resume", rejected, "--reject", "--by", "alice", "--workflow", EXPENSE, *store
    )
    assert set(data) == RUN_KEYS
    assert data["status"] == "completed"
    assert data["output"]["status"] == "rejected"


def test_resume_refusals_are_one_line_and_change_nothing(db: str) -> None:
    store = ("--store", db)
    execution_id = halt_expense(*store)
    before = show_json(execution_id, *store)

    line = error_line(invoke("resume", execution_id, "--approve", "--by", "mallory", *store))
    assert line == (
        f"error: approval 'ask' of execution '{execution_id}' can only be decided by alice, bob; "
        "'mallory' is not one of them (pass by=<approver>)"
    )
    line = error_line(invoke("resume", execution_id, "--by", "alice", *store))
    assert "needs a decision" in line
    assert "--approve or --reject" in line
    line = error_line(invoke("resume", execution_id, "--approve", "--response", "{", *store))
    assert line.startswith("error: --response is not valid JSON: ")

    assert show_json(execution_id, *store) == before

    line = error_line(invoke("resume", "no-such-id", "--approve", *store))
    assert "no-such-id" in line


def test_resume_of_a_completed_execution_exits_1(db: str) -> None:
    store = ("--store", db)
    execution_id = invoke_json("run", HELLO, *store)["execution_id"]
    before = show_json(execution_id, *store)
    line = error_line(invoke("resume", execution_id, *store))
    assert line == f"error: execution '{execution_id}' is completed and cannot be resumed"
    assert show_json(execution_id, *store) == before


def test_resume_needs_the_definition_when_this_process_does_not_know_it(
    tmp_path: Path, db: str
) -> None:
    wf = write(tmp_path, "halt.yml", HALT_YML.replace("id: cli_halt", "id: cli_unknown_here"))
    # Started elsewhere: a registry of its own keeps this process's registry unaware of it.
    with flowkit.Engine(store=db, workflows=WorkflowRegistry()) as engine:
        execution_id = engine.run(flowkit.load(wf)).execution_id
    line = error_line(invoke("resume", execution_id, "--store", db))
    assert line.startswith("error: workflow 'cli_unknown_here' is not known in this process")
    data = invoke_json("resume", execution_id, "--workflow", wf, "--response", "1", "--store", db)
    assert data["output"] == 1


def test_resume_that_halts_again_hints_again(tmp_path: Path, db: str) -> None:
    wf = write(tmp_path, "twice.yml", TWICE_YML)
    first = invoke_json("run", wf, "--store", db)["execution_id"]
    result = invoke("resume", first, "--response", '{"n": 1}', "--workflow", wf, "--store", db)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"halted: {first}",
        "waiting: once more",
        f"resume with: flowkit resume {first} --workflow {wf} --store {db}   "
        "(--response JSON adds data)",
    ]
    data = invoke_json("resume", first, "--response", '{"n": 2}', "--workflow", wf, "--store", db)
    assert data["output"] == {"n": 2}


def test_list_filters_and_json(tmp_path: Path, db: str, flows: str) -> None:
    store = ("--store", db)
    assert invoke_json("list", *store) == []
    empty = invoke("list", *store)
    assert empty.exit_code == 0
    assert empty.stdout.split() == ["id", "workflow", "status", "step", "updated"]

    completed = invoke_json("run", HELLO, *store)["execution_id"]
    halted = halt_expense(*store)
    failing = write(tmp_path, "failing.yml", FAILING_YML)
    failed = json.loads(invoke("run", failing, "-m", flows, "--json", *store).stdout)
    failed_id = failed["execution_id"]

    everything = invoke_json("list", *store)
    assert [e["id"] for e in everything] == [failed_id, halted, completed]  # newest first
    assert {e["id"]: e["status"] for e in everything} == {
        completed: "completed",
        halted: "halted",
        failed_id: "failed",
    }
    record = next(e for e in everything if e["id"] == halted)
    assert record["workflow_id"] == "expense_approval"
    assert record["current_step"] == "ask"
    assert record["input"] == {"amount": 250, "employee": "bob", "note": "", "limit": 100}

    assert [e["id"] for e in invoke_json("list", "--status", "halted", *store)] == [halted]
    assert [e["id"] for e in invoke_json("list", "--status", "failed", *store)] == [failed_id]
    assert invoke_json("list", "--status", "running", *store) == []
    by_workflow = invoke_json("list", "--workflow", "hello_world", *store)
    assert [e["id"] for e in by_workflow] == [completed]
    assert [e["id"] for e in invoke_json("list", "--limit", "1", *store)] == [failed_id]
    assert invoke_json("list", "--limit", "0", *store) == []

    table = invoke("list", *store)
    assert table.exit_code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["id", "workflow", "status", "step", "updated"]
    assert [row.split()[:3] for row in rows] == [  # ids are never shortened
        [failed_id, "cli_failing", "failed"],
        [halted, "expense_approval", "halted"],
        [completed, "hello_world", "completed"],
    ]
    assert rows[1].split()[3] == "ask"


def test_list_option_errors(db: str) -> None:
    result = invoke("list", "--status", "sleeping", "--store", db)
    assert result.exit_code == 2
    assert "'sleeping' is not one of" in result.stderr
    result = invoke("list", "--limit", "-1", "--store", db)
    assert result.exit_code == 2
    assert "-1 is not in the range x>=0" in result.stderr


def test_show_json_has_record_cursor_and_entries(db: str) -> None:
    store = ("--store", db)
    execution_id = halt_expense(*store)
    data = show_json(execution_id, *store)
    assert set(data) == {"execution", "entries"}
    record = data["execution"]
    assert record["id"] == execution_id
    assert record["status"] == "halted"
    assert record["current_step"] == "ask"
    assert "cursor" in record
    assert record["halt_data"]["approvers"] == ["alice", "bob"]
    assert record["wake_at"] is not None  # the approval's timeout
    assert [(e["seq"], e["step_id"], e["action"]) for e in data["entries"]] == [
        (1, "start", "completed"),
        (2, "check", "completed"),
        (3, "ask", "halted"),
    ]
    assert all(e["execution_id"] == execution_id for e in data["entries"])


def test_show_prints_the_record_and_an_entry_table(db: str) -> None:
    store = ("--store", db)
    execution_id = halt_expense(*store)
    result = invoke("show", execution_id, *store)
    assert result.exit_code == 0
    text = result.stdout
    lines = [line.split() for line in text.splitlines()]
    assert ["execution", execution_id] in lines
    assert ["workflow", "expense_approval", "(version", "1.0)"] in lines
    assert ["status", "halted"] in lines
    assert ["step", "ask"] in lines
    assert any(line[:1] == ["halt"] and '"approvers":' in line for line in lines)
    assert any(line[:1] == ["cursor"] for line in lines)
    for seq, step, kind, action in [
        ("1", "start", "start", "completed"),
        ("2", "check", "router", "completed"),
        ("3", "ask", "approval", "halted"),
    ]:
        assert any(
            [seq, step, kind, action] == [c.strip() for c in line.split("│")[1:5]]
            for line in text.splitlines()
        ), text
    assert '{"route": "ask"}' in text


def test_show_an_unknown_execution_is_one_error_line(db: str) -> None:
    line = error_line(invoke("show", "no-such-id", "--store", db))
    assert line == "error: no execution 'no-such-id' in the store"


@uses_memory
def test_list_and_show_on_an_empty_memory_store() -> None:
    assert invoke_json("list", *MEMORY) == []
    assert error_line(invoke("show", "x", *MEMORY)) == "error: no execution 'x' in the store"


# --- wake and recover -----------------------------------------------------------------------------


def test_wake_with_nothing_due(db: str) -> None:
    store = ("--store", db)
    assert invoke("wake", *store).stdout == "0 executions woken\n"
    execution_id = halt_expense(*store)  # its timer fires in three days
    result = invoke("wake", *store)
    assert result.exit_code == 0
    assert result.stdout == "0 executions woken\n"
    assert invoke_json("wake", *store) == []
    assert show_json(execution_id, *store)["execution"]["status"] == "halted"


def test_wake_moves_on_an_approval_whose_timeout_passed(db: str) -> None:
    # The execution halted four days ago: its three-day approval timeout has passed.
    with flowkit.Engine(store=db, clock=PastClock(4 * 86400)) as engine:
        halted = engine.run(flowkit.load(EXPENSE), {"amount": 250, "employee": "bob"})
    assert halted.halted
    result = invoke("wake", "--store", db)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "1 execution woken",
        f"  {halted.execution_id}  completed",
    ]
    record = show_json(halted.execution_id, "--store", db)["execution"]
    assert record["status"] == "completed"
    assert record["result"] == {"status": "expired", "employee": "bob", "amount": 250}
    assert invoke("wake", "--store", db).stdout == "0 executions woken\n"


def test_wake_json(db: str) -> None:
    with flowkit.Engine(store=db, clock=PastClock(4 * 86400)) as engine:
        halted = engine.run(flowkit.load(EXPENSE), {"amount": 250, "employee": "bob"})
    assert invoke_json("wake", "--store", db) == [
        {"execution_id": halted.execution_id, "status": "completed", "error": None}
    ]


def test_recover_with_nothing_to_do(db: str) -> None:
    store = ("--store", db)
    assert invoke("recover", *store).stdout == "0 executions recovered\n"
    invoke_json("run", HELLO, *store)
    halt_expense(*store)
    assert invoke("recover", *store).stdout == "0 executions recovered\n"
    assert invoke_json("recover", *store) == []


def test_recover_continues_an_execution_whose_process_died(db: str) -> None:
    # A process started it a day ago, checkpointed `start` and died: its lease has expired.
    with flowkit.Engine(store=db, clock=PastClock(86400), lease_seconds=30) as engine:
        execution = engine.create(flowkit.load(HELLO), {"name": "Ada"})
        engine.step(execution.id)
    assert show_json(execution.id, "--store", db)["execution"]["status"] == "running"

    result = invoke("recover", "--store", db)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "1 execution recovered",
        f"  {execution.id}  completed",
    ]
    data = show_json(execution.id, "--store", db)
    assert data["execution"]["result"] == {"greeting": "Hello, Ada!", "name": "Ada"}
    assert [e["step_id"] for e in data["entries"]] == ["start", "greet", "done"]
    assert invoke_json("recover", "--store", db) == []


@uses_memory
@pytest.mark.parametrize("command", ["recover", "wake"])
def test_recover_and_wake_workflow_option_must_name_a_workflow(
    tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "missing.yml"
    line = error_line(invoke(command, "--workflow", missing, *MEMORY))
    assert line == f"error: workflow file not found: {missing}"


def test_version_and_help() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"flowkit, version {flowkit.__version__}\n"
    result = invoke("--help")
    for command in ("validate", "graph", "run", "resume", "recover", "wake", "list", "show"):
        assert command in result.stdout


# --- separate processes ---------------------------------------------------------------------------


def test_an_approval_halted_in_one_process_is_resumed_in_another(db: str) -> None:
    inputs = ("-i", "amount=250", "-i", "employee=bob", "-i", "note=taxi")
    run = flowkit_process("run", "examples/expense_approval.yml", *inputs, "--store", db)
    assert run.returncode == 0, run.stderr
    status, _waiting, hint = run.stdout.splitlines()
    execution_id = status.removeprefix("halted: ")
    assert hint.startswith(f"resume with: flowkit resume {execution_id} --approve --by alice ")
    before = json.loads(flowkit_process("show", execution_id, "--json", "--store", db).stdout)
    assert before["execution"]["status"] == "halted"

    # Somebody who is not an approver.
    definition = ("--workflow", "examples/expense_approval.yml")
    refused = flowkit_process(
        "resume", execution_id, "--approve", "--by", "mallory", *definition, "--store", db
    )
    line = error_line(refused)
    assert "'mallory' is not one of them" in line
    after = json.loads(flowkit_process("show", execution_id, "--json", "--store", db).stdout)
    assert after == before

    # The hint, as printed, resumes it (with a response added).
    command = shlex.split(hint.removeprefix("resume with: ").split("   ")[0])
    assert command[0] == "flowkit"
    resumed = flowkit_process(*command[1:], "--response", '{"comment": "fine"}', "--json")
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert data["status"] == "completed"
    assert data["output"] == {
        "status": "approved",
        "employee": "bob",
        "amount": 250,
        "comment": "fine",
    }

    shown = json.loads(flowkit_process("show", execution_id, "--json", "--store", db).stdout)
    assert [(e["step_id"], e["action"]) for e in shown["entries"]] == [
        ("start", "completed"),
        ("check", "completed"),
        ("ask", "halted"),
        ("ask", "resumed"),
        ("approved", "completed"),
    ]
    assert shown["entries"][3]["output"] == {
        "approved": True,
        "by": "alice",
        "response": {"comment": "fine"},
    }


def test_wake_in_another_process_needs_the_definition(db: str) -> None:
    with flowkit.Engine(store=db, clock=PastClock(4 * 86400)) as engine:
        halted = engine.run(flowkit.load(EXPENSE), {"amount": 250, "employee": "bob"})

    definition = ("--workflow", "examples/expense_approval.yml")
    woken = flowkit_process("wake", *definition, "--store", db, "--json")
    assert woken.returncode == 0, woken.stderr
    assert json.loads(woken.stdout) == [
        {"execution_id": halted.execution_id, "status": "completed", "error": None}
    ]
    listed = json.loads(flowkit_process("list", "--json", "--store", db).stdout)
    assert [(e["id"], e["status"], e["result"]["status"]) for e in listed] == [
        (halted.execution_id, "completed", "expired")
    ]

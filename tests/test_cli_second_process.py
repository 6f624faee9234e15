"""Operating executions from a second process: ``-m``, the ``imports`` setting, ``python -m``.

Each test writes a small module of its own into a temporary working directory,
starts an execution from this process, and moves it on from a real ``flowkit``
process that knows the workflow only through ``-m`` or the configuration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

import flowkit
from flowkit.definitions import WorkflowRegistry
from flowkit.definitions.workflows import import_workflows, workflows_in

FLOWKIT = str(Path(sys.executable).with_name("flowkit"))

MODULE = dedent(
    '''
    """A Python workflow and a YAML one, defined at the top of a module."""
    import flowkit

    wf = flowkit.Workflow("second_process", inputs={"n": int})


    @wf.step(output="doubled")
    def double(n: int) -> int:
        return 2 * n


    wf.approval("ask", prompt="Go on?")
    wf.end("done", result="$doubled")

    YAML_TOO = flowkit.load(
        {"id": "yaml_too", "steps": [{"id": "wait", "type": "halt", "reason": "later"}]}
    )
    NOT_A_WORKFLOW = {"id": "a dict is not registered"}
    '''
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with ``flows.py``, a SQLite store, and this process inside it."""
    (tmp_path / "flows.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flows", raising=False)
    return tmp_path


def _flowkit(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWKIT, *args], cwd=workdir, capture_output=True, text=True, timeout=120, check=False
    )


def _store(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'runs.db'}"


def _halted(workdir: Path) -> str:
    """An execution of ``flows.wf`` halted at its approval, started from this process."""
    import flows  # type: ignore[import-not-found]

    with flowkit.Engine(store=_store(workdir), workflows=WorkflowRegistry()) as engine:
        result = engine.run(flows.wf, {"n": 21})
    assert result.status is flowkit.Status.HALTED
    return result.execution_id


def test_a_module_s_workflows_are_found_by_what_it_defines(workdir: Path) -> None:
    import flows

    assert [wf.id for wf in workflows_in(flows)] == ["second_process", "yaml_too"]
    registry = WorkflowRegistry()
    import_workflows(["flows"], registry)
    assert registry.get("second_process") == flows.wf.definition
    with pytest.raises(flowkit.ConfigError) as raised:
        import_workflows(["no_such_module"], registry)
    assert (
        str(raised.value)
        == "cannot import module 'no_such_module': No module named 'no_such_module'"
    )


def test_resume_with_m_finds_the_module_s_workflow(workdir: Path) -> None:
    execution_id = _halted(workdir)
    store = _store(workdir)

    without = _flowkit(workdir, "resume", execution_id, "--approve", "--store", store)
    assert without.returncode == 1
    assert without.stderr.splitlines() == [
        "error: workflow 'second_process' is not known in this process: on the command line "
        "pass --workflow FILE|MODULE:ATTR or -m MODULE (a module that defines it); in Python "
        "call flowkit.register(wf) or pass workflow=...; or list its file or module under "
        "'workflows' in [tool.flowkit] / flowkit.toml"
    ]

    done = _flowkit(
        workdir, "resume", execution_id, "--approve", "-m", "flows", "--store", store, "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == 42


def test_recover_and_show_with_m(workdir: Path) -> None:
    import flows

    store = _store(workdir)
    with flowkit.Engine(store=store, lease_seconds=0.001, workflows=WorkflowRegistry()) as engine:
        execution = engine.create(flows.wf, {"n": 5})  # its process "died" before any step

    recovered = _flowkit(workdir, "recover", "-m", "flows", "--store", store)
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines() == ["1 execution recovered", f"  {execution.id}  halted"]

    shown = _flowkit(workdir, "show", execution.id, "-m", "flows", "--store", store, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["execution"]["ctx"] == {"doubled": 10}


def test_the_imports_setting_is_honoured_by_the_cli_and_the_engine(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution_id = _halted(workdir)
    (workdir / "flowkit.toml").write_text(f'store = "{_store(workdir)}"\nimports = ["flows"]\n')

    done = _flowkit(workdir, "resume", execution_id, "--approve", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"

    # And in Python: an engine on the configured registries registers the workflows too.
    flowkit.config.reset()
    try:
        registry = WorkflowRegistry()
        monkeypatch.setattr("flowkit.engine.engine.default_workflows", registry)
        with flowkit.Engine() as engine:
            assert engine.workflows is registry
            assert registry.get("yaml_too").id == "yaml_too"
    finally:
        flowkit.config.reset()


def test_python_dash_m_flowkit_is_the_flowkit_command(workdir: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "flowkit", "graph", "flows:wf"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == _flowkit(workdir, "graph", "flows:wf").stdout
    assert ran.stdout.startswith("flowchart TD\n")
    assert '["double<br/>call"]' in ran.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "flowkit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert usage.stdout.startswith("Usage: python -m flowkit [OPTIONS] COMMAND [ARGS]...")


def test_graph_takes_a_file_or_module_attr(workdir: Path) -> None:
    (workdir / "flow.yml").write_text(
        flowkit.to_yaml(flowkit.load({"id": "f", "steps": [{"id": "only", "type": "end"}]}))
    )
    from_file = _flowkit(workdir, "graph", "flow.yml", "--format", "dot")
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.startswith("digraph")
    missing = _flowkit(workdir, "graph", "flows:nothing")
    assert missing.returncode == 1
    assert missing.stderr == "error: module 'flows' has no attribute 'nothing'\n"

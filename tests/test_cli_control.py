"""``flowkit retry``: operating on an execution from the command line (SPEC §15)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import error_line, invoke, invoke_json

SWITCH_PY = """\
from pathlib import Path

import flowkit


@flowkit.service("Switch")
class Switch:
    @staticmethod
    def check(marker: str) -> str:
        if not Path(marker).exists():
            raise RuntimeError(f"{marker} is missing")
        return "on"
"""

FLOW_YML = """\
id: cli_switch
inputs:
  marker: {type: string}
steps:
  - {id: start, type: start, next: check}
  - id: check
    type: call
    service: Switch
    method: check
    input: {marker: $input.marker}
    output: state
    next: done
  - {id: done, type: end, result: $state}
"""


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "cli_switch.py").write_text(SWITCH_PY)
    (tmp_path / "switch.yml").write_text(FLOW_YML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield "cli_switch"
    sys.modules.pop("cli_switch", None)


def test_retry_continues_a_failed_execution(tmp_path: Path, flows: str) -> None:
    store = ("--store", f"sqlite:///{tmp_path / 'runs.db'}", "-m", flows)
    marker = tmp_path / "marker"
    failed = invoke("run", "switch.yml", "-i", f"marker={marker}", "--json", *store)
    assert failed.exit_code == 1, failed.output
    (listed,) = invoke_json("list", "--status", "failed", *store)
    execution_id = listed["id"]

    marker.touch()  # the fix
    data = invoke_json("retry", execution_id, "--workflow", "switch.yml", *store)
    assert data["status"] == "completed"
    assert data["output"] == "on"
    shown = invoke_json("show", execution_id, *store)
    actions = [(entry["step_id"], entry["action"]) for entry in shown["entries"]]
    assert actions[-4:] == [
        ("check", "failed"),
        ("check", "retried"),
        ("check", "completed"),
        ("done", "completed"),
    ]


def test_retry_of_an_execution_that_did_not_fail_exits_1(tmp_path: Path, flows: str) -> None:
    store = ("--store", f"sqlite:///{tmp_path / 'runs.db'}", "-m", flows)
    (tmp_path / "marker").touch()
    done = invoke_json("run", "switch.yml", "-i", f"marker={tmp_path / 'marker'}", *store)
    line = error_line(invoke("retry", done["execution_id"], *store))
    assert line == (
        f"error: execution '{done['execution_id']}' is completed; only a failed execution "
        "can be retried"
    )


APPROVAL_YML = """\
id: cli_approval
steps:
  - {id: start, type: start, next: ask}
  - {id: ask, type: approval, prompt: "ok?", next: done}
  - {id: done, type: end}
"""


def test_cancel_a_halted_execution(tmp_path: Path, flows: str) -> None:
    (tmp_path / "approval.yml").write_text(APPROVAL_YML)
    store = ("--store", f"sqlite:///{tmp_path / 'runs.db'}")
    halted = invoke_json("run", "approval.yml", *store)
    execution_id = halted["execution_id"]
    data = invoke_json(
        "cancel",
        execution_id,
        "--reason",
        "withdrawn",
        "--by",
        "ops",
        "--workflow",
        "approval.yml",
        *store,
    )
    assert data == {
        "execution_id": execution_id,
        "workflow_id": "cli_approval",
        "status": "cancelled",
        "error": "withdrawn",
    }
    (listed,) = invoke_json("list", "--status", "cancelled", *store)
    assert listed["id"] == execution_id
    line = error_line(invoke("cancel", execution_id, *store))
    assert line == (
        f"error: execution '{execution_id}' is cancelled; only an execution that has not "
        "finished can be cancelled"
    )

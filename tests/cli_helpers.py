"""Helpers for tests/test_cli.py: workflows to write to disk, runners, a clock in the past."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from flowkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXPENSE = EXAMPLES / "expense_approval.yml"
HELLO = EXAMPLES / "hello_world.yml"
FLOWKIT = Path(sys.executable).parent / "flowkit"


def invoke(*args: str | Path) -> Result:
    """Run the CLI in this process; stdout and stderr are kept apart."""
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def invoke_json(*args: str | Path) -> Any:
    """Run the CLI with ``--json``; it must succeed and print JSON only."""
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error_line(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The one ``error: …`` line a failed command printed on stderr (and nothing on stdout)."""
    code = result.exit_code if isinstance(result, Result) else result.returncode
    assert code == 1, (code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


def flowkit_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``flowkit`` script in a separate process, from the repository root."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWKIT_")}
    return subprocess.run(
        [str(FLOWKIT), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


class PastClock:
    """The real time moved ``seconds`` into the past: what an engine that ran earlier saw."""

    def __init__(self, seconds: float) -> None:
        self.offset = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) - self.offset

    def sleep(self, seconds: float) -> None:
        pass


INPUTS_YML = """\
id: cli_inputs
inputs:
  count: {type: integer}
  ratio: {type: number}
  name: {type: string}
  flag: {type: boolean}
  tags: {type: array}
  meta: {type: object}
  anything: {type: any, required: false}
steps:
  - id: start
    type: start
    next: done
  - id: done
    type: end
    result: "$input"
"""

# Semantic problems only, so that every one of them is reported at once.
BROKEN_YML = """\
id: broken
steps:
  - id: start
    type: start
    next: greet
  - id: greet
    type: assign
    set:
      x: "$nothing.here"
    next: nowhere
  - id: greet
    type: end
  - id: orphan
    type: end
"""

TYPO_YML = """\
id: typo
steps:
  - id: start
    type: start
    next: charge
  - id: charge
    type: call
    service: Calculator
    method: add
    retires: 3
    next: done
  - id: done
    type: bogus
"""

SERVICES_YML = """\
id: cli_services
steps:
  - id: start
    type: start
    next: add
  - id: add
    type: call
    service: Calculator
    method: add
    input: {a: 1, b: 2}
    next: power
  - id: power
    type: call
    service: Calculator
    method: power
    next: ghost
  - id: ghost
    type: call
    service: Ghost
    method: boo
    next: done
  - id: done
    type: end
"""

FAILING_YML = """\
id: cli_failing
steps:
  - id: start
    type: start
    next: charge
  - id: charge
    type: call
    service: CliPayments
    method: charge
    input: {amount: 10}
    next: done
  - id: done
    type: end
"""

HALT_YML = """\
id: cli_halt
steps:
  - id: start
    type: start
    next: wait
  - id: wait
    type: halt
    reason: need a signature
    next: done
  - id: done
    type: end
    result: "$response"
"""

TWICE_YML = """\
id: cli_twice
steps:
  - id: start
    type: start
    next: first
  - id: first
    type: halt
    reason: need a signature
    next: second
  - id: second
    type: halt
    reason: once more
    next: done
  - id: done
    type: end
    result: "$response"
"""

# A module the CLI imports by name: a Python-DSL workflow, a WorkflowDef, a failing
# service, and attributes that are not workflows.
FLOWS_PY = """\
import flowkit

greeter = flowkit.Workflow("cli_greeter", inputs={"name": str, "times": int})


@greeter.step(output="message")
def greet(name: str, times: int) -> str:
    return " ".join([f"hi {name}"] * times)


greeter.end(result={"message": "$message"})

as_definition = flowkit.load(
    {
        "id": "cli_definition",
        "steps": [
            {"id": "start", "type": "start", "next": "done"},
            {"id": "done", "type": "end", "result": {"ok": True}},
        ],
    }
)

not_a_workflow = 42


@flowkit.service("CliPayments")
class Payments:
    @staticmethod
    def charge(amount: int) -> None:
        raise RuntimeError(f"card declined for {amount}")
"""

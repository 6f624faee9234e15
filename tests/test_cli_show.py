"""``flowkit show`` and ``flowkit list`` into a pipe: as wide as the terminal, ids never cut."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import invoke

import flowkit
from flowkit.definitions import WorkflowRegistry

LONG_ERROR = "the gateway said: " + "x" * 300


@pytest.fixture
def failed(tmp_path: Path) -> tuple[str, str]:
    """A store URL and a failed execution in it whose error is one long line."""
    services = flowkit.ServiceRegistry()

    def fail() -> None:
        raise RuntimeError(LONG_ERROR)

    services.register("S", {"fail": fail})
    url = f"sqlite:///{tmp_path}/runs.db"
    wf = {"id": "long", "steps": [{"id": "call", "type": "call", "service": "S", "method": "fail"}]}
    with flowkit.Engine(store=url, services=services, workflows=WorkflowRegistry()) as engine:
        result = engine.run(wf)
    return url, result.execution_id


def test_piped_show_wraps_at_the_terminal_width(
    failed: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, execution_id = failed
    monkeypatch.setenv("COLUMNS", "100")
    shown = invoke("show", execution_id, "--store", url)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert any(execution_id in line for line in lines)  # the id is never cut
    assert "".join(line.strip() for line in lines).count("x" * 200) == 1  # wrapped, not cut


def test_piped_show_without_a_terminal_keeps_lines_whole(
    failed: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, execution_id = failed
    monkeypatch.delenv("COLUMNS", raising=False)  # and the test runner has no terminal
    shown = invoke("show", execution_id, "--store", url)
    assert shown.exit_code == 0, shown.output
    assert any(f"RuntimeError: {LONG_ERROR}" in line for line in shown.stdout.splitlines())


def test_piped_list_never_cuts_an_id(
    failed: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, execution_id = failed
    monkeypatch.setenv("COLUMNS", "40")
    listed = invoke("list", "--store", url)
    assert listed.exit_code == 0, listed.output
    assert execution_id in listed.stdout

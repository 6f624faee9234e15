"""``flowkit schedule add|list|remove`` (SPEC §16), on a SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cli_helpers import EXAMPLES, error_line, invoke, invoke_json

import flowkit

DIGEST = EXAMPLES / "nightly_digest.yml"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def test_add_list_and_remove_a_schedule(store_url: str) -> None:
    added = invoke(
        "schedule", "add", "nightly", str(DIGEST), "--cron", "30 2 * * *",
        "--timezone", "Europe/Berlin", "--input", '{"team": "ops"}', "--store", store_url,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith(
        "schedule 'nightly' added: starts workflow 'nightly_digest' at '30 2 * * *' "
        "(Europe/Berlin); next "
    )
    assert added.stdout.rstrip().endswith(":30:00 UTC)")  # 02:30 CET or CEST, in UTC too

    [listed] = invoke_json("schedule", "list", "--store", store_url)
    assert {key: listed[key] for key in ("name", "workflow_id", "cron", "timezone", "input")} == {
        "name": "nightly",
        "workflow_id": "nightly_digest",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "input": {"team": "ops"},
    }
    assert (listed["last_slot"], listed["due"], listed["missed"]) == (None, None, 0)
    next_slot = datetime.fromisoformat(listed["next"])
    now = datetime.now(UTC)
    assert now < next_slot <= now + timedelta(days=1)
    assert next_slot.astimezone(ZoneInfo("Europe/Berlin")).hour == 2

    table = invoke("schedule", "list", "--store", store_url)
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    assert header.split() == [
        *("name", "workflow", "cron", "time", "zone", "next", "last", "slot", "missed")
    ]
    assert row.split()[:7] == ["nightly", "nightly_digest", "30", "2", "*", "*", "*"]
    assert row.split()[-2:] == ["-", "0"]

    removed = invoke("schedule", "remove", "nightly", "--store", store_url)
    assert removed.stdout == "schedule 'nightly' removed; the executions it started stay\n"
    assert invoke("schedule", "list", "--store", store_url).stdout == "No schedules.\n"
    assert error_line(invoke("schedule", "remove", "nightly", "--store", store_url)) == (
        "error: no schedule 'nightly' in the store; 'flowkit schedule list' shows the schedules"
    )


def test_adding_a_schedule_again_replaces_it_unless_it_is_the_same(store_url: str) -> None:
    def add(cron: str) -> str:
        result = invoke(
            "schedule", "add", "nightly", str(DIGEST), "--cron", cron, "--store", store_url
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    assert add("30 2 * * *").startswith("schedule 'nightly' added: ")
    [first] = invoke_json("schedule", "list", "--store", store_url)
    assert add("30 2 * * *").startswith("schedule 'nightly' unchanged: ")
    assert invoke_json("schedule", "list", "--store", store_url) == [first]
    assert add("0 6 * * 1-5").startswith("schedule 'nightly' replaced: ")
    [listed] = invoke_json("schedule", "list", "--store", store_url)
    assert listed["cron"] == "0 6 * * 1-5"


def test_a_bad_schedule_prints_every_problem(store_url: str) -> None:
    result = invoke(
        "schedule", "add", "nightly", str(DIGEST), "--cron", "30 2 * *",
        "--timezone", "Europe/Berln", "--store", store_url,
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: cron '30 2 * *' is not a valid cron expression (4 fields); expected five "
        "fields 'minute hour day-of-month month day-of-week' such as '30 2 * * *' (02:30 "
        "every day) or '*/15 * * * 1-5', or @hourly, @daily, @weekly, @monthly",
        "error: time zone 'Europe/Berln' is not known (did you mean 'Europe/Berlin'?); use an "
        "IANA name such as 'Europe/Berlin', 'America/New_York' or 'UTC'",
    ]
    assert invoke_json("schedule", "list", "--store", store_url) == []


def test_an_unknown_workflow_id_says_how_to_make_it_known(store_url: str) -> None:
    line = error_line(
        invoke("schedule", "add", "nightly", "digest", "--cron", "@daily", "--store", store_url)
    )
    assert line.startswith(
        "error: workflow 'digest' is not known in this process: on the command line pass "
        "--workflow FILE|MODULE:ATTR or -m MODULE"
    )


def test_a_workflow_id_from_a_module(store_url: str) -> None:
    result = invoke(
        "schedule", "add", "nightly", "nightly_digest", "--cron", "@daily",
        "-m", "examples.nightly_digest", "--store", store_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [listed] = invoke_json("schedule", "list", "--store", store_url)
    assert listed["workflow_id"] == "nightly_digest"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", "error: --input is not valid JSON: Expecting property name enclosed in double "
         "quotes: line 1 column 2 (char 1)"),
        ("[1]", "error: --input must be a JSON object, e.g. '{\"region\": \"eu\"}'"),
        ('{"team": 3}', "error: input 'team' must be of type string, got int 3"),
    ],
)  # fmt: skip
def test_a_bad_input_is_refused(store_url: str, raw: str, message: str) -> None:
    result = invoke(
        "schedule", "add", "nightly", str(DIGEST), "--cron", "@daily",
        "--input", raw, "--store", store_url,
    )  # fmt: skip
    assert error_line(result) == message


def test_flowkit_wake_starts_a_due_slot_once(store_url: str) -> None:
    store = flowkit.connect(store_url)
    try:  # saved two days ago, so that yesterday's 02:30 has passed
        store.save_schedule(
            flowkit.Schedule(
                name="nightly",
                workflow_id="nightly_digest",
                cron="30 2 * * *",
                input={"team": "ops"},
                created_at=datetime.now(UTC) - timedelta(days=2),
            )
        )
    finally:
        store.close()
    first = invoke_json("wake", "--workflow", str(DIGEST), "--store", store_url)
    [started] = first
    assert started["execution_id"].startswith("nightly@")
    assert started["status"] == "completed"
    assert invoke_json("wake", "--workflow", str(DIGEST), "--store", store_url) == []
    [listed] = invoke_json("schedule", "list", "--store", store_url)
    assert listed["last_slot"] is not None
    assert started["execution_id"] == "nightly@" + datetime.fromisoformat(
        listed["last_slot"]
    ).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_flowkit_wake_reports_a_slot_whose_workflow_it_does_not_know(store_url: str) -> None:
    store = flowkit.connect(store_url)
    try:
        store.save_schedule(
            flowkit.Schedule(
                name="nightly",
                workflow_id="weekly_audit",
                cron="30 2 * * *",
                created_at=datetime.now(UTC) - timedelta(days=2),
            )
        )
    finally:
        store.close()
    result = invoke("wake", "--store", store_url)
    assert result.exit_code == 1
    assert result.stdout == "0 executions woken\n"
    # Besides the logs (flowkit wake prints them on stderr), one error line.
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: execution nightly@")
    assert "could not be woken: NotFoundError: workflow 'weekly_audit' is not known" in line
    [listed] = invoke_json("schedule", "list", "--store", store_url)
    assert listed["last_slot"] is None  # still due, for a process that knows the workflow

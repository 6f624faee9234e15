"""Step logs on ``flowkit.steps`` and ``--log-format``/``--log-level`` on the CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowkit
from flowkit.telemetry import JSONFormatter, configure_logging
from tests.cli_helpers import invoke
from tests.telemetry.conftest import call, workflow


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    flowkit_logger = logging.getLogger("flowkit")
    level, handlers = flowkit_logger.level, list(logging.getLogger().handlers)
    yield
    flowkit_logger.setLevel(level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)


def _step_records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str, int]]:
    return [
        (
            record.levelname,
            record.getMessage().split(": step ")[1].split(" (")[0],
            record.step_id,
            record.attempt,
        )
        for record in caplog.records
        if record.name == "flowkit.steps" and hasattr(record, "step_id")
    ]


def test_every_step_start_finish_retry_and_failure_is_logged_with_its_ids(
    make_engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit")
    wf = workflow(
        call("arm", "fail_next", x=1, next="flaky"),
        call("flaky", "flaky", retries=1, retry_delay=0.001, next="bad"),
        call("bad", "boom"),
    )
    result = make_engine().run(wf, {})
    assert _step_records(caplog) == [
        ("DEBUG", "'start' started", "start", 1),
        ("INFO", "'start' completed", "start", 1),
        ("DEBUG", "'arm' started", "arm", 1),
        ("INFO", "'arm' completed", "arm", 1),
        ("DEBUG", "'flaky' started", "flaky", 1),
        ("INFO", "'flaky' retried", "flaky", 1),
        ("DEBUG", "'flaky' started", "flaky", 2),
        ("INFO", "'flaky' completed", "flaky", 2),
        ("DEBUG", "'bad' started", "bad", 1),
        ("WARNING", "'bad' failed", "bad", 1),
    ]
    failed = caplog.records[-1]
    assert failed.getMessage().endswith(": ValueError: no 1")
    assert failed.execution_id == result.execution_id
    assert failed.workflow_id == "wf"
    assert failed.step_type == "call"
    trace = make_engine().load(result.execution_id).traceparent
    assert failed.trace_id == trace.split("-")[1]


def test_at_warning_level_only_failures_are_logged(
    make_engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit")
    make_engine().run(workflow(call("ok", next="bad"), call("bad", "boom")), {})
    assert _step_records(caplog) == [("WARNING", "'bad' failed", "bad", 1)]


def test_nothing_is_built_for_a_logger_that_is_off(
    make_engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="flowkit")
    assert make_engine().run(workflow(call("one")), {}).completed
    assert [r for r in caplog.records if r.name == "flowkit.steps"] == []


def test_the_json_formatter_writes_one_object_with_the_extra_fields() -> None:
    record = logging.LogRecord("flowkit.steps", logging.INFO, __file__, 1, "step %s", ("a",), None)
    record.execution_id = "e1"
    record.attempt = 2
    line = JSONFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "step a"
    assert data["level"] == "info"
    assert data["logger"] == "flowkit.steps"
    assert data["execution_id"] == "e1"
    assert data["attempt"] == 2
    assert data["time"].endswith("+00:00")


def test_an_unknown_log_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml': use 'text' or 'json'"):
        configure_logging("xml")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("text", "loud")


def _flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "flow.yml"
    path.write_text(
        flowkit.to_yaml(
            flowkit.load(
                {
                    "id": "cli-logs",
                    "steps": [
                        {"id": "start", "type": "start", "next": "set"},
                        {"id": "set", "type": "assign", "set": {"x": 1}},
                    ],
                }
            )
        )
    )
    return path


def test_run_prints_json_logs_one_object_per_line(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    result = invoke(
        "run",
        _flow_file(tmp_path),
        "--store",
        store,
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    execution_id = json.loads(result.stdout)["execution_id"]
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    steps = [line for line in lines if "step_id" in line]
    assert [(line["level"], line["step_id"]) for line in steps] == [
        ("debug", "start"),
        ("info", "start"),
        ("debug", "set"),
        ("info", "set"),
    ]
    for line in steps:
        assert line["execution_id"] == execution_id
        assert line["workflow_id"] == "cli-logs"
        assert line["attempt"] == 1
        assert line["logger"] == "flowkit.steps"


def test_run_prints_only_warnings_by_default_and_text_when_asked(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    quiet = invoke("run", _flow_file(tmp_path), "--store", store)
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    loud = invoke("run", _flow_file(tmp_path), "--store", store, "--log-level", "info")
    assert loud.exit_code == 0
    lines = loud.stderr.splitlines()
    assert len(lines) == 3  # the execution started, two steps completed
    assert " INFO " in lines[1]
    assert "flowkit.steps: execution " in lines[1]
    assert "step 'start' completed (attempt 1" in lines[1]


def test_a_bad_log_level_is_a_usage_error() -> None:
    result = invoke("wake", "--log-level", "loud")
    assert result.exit_code == 2
    assert "'loud' is not one of 'debug', 'info', 'warning', 'error'" in result.stderr


@given(
    message=st.text(),
    extra=st.dictionaries(
        st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True).filter(
            lambda key: key not in {*vars(logging.makeLogRecord({})), "message", "asctime"}
        ),
        st.none() | st.booleans() | st.integers() | st.text(),
        max_size=5,
    ),
)
def test_any_record_is_one_json_line_that_reads_back(message: str, extra: dict[str, Any]) -> None:
    record = logging.makeLogRecord({"name": "flowkit.steps", "msg": message, **extra})
    line = JSONFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == message
    for key, value in extra.items():
        assert data[key] == value

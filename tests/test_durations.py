"""Durations (SPEC §19, "§4 durations"): every field of seconds takes a number, text with a
unit, ISO 8601 or (in Python) a timedelta, and definitions hold the number of seconds."""

from __future__ import annotations

import re
import textwrap
import typing
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import flowkit
import flowkit.ai
from flowkit import CallConfig, StepDef, WorkflowDef
from flowkit.abc import step_types
from flowkit.backends.memory import MemoryStore
from flowkit.definitions import WorkflowRegistry
from flowkit.definitions.fields import SECONDS, seconds
from flowkit.testing import FakeClock

FORMS = (
    "a number of seconds, a number with a unit (500ms, 30s, 5m, 24h, 7d, 1h30m) "
    "or an ISO 8601 duration (PT1H, P1DT2H)"
)
MONTHS = (
    "expected a duration without years or months, which have no fixed length "
    "(write days, as in P30D)"
)


# --- the parser -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, 30),
        (1.5, 1.5),
        (0, 0),
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("24h", 86400),
        ("7d", 604800),
        ("1.5h", 5400),
        ("0.1h", 360),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("2m30s", 150),
        ("1s500ms", 1.5),
        ("1d2h3m4s5ms", 93784.005),
        ("0s", 0),
        ("PT1H", 3600),
        ("P1DT2H", 93600),
        ("PT0.5S", 0.5),
        ("PT1M30S", 90),
        ("P2D", 172800),
        ("P1.5D", 129600),
        (timedelta(minutes=5), 300),
        (timedelta(milliseconds=1500), 1.5),
    ],
)
def test_seconds_reads_every_form(value: object, expected: float) -> None:
    assert seconds(value) == expected
    assert type(seconds(value)) is type(expected)  # whole text gives an int: `timeout: 300`


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 minutes", f"expected {FORMS}, got '5 minutes'"),
        ("-3s", f"expected {FORMS}, got '-3s'"),
        ("1", f"expected {FORMS}, got '1'"),  # text needs a unit
        ("", f"expected {FORMS}, got ''"),
        (" 5s", f"expected {FORMS}, got ' 5s'"),
        (".5s", f"expected {FORMS}, got '.5s'"),
        ("1e3s", f"expected {FORMS}, got '1e3s'"),
        ("5M", f"expected {FORMS}, got '5M'"),  # minutes or months? neither
        ("30m1h", f"expected {FORMS}, got '30m1h'"),  # largest unit first
        ("1h1h", f"expected {FORMS}, got '1h1h'"),  # each unit once
        ("2w", f"expected {FORMS}, got '2w'"),
        ("pt1h", f"expected {FORMS}, got 'pt1h'"),
        ("P", f"expected {FORMS}, got 'P'"),
        ("PT", f"expected {FORMS}, got 'PT'"),
        ("P1DT", f"expected {FORMS}, got 'P1DT'"),
        ("P1W", f"expected {FORMS}, got 'P1W'"),
        ("P1M", f"{MONTHS}, got 'P1M'"),
        ("P1Y", f"{MONTHS}, got 'P1Y'"),
        ("P1Y2M3DT4H", f"{MONTHS}, got 'P1Y2M3DT4H'"),
        (True, f"expected {FORMS}, got True"),
        (None, f"expected {FORMS}, got None"),
        ([30], f"expected {FORMS}, got [30]"),
        (float("inf"), "expected a finite number of seconds, got inf"),
        (float("nan"), "expected a finite number of seconds, got nan"),
    ],
)
def test_seconds_refuses_anything_else_naming_the_accepted_forms(
    value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        seconds(value)


def _exact(total: Decimal) -> float:
    return int(total) if total == int(total) else float(total)


def _with_units(ms: int) -> str:
    """``ms`` milliseconds as ``1d2h3m4s5ms`` (zero parts left out)."""
    parts = []
    for unit, size in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0ms"


def _iso(ms: int) -> str:
    """``ms`` milliseconds as ``P1DT2H3M4.005S``."""
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    parts = [(hours, "H"), (minutes, "M"), (Decimal(rest) / 1000, "S")]
    time = "".join(f"{count}{unit}" for count, unit in parts if count)
    return f"P{days}D" + (f"T{time}" if time else "")


@given(st.integers(min_value=0, max_value=10**12))
def test_a_number_written_as_text_reads_back_as_the_same_number(ms: int) -> None:
    expected = _exact(Decimal(ms) / 1000)
    texts = [f"{ms}ms", f"{Decimal(ms) / 1000}s", f"PT{Decimal(ms) / 1000}S", _with_units(ms)]
    for text in [*texts, _iso(ms)]:
        assert seconds(text) == expected, text
    assert seconds(timedelta(milliseconds=ms)) == expected


@given(st.integers(min_value=0) | st.floats(min_value=0, allow_infinity=False))
def test_numbers_come_back_as_given(value: float) -> None:
    assert seconds(value) is value


# --- every field of seconds, in YAML ---------------------------------------------------------

# (step type, key, the other keys it needs)
TIMEOUTS = [
    pytest.param("call", "timeout", {"service": "S", "method": "m"}, id="call.timeout"),
    pytest.param("approval", "timeout", {}, id="approval.timeout"),
    pytest.param("workflow", "timeout", {"workflow_id": "child"}, id="workflow.timeout"),
    pytest.param("mcp", "timeout", {"server": "docs", "tool": "find"}, id="mcp.timeout"),
]
FIELDS = [
    *TIMEOUTS,
    pytest.param("call", "retry_delay", {"service": "S", "method": "m"}, id="call.retry_delay"),
]


def _one_step(kind: str, key: str, others: dict[str, Any], value: object) -> WorkflowDef:
    step = {"id": "s", "type": kind, **others, key: value}
    return flowkit.parse(yaml.safe_dump({"id": "w", "steps": [step]}, sort_keys=False))


@pytest.mark.parametrize(("kind", "key", "others"), FIELDS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [("500ms", 0.5), ("90s", 90), ("1.5m", 90), ("1h30m", 5400), ("P1DT2H", 93600)],
)
def test_yaml_takes_a_duration_for_every_field_of_seconds(
    kind: str, key: str, others: dict[str, Any], value: object, expected: float
) -> None:
    step = _one_step(kind, key, others, value).steps[0]
    assert getattr(step.config, key) == expected


def test_yaml_takes_a_duration_for_the_workflow_timeout() -> None:
    wf = flowkit.parse("id: w\ntimeout: 7d\nsteps: [{id: s, type: start}]\n")
    assert wf.timeout == 604800


BAD = [
    ("5 minutes", f"expected {FORMS}, got '5 minutes'"),
    ("-3s", f"expected {FORMS}, got '-3s'"),
    ("P1M", f"{MONTHS}, got 'P1M'"),
    (True, f"expected {FORMS}, got True"),
]


@pytest.mark.parametrize(("kind", "key", "others"), FIELDS)
@pytest.mark.parametrize(("value", "message"), BAD)
def test_a_bad_duration_in_yaml_names_the_step_the_key_and_the_accepted_forms(
    kind: str, key: str, others: dict[str, Any], value: object, message: str
) -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        _one_step(kind, key, others, value)
    [problem] = caught.value.problems
    assert str(problem) == f"workflow 'w' step 's' (line 3): {key}: {message}"


def test_a_bad_duration_in_a_loop_body_is_reported_with_every_other_problem() -> None:
    text = """\
    id: w
    steps:
      - id: each
        type: loop
        over: $input.items
        do:
          - id: inner
            type: call
            service: S
            method: m
            timeout: 5 minutes
            retries: "3"
    """
    with pytest.raises(flowkit.ValidationError) as caught:
        flowkit.parse(textwrap.dedent(text))
    assert [str(problem) for problem in caught.value.problems] == [
        f"workflow 'w' step 'each:inner' (line 7): timeout: expected {FORMS}, got '5 minutes'",
        "workflow 'w' step 'each:inner' (line 7): retries: expected an integer, got a string '3'",
    ]


@pytest.mark.parametrize(("kind", "key", "others"), TIMEOUTS)
@pytest.mark.parametrize("value", ["0s", "PT0S"])
def test_a_timeout_of_nothing_is_refused(
    kind: str, key: str, others: dict[str, Any], value: object
) -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        _one_step(kind, key, others, value)
    [problem] = caught.value.problems
    assert str(problem) == "workflow 'w' step 's' (line 3): 'timeout' must be greater than 0, got 0"


def test_a_negative_retry_delay_is_refused() -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        _one_step("call", "retry_delay", {"service": "S", "method": "m"}, -1)
    [problem] = caught.value.problems
    assert str(problem) == (
        "workflow 'w' step 's' (line 3): 'retry_delay' must be at least 0, got -1"
    )


# --- definitions hold numbers ---------------------------------------------------------------

EVERY_FIELD = """\
id: w
steps:
  - {id: start, type: start, next: c}
  - {id: c, type: call, service: S, method: m, timeout: 1h30m, retry_delay: 500ms, next: a}
  - {id: a, type: approval, timeout: P1DT2H, next: sub}
  - {id: sub, type: workflow, workflow_id: child, timeout: PT0.25S}
"""
AS_NUMBERS = """\
id: w
steps:
  - {id: start, type: start, next: c}
  - {id: c, type: call, service: S, method: m, timeout: 5400, retry_delay: 0.5, next: a}
  - {id: a, type: approval, timeout: 93600, next: sub}
  - {id: sub, type: workflow, workflow_id: child, timeout: 0.25}
"""


def test_a_definition_holds_seconds_and_writes_numbers() -> None:
    wf = flowkit.parse(EVERY_FIELD)
    assert wf == flowkit.parse(AS_NUMBERS)
    data = flowkit.to_dict(wf)
    assert [
        {key: value for key, value in step.items() if key in ("timeout", "retry_delay")}
        for step in data["steps"]
    ] == [
        {},
        {"timeout": 5400, "retry_delay": 0.5},
        {"timeout": 93600},
        {"timeout": 0.25},
    ]
    text = flowkit.to_yaml(wf)
    assert "timeout: 5400\n" in text
    assert yaml.safe_load(text) == data
    assert flowkit.parse(text) == wf
    assert flowkit.to_yaml(flowkit.parse(text)) == text


def test_every_field_of_seconds_is_marked_for_yaml() -> None:
    """A field declared with ``duration()`` needs ``Annotated[..., SECONDS]`` as its type, or
    cattrs would refuse ``"5m"`` in YAML: this finds them all by their converter."""
    duration = attrs.fields(CallConfig).retry_delay.converter
    classes = {kind.name: kind.config for kind in step_types().values()} | {"": WorkflowDef}
    found = set()
    for name, cls in classes.items():
        attrs.resolve_types(cls, include_extras=True)
        for field in attrs.fields(cls):
            if field.converter is duration:
                found.add(f"{name}.{field.name}")
                assert typing.get_origin(field.type) is typing.Annotated, field.name
                assert SECONDS in field.type.__metadata__
    assert found >= {".timeout", *(param.id for param in FIELDS if not param.marks)}


# --- the Python DSL -------------------------------------------------------------------------


def _function_step(**options: Any) -> StepDef:
    wf = flowkit.Workflow("w", register_services=False)

    @wf.step(id="s", **options)
    def charge() -> None: ...

    [step] = [step for step in wf.compiled() if step.id == "s"]
    return step


def _mcp_step(wf: flowkit.Workflow, value: object) -> StepDef:
    wf.mcp_server("docs", url="http://localhost:9/mcp")
    step: StepDef = wf.mcp("s", server="docs", tool="find", timeout=value)
    return step


# (declare a step `s` given the value, the key)
BUILDERS = [
    pytest.param(
        lambda wf, v: wf.call("s", service="S", method="m", timeout=v), "timeout", id="call.timeout"
    ),
    pytest.param(
        lambda wf, v: wf.call("s", service="S", method="m", retry_delay=v),
        "retry_delay",
        id="call.retry_delay",
    ),
    pytest.param(lambda _, v: _function_step(timeout=v), "timeout", id="step.timeout"),
    pytest.param(lambda _, v: _function_step(retry_delay=v), "retry_delay", id="step.retry_delay"),
    pytest.param(lambda wf, v: wf.approval("s", timeout=v), "timeout", id="approval.timeout"),
    pytest.param(
        lambda wf, v: wf.subworkflow("s", workflow="c", timeout=v),
        "timeout",
        id="subworkflow.timeout",
    ),
    pytest.param(_mcp_step, "timeout", id="mcp.timeout"),
]
Declare = Callable[[flowkit.Workflow, Any], StepDef]


@pytest.mark.parametrize(("declare", "key"), BUILDERS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [("500ms", 0.5), ("1h30m", 5400), ("PT2S", 2), (timedelta(minutes=5), 300)],
)
def test_builders_take_a_duration_or_a_timedelta(
    declare: Declare, key: str, value: object, expected: float
) -> None:
    step = declare(flowkit.Workflow("w", register_services=False), value)
    assert getattr(step.config, key) == expected


@pytest.mark.parametrize("value", [3600, "1h", "PT1H", timedelta(hours=1)])
def test_a_python_workflow_takes_a_duration_for_its_timeout(value: Any) -> None:
    wf = flowkit.Workflow("w", timeout=value)
    wf.end("done")
    assert wf.definition.timeout == 3600


def test_python_and_yaml_give_the_same_definition() -> None:
    wf = flowkit.Workflow("w", add_start=False)
    wf.start(next="c")
    wf.call("c", service="S", method="m", timeout=timedelta(hours=1, minutes=30), retry_delay=0.5)
    wf.approval("a", timeout="P1DT2H")
    wf.subworkflow("sub", workflow="child", timeout=timedelta(milliseconds=250))
    assert wf.compiled() == flowkit.parse(EVERY_FIELD).steps


@pytest.mark.parametrize(("declare", "key"), BUILDERS)
@pytest.mark.parametrize(("value", "message"), BAD)
def test_a_bad_duration_in_python_names_the_step_the_key_and_the_accepted_forms(
    declare: Declare, key: str, value: object, message: str
) -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        declare(flowkit.Workflow("w", register_services=False), value)
    [problem] = caught.value.problems
    assert isinstance(problem, flowkit.Problem)
    assert (problem.step_id, problem.message) == ("s", f"'{key}': {message}")


@pytest.mark.parametrize(("declare", "key"), BUILDERS)
def test_a_negative_timedelta_is_refused_like_a_negative_number(declare: Declare, key: str) -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        declare(flowkit.Workflow("w", register_services=False), timedelta(seconds=-1))
    [problem] = caught.value.problems
    bound = "at least 0" if key == "retry_delay" else "greater than 0"
    assert problem.message == f"'{key}' must be {bound}, got -1"


def test_a_bad_workflow_timeout_in_python_names_the_key_and_the_accepted_forms() -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        flowkit.Workflow("w", timeout="soon")
    [problem] = caught.value.problems
    assert problem.message == f"'timeout': expected {FORMS}, got 'soon'"


# --- the engine waits what the text says ----------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services() -> flowkit.ServiceRegistry:
    return flowkit.ServiceRegistry()


@pytest.fixture
def engine(clock: FakeClock, services: flowkit.ServiceRegistry) -> Iterator[flowkit.Engine]:
    made = flowkit.Engine(
        store=MemoryStore(warn=False),
        executor="inline",
        services=services,
        workflows=WorkflowRegistry(),
        clock=clock,
    )
    yield made
    made.close()


def test_a_retry_delay_in_milliseconds_is_waited(
    engine: flowkit.Engine, services: flowkit.ServiceRegistry, clock: FakeClock
) -> None:
    attempts = []

    def flaky() -> str:
        attempts.append(clock.now())
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "ok"

    services.register("S", {"flaky": flaky})
    wf = flowkit.load(
        "id: w\nsteps:\n"
        "  - {id: c, type: call, service: S, method: flaky, retries: 2, retry_delay: 500ms}\n"
    )
    result = engine.run(wf)
    assert result.completed
    assert clock.sleeps == [0.5, 1.0]  # retry_backoff 2
    assert [later - attempts[0] for later in attempts] == [
        timedelta(0),
        timedelta(milliseconds=500),
        timedelta(milliseconds=1500),
    ]


def test_an_approval_timeout_in_seconds_fires_when_it_says(
    engine: flowkit.Engine, clock: FakeClock
) -> None:
    wf = flowkit.load(
        "id: w\nsteps:\n"
        "  - {id: ask, type: approval, timeout: 2s, on_timeout: late, next: done}\n"
        "  - {id: done, type: end, result: approved}\n"
        "  - {id: late, type: end, result: timed out}\n"
    )
    halted = engine.run(wf)
    assert halted.halted
    start = clock.now()
    assert engine.load(halted.execution_id).wake_at == start + timedelta(seconds=2)

    clock.advance(1.999)
    assert engine.wake_due() == []
    clock.advance(0.001)
    [woken] = engine.wake_due()
    assert woken.output == "timed out"

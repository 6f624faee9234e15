"""The ``sleep`` step's definition: YAML, checks and the Python DSL (SPEC §15)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import flowkit
from flowkit.steps import SleepConfig


def _with(nap: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "naps",
        "inputs": {"wait": {"type": "string", "required": False}},
        "steps": [
            {"id": "start", "type": "start", "next": "nap"},
            {"id": "nap", "type": "sleep", **nap, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }


@pytest.mark.parametrize(
    ("nap", "config"),
    [
        ({"seconds": 90}, SleepConfig(seconds=90)),
        ({"seconds": "1h30m"}, SleepConfig(seconds=5400)),
        ({"seconds": "PT0.5S"}, SleepConfig(seconds=0.5)),
        ({"seconds": "$input.wait"}, SleepConfig(seconds="$input.wait")),
        ({"until": "2030-01-31T09:00:00Z"}, SleepConfig(until="2030-01-31T09:00:00Z")),
    ],
)
def test_seconds_or_until(nap: dict[str, Any], config: SleepConfig) -> None:
    wf = flowkit.load(_with(nap))
    assert wf.step("nap").config == config
    assert flowkit.load(flowkit.to_yaml(wf)) == wf


@pytest.mark.parametrize(
    ("nap", "problem"),
    [
        ({}, "give exactly one of 'seconds' and 'until'"),
        ({"seconds": 5, "until": "2030-01-01T00:00:00Z"}, "give exactly one of"),
        ({"seconds": "soon"}, "'seconds': expected a number of seconds"),
        ({"seconds": -1}, "'seconds' must be at least 0 seconds"),
        ({"until": "tomorrow"}, "'until' must be an ISO 8601 time"),
        ({"seconds": "$nowhere"}, "'$nowhere' reads 'nowhere'"),
    ],
)
def test_mistakes_are_reported_at_the_step(nap: dict[str, Any], problem: str) -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        flowkit.load(_with(nap))
    (found,) = caught.value.problems
    assert found.step_id == "nap"
    assert problem in found


def test_a_sleep_cannot_be_a_parallel_branch() -> None:
    with pytest.raises(flowkit.ValidationError, match="sleep"):
        flowkit.load(
            {
                "id": "par",
                "steps": [
                    {"id": "start", "type": "start", "next": "all"},
                    {
                        "id": "all",
                        "type": "parallel",
                        "branches": [{"id": "nap", "type": "sleep", "seconds": 1}],
                    },
                ],
            }
        )


def test_the_dsl_builder() -> None:
    wf = flowkit.Workflow("naps")
    wf.sleep("short", seconds="5m")
    wf.sleep("until", until=datetime(2030, 1, 31, 9, tzinfo=UTC))
    wf.end()
    assert wf.definition.step("short").config == SleepConfig(seconds=300)
    assert wf.definition.step("until").config == SleepConfig(until="2030-01-31T09:00:00+00:00")

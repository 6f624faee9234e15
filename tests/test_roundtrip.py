"""Round trips: definition -> dict / YAML -> definition gives the same definition."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowkit
from flowkit import LoopConfig, ParallelConfig, StepDef, WorkflowDef
from tests.strategies import ALL_STEP_TYPES, json_values, workflow_defs

ROUND_TRIP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _all_steps(steps: tuple[StepDef, ...]) -> Iterator[StepDef]:
    for step in steps:
        yield step
        if isinstance(step.config, LoopConfig):
            yield from _all_steps(step.config.do)
        elif isinstance(step.config, ParallelConfig):
            yield from _all_steps(step.config.branches)


def _plain_json_types(value: object) -> bool:
    """Only dict/list/str/int/float/bool/None, all the way down (no tuples, no FrozenDict)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json_types(item) for item in value)
    return value is None or isinstance(value, (str, int, float, bool))


@ROUND_TRIP
@given(workflow_defs())
def test_dict_and_yaml_round_trips(wf: WorkflowDef) -> None:
    data = flowkit.to_dict(wf)
    assert _plain_json_types(data)
    assert flowkit.parse(data) == wf
    # through JSON text too: what a store or an HTTP API would keep
    assert flowkit.parse(json.loads(json.dumps(data))) == wf

    text = flowkit.to_yaml(wf)
    assert flowkit.parse(text) == wf
    # plain safe YAML: any safe loader reads it to the same data as to_dict (no custom tags)
    assert yaml.safe_load(text) == data


@settings(max_examples=100, deadline=None)
@given(json_values(max_leaves=20))
def test_json_values_survive_yaml(value: object) -> None:
    wf = WorkflowDef(
        id="w",
        steps=(StepDef(id="s", type="assign", config=flowkit.AssignConfig(set={"v": value})),),
    )
    again = flowkit.parse(flowkit.to_yaml(wf))
    assert again == wf
    assert flowkit.to_dict(again)["steps"][0]["set"]["v"] == value


@pytest.mark.parametrize(
    "text",
    [
        "a\n",
        "a\n\n\n",
        "\n",
        " leading space\nb",
        "trailing space \nb",
        "a\n\tb",
        "a\r\nb",
        "a\x85b\nc",
        "a\u2028b\nc",
        "\ufeffa\nb",
        "---\nx",
        "#x\ny",
        "a\x00b\nc",
        "é ✓ \U0001f600\nb",
        "<<",
        "12:30",
        "2024-01-01",
        "1.10",
        "yes",
        "",
    ],
    ids=repr,
)
def test_tricky_strings_survive_yaml(text: str) -> None:
    wf = WorkflowDef(
        id=text or "w",
        name=text,
        steps=(
            StepDef(id="s", type="assign", config=flowkit.AssignConfig(set={text or "k": text})),
        ),
    )
    assert flowkit.parse(flowkit.to_yaml(wf)) == wf


def test_generated_definitions_cover_every_step_type_and_nesting() -> None:
    """The strategy reaches all 11 step types, loop bodies and parallel branches."""
    seen: Counter[str] = Counter()

    @settings(max_examples=80, deadline=None, database=None, derandomize=True)
    @given(workflow_defs())
    def collect(wf: WorkflowDef) -> None:
        for step in _all_steps(wf.steps):
            seen[step.type] += 1
            if isinstance(step.config, LoopConfig):
                seen["loop body"] += 1
                seen.update(f"in loop: {inner.type}" for inner in step.config.do)
            if isinstance(step.config, ParallelConfig):
                seen["parallel branches"] += 1
        seen.update("nested" for step in _all_steps(wf.steps) if step not in wf.steps)

    collect()
    wanted = (*ALL_STEP_TYPES, "loop body", "parallel branches", "nested")
    missing = [kind for kind in wanted if not seen[kind]]
    assert seen["in loop: loop"] + seen["in loop: parallel"], "no nesting two levels deep"
    assert not missing, f"never generated: {missing}"


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1).filter(lambda text: ":" not in text))
def test_any_step_id_round_trips(step_id: str) -> None:
    wf = WorkflowDef(
        id=step_id,
        steps=(StepDef(id=step_id, type="start", config=flowkit.StartConfig(), next=step_id),),
    )
    assert flowkit.parse(flowkit.to_yaml(wf)) == wf

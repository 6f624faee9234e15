"""Definition hashes and resuming with a changed definition."""

from __future__ import annotations

import pytest

import flowkit
from flowkit.definitions import WorkflowRegistry, definition_hash

from .conftest import EngineFactory
from .helpers import snapshot, workflow


def _v1() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "wait"},
        {"id": "wait", "type": "halt", "reason": "pause", "next": "done"},
        {"id": "done", "type": "end", "result": "v1"},
        id="versioned",
    )


def _v2() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "wait"},
        {"id": "wait", "type": "halt", "reason": "pause", "next": "done"},
        {"id": "done", "type": "end", "result": "v2"},
        id="versioned",
        version="2.0",
    )


def _v3_without_wait() -> flowkit.WorkflowDef:
    return workflow(
        {"id": "start", "type": "start", "next": "done"},
        {"id": "done", "type": "end", "result": "v3"},
        id="versioned",
    )


def test_the_definition_hash_and_version_are_stored(engine: flowkit.Engine) -> None:
    result = engine.run(_v1())
    execution = engine.load(result.execution_id)
    assert execution.definition_hash == definition_hash(_v1())
    assert execution.workflow_version == "1.0"
    assert definition_hash(_v1()) != definition_hash(_v2())
    assert definition_hash(_v1()) == definition_hash(flowkit.parse(flowkit.to_yaml(_v1())))


def test_resume_with_the_same_definition_works(engine: flowkit.Engine) -> None:
    halted = engine.run(_v1())
    assert engine.resume(halted.execution_id, workflow=_v1()).output == "v1"


def test_resume_with_a_changed_definition_is_refused(engine: flowkit.Engine) -> None:
    halted = engine.run(_v1())
    before = snapshot(engine, halted.execution_id)
    with pytest.raises(flowkit.ExecutionError, match="allow_changed_definition=True") as caught:
        engine.resume(halted.execution_id, workflow=_v2())
    assert "changed since execution" in str(caught.value)
    assert snapshot(engine, halted.execution_id) == before


def test_resume_with_a_changed_definition_when_allowed(engine: flowkit.Engine) -> None:
    halted = engine.run(_v1())
    result = engine.resume(halted.execution_id, workflow=_v2(), allow_changed_definition=True)
    assert result.completed
    assert result.output == "v2"
    execution = engine.load(halted.execution_id)
    assert execution.definition_hash == definition_hash(_v2())  # it runs v2 from now on
    assert execution.workflow_version == "2.0"


def test_a_halt_after_moving_to_a_new_definition_resumes_on_it(
    make_engine: EngineFactory,
) -> None:
    two_halts = workflow(
        {"id": "start", "type": "start", "next": "wait"},
        {"id": "wait", "type": "halt", "reason": "pause", "next": "again"},
        {"id": "again", "type": "halt", "reason": "again", "next": "done"},
        {"id": "done", "type": "end", "result": "new"},
        id="versioned",
    )
    halted = make_engine().run(_v1())
    registry = WorkflowRegistry()
    registry.register(two_halts)
    later = make_engine(workflows=registry)
    second = later.resume(halted.execution_id, allow_changed_definition=True)
    assert second.halt is not None
    assert second.halt.prompt == "again"
    # the execution now records the new definition: no permission is needed any more
    assert later.resume(halted.execution_id).output == "new"


def test_a_changed_definition_without_the_step_is_refused_even_when_allowed(
    engine: flowkit.Engine,
) -> None:
    halted = engine.run(_v1())
    before = snapshot(engine, halted.execution_id)
    with pytest.raises(flowkit.ExecutionError, match="step 'wait' no longer exists"):
        engine.resume(
            halted.execution_id, workflow=_v3_without_wait(), allow_changed_definition=True
        )
    assert snapshot(engine, halted.execution_id) == before


def test_another_process_that_only_knows_the_new_definition(
    make_engine: EngineFactory,
) -> None:
    halted = make_engine().run(_v1())
    registry = WorkflowRegistry()
    registry.register(_v2())
    later = make_engine(workflows=registry)
    with pytest.raises(flowkit.ExecutionError, match="changed since"):
        later.resume(halted.execution_id)
    assert later.resume(halted.execution_id, allow_changed_definition=True).output == "v2"


def test_a_process_that_knows_both_resumes_with_the_original(engine: flowkit.Engine) -> None:
    halted = engine.run(_v1())
    engine.workflows.register(_v2())  # the latest registration of the id
    assert engine.resume(halted.execution_id).output == "v1"


def test_a_process_that_knows_no_definition_cannot_resume(make_engine: EngineFactory) -> None:
    halted = make_engine().run(_v1())
    stranger = make_engine(workflows=WorkflowRegistry())
    with pytest.raises(flowkit.NotFoundError, match="workflow 'versioned' is not known"):
        stranger.resume(halted.execution_id)


def test_a_changed_definition_without_the_body_step_is_refused(engine: flowkit.Engine) -> None:
    old = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2],
            "do": [{"id": "h", "type": "halt"}, {"id": "a", "type": "assign", "set": {"x": 1}}],
        },
        id="nested",
    )
    new = workflow(
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": [1, 2],
            "do": [{"id": "a", "type": "assign", "set": {"x": 2}}],
        },
        id="nested",
    )
    halted = engine.run(old)
    before = snapshot(engine, halted.execution_id)
    with pytest.raises(flowkit.ExecutionError, match="step 'each:h' no longer exists"):
        engine.resume(halted.execution_id, workflow=new, allow_changed_definition=True)
    assert snapshot(engine, halted.execution_id) == before

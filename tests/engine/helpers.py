"""Small helpers shared by the engine tests."""

from __future__ import annotations

from typing import Any

import flowkit
from flowkit.records import entry_to_dict, execution_to_dict


def workflow(*steps: dict[str, Any], id: str = "wf", **top: Any) -> flowkit.WorkflowDef:
    """A validated definition from step mappings (the YAML format as Python data)."""
    return flowkit.load({"id": id, **top, "steps": list(steps)})


def entries(engine: flowkit.Engine, execution_id: str) -> list[flowkit.Entry]:
    return engine.store.entries(execution_id)


def log(engine: flowkit.Engine, execution_id: str) -> list[tuple[str, str]]:
    """``(step_id, action)`` of every entry, in seq order."""
    found = engine.store.entries(execution_id)
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    return [(e.step_id, e.action.value) for e in found]


def snapshot(engine: flowkit.Engine, execution_id: str) -> tuple[Any, list[Any]]:
    """The stored record and entries as JSON data, to prove that nothing changed."""
    record = engine.store.load(execution_id)
    assert record is not None
    return (
        execution_to_dict(record),
        [entry_to_dict(e) for e in engine.store.entries(execution_id)],
    )

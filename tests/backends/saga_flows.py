"""The workflow of the compensation crash test (``test_compensation.py``).

Imported with ``-m`` by the ``flowkit`` processes of that test. Every service call
appends its name to the file named by ``FLOWKIT_TEST_SAGA_LOG``; the first call of
``undo_b`` kills its process, as an out-of-memory kill would.
"""

from __future__ import annotations

import os
from pathlib import Path

import flowkit

CRASH_EXIT_CODE = 3


def _log(name: str) -> list[str]:
    path = Path(os.environ["FLOWKIT_TEST_SAGA_LOG"])
    before = path.read_text().split() if path.exists() else []
    with path.open("a") as log:
        log.write(f"{name}\n")
    return before


def _do(name: str) -> str:
    _log(name)
    return name


def _undo_b() -> str:
    if "undo_b" not in _log("undo_b"):
        os._exit(CRASH_EXIT_CODE)
    return "undo_b"


def _boom() -> None:
    _log("boom")
    raise RuntimeError("boom")


def _step(step_id: str, undo: str | None, next_: str | None) -> dict[str, object]:
    step: dict[str, object] = {
        "id": step_id,
        "type": "call",
        "service": "Saga",
        "method": step_id,
    }
    if undo is not None:
        step["compensate"] = {"service": "Saga", "method": undo}
    if next_ is not None:
        step["next"] = next_
    return step


SAGA = flowkit.load(
    {
        "id": "saga",
        "steps": [
            _step("a", "undo_a", "b"),
            _step("b", "undo_b", "boom"),
            _step("boom", None, None),
        ],
    }
)

flowkit.register_service(
    "Saga",
    {
        "a": lambda: _do("a"),
        "b": lambda: _do("b"),
        "boom": _boom,
        "undo_a": lambda: _do("undo_a"),
        "undo_b": _undo_b,
    },
)
flowkit.register(SAGA)

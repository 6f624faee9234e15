"""Workflows and services of the poisoned-execution tests (``test_poisoned.py``).

Imported with ``-m`` by ``flowkit recover`` in a child process, it registers
them there too: ``crashing`` kills the process that runs its step, every time.
"""

from __future__ import annotations

import os

import flowkit

CRASH_EXIT_CODE = 3


def _crash() -> None:
    os._exit(CRASH_EXIT_CODE)  # the process dies in the step, as in an out-of-memory kill


def _double(n: int) -> int:
    return 2 * n


CRASHING = flowkit.load(
    {
        "id": "crashing",
        "steps": [{"id": "crash", "type": "call", "service": "Poison", "method": "crash"}],
    }
)

FINE = flowkit.load(
    {
        "id": "fine",
        "inputs": {"n": {"type": "integer"}},
        "steps": [
            {"id": "start", "type": "start", "next": "double"},
            {
                "id": "double",
                "type": "call",
                "service": "Poison",
                "method": "double",
                "input": {"n": "$input.n"},
                "output": "doubled",
                "next": "done",
            },
            {"id": "done", "type": "end", "result": "$doubled"},
        ],
    }
)

flowkit.register_service("Poison", {"crash": _crash, "double": _double})
flowkit.register(CRASHING)
flowkit.register(FINE)

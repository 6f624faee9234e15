"""Problems found in a definition: readable strings that also carry where they are."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

from .model import SourceLocation

__all__ = ["Problem", "Severity", "closest", "did_you_mean"]

Severity = Literal["error", "warning"]
"""An error makes a definition invalid; a warning points at something it does not use."""


class Problem(str):
    """One problem, as a readable line; its attributes say where it is.

    ``str(problem)`` reads like ``workflow 'order' step 'charge' (order.yml:42):
    unknown key 'retires' (did you mean 'retries'?)``.

    Attributes:
        message: what is wrong and how to fix it, without the location.
        workflow_id: the workflow, when known.
        step_id: the step (``loop:inner`` for nested steps), when the problem has one.
        location: the file, line and column, when known.
        severity: ``"error"``, or ``"warning"`` for something that does not make
            the definition invalid.
    """

    message: str
    workflow_id: str | None
    step_id: str | None
    location: SourceLocation | None
    severity: Severity

    def __new__(
        cls,
        message: str,
        *,
        workflow_id: str | None = None,
        step_id: str | None = None,
        location: SourceLocation | None = None,
        severity: Severity = "error",
    ) -> Problem:
        parts = []
        if workflow_id is not None:
            parts.append(f"workflow '{workflow_id}'")
        if step_id is not None:
            parts.append(f"step '{step_id}'")
        where = " ".join(parts)
        if location is not None and (location.file or location.line):
            where = f"{where} ({location})" if where else str(location)
        self = super().__new__(cls, f"{where}: {message}" if where else message)
        self.message = message
        self.workflow_id = workflow_id
        self.step_id = step_id
        self.location = location
        self.severity = severity
        return self

    def to_json(self) -> dict[str, object]:
        """The problem as JSON data (used by ``flowkit validate --json``)."""
        location = self.location
        return {
            "severity": self.severity,
            "message": self.message,
            "workflow": self.workflow_id,
            "step": self.step_id,
            "file": location.file if location else None,
            "line": location.line if location else None,
            "column": location.column if location else None,
        }


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word``, if one is close enough to be a likely typo."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    found = closest(word, choices)
    return f" (did you mean '{found}'?)" if found else ""

"""The exceptions flowkit raises; all derive from :class:`FlowkitError`."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "ConflictError",
    "ExecutionError",
    "FlowkitError",
    "NotFoundError",
    "StoreError",
    "StoreUnavailableError",
    "ValidationError",
]


class FlowkitError(Exception):
    """Root of every error flowkit raises on purpose."""


class ValidationError(FlowkitError, ValueError):
    """A definition or an input is invalid.

    Attributes:
        problems: every problem found, one readable line each.
    """

    def __init__(self, problems: Iterable[str], *, subject: str = "definition") -> None:
        self.problems: list[str] = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid {subject} ({count} {noun}):\n{lines}")


class ExecutionError(FlowkitError):
    """A step or an operation on an execution failed."""


class ConfigError(FlowkitError):
    """Configuration is wrong or an optional dependency is missing."""


class ConflictError(FlowkitError):
    """A concurrent writer changed the execution first; nothing was written."""


class NotFoundError(FlowkitError, LookupError):
    """An execution, workflow or service does not exist."""


class StoreError(FlowkitError):
    """A store's database failed; the message names the store and the database's reason."""


class StoreUnavailableError(StoreError, ConnectionError):
    """A store's database cannot be reached (refused, lost, timed out, locked too long).

    Nothing is half-written: a checkpoint either happened or did not. Retry
    later, or let ``flowkit recover`` continue the execution once the database is back.
    """

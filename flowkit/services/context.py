"""What a running service can learn about the step that called it: :func:`current`."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Protocol

import attrs

from ..errors import FlowkitError

__all__ = ["ContextSource", "StepContext", "current", "running"]


@attrs.frozen(kw_only=True)
class StepContext:
    """The step that is running in this thread or task.

    Attributes:
        execution_id: the execution the step belongs to.
        workflow_id: the workflow's id.
        step_id: the step's id (``loop:inner`` when nested).
        attempt: 1 for the first attempt, 2 for the first retry…
        iteration: the index of the innermost enclosing loop, or None.
        idempotency_key: the same for every attempt of this visit of the step
            and for every re-run after a crash; different for each loop
            iteration and each time the workflow comes back to the step. Use it
            to deduplicate the step's side effects (at-least-once delivery).
    """

    execution_id: str
    workflow_id: str
    step_id: str
    attempt: int
    iteration: int | None
    idempotency_key: str
    _asks_cancel: Callable[[], bool] = attrs.field(
        default=lambda: False, eq=False, repr=False, alias="asks_cancel"
    )

    @property
    def cancel_requested(self) -> bool:
        """Whether the execution was cancelled while this step runs.

        It reads the store each time: a long service may poll it every few
        seconds and stop early. The engine stops the execution at the end of
        the step anyway; what the step returns then is not recorded.
        """
        return self._asks_cancel()


class ContextSource(Protocol):
    """Whatever can say which step is running (the engine's step runtime)."""

    def context(self) -> StepContext:
        """The :class:`StepContext` of the running step."""


# Holds the running step's source; the StepContext is built only if asked for.
running: contextvars.ContextVar[ContextSource] = contextvars.ContextVar("flowkit_step")


def current() -> StepContext:
    """The step running in this context.

    Raises:
        FlowkitError: no flowkit step is running here.
    """
    try:
        source = running.get()
    except LookupError:
        raise FlowkitError(
            "flowkit.current() is only available while a step runs "
            "(call it from a service invoked by a workflow)"
        ) from None
    return source.context()

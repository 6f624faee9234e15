"""What a signed-in user can do to an execution: resume (approve or reject), cancel,
retry, send a signal. The page forms and the JSON API both come here.

Each action calls the engine in a worker thread, always as the signed-in user
(``by``); refusals become :class:`Refused` with the HTTP status to answer.
The action is awaited for a short while: when the execution runs on for
longer (the inline executor runs it in this process), the caller gets the
record as it is then, and the page follows it live. Each engine call runs in
a thread of its own, so long ones never starve the threads that read pages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import attrs

from ..engine import Engine
from ..errors import ConflictError, ExecutionError, NotFoundError, ValidationError
from ..records import Execution, Status

__all__ = ["ACTIONS", "Actions", "Done", "Refused"]

log = logging.getLogger("flowkit")

ACTIONS = ("resume", "cancel", "retry", "signal")
"""The actions, as they appear in URLs (``/api/executions/{id}/resume``)."""


class Refused(Exception):
    """An action that was not carried out: ``status_code`` is the HTTP status to answer."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@attrs.frozen(kw_only=True)
class Done:
    """A carried-out action.

    Attributes:
        execution: the record after it.
        settled: whether the engine call returned in time (else the execution runs on).
        sent: for a signal, False when its key had been seen (nothing was sent).
    """

    execution: Execution
    settled: bool
    sent: bool | None = None


def _text(data: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise Refused(400, f"'{key}' is required")
        return None
    if not isinstance(value, str):
        raise Refused(400, f"'{key}' must be text, got {type(value).__name__}")
    return value


def _in_own_thread(work: Callable[[], Any]) -> Future[Any]:
    """Run ``work`` in a thread of its own: an engine call may last as long as the
    execution runs (inline) or is awaited (Dramatiq), and must never hold up the
    threads that serve pages. A daemon thread: at exit the engine's checkpoints
    and recovery take care of a step it left half-way."""
    future: Future[Any] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(work())
        except BaseException as exc:  # handed to the awaiting request
            future.set_exception(exc)

    threading.Thread(target=run, name="flowkit-dashboard-action", daemon=True).start()
    return future


class Actions:
    """Carries out actions on ``engine``, waiting up to ``wait_seconds`` for each."""

    def __init__(self, engine: Engine, *, wait_seconds: float = 2.0) -> None:
        self.engine = engine
        self.wait_seconds = wait_seconds
        self._running: set[asyncio.Future[Any]] = set()

    async def perform(
        self, execution_id: str, action: str, user: str, data: Mapping[str, Any]
    ) -> Done:
        """Carry out ``action`` on the execution as ``user``.

        Raises:
            Refused: 404 no such execution or action; 400 a malformed body; 403
                ``user`` is not one of the approvers; 409 the execution's status
                does not allow it; 422 data that cannot be stored.
        """
        call = self._call(execution_id, action, user, data)  # checks the body: 400 at once
        task = asyncio.wrap_future(_in_own_thread(functools.partial(self._engine_call, call)))
        self._running.add(task)
        task.add_done_callback(self._finished)
        settled, _ = await asyncio.wait({task}, timeout=self.wait_seconds)
        result = task.result() if settled else None
        execution = await asyncio.to_thread(self.engine.load, execution_id)
        return Done(execution=execution, settled=bool(settled), sent=result)

    def _call(
        self, execution_id: str, action: str, user: str, data: Mapping[str, Any]
    ) -> Callable[[], Any]:
        engine = self.engine
        if action == "resume":
            approved = data.get("approved")
            if approved is not None and not isinstance(approved, bool):
                raise Refused(400, f"'approved' must be true, false or null, got {approved!r}")
            response = data.get("response")

            def resume() -> Any:
                self._check_approver(execution_id, user)
                return engine.resume(execution_id, approved=approved, response=response, by=user)

            return resume
        if action == "cancel":
            reason = _text(data, "reason")
            return functools.partial(engine.cancel, execution_id, reason=reason, by=user)
        if action == "retry":
            return functools.partial(engine.retry, execution_id)
        if action == "signal":
            name = _text(data, "name", required=True)
            key = _text(data, "key")
            return functools.partial(
                engine.signal, execution_id, str(name), data.get("payload"), key=key
            )
        raise Refused(404, f"unknown action '{action}' (one of: {', '.join(ACTIONS)})")

    def _check_approver(self, execution_id: str, user: str) -> None:
        """Refuse at once (403) a decision by someone the approval does not list."""
        try:
            execution = self.engine.load(execution_id)
        except NotFoundError as exc:
            raise Refused(404, str(exc)) from None
        halt = execution.halt_data or {}
        approvers = halt.get("approvers") if execution.status is Status.HALTED else None
        if isinstance(approvers, list) and approvers and user not in approvers:
            raise Refused(
                403,
                f"execution '{execution_id}' waits for a decision by {', '.join(approvers)}; "
                f"'{user}' is not one of them",
            )

    @staticmethod
    def _engine_call(call: Callable[[], Any]) -> bool | None:
        """Run the engine call; its refusals as :class:`Refused`; a signal's bool."""
        try:
            result = call()
        except NotFoundError as exc:
            raise Refused(404, str(exc)) from None
        except ValidationError as exc:
            raise Refused(422, "; ".join(exc.problems) or str(exc)) from None
        except (ExecutionError, ConflictError) as exc:
            raise Refused(409, str(exc)) from None
        return result if isinstance(result, bool) else None

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and isinstance(task.exception(), Exception):
            error = task.exception()
            if not isinstance(error, Refused):  # a refusal was answered; anything else is a bug
                log.error("flowkit dashboard: an action failed", exc_info=error)

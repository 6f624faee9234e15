"""One checkpoint in the making: everything a step changes before it is written at once.

The stepper runs the step at an execution's position inside a
:class:`Transaction`, which collects the ctx updates, the entries, the new
status and position, and the events to emit; the stepper then writes it as
one atomic checkpoint (``Store.checkpoint``) and emits the events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..abc import Store
from ..cursor import EMPTY, Cursor, Unwinding
from ..definitions import WorkflowDef
from ..limits import storable_text
from ..records import Action, Entry, Execution, Status
from ..redaction import redact
from ..services.cancellation import Cancellation
from .leases import InFlight
from .results import FanOut

__all__ = ["History", "Transaction", "clean", "error_message", "error_text"]


class Transaction:
    """The changes of one checkpoint: ctx updates, entries, status, position, events.

    Attributes:
        wf: the definition the execution runs.
        base: the execution record the step started from.
        inflight: the execution's in-process state, when it is being advanced here.
        cancellation: requested when the execution is cancelled while its services
            run (the in-flight state's; a parallel branch's run has only this).
        cursor: the cursor of ``base`` (read once per checkpoint).
        ctx: ctx with this checkpoint's updates.
        changed: the names of ctx that this checkpoint sets, in the order they were set.
        entries: the entries this checkpoint writes.
        seq: the seq of the last entry (this checkpoint's included).
        loops: path → start seq of the loops the step is inside (their outputs
            are remembered in process after the write).
        attempt, visit, state: the innermost step's bookkeeping, kept in the
            cursor while that step is not finished (see :class:`flowkit.cursor.Cursor`).
        delay: wait this long before the next step (a retry's backoff).
        fanout: parallel branches to run now.
        hold: keep the lease after this checkpoint if the execution goes on at
            once (the next step runs in this process).
        internal: the engine resumes the execution itself (a sub-workflow
            ended): approval checks are skipped.
        deadline: a ``time.monotonic()`` bound on steps (a sub-workflow's timeout).
        adopt: the hash of a changed definition a resume moved the execution to.
        unwinding: the compensations still to run before the execution ends.
        consumed: the mailbox signals (by seq) this checkpoint consumes.
    """

    # What most checkpoints leave as it is, as class attributes: a transaction is made
    # once a step, and an assignment in __init__ costs each time. Setting one shadows it.
    cursor: Cursor = EMPTY
    status: Status = Status.RUNNING
    result: Any = None
    error: str | None = None
    halt_data: dict[str, Any] | None = None
    recover_to: str | None = None
    wake_at: datetime | None = None
    attempt: int | None = None
    visit: int | None = None
    state: Any = None
    delay: float = 0.0
    fanout: FanOut | None = None
    hold: bool = False
    internal: bool = False
    deadline: float | None = None
    adopt: str | None = None
    unwinding: Unwinding | None = None

    def __init__(
        self,
        wf: WorkflowDef,
        execution: Execution,
        *,
        now: datetime,
        listening: bool,
        inflight: InFlight | None = None,
        cancellation: Cancellation | None = None,
    ) -> None:
        self.wf = wf
        self.base = execution
        self.inflight = inflight
        if cancellation is None and inflight is not None:
            cancellation = inflight.cancellation
        self.cancellation = cancellation
        self.loops: dict[str, int] = {}
        self.ctx = execution.ctx
        self.changed: dict[str, None] = {}  # the ctx names set, in order (an ordered set)
        self.entries: list[Entry] = []
        self.seq = execution.seq
        self.current_step = execution.current_step
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []
        self.listening = listening
        self.now = now
        self.consumed: list[int] = []

    def update(self, updates: Mapping[str, Any]) -> None:
        """Apply ctx changes (a new mapping: the record read before stays as it was)."""
        if updates:
            self.ctx = {**self.ctx, **updates}
            self.changed.update(dict.fromkeys(updates))

    def keep(self, *, visit: int, attempt: int | None = None, state: Any = None) -> None:
        """Keep the innermost step's bookkeeping in the cursor: it is not finished."""
        self.visit = visit
        self.attempt = attempt
        self.state = state

    def forget(self) -> None:
        """The innermost step is over (its failure was handled): nothing of it is kept."""
        self.visit = self.attempt = self.state = None

    def entry(
        self,
        path: str,
        step_type: str,
        action: Action,
        *,
        iteration: int | None,
        attempt: int = 1,
        duration_ms: float = 0.0,
        input: Any = None,
        output: Any = None,
        error: str | None = None,
    ) -> None:
        """Add an entry to the audit log."""
        self.seq += 1
        self.entries.append(
            Entry(
                id=f"{self.base.id}:{self.seq}",
                execution_id=self.base.id,
                seq=self.seq,
                step_id=path,
                step_type=step_type,
                action=action,
                attempt=attempt,
                duration_ms=duration_ms,
                input=input,
                output=output,
                error=error,
                timestamp=self.now,
                iteration=iteration,
            )
        )

    def event(self, name: str, step_id: str | None, **payload: Any) -> None:
        """Emit an event once the checkpoint is written (when anyone listens)."""
        if self.listening:
            self.events.append((name, step_id, payload))


def error_text(exc: BaseException) -> str:
    """``"<ExceptionType>: <message>"``, as records and entries keep errors."""
    return f"{type(exc).__name__}: {error_message(exc)}"


def error_message(exc: BaseException) -> str:
    """An exception's message as it may be stored and emitted (see :func:`clean`)."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the error itself
        message = "<the exception's message cannot be read>"
    return clean(message)


def clean(text: str) -> str:
    """An error text as it may be stored and emitted: credentials redacted, and NUL
    and lone surrogates escaped (every store keeps it, and keeps it the same way)."""
    return storable_text(redact(text))


class History(Sequence[str]):
    """``$history``, read from the store only when a step references it."""

    def __init__(self, store: Store, execution_id: str, pending: list[Entry]) -> None:
        self._store = store
        self._execution_id = execution_id
        self._pending = pending
        self._ids: list[str] | None = None

    def _load(self) -> list[str]:
        if self._ids is None:
            entries = [*self._store.entries(self._execution_id), *self._pending]
            self._ids = [
                e.step_id for e in entries if e.action in (Action.COMPLETED, Action.RESUMED)
            ]
        return self._ids

    def __getitem__(self, index: Any) -> Any:
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())

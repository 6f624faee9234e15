"""One checkpoint in the making, and what a level of nesting reports upward.

The engine runs the step at an execution's position inside a :class:`Tx`,
which collects everything the step changes (ctx, entries, status, cursor);
the engine then writes it as one atomic checkpoint. Each level of nesting
(the top level, a loop body) reports where its graph goes next with one of
the small result classes here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ._definitions import WorkflowDef
from ._inflight import InFlight
from ._steps import Outcome
from ._store import Store
from .records import Action, Entry, Execution, Status

if TYPE_CHECKING:
    from ._stepping import Stepper

__all__ = [
    "RESUME",
    "RUN",
    "TIMER",
    "Done",
    "Exit",
    "Fail",
    "Finish",
    "Frames",
    "Goto",
    "History",
    "Moved",
    "Ran",
    "Stay",
    "Tx",
    "direct_output",
    "error_text",
    "remember_outputs",
]

Frames = tuple[dict[str, Any], ...]

RUN, RESUME, TIMER = "run", "resume", "timer"
"""How a step is entered: run it, resume it after a halt, or fire its timer."""


class Tx:
    """The changes of one checkpoint: ctx updates, entries, status, position."""

    def __init__(
        self,
        engine: Stepper,
        wf: WorkflowDef,
        execution: Execution,
        inflight: InFlight | None = None,
    ) -> None:
        self.engine = engine
        self.wf = wf
        self.base = execution
        self.inflight = inflight
        self.loops: dict[str, int] = {}  # path -> start seq of the loops this step is inside
        self.ctx = execution.ctx
        self.entries: list[Entry] = []
        self.seq = execution.seq
        self.status = Status.RUNNING
        self.result: Any = None
        self.error: str | None = None
        self.halt_data: dict[str, Any] | None = None
        self.recover_to: str | None = None
        self.wake_at: datetime | None = None
        self.current_step = execution.current_step
        self.stay: dict[str, Any] = {}
        self.delay = 0.0
        self.branches: tuple[str, ...] = ()
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []
        self.now = engine.clock.now()
        self.internal = False
        # A ``time.monotonic()`` bound on steps (a sub-workflow's timeout), or None.
        self.deadline: float | None = None
        # The hash of a changed definition a resume moved the execution to, or None.
        self.adopt: str | None = None

    def update(self, updates: Mapping[str, Any]) -> None:
        if updates:
            self.ctx = {**self.ctx, **updates}

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
        if self.engine.events.active:
            self.events.append((name, step_id, payload))


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# Where the graph at one level of nesting goes after its step ran.
@attrs.frozen
class Goto:
    target: str


@attrs.frozen
class Exit:
    """The graph at this level ended (top level: the workflow; body: the iteration)."""


@attrs.frozen
class Stay:
    frames: Frames


@attrs.frozen
class Fail:
    error: BaseException


@attrs.frozen
class Finish:
    """An end step ran: the workflow is complete."""


@attrs.frozen
class Done:
    """The step at this level finished with an outcome."""

    outcome: Outcome


Moved = Goto | Exit | Stay | Fail | Finish
Ran = Done | Stay | Fail | Finish


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


def direct_output(entry: Entry, loop_path: str) -> bool:
    """Whether ``entry`` is a finished step directly inside the loop at ``loop_path``."""
    return (
        entry.iteration is not None
        and entry.action in (Action.COMPLETED, Action.RESUMED)
        and entry.step_id.startswith(loop_path)
        and entry.step_id.rpartition(":")[0] == loop_path
    )


def remember_outputs(inflight: InFlight, tx: Tx) -> None:
    """Keep the iteration outputs a checkpoint wrote for the loops that started here."""
    for path, start in tx.loops.items():
        outputs = inflight.loop_outputs.get(f"{path}@{start}")
        if outputs is None:
            continue
        for entry in tx.entries:
            if direct_output(entry, path):
                assert entry.iteration is not None
                outputs[entry.iteration] = entry.output

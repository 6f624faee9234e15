"""Running the step at an execution's position and writing its checkpoint.

:class:`Stepper` holds the engine's core: it walks from the top-level step
through the frames of enclosing loops to the step to run, runs it, and writes
everything it changed as one checkpoint. Loops and parallel steps are added by
:class:`~flowkit._loops.LoopSteps` and :class:`~flowkit._parallel.ParallelSteps`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import attrs

from ._checkpoint import (
    RESUME,
    RUN,
    TIMER,
    Done,
    Exit,
    Fail,
    Finish,
    Frames,
    Goto,
    History,
    Moved,
    Ran,
    Stay,
    Tx,
    error_text,
    remember_outputs,
)
from ._clock import Clock
from ._definitions import LoopConfig, ParallelConfig, StepDef, WorkflowDef
from ._events import Event, EventBus
from ._executors import Executor
from ._expressions import Scope
from ._inflight import InFlight
from ._results import Advance
from ._steps import Decision, Outcome, StepRun, executor_for
from ._store import Store
from .errors import ExecutionError
from .records import Action, Execution, Status

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = [
    "Stepper",
    "has_position",
    "recover_to",
    "retry_delay",
    "step_levels",
    "workflow_deadline",
]

log = logging.getLogger("flowkit")


class Stepper:
    """The core of the engine: one step at a position, one checkpoint."""

    store: Store
    clock: Clock
    lease: timedelta
    owner: str
    events: EventBus
    executor: Executor

    def _lease_owner(self, holding: bool = True) -> str | None:
        """Who holds a running execution's lease between steps: this engine, or
        nobody when steps travel through a queue (the next worker claims it)."""
        return self.owner if holding or not self.executor.hands_off else None

    def _step(self, wf: WorkflowDef, inflight: InFlight, deadline: float | None) -> Advance:
        tx = Tx(self, wf, inflight.record, inflight)
        if deadline is not None and time.monotonic() > deadline:
            error = ExecutionError(f"workflow '{wf.id}' ran out of time")
            return self._settle(tx, inflight, Fail(error))
        tx.deadline = deadline
        return self._run_top(tx, inflight, RUN, Decision())

    def _run_top(self, tx: Tx, inflight: InFlight, mode: str, decision: Decision) -> Advance:
        execution = tx.base
        deadline = workflow_deadline(tx.wf, execution)
        if deadline is not None and tx.now > deadline:
            # Checked before every step, resume and timer: halted time counts too.
            error = ExecutionError(f"workflow '{tx.wf.id}' timed out after {tx.wf.timeout:g}s")
            return self._settle(tx, inflight, Fail(error))
        step = tx.wf.step(execution.current_step or "")
        if step is None:
            raise ExecutionError(
                f"execution '{execution.id}' is at step '{execution.current_step}', which "
                f"workflow '{tx.wf.id}' does not have"
            )
        frames = tuple(execution.cursor.get("frames", ()))
        moved = self._level(tx, tx.wf.steps, step, "", frames, 0, None, None, mode, decision)
        return self._settle(tx, inflight, moved)

    def _settle(self, tx: Tx, inflight: InFlight, moved: Moved) -> Advance:
        frames: Frames = ()
        if isinstance(moved, Goto):
            tx.current_step = moved.target
        elif isinstance(moved, Stay):
            frames = moved.frames
        elif isinstance(moved, (Exit, Finish)):
            tx.status = Status.COMPLETED
            tx.result = tx.ctx.get("result")
            tx.current_step = None
            tx.event("workflow.completed", None, output=tx.result)
        else:
            tx.status = Status.FAILED
            tx.error = error_text(moved.error)
            tx.event("workflow.failed", None, error=tx.error)
        if tx.status is Status.HALTED:
            tx.event("workflow.halted", None, halt=tx.halt_data)
        return self._commit(tx, inflight, frames)

    def _commit(self, tx: Tx, inflight: InFlight, frames: Frames) -> Advance:
        cursor = dict(tx.stay)
        if frames:
            cursor["frames"] = list(frames)
        running = tx.status is Status.RUNNING
        # A retry waits tx.delay before its next attempt: nobody may recover it sooner.
        expires = tx.now + self.lease + timedelta(seconds=tx.delay) if running else None

        def build(latest: Execution) -> Execution:
            # The constructor rather than attrs.evolve: this runs once per step.
            return Execution(
                id=latest.id,
                workflow_id=latest.workflow_id,
                workflow_version=tx.wf.version if tx.adopt else latest.workflow_version,
                status=tx.status,
                input=latest.input,
                ctx=tx.ctx,
                current_step=tx.current_step,
                cursor=cursor,
                result=tx.result,
                recover_to=tx.recover_to,
                halt_data=tx.halt_data,
                error=tx.error,
                parent_id=latest.parent_id,
                version=latest.version + 1,
                seq=tx.seq,
                created_at=latest.created_at,
                updated_at=tx.now,
                wake_at=tx.wake_at,
                definition_hash=tx.adopt or latest.definition_hash,
                lease_owner=self._lease_owner(False) if running else None,
                lease_expires_at=expires,
            )

        record = inflight.write(self.store, build, tx.entries, tx.base.version)
        if tx.loops:
            remember_outputs(inflight, tx)
        for name, step_id, payload in tx.events:
            self._emit(record, name, step_id, payload)
        return Advance(execution=record, delay=tx.delay, branches=tx.branches)

    def _emit(
        self, execution: Execution, name: str, step_id: str | None, payload: dict[str, Any]
    ) -> None:
        if self.events.active:
            self.events.emit(
                Event(
                    name=name,
                    execution_id=execution.id,
                    workflow_id=execution.workflow_id,
                    step_id=step_id,
                    timestamp=self.clock.now(),
                    payload=payload,
                )
            )

    def _level(
        self,
        tx: Tx,
        graph: Sequence[StepDef],
        step: StepDef,
        prefix: str,
        frames: Frames,
        depth: int,
        local: dict[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> Moved:
        """Run the step at one level and say where that level's graph goes next."""
        path = prefix + step.id
        if depth < len(frames) and frames[depth].get("step") != step.id:
            return Fail(
                ExecutionError(
                    f"execution '{tx.base.id}' is inside step '{frames[depth].get('step')}', "
                    f"but the definition has '{step.id}' there"
                )
            )
        ran: Ran
        if isinstance(step.config, LoopConfig):
            ran = self._loop(tx, step, path, frames, depth, local, iteration, mode, decision)
        elif isinstance(step.config, ParallelConfig):
            ran = self._parallel(tx, step, path, frames, depth, local, iteration)
        else:
            ran = self._leaf(tx, step, path, local, iteration, mode, decision)
        if isinstance(ran, Done):
            if ran.outcome.finish:
                return Finish()
            if ran.outcome.target is None:
                return Exit()
            return Goto(ran.outcome.target)
        if isinstance(ran, Fail) and step.on_error is not None:
            error = ran.error
            tx.update(
                {"_last_error": {"step": path, "type": type(error).__name__, "message": str(error)}}
            )
            return Goto(step.on_error)
        return ran

    def _run_context(
        self,
        tx: Tx,
        step: StepDef,
        path: str,
        local: Mapping[str, Any] | None,
        iteration: int | None,
        attempt: int,
        visit: int,
        branch: str | None = None,
    ) -> StepRun:
        execution = tx.base
        deadline = tx.deadline
        if tx.wf.timeout is not None:
            elapsed = (tx.now - execution.created_at).total_seconds()
            limit = time.monotonic() + max(tx.wf.timeout - elapsed, 0.0)
            deadline = limit if deadline is None else min(deadline, limit)
        scope = Scope(
            tx.ctx,
            history=History(self.store, execution.id, tx.entries),
            now=self.clock.now,
            local=local,
            input=execution.input,
        )
        return StepRun(
            engine=cast("Engine", self),  # a Stepper is always part of an Engine
            workflow=tx.wf,
            execution=execution,
            step=step,
            path=path,
            scope=scope,
            attempt=attempt,
            iteration=iteration,
            key=f"{execution.id}:{path}:{visit}",
            deadline=deadline,
            visit=visit,
            branch=branch,
        )

    def _leaf(
        self,
        tx: Tx,
        step: StepDef,
        path: str,
        local: dict[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> Ran:
        cursor = tx.base.cursor
        attempt = int(cursor.get("attempt", 1))
        visit = int(cursor.get("visit", tx.base.seq + 1))
        executor = executor_for(step.type)
        run = self._run_context(tx, step, path, local, iteration, attempt, visit)
        if "state" in cursor:
            run = attrs.evolve(run, state=cursor["state"])
        if mode == RESUME:
            if not tx.internal:
                executor.check_resume(run, decision)
            call: Callable[[], Outcome] = lambda: executor.resume(run, decision)  # noqa: E731
        elif mode == TIMER:
            call = lambda: executor.timeout(run)  # noqa: E731
        else:
            if self.events.active:
                self._emit(tx.base, "step.started", path, {"attempt": attempt})
            call = lambda: executor.run(run)  # noqa: E731
        started = time.perf_counter()
        try:
            outcome = call()
        except Exception as exc:
            duration = (time.perf_counter() - started) * 1000
            return self._failed(tx, step, run, exc, duration, retry=mode == RUN)
        duration = (time.perf_counter() - started) * 1000
        if outcome.progress is not None:
            # Part of the step is done (an agent's model turn): keep it, run it again.
            tx.stay = {"visit": visit, "attempt": attempt, "state": outcome.progress}
            tx.update(outcome.updates)
            return Stay(())
        tx.update(outcome.updates)
        tx.entry(
            path,
            step.type,
            outcome.action,
            iteration=iteration,
            attempt=attempt,
            duration_ms=duration,
            input=outcome.input,
            output=outcome.output,
        )
        if outcome.halt is not None:
            tx.status = Status.HALTED
            tx.halt_data = outcome.halt
            tx.recover_to = recover_to(step, path)
            wakes = [workflow_deadline(tx.wf, tx.base)]
            if outcome.wake_at_seconds is not None:
                wakes.append(tx.now + timedelta(seconds=outcome.wake_at_seconds))
            # The timer fires for the step's own timeout or for the workflow's.
            tx.wake_at = min((wake for wake in wakes if wake is not None), default=None)
            tx.event("step.halted", path, halt=outcome.halt)
        else:
            tx.event("step.completed", path, output=outcome.output, **outcome.payload)
        if outcome.stay:
            tx.stay = {"visit": visit}
            if run.state is not None:
                tx.stay["state"] = run.state  # a halt keeps the step's progress
            return Stay(())
        return Done(outcome)

    def _failed(
        self, tx: Tx, step: StepDef, run: StepRun, exc: Exception, duration: float, retry: bool
    ) -> Ran:
        error = error_text(exc)
        delay = retry_delay(step, run.attempt) if retry else None
        action = Action.FAILED if delay is None else Action.RETRIED
        tx.entry(
            run.path,
            step.type,
            action,
            iteration=run.iteration,
            attempt=run.attempt,
            duration_ms=duration,
            error=error,
        )
        if delay is None:
            tx.event("step.failed", run.path, attempt=run.attempt, error=error)
            return Fail(exc)
        tx.stay = {"attempt": run.attempt + 1, "visit": run.visit}
        if run.state is not None:
            tx.stay["state"] = run.state  # progress made before the failure is kept
        tx.delay = delay
        tx.event("step.retrying", run.path, attempt=run.attempt, error=error, delay=delay)
        return Stay(())

    # --- provided by LoopSteps and ParallelSteps ------------------------------------------------

    def _loop(
        self,
        tx: Tx,
        step: StepDef,
        path: str,
        frames: Frames,
        depth: int,
        local: dict[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> Ran:
        raise NotImplementedError

    def _parallel(
        self,
        tx: Tx,
        step: StepDef,
        path: str,
        frames: Frames,
        depth: int,
        local: dict[str, Any] | None,
        iteration: int | None,
    ) -> Ran:
        raise NotImplementedError


def retry_delay(step: StepDef, attempt: int) -> float | None:
    """The wait before the next attempt, or None when no retry is left."""
    config = step.config
    if attempt > getattr(config, "retries", 0):
        return None
    delay: float = config.retry_delay * config.retry_backoff ** (attempt - 1)
    return delay


def recover_to(step: StepDef, path: str) -> str | None:
    """The step (path) a resume continues at: the halt's target, else the step itself."""
    target: str | None = step.id
    if step.type == "halt":
        target = step.config.resume_step or step.next
        if target is None:
            return None
    parent, sep, _ = path.rpartition(":")
    return f"{parent}{sep}{target}"


def workflow_deadline(wf: WorkflowDef, execution: Execution) -> datetime | None:
    """When the whole execution times out (the workflow's ``timeout``), if it does."""
    if wf.timeout is None:
        return None
    return execution.created_at + timedelta(seconds=wf.timeout)


def step_levels(
    wf: WorkflowDef, top: str, frames: Sequence[Mapping[str, Any]]
) -> list[tuple[StepDef, str]]:
    """The step and its path at each level, following loop frames from the top."""
    step = wf.step(top)
    if step is None:
        raise LookupError(top)
    levels = [(step, top)]
    for frame in frames:
        config = levels[-1][0].config
        if not isinstance(config, LoopConfig):
            raise LookupError(frame.get("step"))
        child = next(c for c in config.do if c.id == frame["at"])
        levels.append((child, f"{levels[-1][1]}:{child.id}"))
    return levels


def has_position(wf: WorkflowDef, top: str, frames: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``wf`` still has the step the cursor is at, and every step enclosing it."""
    step = wf.step(top)
    for frame in frames:
        if step is None or step.id != frame.get("step"):
            return False
        if isinstance(step.config, ParallelConfig):
            return True  # the innermost frame: its branches are looked up when they run
        if not isinstance(step.config, LoopConfig):
            return False
        step = next((child for child in step.config.do if child.id == frame.get("at")), None)
    return step is not None

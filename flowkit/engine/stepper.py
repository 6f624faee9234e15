"""The engine loop's core: run the step at an execution's position, write one checkpoint.

An execution's position is its ``current_step`` plus the frames of its cursor
(:mod:`flowkit.cursor`). :class:`Stepper` walks from the top-level step down
through the steps that hold steps (each one run by its own step type, which
goes one level down with ``Runtime.descend``) to the step to run, runs it,
collects everything that changed in a :class:`~flowkit.engine.transaction.Transaction`
and writes it as one atomic checkpoint. Each level reports upward where its
graph goes next with one of the small classes here (:data:`Moved`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from .. import telemetry
from ..abc import Decision, Inner, Outcome, StepType, Store, step_type
from ..cursor import EMPTY, Cursor, Frame, LoopFrame, ParallelFrame, Unwinding, with_cancel_of
from ..definitions import BODY, BRANCHES, StepDef, WorkflowDef
from ..errors import ExecutionError, FlowkitError
from ..limits import problem_in
from ..records import Action, Entry, Execution, Status
from ..services import ServiceRegistry
from .events import Event, EventBus
from .leases import InFlight, Leases
from .position import nested_steps, position_path
from .results import Advance, FanOut
from .runtime import COMPENSATE, Children, StepRun
from .transaction import Transaction, clean, error_message, error_text

__all__ = [
    "NO_DECISION",
    "RESUME",
    "RUN",
    "TIMER",
    "Stepper",
    "kind_of",
    "retry_delay",
    "workflow_deadline",
]

log = logging.getLogger("flowkit")

RUN, RESUME, TIMER = "run", "resume", "timer"
"""How a step is entered: run it, resume it after a halt, or fire its timer."""

NO_DECISION = Decision()
"""What a run or a timer passes for the decision: no resume call said anything."""


# --- what a level of nesting reports upward ----------------------------------------------------
#
# A level's graph goes on at a step, ends (top level: the workflow; body: the
# iteration), or stays inside its step at some frames: an ``Inner`` says which,
# as it does for ``Runtime.descend``. Or the step failed unhandled (``Fail``), or
# an end step finished the workflow (``Finish``).


@attrs.frozen
class Fail:
    """The step failed and did not handle it."""

    error: BaseException


@attrs.frozen
class Finish:
    """An end step ran: the workflow is complete."""


@attrs.define  # not frozen: one is made per step
class Done:
    """The step at this level finished with an outcome."""

    outcome: Outcome


Moved = Inner | Fail | Finish
Ran = Done | Inner | Fail | Finish


class _Unhandled(BaseException):
    """A nested step failed (or finished the workflow): its caller's step goes the same way.

    A ``BaseException``, so that a step type's own ``except Exception`` cannot swallow it.
    """

    def __init__(self, moved: Fail | Finish) -> None:
        super().__init__()
        self.moved = moved


class _Escaped(BaseException):
    """An error escaped a nested level (a refused resume, a store error): it escapes the
    caller's step too, not as that step's failure."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error


def kind_of(name: str) -> StepType:
    """The step type called ``name``.

    Raises:
        ExecutionError: none is registered.
    """
    found = step_type(name)
    if found is None:
        raise ExecutionError(f"no step type is registered for '{name}'")
    return found


def workflow_deadline(wf: WorkflowDef, execution: Execution) -> datetime | None:
    """When the whole execution times out (the workflow's ``timeout``), if it does."""
    if wf.timeout is None:
        return None
    return execution.created_at + timedelta(seconds=wf.timeout)


def retry_delay(step: StepDef, attempt: int) -> float | None:
    """The wait before the next attempt (a config's ``retries``), or None when none is left."""
    config = step.config
    if attempt > getattr(config, "retries", 0):
        return None
    delay: float = config.retry_delay * config.retry_backoff ** (attempt - 1)
    return delay


def direct_output(entry: Entry, path: str) -> bool:
    """Whether ``entry`` is a finished step directly inside the step at ``path``."""
    return (
        entry.iteration is not None
        and entry.action in (Action.COMPLETED, Action.RESUMED)
        and entry.step_id.startswith(path)
        and entry.step_id.rpartition(":")[0] == path
    )


class Stepper:
    """Runs one step at an execution's position and writes its checkpoint.

    Args:
        leases: how running executions are held (the store and the clock with them).
        events: where events go once a checkpoint is written.
        hands_off: steps travel through a queue, so a running execution's lease
            is released between steps (the next worker claims it).
        services: the service registry steps call.
        resources: what extensions attached to the engine.
        children: the engine's child executions (sub-workflows).
    """

    def __init__(
        self,
        *,
        leases: Leases,
        events: EventBus,
        hands_off: bool,
        services: ServiceRegistry,
        resources: Mapping[str, Any],
        children: Children,
    ) -> None:
        self.store = leases.store
        self.clock = leases.clock
        self.leases = leases
        self.events = events
        self.hands_off = hands_off
        self.services = services
        self.resources = resources
        self.children = children

    # --- entry points --------------------------------------------------------------------------

    def transaction(self, wf: WorkflowDef, inflight: InFlight) -> Transaction:
        """A new transaction on the latest record of an execution being advanced."""
        tx = Transaction(
            wf,
            inflight.record,
            now=self.clock.now(),
            listening=self.events.active,
            inflight=inflight,
        )
        tx.cursor = inflight.cursor_of(inflight.record)
        return tx

    def step(
        self, wf: WorkflowDef, inflight: InFlight, deadline: float | None, *, hold: bool = False
    ) -> Advance:
        """Run the step at the execution's position; past ``deadline`` the execution fails.

        With ``hold``, a driver that hands executions off keeps the lease after
        the checkpoint when the execution goes on at once (its next step runs here).
        """
        tx = self.transaction(wf, inflight)
        tx.hold = hold
        if deadline is not None and time.monotonic() > deadline:
            error = ExecutionError(f"workflow '{wf.id}' ran out of time")
            return self._settle(tx, inflight, Fail(error))
        tx.deadline = deadline
        return self.run_top(tx, inflight, RUN, NO_DECISION)

    def run_top(
        self, tx: Transaction, inflight: InFlight, mode: str, decision: Decision
    ) -> Advance:
        """Enter the top-level step (run, resume or fire its timer) and write the checkpoint."""
        execution = tx.base
        deadline = None if tx.wf.timeout is None else workflow_deadline(tx.wf, execution)
        if deadline is not None and tx.now > deadline:
            # Checked before every step, resume and timer: halted time counts too.
            error = ExecutionError(f"workflow '{tx.wf.id}' timed out after {tx.wf.timeout:g}s")
            return self._settle(tx, inflight, Fail(error))
        unwinding = tx.cursor.unwinding
        if unwinding is not None:
            return self._compensate_next(tx, inflight, unwinding)
        request = tx.cursor.cancel
        if request is not None and mode != RESUME:
            return self.cancel(tx, inflight, request.get("reason"), request.get("by"))
        step = tx.wf.step(execution.current_step or "")
        if step is None:
            raise ExecutionError(
                f"execution '{execution.id}' is at step '{execution.current_step}', which "
                f"workflow '{tx.wf.id}' does not have"
            )
        moved = self._level(tx, step, "", tx.cursor.frames, None, None, mode, decision)
        return self._settle(tx, inflight, moved)

    # --- checkpoints ---------------------------------------------------------------------------

    def _settle(self, tx: Transaction, inflight: InFlight, moved: Moved) -> Advance:
        frames: tuple[Frame, ...] = ()
        if isinstance(moved, Inner) and moved.frames is not None:
            frames = moved.frames
        elif isinstance(moved, Inner) and moved.target is not None:
            tx.current_step = moved.target
        elif isinstance(moved, (Inner, Finish)):
            tx.status = Status.COMPLETED
            tx.result = tx.ctx.get("result")
            tx.current_step = None
            tx.event("workflow.completed", None, output=tx.result)
        else:
            # The failed step's position stays in the record, for Engine.retry.
            frames = tx.cursor.frames
            if tx.visit is None and tx.cursor.visit is not None:
                tx.keep(visit=tx.cursor.visit, state=tx.cursor.state)
            error = error_text(moved.error)
            if self._unwinds(tx, Status.FAILED, error):
                return self.commit(tx, inflight, frames)
            tx.status = Status.FAILED
            tx.error = error
            tx.event("workflow.failed", None, error=tx.error)
        if tx.status is Status.HALTED:
            tx.event("workflow.halted", None, halt=tx.halt_data)
        elif tx.status is Status.WAITING:
            tx.event("workflow.waiting", None, wait=tx.halt_data)
        return self.commit(tx, inflight, frames)

    def cancel(
        self, tx: Transaction, inflight: InFlight, reason: str | None, by: str | None
    ) -> Advance:
        """End the execution as cancelled where it is: one checkpoint, with a
        ``cancelled`` entry that says why and who asked."""
        frames = tx.cursor.frames
        where = position_path(tx.base.current_step or "", frames)
        step = tx.wf.step(tx.base.current_step or "")
        tx.status = Status.CANCELLED
        tx.error = clean(reason or "cancelled")
        tx.wake_at = None
        tx.entry(
            where,
            step.type if step is not None else "workflow",
            Action.CANCELLED,
            iteration=None,
            input={"reason": reason, "by": by},
        )
        if not self._unwinds(tx, Status.CANCELLED, tx.error):
            tx.event("workflow.cancelled", None, reason=reason, by=by)
        else:
            tx.status = Status.RUNNING
            tx.error = None
        return self.commit(tx, inflight, frames)

    # --- compensation (SPEC §15) ------------------------------------------------------------------

    def _unwinds(self, tx: Transaction, end: Status, error: str) -> bool:
        """Start unwinding an execution that ends ``end`` if completed steps have
        compensations: it stays running, and each later step runs one of them."""
        todo = _to_compensate(self.store, tx)
        if not todo:
            return False
        tx.unwinding = Unwinding(end=end.value, error=error, todo=todo)
        tx.event("workflow.compensating", None, end=end.value, error=error, steps=len(todo))
        return True

    def _compensate_next(
        self, tx: Transaction, inflight: InFlight, unwinding: Unwinding
    ) -> Advance:
        """Run the next compensation, one checkpoint; after the last one, end the
        execution as it would have ended."""
        seq = unwinding.todo[0]
        done = self.store.entries(tx.base.id, after=seq - 1)[0]
        step = _step_at(tx.wf, done.step_id)
        local = {"output": done.output, "step_input": done.input}
        run = self.runtime(
            tx, step, done.step_id, local, done.iteration, attempt=1, visit=seq, mode=COMPENSATE
        )
        run.deadline = None  # it runs although the workflow's time is up
        failed = unwinding.failed
        action, output, error = Action.COMPENSATED, None, None
        started = time.perf_counter()
        try:
            output = kind_of(step.type).compensate(run, done)
            problem = None if output is None else problem_in(output, "output")
            if problem is not None:
                raise ExecutionError(f"compensation of step '{done.step_id}': {problem}")
        except Exception as exc:
            action, output, error = Action.FAILED, None, error_text(exc)
            failed = (*failed, f"step '{done.step_id}': {error}")
        tx.entry(
            done.step_id,
            step.type,
            action,
            iteration=done.iteration,
            duration_ms=(time.perf_counter() - started) * 1000,
            input={"compensates": seq},
            output=output,
            error=error,
        )
        tx.event("step.compensated", done.step_id, output=output, error=error)
        frames = tx.cursor.frames
        if tx.cursor.visit is not None:
            tx.keep(visit=tx.cursor.visit, state=tx.cursor.state)
        if len(unwinding.todo) > 1:
            tx.unwinding = attrs.evolve(unwinding, todo=unwinding.todo[1:], failed=failed)
            return self.commit(tx, inflight, frames)
        tx.status = Status(unwinding.end)
        tx.error = unwinding.error
        if failed:
            tx.error = clean(f"{unwinding.error}; compensations failed: {'; '.join(failed)}")
        if tx.status is Status.FAILED:
            tx.event("workflow.failed", None, error=tx.error)
        else:
            tx.event("workflow.cancelled", None, error=tx.error)
        return self.commit(tx, inflight, frames)

    def lease_owner(self, holding: bool = True) -> str | None:
        """Who holds a running execution's lease between steps: this engine, or
        nobody when steps travel through a queue (the next worker claims it)."""
        return self.leases.owner if holding or not self.hands_off else None

    def commit(self, tx: Transaction, inflight: InFlight, frames: tuple[Frame, ...]) -> Advance:
        """Write the transaction as one checkpoint, then emit its events."""
        if frames or tx.visit is not None or tx.unwinding is not None:
            typed = Cursor(
                frames=frames,
                attempt=tx.attempt,
                visit=tx.visit,
                state=tx.state,
                unwinding=tx.unwinding,
            )
            cursor = typed.to_json()
        else:
            typed, cursor = EMPTY, {}
        expires = owner = None
        if tx.status is Status.RUNNING:
            expires = tx.now + self.leases.duration
            if tx.delay:  # a retry waits before its next attempt: nobody may recover it sooner
                expires += timedelta(seconds=tx.delay)
            owner = self.lease_owner(tx.hold and tx.fanout is None and not tx.delay)

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
                cursor=with_cancel_of(cursor, latest.cursor),
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
                lease_owner=owner,
                lease_expires_at=expires,
                traceparent=latest.traceparent,
            )

        try:
            record = inflight.write(
                self.store, build, tx.entries, tx.base.version, tuple(tx.changed), tx.consumed
            )
        except UNSTORABLE as exc:
            if isinstance(exc, FlowkitError):
                raise
            return self._unstorable_checkpoint(tx, inflight, exc)
        telemetry.checkpointed(tx.base, record, tx.entries)  # metrics and logs
        inflight.remember_cursor(cursor, typed)
        if tx.loops:
            self._remember_outputs(inflight, tx)
        for name, step_id, payload in tx.events:
            self.emit(record, name, step_id, payload)
        return Advance(execution=record, delay=tx.delay, fanout=tx.fanout)

    def _unstorable_checkpoint(
        self, tx: Transaction, inflight: InFlight, exc: Exception
    ) -> Advance:
        """The store refused a checkpoint for what it holds: fail the execution instead,
        keeping the ctx of the last checkpoint, so that it is not run again and again."""
        where = f"step '{tx.entries[-1].step_id}'" if tx.entries else f"workflow '{tx.wf.id}'"
        error = clean(
            f"ExecutionError: the checkpoint after {where} could not be stored, so the execution "
            f"failed: {error_text(exc)}"
        )
        log.error("execution %s: %s", tx.base.id, error)
        entries = []
        if tx.entries:
            last = tx.entries[-1]
            entries.append(
                attrs.evolve(
                    last,
                    id=f"{tx.base.id}:{tx.base.seq + 1}",
                    seq=tx.base.seq + 1,
                    action=Action.FAILED,
                    input=None,
                    output=None,
                    error=error,
                )
            )

        def build(latest: Execution) -> Execution:
            return attrs.evolve(
                latest,
                status=Status.FAILED,
                cursor=tx.base.cursor,  # the step's position, for Engine.retry
                error=error,
                version=latest.version + 1,
                seq=tx.base.seq + len(entries),
                updated_at=tx.now,
                wake_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )

        record = inflight.write(self.store, build, entries, tx.base.version)
        telemetry.checkpointed(tx.base, record, entries)  # metrics and logs
        self.emit(record, "workflow.failed", None, {"error": error})
        return Advance(execution=record)

    def emit(
        self, execution: Execution, name: str, step_id: str | None, payload: dict[str, Any]
    ) -> None:
        """Deliver an event to the subscribers (when there are any)."""
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

    # --- one level of nesting ------------------------------------------------------------------

    def _level(
        self,
        tx: Transaction,
        step: StepDef,
        prefix: str,
        frames: tuple[Frame, ...],
        local: Mapping[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> Moved:
        """Run the step at one level and say where that level's graph goes next."""
        path = prefix + step.id
        if frames and frames[0].step != step.id:
            return Fail(
                ExecutionError(
                    f"execution '{tx.base.id}' is inside step '{frames[0].step}', "
                    f"but the definition has '{step.id}' there"
                )
            )
        kind = kind_of(step.type)
        ran: Ran
        if kind.holds_steps:
            ran = self._holder(tx, kind, step, path, frames, local, iteration, mode, decision)
        else:
            ran = self._leaf(tx, kind, step, path, local, iteration, mode, decision)
        if isinstance(ran, Done):
            if ran.outcome.finish:
                return Finish()
            if ran.outcome.target is None:
                return Inner()  # the graph at this level ended
            return Inner(target=ran.outcome.target)
        if isinstance(ran, Fail) and step.on_error is not None:
            tx.forget()  # the failed step is over: its visit is not kept
            error = ran.error
            tx.update(
                {
                    "_last_error": {
                        "step": path,
                        "type": type(error).__name__,
                        "message": error_message(error),
                    }
                }
            )
            return Inner(target=step.on_error)
        return ran

    def runtime(
        self,
        tx: Transaction,
        step: StepDef,
        path: str,
        local: Mapping[str, Any] | None,
        iteration: int | None,
        *,
        attempt: int,
        visit: int,
        frames: tuple[Frame, ...] = (),
        mode: str = RUN,
        decision: Decision | None = None,
        branch: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> StepRun:
        """The runtime a step sees (see :class:`flowkit.abc.Runtime`)."""
        return StepRun(
            self,
            tx,
            step,
            path,
            local,
            iteration,
            attempt,
            visit,
            frames,
            mode,
            decision,
            branch,
            state,
        )

    # --- a step that holds no steps ------------------------------------------------------------

    def _leaf(
        self,
        tx: Transaction,
        kind: StepType,
        step: StepDef,
        path: str,
        local: Mapping[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> Ran:
        cursor = tx.cursor
        attempt = cursor.attempt or 1
        visit = cursor.visit if cursor.visit is not None else tx.base.seq + 1
        # StepRun itself rather than self.runtime(): this runs once a step.
        run = StepRun(self, tx, step, path, local, iteration, attempt, visit, state=cursor.state)
        call: Callable[..., Outcome]
        arguments: tuple[Any, ...]
        if mode == RESUME:
            if not tx.internal:
                kind.check_resume(run, decision)
            call, arguments = kind.resume, (run, decision)
        elif mode == TIMER:
            call, arguments = kind.timeout, (run,)
        else:
            if self.events.active:
                self.emit(tx.base, "step.started", path, {"attempt": attempt})
            call, arguments = kind.run, (run,)
        watch = telemetry.watch_step(tx.base, path, step.type, attempt, mode)
        started = time.perf_counter()
        try:
            if watch is None:  # no tracing
                outcome = call(*arguments)
            else:
                with watch:
                    outcome = call(*arguments)
                    watch.ended(outcome.action, outcome.error)  # the step's span
        except Exception as exc:
            duration = (time.perf_counter() - started) * 1000
            return self._failed(tx, step, run, exc, duration, retry=mode == RUN)
        duration = (time.perf_counter() - started) * 1000
        problem = _unstorable(outcome)
        if problem is not None:
            unstorable = ExecutionError(f"step '{path}': {problem}")
            return self._failed(tx, step, run, unstorable, duration, retry=mode == RUN)
        if outcome.progress is not None:
            # Part of the step is done (an agent's model turn): keep it, run it again.
            tx.keep(visit=visit, attempt=attempt, state=outcome.progress)
            tx.update(outcome.updates)
            return Inner(frames=())  # stay at this step
        tx.update(outcome.updates)
        if outcome.consume:
            tx.consumed.extend(outcome.consume)
        error = None if outcome.error is None else clean(outcome.error)
        tx.entry(
            path,
            step.type,
            outcome.action,
            iteration=iteration,
            attempt=attempt,
            duration_ms=duration,
            input=outcome.input,
            output=outcome.output,
            error=error,
        )
        if outcome.halt is not None or outcome.wait is not None:
            waits = outcome.halt is None
            tx.status = Status.WAITING if waits else Status.HALTED
            tx.halt_data = outcome.wait if waits else outcome.halt
            tx.recover_to = _recover_to(kind, step, path)
            wakes = [workflow_deadline(tx.wf, tx.base)]
            if outcome.wake_at_seconds is not None:
                wakes.append(tx.now + timedelta(seconds=outcome.wake_at_seconds))
            # The timer fires for the step's own timeout or for the workflow's.
            tx.wake_at = min((wake for wake in wakes if wake is not None), default=None)
            if waits:
                tx.event("step.waiting", path, wait=outcome.wait)
            else:
                tx.event("step.halted", path, halt=outcome.halt)
        elif outcome.action is Action.FAILED:
            tx.event("step.failed", path, attempt=attempt, error=error)
        elif tx.listening:
            tx.event("step.completed", path, output=outcome.output, **outcome.payload)
        if outcome.stay:
            tx.keep(visit=visit, state=run.state)  # a halt keeps the step's progress
            return Inner(frames=())  # stay at this step
        return Done(outcome)

    def _failed(
        self,
        tx: Transaction,
        step: StepDef,
        run: StepRun,
        exc: Exception,
        duration: float,
        retry: bool,
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
            # Unless a step handles it, the execution fails here; a retry of the
            # execution runs the step again with the same visit (idempotency key, child).
            tx.keep(visit=run.visit, state=run.state)
            return Fail(exc)
        # Progress made before the failure is kept.
        tx.keep(visit=run.visit, attempt=run.attempt + 1, state=run.state)
        tx.delay = delay
        tx.event("step.retrying", run.path, attempt=run.attempt, error=error, delay=delay)
        return Inner(frames=())  # stay at this step

    # --- a step that holds steps ---------------------------------------------------------------

    def _holder(
        self,
        tx: Transaction,
        kind: StepType,
        step: StepDef,
        path: str,
        frames: tuple[Frame, ...],
        local: Mapping[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> Ran:
        """Run a step type that holds steps: at every entry, whatever the mode (it passes
        the mode on to the step it descends to)."""
        run = self.runtime(
            tx,
            step,
            path,
            local,
            iteration,
            attempt=1,
            visit=tx.seq + 1,
            frames=frames,
            mode=mode,
            decision=decision,
        )
        frame = run.frame
        try:
            outcome = kind.run(run)
        except _Unhandled as signal:
            return signal.moved
        except _Escaped as signal:
            raise signal.error from None
        except Exception as exc:
            return _holder_failed(tx, step, path, iteration, exc)
        if outcome.inside is not None:
            own = outcome.inside[0]
            if isinstance(own, LoopFrame) and tx.inflight is not None:
                tx.loops[path] = own.start
                if frame is None:  # the loop starts in this process: remember its outputs
                    tx.inflight.child_outputs[path] = (own.start, {})
            return Inner(frames=outcome.inside)
        if outcome.branches is not None:
            return self._fan_out(tx, step, path, frame, local, iteration, outcome.branches)
        if tx.inflight is not None:
            tx.inflight.child_outputs.pop(path, None)
        problem = _unstorable(outcome)
        if problem is not None:
            return _holder_failed(
                tx, step, path, iteration, ExecutionError(f"step '{path}': {problem}")
            )
        tx.update(outcome.updates)
        if outcome.consume:
            tx.consumed.extend(outcome.consume)
        error = None if outcome.error is None else clean(outcome.error)
        tx.entry(
            path,
            step.type,
            outcome.action,
            iteration=iteration,
            output=outcome.output,
            error=error,
        )
        if outcome.action is Action.FAILED:
            tx.event("step.failed", path, error=error)
        else:
            tx.event("step.completed", path, output=outcome.output, **outcome.payload)
        return Done(outcome)

    def _fan_out(
        self,
        tx: Transaction,
        step: StepDef,
        path: str,
        frame: Frame | None,
        local: Mapping[str, Any] | None,
        iteration: int | None,
        branches: Iterable[str],
    ) -> Ran:
        """Send out the branches that have not finished; their results join in the frame."""
        if not isinstance(frame, ParallelFrame):
            frame = ParallelFrame(
                step=step.id, start=tx.seq + 1, local=local or None, iteration=iteration
            )
        done = frame.done
        pending = tuple(branch for branch in branches if branch not in done)
        tx.fanout = FanOut(path=path, visit=frame.start, branches=pending, epoch=frame.epoch)
        return Inner(frames=(frame,))

    # --- what StepRun asks of its stepper (the Machine protocol) ------------------------------

    def descend(
        self, run: StepRun, step: StepDef, variables: Mapping[str, Any], iteration: int | None
    ) -> Inner:
        """Run a nested step one level below ``run``'s step."""
        local = {**run._local, **variables} if run._local else dict(variables)
        try:
            moved = self._level(
                run._tx,
                step,
                f"{run.path}:",
                run._frames[1:],
                local,
                iteration,
                run._mode,
                run._decision or NO_DECISION,
            )
        except Exception as exc:
            raise _Escaped(exc) from None
        if isinstance(moved, Inner):
            return moved
        raise _Unhandled(moved)

    def child_outputs(self, run: StepRun, since: int) -> dict[int, Any]:
        """Each iteration's last output of the steps directly inside ``run``'s step:
        remembered when the step started in this process, else read back from the
        entries written after ``since``."""
        tx = run._tx
        path = run.path
        remembered = None if tx.inflight is None else tx.inflight.child_outputs.get(path)
        stored: Iterable[Entry]
        if remembered is not None and remembered[0] == since:
            last = dict(remembered[1])
            stored = ()
        else:
            last = {}
            stored = self.store.entries(tx.base.id, after=since) if since < tx.base.seq else []
        for entry in itertools.chain(stored, tx.entries):
            if direct_output(entry, path):
                assert entry.iteration is not None
                last[entry.iteration] = entry.output
        return last

    def _remember_outputs(self, inflight: InFlight, tx: Transaction) -> None:
        """Keep the iteration outputs a checkpoint wrote for the loops that started here."""
        for path, start in tx.loops.items():
            remembered = inflight.child_outputs.get(path)
            if remembered is None or remembered[0] != start:
                continue
            outputs = remembered[1]
            for entry in tx.entries:
                if direct_output(entry, path):
                    assert entry.iteration is not None
                    outputs[entry.iteration] = entry.output


UNSTORABLE = (ValueError, TypeError, UnicodeError, OverflowError, RecursionError)
"""What a store raises for a record it cannot encode (flowkit's own errors are not among them)."""


def _holder_failed(
    tx: Transaction, step: StepDef, path: str, iteration: int | None, exc: Exception
) -> Fail:
    error = error_text(exc)
    tx.entry(path, step.type, Action.FAILED, iteration=iteration, error=error)
    tx.event("step.failed", path, error=error)
    return Fail(exc)


def _unstorable(outcome: Outcome) -> str | None:
    """What keeps a step's outcome from being stored (see :mod:`flowkit.limits`), or None."""
    output = outcome.output
    problem = None if output is None else problem_in(output, "output")
    if problem is None and outcome.updates:
        for name, value in outcome.updates.items():
            if value is not output and value is not None:
                problem = problem_in(value, f"${name}")
                if problem is not None:
                    break
    if problem is None and outcome.progress is not None:
        problem = problem_in(outcome.progress, "progress")
    return problem


def _to_compensate(store: Store, tx: Transaction) -> tuple[int, ...]:
    """The seqs of the entries of the finished steps that have a compensation, the
    last finished first (steps compensated already are left out)."""
    entries = [*store.entries(tx.base.id), *tx.entries]
    compensated = {
        entry.input.get("compensates")
        for entry in entries
        if entry.action in (Action.COMPENSATED, Action.FAILED) and isinstance(entry.input, dict)
    }
    todo = []
    for entry in reversed(entries):
        if entry.action is not Action.COMPLETED or entry.seq in compensated:
            continue
        step = _step_at(tx.wf, entry.step_id)
        kind = step_type(step.type) if step is not None else None
        if kind is not None and step is not None and kind.compensates(step):
            todo.append(entry.seq)
    return tuple(todo)


def _step_at(wf: WorkflowDef, path: str) -> StepDef:
    """The step at ``path`` (``loop:body-step``, ``parallel:branch``) in ``wf``.

    Raises:
        ExecutionError: the definition has no step there.
    """
    top, *inner = path.split(":")
    step = wf.step(top)
    for name in inner:
        if step is None:
            break
        nested = [*(nested_steps(step, BODY) or ()), *(nested_steps(step, BRANCHES) or ())]
        step = next((candidate for candidate in nested if candidate.id == name), None)
    if step is None:
        raise ExecutionError(f"workflow '{wf.id}' has no step '{path}' to compensate")
    return step


def _recover_to(kind: StepType, step: StepDef, path: str) -> str | None:
    """The step (path) a resume continues at: for a halt its target, else the step itself."""
    target = kind.resumes_at(step)
    if target is None:
        return None
    parent, sep, _ = path.rpartition(":")
    return f"{parent}{sep}{target}"

"""Running the branches of a step that fans out, and joining them in its frame.

When a step answers ``Outcome(branches=…)`` (a ``parallel`` step), the stepper
opens a :class:`~flowkit.cursor.ParallelFrame` and hands the branches to the
driver (:class:`~flowkit.engine.results.FanOut`). Each branch runs
here, one attempt at a time, and its result is recorded in the frame with its
entry, in one version-checked checkpoint; after every result the step type
says whether the branches joined (:meth:`StepType.join`). The frame keeps
whether each branch succeeded; its output stays in its entry, read back once
the branches joined. The step itself then runs once more and completes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import attrs

from .. import telemetry
from ..cursor import BranchResult, Cursor, Joined, ParallelFrame
from ..definitions import BRANCHES, StepDef, WorkflowDef
from ..errors import ConflictError, FlowkitError
from ..records import Action, Execution, Status
from .leases import InFlight
from .position import nested_steps, parallel_step
from .results import Advance, FanOut
from .stepper import RUN, Stepper, kind_of, retry_delay
from .transaction import Transaction, error_text

__all__ = ["Fanout", "has_joined"]


@attrs.frozen
class _Attempt:
    """One attempt of a branch: its result, and when it failed, the wait before a retry."""

    result: BranchResult
    retry_delay: float | None = None


class Fanout:
    """Runs branches of parallel steps and records them, with the stepper's checkpoints."""

    def __init__(self, stepper: Stepper) -> None:
        self._stepper = stepper

    def run_all(self, wf: WorkflowDef, inflight: InFlight, fanout: FanOut) -> None:
        """Fan out in this process: run the branches on threads.

        Returns as soon as the parallel step joined: ``wait: any`` or N does not
        wait for slow branches, whose late results are dropped.
        """
        branches = fanout.branches
        if len(branches) == 1:
            self.run_to_end(wf, inflight, fanout, branches[0])
            return
        pool = ThreadPoolExecutor(max_workers=len(branches), thread_name_prefix="flowkit-branch")
        futures = [
            pool.submit(self.run_to_end, wf, inflight, fanout, branch) for branch in branches
        ]
        try:
            for future in as_completed(futures):
                future.result()
                if has_joined(inflight.record):
                    break
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def run_to_end(
        self, wf: WorkflowDef, inflight: InFlight, fanout: FanOut, branch: str
    ) -> Advance:
        """Run a branch in this process until it is recorded, waiting out its retries."""
        while True:
            advance = self.run(wf, inflight, fanout.path, branch, fanout.visit, fanout.epoch)
            if not advance.delay:
                return advance
            self._stepper.clock.sleep(advance.delay)

    def run(
        self,
        wf: WorkflowDef,
        inflight: InFlight,
        path: str,
        branch_id: str,
        visit: int,
        epoch: int | None = None,
    ) -> Advance:
        """Run one attempt of a branch and record it (a retry, a result, perhaps the join).

        A branch of a step that joined already, a duplicate, one of another
        ``epoch`` (None: any), or one still running when the run that fanned it
        out ended (the execution failed, say), is dropped.
        """
        attempt: _Attempt | None = None
        while True:
            execution = inflight.record
            if inflight.released:
                return Advance(execution=execution, dropped=True)
            found = _locate(wf, execution, inflight.cursor_of(execution), path, visit, epoch)
            if found is None or branch_id in found[1].done or found[1].joined is not None:
                return Advance(execution=execution, dropped=True)
            step, frame = found
            branches = nested_steps(step, BRANCHES) or ()
            branch = next(b for b in branches if b.id == branch_id)
            number = frame.attempts.get(branch_id, 1)
            if attempt is None or attempt.result.attempt != number:
                attempt = self._attempt(wf, inflight, execution, path, branch, frame, number)
                continue  # locate again: other branches may have been recorded meanwhile
            try:
                return self._record(wf, inflight, execution, step, path, frame, branch, attempt)
            except ConflictError:
                fresh = self._stepper.store.load(execution.id)
                if fresh is None:
                    raise
                inflight.refresh(fresh)

    def _attempt(
        self,
        wf: WorkflowDef,
        inflight: InFlight,
        execution: Execution,
        path: str,
        branch: StepDef,
        frame: ParallelFrame,
        number: int,
    ) -> _Attempt:
        stepper = self._stepper
        tx = Transaction(
            wf,
            execution,
            now=stepper.clock.now(),
            listening=stepper.events.active,
            cancellation=inflight.cancellation,
        )
        branch_path = f"{path}:{branch.id}"
        run = stepper.runtime(
            tx,
            branch,
            branch_path,
            frame.local,
            frame.iteration,
            attempt=number,
            visit=frame.start,
            branch=branch.id,
        )
        if stepper.events.active:
            stepper.emit(execution, "step.started", branch_path, {"attempt": number})
        watch = telemetry.watch_step(execution, branch_path, branch.type, number, RUN)
        started = time.perf_counter()
        try:
            if watch is None:  # no tracing
                outcome = kind_of(branch.type).run(run)
            else:
                with watch:
                    outcome = kind_of(branch.type).run(run)
                    watch.ended(outcome.action, outcome.error)  # the branch's span
        except Exception as exc:
            duration = (time.perf_counter() - started) * 1000
            failed = BranchResult(
                ok=False, error=error_text(exc), attempt=number, duration=duration
            )
            return _Attempt(failed, retry_delay(branch, number))
        duration = (time.perf_counter() - started) * 1000
        if outcome.halt is not None:
            halted = BranchResult(
                ok=False,
                error="ExecutionError: a parallel branch cannot halt",
                attempt=number,
                duration=duration,
            )
            return _Attempt(halted)
        return _Attempt(
            BranchResult(
                ok=True,
                output=outcome.output,
                updates=dict(outcome.updates),
                input=outcome.input,
                attempt=number,
                duration=duration,
            )
        )

    def _record(
        self,
        wf: WorkflowDef,
        inflight: InFlight,
        execution: Execution,
        step: StepDef,
        path: str,
        frame: ParallelFrame,
        branch: StepDef,
        attempt: _Attempt,
    ) -> Advance:
        """Record one attempt of a branch in the frame of the parallel step.

        A failed attempt with retries left is a ``retried`` entry and a delay
        (the driver runs the branch again after it); otherwise the branch is
        done, and the step type says whether the branches joined.

        Raises:
            ConflictError: the record changed since ``execution`` was read.
        """
        stepper = self._stepper
        tx = Transaction(
            wf,
            execution,
            now=stepper.clock.now(),
            listening=stepper.events.active,
            inflight=inflight,
        )
        branch_path = f"{path}:{branch.id}"
        result = attempt.result
        if not result.ok and attempt.retry_delay is not None:
            tx.entry(
                branch_path,
                branch.type,
                Action.RETRIED,
                iteration=frame.iteration,
                attempt=result.attempt,
                duration_ms=result.duration,
                error=result.error,
            )
            tx.event(
                "step.retrying",
                branch_path,
                attempt=result.attempt,
                error=result.error,
                delay=attempt.retry_delay,
            )
            frame = attrs.evolve(frame, attempts={**frame.attempts, branch.id: result.attempt + 1})
            tx.delay = attempt.retry_delay
            tx.fanout = FanOut(
                path=path, visit=frame.start, branches=(branch.id,), epoch=frame.epoch
            )
        else:
            tx.entry(
                branch_path,
                branch.type,
                Action.COMPLETED if result.ok else Action.FAILED,
                iteration=frame.iteration,
                attempt=result.attempt,
                duration_ms=result.duration,
                input=result.input,
                output=result.output,
                error=result.error,
            )
            if result.ok:
                tx.event("step.completed", branch_path, output=result.output)
            else:
                tx.event("step.failed", branch_path, error=result.error)
            done = {**frame.done, branch.id: result}
            joined = self._join(execution, step, path, frame, done)
            frame = attrs.evolve(frame, done=done, joined=joined)
        frames = (*inflight.cursor_of(execution).frames[:-1], frame)
        advance = stepper.commit(tx, inflight, frames)
        return attrs.evolve(advance, joined=frame.joined is not None)

    def _join(
        self,
        execution: Execution,
        step: StepDef,
        path: str,
        frame: ParallelFrame,
        done: Mapping[str, BranchResult],
    ) -> Joined | None:
        """Whether the branches ``done`` joined; once they did, with every output.

        The step type decides first from results whose outputs may not be read
        yet (a frame read back from the store keeps none); only a successful
        join reads them back from the branches' entries, once.
        """
        kind = kind_of(step.type)
        joined = kind.join(step, done)
        if joined is None or not joined.ok:
            return joined
        unread = {f"{path}:{name}": name for name, r in done.items() if r.ok and not r.loaded}
        if not unread:
            return joined
        outputs: dict[str, Any] = {}
        for entry in self._stepper.store.entries(execution.id, after=frame.start - 1):
            name = unread.get(entry.step_id)
            if (
                name is not None
                and entry.action is Action.COMPLETED
                and entry.iteration == frame.iteration
            ):
                outputs[name] = entry.output
        missing = sorted(set(unread.values()) - outputs.keys())
        if missing:
            raise FlowkitError(
                f"execution {execution.id!r}: parallel step {path!r} cannot join, the entries "
                f"of its branches {', '.join(missing)} are missing from the store (they hold "
                "the branches' outputs); cancel the execution and start it again"
            )
        filled = {
            name: result.with_output(outputs[name]) if name in outputs else result
            for name, result in done.items()
        }
        return kind.join(step, filled)


def _locate(
    wf: WorkflowDef,
    execution: Execution,
    cursor: Cursor,
    path: str,
    visit: int,
    epoch: int | None = None,
) -> tuple[StepDef, ParallelFrame] | None:
    """The running parallel step at ``path`` and its frame in ``cursor`` (the execution's),
    at ``visit`` and, unless it is None, ``epoch`` (a branch sent before a retry of the
    execution finds nothing)."""
    if execution.status is not Status.RUNNING:
        return None
    found = parallel_step(wf, execution.current_step or "", cursor.frames, path, visit)
    if found is None or (epoch is not None and found[1].epoch != epoch):
        return None
    return found


def has_joined(execution: Execution) -> bool:
    """Whether the execution is past the branches it fanned out (joined, or not running)."""
    frames = Cursor.of(execution).frames
    if execution.status is not Status.RUNNING or not frames:
        return True
    last = frames[-1]
    return not isinstance(last, ParallelFrame) or last.joined is not None

"""Parallel steps: branches fanned out, recorded one by one in a frame, joined once."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import attrs

from ._checkpoint import Done, Fail, Frames, Ran, Stay, Tx, error_text
from ._definitions import ParallelConfig, StepDef, WorkflowDef
from ._inflight import InFlight
from ._results import Advance
from ._stepping import Stepper, retry_delay, step_levels
from ._steps import Outcome, executor_for
from .errors import ConflictError, ExecutionError
from .records import Action, Execution, Status

__all__ = ["BranchResult", "ParallelSteps", "locate_parallel", "parallel_position"]


class ParallelSteps(Stepper):
    """Runs ``parallel`` steps: fan-out, one checkpoint per branch, a join in the frame."""

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
        config: ParallelConfig = step.config
        if depth >= len(frames):
            frame: dict[str, Any] = {"step": step.id, "start": tx.seq + 1, "done": {}}
            if local:
                frame["local"] = local
            if iteration is not None:
                frame["iteration"] = iteration
            tx.branches = tuple(branch.id for branch in config.branches)
            return Stay((frame,))
        frame = frames[depth]
        joined = frame.get("joined")
        if joined is None:
            # The branches are out (a crash may have lost some): run the unfinished ones.
            tx.branches = tuple(b.id for b in config.branches if b.id not in frame["done"])
            return Stay((frame,))
        if not joined["ok"]:
            error = ExecutionError(f"parallel step '{path}': {joined['error']}")
            tx.entry(path, step.type, Action.FAILED, iteration=iteration, error=error_text(error))
            tx.event("step.failed", path, error=error_text(error))
            return Fail(error)
        tx.update(joined["updates"])
        outputs = joined["outputs"]
        if config.output:
            tx.update({config.output: outputs})
        tx.entry(path, step.type, Action.COMPLETED, iteration=iteration, output=outputs)
        tx.event("step.completed", path, output=outputs)
        return Done(Outcome(target=step.next, output=outputs))

    def _run_branches(self, wf: WorkflowDef, inflight: InFlight, advance: Advance) -> None:
        """Fan out in this process: run the branches on threads.

        Returns as soon as the parallel step joined: ``wait: any`` or N does not
        wait for slow branches, whose late results are dropped.
        """
        path, frame = parallel_position(wf, advance.execution)
        visit = frame["start"]
        if len(advance.branches) == 1:
            self._branch_to_end(wf, inflight, path, advance.branches[0], visit)
            return
        pool = ThreadPoolExecutor(
            max_workers=len(advance.branches), thread_name_prefix="flowkit-branch"
        )
        futures = [
            pool.submit(self._branch_to_end, wf, inflight, path, branch, visit)
            for branch in advance.branches
        ]
        try:
            for future in as_completed(futures):
                future.result()
                if has_joined(inflight.record):
                    break
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _branch_to_end(
        self, wf: WorkflowDef, inflight: InFlight, path: str, branch_id: str, visit: int
    ) -> Advance:
        """Run a branch in this process until it is recorded, waiting out its retries."""
        while True:
            advance = self._branch(wf, inflight, path, branch_id, visit)
            if not advance.delay:
                return advance
            self.clock.sleep(advance.delay)

    def _branch(
        self, wf: WorkflowDef, inflight: InFlight, path: str, branch_id: str, visit: int
    ) -> Advance:
        """Run one attempt of a branch and record it (a retry, a result, perhaps the join)."""
        result: BranchResult | None = None
        while True:
            execution = inflight.record
            located = locate_parallel(wf, execution, path, visit)
            if located is None or branch_id in located[1]["done"] or "joined" in located[1]:
                return Advance(execution=execution, dropped=True)
            step, frame = located
            branch = next(b for b in step.config.branches if b.id == branch_id)
            attempt = int(frame.get("attempts", {}).get(branch_id, 1))
            if result is None or result.attempt != attempt:
                result = self._run_branch_step(wf, execution, path, branch, frame, attempt)
                continue  # locate again: other branches may have been recorded meanwhile
            try:
                return self._record_branch(
                    wf, inflight, execution, step, path, frame, branch, result
                )
            except ConflictError:
                fresh = self.store.load(execution.id)
                if fresh is None:
                    raise
                inflight.refresh(fresh)

    def _run_branch_step(
        self,
        wf: WorkflowDef,
        execution: Execution,
        path: str,
        branch: StepDef,
        frame: Mapping[str, Any],
        attempt: int,
    ) -> BranchResult:
        tx = Tx(self, wf, execution)
        branch_path = f"{path}:{branch.id}"
        run = self._run_context(
            tx,
            branch,
            branch_path,
            frame.get("local"),
            frame.get("iteration"),
            attempt,
            frame["start"],
            branch.id,
        )
        if self.events.active:
            self._emit(execution, "step.started", branch_path, {"attempt": attempt})
        started = time.perf_counter()
        try:
            outcome = executor_for(branch.type).run(run)
        except Exception as exc:
            duration = (time.perf_counter() - started) * 1000
            return BranchResult(
                ok=False,
                error=error_text(exc),
                attempt=attempt,
                duration=duration,
                retry_delay=retry_delay(branch, attempt),
            )
        duration = (time.perf_counter() - started) * 1000
        if outcome.halt is not None:
            return BranchResult(
                ok=False,
                error="ExecutionError: a parallel branch cannot halt",
                attempt=attempt,
                duration=duration,
            )
        return BranchResult(
            ok=True,
            output=outcome.output,
            updates=dict(outcome.updates),
            input=outcome.input,
            attempt=attempt,
            duration=duration,
        )

    def _record_branch(
        self,
        wf: WorkflowDef,
        inflight: InFlight,
        execution: Execution,
        step: StepDef,
        path: str,
        frame: dict[str, Any],
        branch: StepDef,
        result: BranchResult,
    ) -> Advance:
        """Record one attempt of a branch in the parallel frame of ``execution``.

        A failed attempt with retries left is a ``retried`` entry and a delay
        (the executor runs the branch again after it); otherwise the branch is
        done, and the parallel step joins when enough branches are.

        Raises:
            ConflictError: the record changed since ``execution`` was read.
        """
        tx = Tx(self, wf, execution, inflight)
        branch_path = f"{path}:{branch.id}"
        iteration = frame.get("iteration")
        if not result.ok and result.retry_delay is not None:
            tx.entry(
                branch_path,
                branch.type,
                Action.RETRIED,
                iteration=iteration,
                attempt=result.attempt,
                duration_ms=result.duration,
                error=result.error,
            )
            tx.event(
                "step.retrying",
                branch_path,
                attempt=result.attempt,
                error=result.error,
                delay=result.retry_delay,
            )
            attempts = {**frame.get("attempts", {}), branch.id: result.attempt + 1}
            frame = {**frame, "attempts": attempts}
            tx.delay = result.retry_delay
            tx.branches = (branch.id,)
        else:
            tx.entry(
                branch_path,
                branch.type,
                Action.COMPLETED if result.ok else Action.FAILED,
                iteration=iteration,
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
            kept = attrs.asdict(result, filter=lambda field, _: field.name != "retry_delay")
            done = {**frame["done"], branch.id: kept}
            frame = {**frame, "done": done}
            joined = join_branches(step.config, done)
            if joined is not None:
                frame["joined"] = joined
        frames = (*tuple(tx.base.cursor.get("frames", ()))[:-1], frame)
        return self._commit(tx, inflight, frames)


@attrs.frozen(kw_only=True)
class BranchResult:
    """What one attempt of a parallel branch produced (kept in the frame until the join)."""

    ok: bool
    output: Any = None
    updates: dict[str, Any] = attrs.field(factory=dict)
    input: Any = None
    error: str | None = None
    attempt: int = 1
    duration: float = 0.0
    # When the attempt failed: the wait before the next one, or None when none is left.
    retry_delay: float | None = None


def join_branches(
    config: ParallelConfig, done: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The joined result once enough branches are done (or too many failed), else None."""
    names = [branch.id for branch in config.branches]
    succeeded = [name for name in names if name in done and done[name]["ok"]]
    failed = [name for name in names if name in done and not done[name]["ok"]]
    if config.wait == "all":
        needed = len(names)
        if failed:
            return {
                "ok": False,
                "error": f"branch '{failed[0]}' failed: {done[failed[0]]['error']}",
            }
    else:
        needed = 1 if config.wait == "any" else int(config.wait)
    if len(succeeded) >= needed:
        updates: dict[str, Any] = {}
        for name in succeeded:
            updates.update(done[name]["updates"])
        outputs = [done[name]["output"] if name in succeeded else None for name in names]
        return {"ok": True, "outputs": outputs, "updates": updates}
    if len(failed) > len(names) - needed:
        errors = "; ".join(f"{name}: {done[name]['error']}" for name in failed)
        return {
            "ok": False,
            "error": f"only {len(succeeded)} of {len(names)} branches succeeded and "
            f"{needed} were needed ({errors})",
        }
    return None


def has_joined(execution: Execution) -> bool:
    frames = execution.cursor.get("frames", ())
    return execution.status is not Status.RUNNING or not frames or "joined" in frames[-1]


def parallel_position(wf: WorkflowDef, execution: Execution) -> tuple[str, dict[str, Any]]:
    """The path of the parallel step the cursor is in, and its frame."""
    frames = execution.cursor["frames"]
    return step_levels(wf, execution.current_step or "", frames[:-1])[-1][1], frames[-1]


def locate_parallel(
    wf: WorkflowDef, execution: Execution, path: str, visit: int
) -> tuple[StepDef, dict[str, Any]] | None:
    """The parallel step at ``path`` and its frame, if the execution is still there."""
    frames = execution.cursor.get("frames", [])
    if execution.status is not Status.RUNNING or not frames:
        return None
    frame = frames[-1]
    if "done" not in frame or frame["start"] != visit:
        return None
    try:
        step, found = step_levels(wf, execution.current_step or "", frames[:-1])[-1]
    except (LookupError, StopIteration):
        return None
    if found != path or not isinstance(step.config, ParallelConfig):
        return None
    return step, frame

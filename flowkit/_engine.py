"""The engine: advances executions one checkpointed step at a time (SPEC §6).

Every executor drives the same functions: :meth:`Engine.step` runs the step
at an execution's position and writes one atomic checkpoint;
:meth:`Engine.run_branch` does the same for one branch of a parallel step.
The position is ``current_step`` plus a stack of frames in the cursor, one per
enclosing loop or parallel step, so a halt or a crash anywhere resumes there.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from typing import Any

import attrs

from . import _subworkflow  # noqa: F401  (registers the `workflow` step type)
from ._clock import Clock, SystemClock
from ._conditions import ConditionError, evaluate
from ._definitions import LoopConfig, ParallelConfig, StepDef, WorkflowDef
from ._errors import ConflictError, ExecutionError, FlowkitError, NotFoundError, ValidationError
from ._events import Event, EventBus
from ._executors import Executor, make_executor
from ._expressions import Scope
from ._inflight import InFlight, Tracker
from ._parse import load
from ._records import Action, Entry, Execution, Status
from ._results import Advance, Handle, Result
from ._steps import Decision, Outcome, StepRun, executor_for, over_items
from ._steps import validate_input as _validate_input
from ._store import Store, connect
from ._validate import check
from ._workflows import WorkflowRegistry, default_registry, definition_hash

__all__ = ["Engine"]

log = logging.getLogger("flowkit")

Frames = tuple[dict[str, Any], ...]


class _Tx:
    """The changes of one checkpoint: ctx updates, entries, status, position."""

    def __init__(
        self,
        engine: Engine,
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


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# Where the graph at one level of nesting goes after its step ran.
@attrs.frozen
class _Goto:
    target: str


@attrs.frozen
class _Exit:
    """The graph at this level ended (top level: the workflow; body: the iteration)."""


@attrs.frozen
class _Stay:
    frames: Frames


@attrs.frozen
class _Fail:
    error: BaseException


@attrs.frozen
class _Finish:
    """An end step ran: the workflow is complete."""


@attrs.frozen
class _Done:
    """The step at this level finished with an outcome."""

    outcome: Outcome


_Moved = _Goto | _Exit | _Stay | _Fail | _Finish
_Ran = _Done | _Stay | _Fail | _Finish

RUN, RESUME, TIMER = "run", "resume", "timer"


class _Exhausted(ExecutionError):
    """A loop ran out of iterations (``max``)."""


class _History(Sequence[str]):
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


class Engine:
    """Runs workflows on a store with an executor.

    Args:
        store: a :class:`Store` or a store URL; defaults to the configured store.
        executor: ``"inline"``, ``"thread"``, ``"dramatiq"`` or an executor
            object; defaults to the configured executor.
        services: the service registry steps call (default: the global one).
        workflows: where definitions are found by id (default: the global registry).
        clock: the time source (tests pass a controllable clock).
        lease_seconds: how long a running execution stays claimed without a
            checkpoint before :meth:`recover` may take it over.
        owner: this engine's name in leases (default: host, pid and a random part).
    """

    def __init__(
        self,
        store: Store | str | None = None,
        executor: str | Executor | None = None,
        *,
        services: Any = None,
        workflows: WorkflowRegistry | None = None,
        clock: Clock | None = None,
        lease_seconds: float | None = None,
        owner: str | None = None,
    ) -> None:
        from ._config import settings
        from ._services import default_registry as default_services

        config = settings()
        self._owns_store = store is None or isinstance(store, str)
        if store is None or isinstance(store, str):
            store = connect(store or config.store, **dict(config.store_options))
        self.store: Store = store
        self.services = services if services is not None else default_services
        if services is None and config.services:
            self.services.configure(config.services)
        self.workflows = workflows if workflows is not None else default_registry
        if workflows is None and config.workflows:
            from pathlib import Path

            base = Path(config.source).parent if config.source else Path.cwd()
            self.workflows.add_sources(config.workflows, base)
        self.clock: Clock = clock or SystemClock()
        lease = lease_seconds if lease_seconds is not None else config.lease_seconds
        self.lease = timedelta(seconds=lease)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.events = EventBus()
        self.executor = make_executor(executor or config.executor)
        self._tracker = Tracker(self)
        self._checked: set[int] = set()

    # --- public API -------------------------------------------------------------------------------

    def subscribe(
        self, callback: Callable[[Event], object], events: Iterable[str] | None = None
    ) -> Callable[[], None]:
        """Receive events: all, or those named (``step.*`` style prefixes work).

        Returns:
            A function that unsubscribes.

        Raises:
            ValueError: an unknown event name.
        """
        return self.events.subscribe(callback, events)

    def run(
        self,
        workflow: Any,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Start an execution and wait until it completes, fails or halts.

        Args:
            workflow: a definition, a Python ``Workflow``, or anything
                :func:`flowkit.load` accepts.
            input: the workflow's input.
            execution_id: the id to give the execution (default: a random one).
            timeout: how long to wait for a non-inline executor.

        Raises:
            ValidationError: the definition or the input is invalid; nothing is created.
            ConflictError: ``execution_id`` is taken.
            TimeoutError: the execution was still running after ``timeout``.
        """
        return self.start(workflow, input, execution_id=execution_id).result(timeout)

    def start(
        self,
        workflow: Any,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> Handle:
        """Create an execution and hand it to the executor.

        Returns at once with a background executor; with the inline executor,
        after the execution ran until it ended or halted.

        Raises:
            ValidationError: the definition or the input is invalid; nothing is created.
            ConflictError: ``execution_id`` is taken.
        """
        execution = self.create(workflow, input, execution_id=execution_id)
        future = self.executor.dispatch(self, execution.id)
        return Handle(self, execution.id, future)

    def resume(
        self,
        execution_id: str,
        *,
        approved: bool | None = None,
        response: Any = None,
        by: str | None = None,
        allow_changed_definition: bool = False,
        workflow: Any = None,
    ) -> Result:
        """Continue a halted execution and run it until it ends or halts again.

        Args:
            execution_id: the halted execution.
            approved: the decision, for an approval step.
            response: data stored in ctx as ``response``.
            by: who decides; must be one of the approval's ``approvers`` if it lists any.
            allow_changed_definition: resume although the definition changed since
                the execution started (the step to resume at must still exist).
            workflow: the definition to use when it is not registered.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ExecutionError: it completed or failed, or the resume is refused
                (no decision, approver not listed, changed definition); nothing changed.
            ConflictError: it is running, or another resume won the race.
        """
        advance = self.resume_step(
            execution_id,
            Decision(approved=approved, by=by, response=response),
            allow_changed_definition=allow_changed_definition,
            workflow=workflow,
        )
        if advance.running:
            future = self.executor.dispatch(self, execution_id)
            return Handle(self, execution_id, future).result()
        self._notify_parent(advance.execution)
        return Result.of(advance.execution)

    def resume_step(
        self,
        execution_id: str,
        decision: Decision,
        *,
        allow_changed_definition: bool = False,
        workflow: Any = None,
        internal: bool = False,
    ) -> Advance:
        """Apply a resume to a halted execution: one checkpoint, no further steps.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ExecutionError: the resume is refused (see :meth:`resume`); nothing changed.
            ConflictError: it is running, or another resume won the race.
        """
        execution = self.load(execution_id)
        self._check_resumable(execution)
        wf = self._definition_for(execution, workflow, allow_changed_definition)
        with self._track(execution) as inflight:
            tx = _Tx(self, wf, execution, inflight)
            tx.internal = internal
            digest = definition_hash(wf)
            if digest != execution.definition_hash:
                tx.adopt = digest  # from now on the execution runs the new definition
            tx.event("workflow.resumed", None, by=decision.by, approved=decision.approved)
            return self._run_top(tx, inflight, RESUME, decision)

    def wake_due(self, *, limit: int = 100) -> list[Result]:
        """Move on halted executions whose timer fired (approval timeouts)."""
        results = []
        for execution in self.store.due(self.clock.now(), limit=limit):
            try:
                advance = self.fire_timer(execution.id)
            except (ConflictError, NotFoundError, ExecutionError) as exc:
                log.warning("flowkit: cannot wake execution %s: %s", execution.id, exc)
                continue
            if advance.dropped:
                continue
            if advance.running:
                self.executor.dispatch(self, execution.id)
            final = self.load(execution.id)
            self._notify_parent(final)
            results.append(Result.of(final))
        return results

    def fire_timer(self, execution_id: str) -> Advance:
        """Fire the timer of a halted execution if it is due: one checkpoint."""
        execution = self.load(execution_id)
        if (
            execution.status is not Status.HALTED
            or execution.wake_at is None
            or execution.wake_at > self.clock.now()
        ):
            return Advance(execution=execution, dropped=True)
        wf = self._definition_for(execution, None, False)
        with self._track(execution) as inflight:
            tx = _Tx(self, wf, execution, inflight)
            tx.event("workflow.resumed", None, timer=True)
            return self._run_top(tx, inflight, TIMER, Decision())

    def recover(self, *, limit: int = 100) -> list[Result]:
        """Continue running executions whose process died (their lease expired).

        Sub-workflows are continued through their parents.
        """
        results = []
        for execution in self.store.stale(self.clock.now(), limit=limit):
            if execution.parent_id is not None:
                continue
            try:
                self._definition_for(execution, None, False)
                self._claim(execution, owner=self._lease_owner(False))
            except ConflictError:
                continue
            except (NotFoundError, ExecutionError) as exc:
                log.warning("flowkit: cannot recover execution %s: %s", execution.id, exc)
                continue
            self.executor.dispatch(self, execution.id)
            results.append(Result.of(self.load(execution.id)))
        return results

    def wait(self, execution_id: str, timeout: float | None = None) -> Result:
        """Poll the store until the execution is no longer running or pending.

        Raises:
            TimeoutError: it was still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while True:
            execution = self.load(execution_id)
            if execution.status not in (Status.RUNNING, Status.PENDING):
                return Result.of(execution)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"execution '{execution_id}' is still running after {timeout}s")
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def load(self, execution_id: str) -> Execution:
        """The stored execution.

        Raises:
            NotFoundError: there is none with that id.
        """
        execution = self.store.load(execution_id)
        if execution is None:
            raise NotFoundError(f"no execution '{execution_id}' in the store")
        return execution

    def definition(self, workflow: Any) -> WorkflowDef:
        """A validated definition for ``workflow``, registered by id in this engine.

        Raises:
            ValidationError: the definition is invalid.
        """
        register_services = getattr(workflow, "register_services", None)
        if callable(register_services):
            register_services(self.services)  # a Python Workflow's @wf.step functions
        wf = getattr(workflow, "definition", workflow)
        if not isinstance(wf, WorkflowDef):
            wf = load(wf)
        elif id(wf) not in self._checked:
            problems = check(wf)
            if problems:
                raise ValidationError(problems, subject=f"workflow '{wf.id}'")
        self._checked.add(id(wf))
        self.workflows.register(wf)
        return wf

    def close(self) -> None:
        """Stop background work; close the store if the engine opened it."""
        self._tracker.close()
        self.executor.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- driving ----------------------------------------------------------------------------------

    def drive(
        self, execution_id: str, *, deadline: float | None = None, notify: bool = True
    ) -> Result:
        """Advance an execution until it completes, fails or halts.

        Executors call this. A ``ConflictError`` (another process took the
        execution over) ends the drive quietly: the other process continues.

        Args:
            execution_id: the execution.
            deadline: a ``time.monotonic()`` value; past it the execution fails
                (used for sub-workflow timeouts).
            notify: when a sub-workflow ends, move its halted parent on (off
                when the parent itself is driving it).
        """
        execution = self.load(execution_id)
        if execution.status is Status.PENDING:
            execution = self._claim(execution, owner=self.owner)
        if execution.status is not Status.RUNNING:
            return Result.of(execution)
        wf = self._definition_for(execution, None, False)
        with self._track(execution) as inflight:
            while True:
                try:
                    advance = self._step(wf, inflight, deadline)
                except ConflictError:
                    log.info("flowkit: execution %s was taken over elsewhere", execution_id)
                    return Result.of(self.load(execution_id))
                if advance.branches:
                    self._run_branches(wf, inflight, advance)
                elif advance.delay:
                    self.clock.sleep(advance.delay)
                if not advance.running:
                    break
            final = inflight.record
        if notify:
            self._notify_parent(final)
        return Result.of(final)

    def step(self, execution_id: str, expected_seq: int | None = None) -> Advance:
        """Advance an execution by exactly one step and checkpoint it.

        Args:
            execution_id: the execution.
            expected_seq: when given, do nothing unless the execution's last
                entry is still this one (a duplicate or redelivered request is
                dropped). Unlike the version, the seq does not move when a
                lease is claimed or renewed.
        """
        execution = self.load(execution_id)
        stale = expected_seq is not None and execution.seq != expected_seq
        if stale or execution.status not in (Status.PENDING, Status.RUNNING):
            return Advance(execution=execution, dropped=True)
        if self.executor.hands_off:
            # Run the step under a lease: a second message for it (a redelivery,
            # a recovery) finds the lease taken and is dropped.
            held = execution.lease_owner not in (None, self.owner)
            expires = execution.lease_expires_at
            if held and expires is not None and expires > self.clock.now():
                return Advance(execution=execution, dropped=True)
            try:
                execution = self._claim(execution, owner=self.owner)
            except ConflictError:
                return Advance(execution=execution, dropped=True)
        elif execution.status is Status.PENDING:
            execution = self._claim(execution, owner=self.owner)
        wf = self._definition_for(execution, None, False)
        with self._track(execution) as inflight:
            return self._step(wf, inflight, None)

    def run_branch(
        self, execution_id: str, parallel_path: str, branch_id: str, visit: int
    ) -> Advance:
        """Run one branch of a parallel step and record it; join when enough are done.

        A branch of a parallel step that has joined already, or a duplicate, is dropped.
        """
        execution = self.load(execution_id)
        wf = self._definition_for(execution, None, False)
        with self._track(execution) as inflight:
            return self._branch(wf, inflight, parallel_path, branch_id, visit)

    def create(
        self,
        workflow: Any,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        parent_id: str | None = None,
    ) -> Execution:
        """Validate the input and store a new execution, without running it.

        Raises:
            ValidationError: the definition or the input is invalid; nothing is created.
            ConflictError: ``execution_id`` is taken.
        """
        wf = self.definition(workflow)
        first = wf.steps[0]
        if first.type == "start" and not first.config.validate_input:
            data = dict(input or {})
        else:
            data = _validate_input(wf, input)
        now = self.clock.now()
        # Running from the start, with a lease: if nobody advances it within the
        # lease (the process died, a message was lost), recover() picks it up.
        execution = Execution(
            id=execution_id or uuid.uuid4().hex,
            workflow_id=wf.id,
            workflow_version=wf.version,
            status=Status.RUNNING,
            input=data,
            current_step=first.id,
            parent_id=parent_id,
            created_at=now,
            updated_at=now,
            definition_hash=definition_hash(wf),
            lease_owner=self._lease_owner(parent_id is not None),
            lease_expires_at=now + self.lease,
        )
        self.store.create(execution)
        self._emit(execution, "workflow.started", None, {"input": data})
        return execution

    def check_resume(self, execution_id: str, decision: Decision) -> None:
        """Raise what :meth:`resume` would raise before changing anything.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ExecutionError: the resume would be refused (see :meth:`resume`).
            ConflictError: it is running.
        """
        execution = self.load(execution_id)
        self._check_resumable(execution)
        wf = self._definition_for(execution, None, False)
        frames = execution.cursor.get("frames", [])
        step, path = _levels(wf, execution.current_step or "", frames)[-1]
        tx = _Tx(self, wf, execution)
        visit = int(execution.cursor.get("visit", execution.seq + 1))
        run = self._run_context(tx, step, path, None, None, 1, visit)
        executor_for(step.type).check_resume(run, decision)

    # --- records ----------------------------------------------------------------------------------

    def _definition_for(
        self, execution: Execution, workflow: Any, allow_changed: bool
    ) -> WorkflowDef:
        if workflow is not None:
            wf = self.definition(workflow)
        else:
            wf = self.workflows.get(execution.workflow_id, execution.definition_hash)
        digest = execution.definition_hash
        if digest is not None and definition_hash(wf) != digest:
            where = execution.current_step
            if not allow_changed:
                raise ExecutionError(
                    f"the definition of workflow '{wf.id}' changed since execution "
                    f"'{execution.id}' started; resume with allow_changed_definition=True "
                    f"to continue at step '{where}' with the new definition"
                )
            frames = execution.cursor.get("frames", ())
            if where is not None and not _has_position(wf, where, frames):
                path = ":".join([where, *(f["at"] for f in frames if "at" in f)])
                raise ExecutionError(
                    f"cannot continue execution '{execution.id}' with the changed definition: "
                    f"step '{path}' no longer exists in workflow '{wf.id}'"
                )
        return wf

    def _check_resumable(self, execution: Execution) -> None:
        if execution.status.finished:
            raise ExecutionError(
                f"execution '{execution.id}' is {execution.status.value} and cannot be resumed"
            )
        if execution.status is not Status.HALTED:
            raise ConflictError(
                f"execution '{execution.id}' is {execution.status.value}, not halted; "
                "it cannot be resumed while it runs"
            )

    def _lease_owner(self, holding: bool = True) -> str | None:
        """Who holds a running execution's lease between steps: this engine, or
        nobody when steps travel through a queue (the next worker claims it)."""
        return self.owner if holding or not self.executor.hands_off else None

    def _claim(self, execution: Execution, *, owner: str | None = None) -> Execution:
        """Take (or, with ``owner=None`` from :meth:`recover`, re-queue) the lease.

        Raises:
            ConflictError: another process changed the execution first.
        """
        now = self.clock.now()
        claimed = attrs.evolve(
            execution,
            status=Status.RUNNING,
            version=execution.version + 1,
            updated_at=now,
            lease_owner=owner,
            lease_expires_at=now + self.lease,
        )
        self.store.checkpoint(claimed, (), execution.version)
        return claimed

    def _track(self, execution: Execution) -> _Tracked:
        return _Tracked(self._tracker, execution)

    def definition_of(self, execution: Execution) -> WorkflowDef:
        """The definition an execution runs (its registered workflow).

        Raises:
            NotFoundError: the workflow is not known in this process.
        """
        return self._definition_for(execution, None, False)

    def notify_parent(self, child: Execution) -> None:
        """Move a halted parent on after its sub-workflow ended on its own."""
        self._notify_parent(child)

    def _notify_parent(self, child: Execution) -> None:
        """A sub-workflow ended on its own (e.g. its timer fired): move its parent on."""
        if child.parent_id is None or child.status in (Status.RUNNING, Status.HALTED):
            return
        parent = self.store.load(child.parent_id)
        if parent is None or parent.status is not Status.HALTED:
            return
        if (parent.halt_data or {}).get("child_id") != child.id:
            return
        try:
            advance = self.resume_step(parent.id, Decision(), internal=True)
        except FlowkitError as exc:
            log.warning("flowkit: cannot continue parent %s: %s", parent.id, exc)
            return
        if advance.running:
            self.executor.dispatch(self, parent.id)
        else:
            self._notify_parent(advance.execution)

    # --- one step ---------------------------------------------------------------------------------

    def _step(self, wf: WorkflowDef, inflight: InFlight, deadline: float | None) -> Advance:
        tx = _Tx(self, wf, inflight.record, inflight)
        if deadline is not None and time.monotonic() > deadline:
            error = ExecutionError(f"workflow '{wf.id}' ran out of time")
            return self._settle(tx, inflight, _Fail(error))
        tx.deadline = deadline
        return self._run_top(tx, inflight, RUN, Decision())

    def _run_top(self, tx: _Tx, inflight: InFlight, mode: str, decision: Decision) -> Advance:
        execution = tx.base
        deadline = _deadline(tx.wf, execution)
        if deadline is not None and tx.now > deadline:
            # Checked before every step, resume and timer: halted time counts too.
            error = ExecutionError(f"workflow '{tx.wf.id}' timed out after {tx.wf.timeout:g}s")
            return self._settle(tx, inflight, _Fail(error))
        step = tx.wf.step(execution.current_step or "")
        if step is None:
            raise ExecutionError(
                f"execution '{execution.id}' is at step '{execution.current_step}', which "
                f"workflow '{tx.wf.id}' does not have"
            )
        frames = tuple(execution.cursor.get("frames", ()))
        moved = self._level(tx, tx.wf.steps, step, "", frames, 0, None, None, mode, decision)
        return self._settle(tx, inflight, moved)

    def _settle(self, tx: _Tx, inflight: InFlight, moved: _Moved) -> Advance:
        frames: Frames = ()
        if isinstance(moved, _Goto):
            tx.current_step = moved.target
        elif isinstance(moved, _Stay):
            frames = moved.frames
        elif isinstance(moved, (_Exit, _Finish)):
            tx.status = Status.COMPLETED
            tx.result = tx.ctx.get("result")
            tx.current_step = None
            tx.event("workflow.completed", None, output=tx.result)
        else:
            tx.status = Status.FAILED
            tx.error = _error_text(moved.error)
            tx.event("workflow.failed", None, error=tx.error)
        if tx.status is Status.HALTED:
            tx.event("workflow.halted", None, halt=tx.halt_data)
        return self._commit(tx, inflight, frames)

    def _commit(self, tx: _Tx, inflight: InFlight, frames: Frames) -> Advance:
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
            _remember_outputs(inflight, tx)
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

    # --- levels of nesting ------------------------------------------------------------------------

    def _level(
        self,
        tx: _Tx,
        graph: Sequence[StepDef],
        step: StepDef,
        prefix: str,
        frames: Frames,
        depth: int,
        local: dict[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> _Moved:
        """Run the step at one level and say where that level's graph goes next."""
        path = prefix + step.id
        if depth < len(frames) and frames[depth].get("step") != step.id:
            return _Fail(
                ExecutionError(
                    f"execution '{tx.base.id}' is inside step '{frames[depth].get('step')}', "
                    f"but the definition has '{step.id}' there"
                )
            )
        ran: _Ran
        if isinstance(step.config, LoopConfig):
            ran = self._loop(tx, step, path, frames, depth, local, iteration, mode, decision)
        elif isinstance(step.config, ParallelConfig):
            ran = self._parallel(tx, step, path, frames, depth, local, iteration)
        else:
            ran = self._leaf(tx, step, path, local, iteration, mode, decision)
        if isinstance(ran, _Done):
            if ran.outcome.finish:
                return _Finish()
            if ran.outcome.target is None:
                return _Exit()
            return _Goto(ran.outcome.target)
        if isinstance(ran, _Fail) and step.on_error is not None:
            error = ran.error
            tx.update(
                {"_last_error": {"step": path, "type": type(error).__name__, "message": str(error)}}
            )
            return _Goto(step.on_error)
        return ran

    # --- simple steps -----------------------------------------------------------------------------

    def _run_context(
        self,
        tx: _Tx,
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
            history=_History(self.store, execution.id, tx.entries),
            now=self.clock.now,
            local=local,
            input=execution.input,
        )
        return StepRun(
            engine=self,
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
        tx: _Tx,
        step: StepDef,
        path: str,
        local: dict[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> _Ran:
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
            return _Stay(())
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
            tx.recover_to = _recover_to(step, path)
            wakes = [_deadline(tx.wf, tx.base)]
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
            return _Stay(())
        return _Done(outcome)

    def _failed(
        self, tx: _Tx, step: StepDef, run: StepRun, exc: Exception, duration: float, retry: bool
    ) -> _Ran:
        error = _error_text(exc)
        delay = _retry_delay(step, run.attempt) if retry else None
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
            return _Fail(exc)
        tx.stay = {"attempt": run.attempt + 1, "visit": run.visit}
        if run.state is not None:
            tx.stay["state"] = run.state  # progress made before the failure is kept
        tx.delay = delay
        tx.event("step.retrying", run.path, attempt=run.attempt, error=error, delay=delay)
        return _Stay(())

    # --- loops ------------------------------------------------------------------------------------

    def _loop(
        self,
        tx: _Tx,
        step: StepDef,
        path: str,
        frames: Frames,
        depth: int,
        local: dict[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> _Ran:
        config: LoopConfig = step.config
        scope = Scope(tx.ctx, now=self.clock.now, local=local, input=tx.base.input)
        if depth < len(frames):
            frame = dict(frames[depth])
        else:
            try:
                entered = self._enter_loop(tx, step, path, scope, local)
            except ExecutionError as exc:
                return self._loop_failed(tx, step, path, exc, iteration)
            if entered is None:
                return self._loop_done(tx, step, path, [], iteration)
            frame = entered
            if tx.inflight is not None:
                tx.inflight.loop_outputs[f"{path}@{frame['start']}"] = {}
        tx.loops[path] = frame["start"]
        try:
            variables = self._loop_variables(config, scope, frame)
        except ExecutionError as exc:
            return self._loop_failed(tx, step, path, exc, iteration)
        body = next(child for child in config.do if child.id == frame["at"])
        moved = self._level(
            tx,
            config.do,
            body,
            f"{path}:",
            frames,
            depth + 1,
            {**(local or {}), **variables},
            frame["index"],
            mode,
            decision,
        )
        if isinstance(moved, _Exit):
            # A body step without a next continues with the step listed after it.
            position = next(i for i, child in enumerate(config.do) if child.id == body.id)
            if position + 1 < len(config.do) and body.type != "router":
                moved = _Goto(config.do[position + 1].id)
        if isinstance(moved, _Goto):
            frame["at"] = moved.target
            return _Stay((frame,))
        if isinstance(moved, _Stay):
            return _Stay((frame, *moved.frames))
        if isinstance(moved, (_Fail, _Finish)):
            return moved
        return self._next_iteration(tx, step, path, frame, local, iteration)

    def _next_iteration(
        self,
        tx: _Tx,
        step: StepDef,
        path: str,
        frame: dict[str, Any],
        local: Mapping[str, Any] | None,
        iteration: int | None,
    ) -> _Ran:
        config: LoopConfig = step.config
        index = frame["index"] + 1
        if tx.ctx.get("break_loop") is True:
            tx.update({"break_loop": False})
            return self._loop_done(tx, step, path, self._outputs(tx, path, frame), iteration)
        if config.while_ is None:
            if index >= frame["count"]:
                return self._loop_done(tx, step, path, self._outputs(tx, path, frame), iteration)
        else:
            holds = self._while_holds(tx, config, local, index)
            if isinstance(holds, ExecutionError):
                return self._loop_failed(tx, step, path, holds, iteration)
            if not holds:
                return self._loop_done(tx, step, path, self._outputs(tx, path, frame), iteration)
            if index >= config.max:
                exhausted = _Exhausted(
                    f"loop '{path}' ran {config.max} iterations, its max, and was not done"
                )
                return self._loop_failed(tx, step, path, exhausted, iteration)
        frame["index"] = index
        frame["at"] = config.do[0].id
        return _Stay((frame,))

    def _enter_loop(
        self,
        tx: _Tx,
        step: StepDef,
        path: str,
        scope: Scope,
        local: Mapping[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The frame of a loop that starts now, or None when it has no iterations."""
        config: LoopConfig = step.config
        frame: dict[str, Any] = {
            "step": step.id,
            "index": 0,
            "start": tx.seq,
            "at": config.do[0].id,
        }
        if config.while_ is not None:
            holds = self._while_holds(tx, config, local, 0)
            if isinstance(holds, ExecutionError):
                raise holds
            return frame if holds else None
        items = over_items(config.over, scope)
        if not isinstance(items, list):
            raise ExecutionError(
                f"loop '{path}': 'over' must give a list, got {type(items).__name__}"
            )
        if len(items) > config.max:
            raise _Exhausted(
                f"loop '{path}' has {len(items)} items, more than its max of {config.max}"
            )
        if not items:
            return None
        frame["count"] = len(items)
        return frame

    def _loop_variables(
        self, config: LoopConfig, scope: Scope, frame: Mapping[str, Any]
    ) -> dict[str, Any]:
        index = frame["index"]
        if config.while_ is not None:
            return {config.index_as: index}
        items = over_items(config.over, scope)
        if not isinstance(items, list) or len(items) != frame["count"]:
            raise ExecutionError(
                f"loop '{frame['step']}': the list in 'over' changed during the loop "
                f"(it had {frame['count']} items); don't modify the list a loop iterates over"
            )
        return {config.as_: items[index], config.index_as: index}

    def _while_holds(
        self, tx: _Tx, config: LoopConfig, local: Mapping[str, Any] | None, index: int
    ) -> bool | ExecutionError:
        cond = config.while_
        assert cond is not None
        scope = Scope(
            tx.ctx,
            now=self.clock.now,
            local={**(local or {}), config.index_as: index},
            input=tx.base.input,
        )
        try:
            return evaluate(cond.field, cond.op, cond.value, scope)
        except ConditionError as exc:
            return ExecutionError(f"while condition cannot be evaluated: {exc}")

    def _loop_done(
        self, tx: _Tx, step: StepDef, path: str, outputs: list[Any], iteration: int | None
    ) -> _Ran:
        config: LoopConfig = step.config
        if config.output:
            tx.update({config.output: outputs})
        tx.entry(path, step.type, Action.COMPLETED, iteration=iteration, output=outputs)
        tx.event("step.completed", path, output=outputs)
        return _Done(Outcome(target=step.next, output=outputs))

    def _outputs(self, tx: _Tx, path: str, frame: Mapping[str, Any]) -> list[Any]:
        """Each iteration's last output: remembered when the loop started in this
        process, else read back from the entries written since it began."""
        start = frame["start"]
        key = f"{path}@{start}"
        cached = None if tx.inflight is None else tx.inflight.loop_outputs.pop(key, None)
        if cached is not None:
            last = cached
            stored: Iterable[Entry] = ()
        else:
            last = {}
            stored = self.store.entries(tx.base.id, after=start) if start < tx.base.seq else []
        for entry in itertools.chain(stored, tx.entries):
            if _direct_output(entry, path):
                assert entry.iteration is not None
                last[entry.iteration] = entry.output
        return [last.get(index) for index in range(frame["index"] + 1)]

    def _loop_failed(
        self, tx: _Tx, step: StepDef, path: str, exc: ExecutionError, iteration: int | None
    ) -> _Ran:
        config: LoopConfig = step.config
        exhausted = isinstance(exc, _Exhausted)
        if exhausted:  # users see (and `_last_error` names) the public type
            exc = ExecutionError(str(exc))
        tx.entry(path, step.type, Action.FAILED, iteration=iteration, error=_error_text(exc))
        tx.event("step.failed", path, error=_error_text(exc))
        if exhausted and config.on_exhausted is not None:
            return _Done(Outcome(target=config.on_exhausted))
        return _Fail(exc)

    # --- parallel steps ---------------------------------------------------------------------------

    def _parallel(
        self,
        tx: _Tx,
        step: StepDef,
        path: str,
        frames: Frames,
        depth: int,
        local: dict[str, Any] | None,
        iteration: int | None,
    ) -> _Ran:
        config: ParallelConfig = step.config
        if depth >= len(frames):
            frame: dict[str, Any] = {"step": step.id, "start": tx.seq + 1, "done": {}}
            if local:
                frame["local"] = local
            if iteration is not None:
                frame["iteration"] = iteration
            tx.branches = tuple(branch.id for branch in config.branches)
            return _Stay((frame,))
        frame = frames[depth]
        joined = frame.get("joined")
        if joined is None:
            # The branches are out (a crash may have lost some): run the unfinished ones.
            tx.branches = tuple(b.id for b in config.branches if b.id not in frame["done"])
            return _Stay((frame,))
        if not joined["ok"]:
            error = ExecutionError(f"parallel step '{path}': {joined['error']}")
            tx.entry(path, step.type, Action.FAILED, iteration=iteration, error=_error_text(error))
            tx.event("step.failed", path, error=_error_text(error))
            return _Fail(error)
        tx.update(joined["updates"])
        outputs = joined["outputs"]
        if config.output:
            tx.update({config.output: outputs})
        tx.entry(path, step.type, Action.COMPLETED, iteration=iteration, output=outputs)
        tx.event("step.completed", path, output=outputs)
        return _Done(Outcome(target=step.next, output=outputs))

    def _run_branches(self, wf: WorkflowDef, inflight: InFlight, advance: Advance) -> None:
        """Fan out in this process: run the branches on threads.

        Returns as soon as the parallel step joined: ``wait: any`` or N does not
        wait for slow branches, whose late results are dropped.
        """
        path, frame = _parallel_position(wf, advance.execution)
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
                if _joined(inflight.record):
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
        result: _Branch | None = None
        while True:
            execution = inflight.record
            located = _locate_parallel(wf, execution, path, visit)
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
    ) -> _Branch:
        tx = _Tx(self, wf, execution)
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
            return _Branch(
                ok=False,
                error=_error_text(exc),
                attempt=attempt,
                duration=duration,
                retry_delay=_retry_delay(branch, attempt),
            )
        duration = (time.perf_counter() - started) * 1000
        if outcome.halt is not None:
            return _Branch(
                ok=False,
                error="ExecutionError: a parallel branch cannot halt",
                attempt=attempt,
                duration=duration,
            )
        return _Branch(
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
        result: _Branch,
    ) -> Advance:
        """Record one attempt of a branch in the parallel frame of ``execution``.

        A failed attempt with retries left is a ``retried`` entry and a delay
        (the executor runs the branch again after it); otherwise the branch is
        done, and the parallel step joins when enough branches are.

        Raises:
            ConflictError: the record changed since ``execution`` was read.
        """
        tx = _Tx(self, wf, execution, inflight)
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
            joined = _join(step.config, done)
            if joined is not None:
                frame["joined"] = joined
        frames = (*tuple(tx.base.cursor.get("frames", ()))[:-1], frame)
        return self._commit(tx, inflight, frames)


@attrs.frozen(kw_only=True)
class _Branch:
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


class _Tracked:
    def __init__(self, tracker: Tracker, execution: Execution) -> None:
        self._tracker = tracker
        self._execution = execution
        self._item: InFlight | None = None

    def __enter__(self) -> InFlight:
        self._item = self._tracker.enter(self._execution)
        return self._item

    def __exit__(self, *exc_info: object) -> None:
        assert self._item is not None
        self._tracker.leave(self._item)


def _direct_output(entry: Entry, loop_path: str) -> bool:
    """Whether ``entry`` is a finished step directly inside the loop at ``loop_path``."""
    return (
        entry.iteration is not None
        and entry.action in (Action.COMPLETED, Action.RESUMED)
        and entry.step_id.startswith(loop_path)
        and entry.step_id.rpartition(":")[0] == loop_path
    )


def _remember_outputs(inflight: InFlight, tx: _Tx) -> None:
    """Keep the iteration outputs a checkpoint wrote for the loops that started here."""
    for path, start in tx.loops.items():
        outputs = inflight.loop_outputs.get(f"{path}@{start}")
        if outputs is None:
            continue
        for entry in tx.entries:
            if _direct_output(entry, path):
                assert entry.iteration is not None
                outputs[entry.iteration] = entry.output


def _join(config: ParallelConfig, done: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
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


def _joined(execution: Execution) -> bool:
    frames = execution.cursor.get("frames", ())
    return execution.status is not Status.RUNNING or not frames or "joined" in frames[-1]


def _retry_delay(step: StepDef, attempt: int) -> float | None:
    """The wait before the next attempt, or None when no retry is left."""
    config = step.config
    if attempt > getattr(config, "retries", 0):
        return None
    delay: float = config.retry_delay * config.retry_backoff ** (attempt - 1)
    return delay


def _recover_to(step: StepDef, path: str) -> str | None:
    """The step (path) a resume continues at: the halt's target, else the step itself."""
    target: str | None = step.id
    if step.type == "halt":
        target = step.config.resume_step or step.next
        if target is None:
            return None
    parent, sep, _ = path.rpartition(":")
    return f"{parent}{sep}{target}"


def _deadline(wf: WorkflowDef, execution: Execution) -> datetime | None:
    """When the whole execution times out (the workflow's ``timeout``), if it does."""
    if wf.timeout is None:
        return None
    return execution.created_at + timedelta(seconds=wf.timeout)


def _levels(
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


def _has_position(wf: WorkflowDef, top: str, frames: Sequence[Mapping[str, Any]]) -> bool:
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


def _parallel_position(wf: WorkflowDef, execution: Execution) -> tuple[str, dict[str, Any]]:
    """The path of the parallel step the cursor is in, and its frame."""
    frames = execution.cursor["frames"]
    return _levels(wf, execution.current_step or "", frames[:-1])[-1][1], frames[-1]


def _locate_parallel(
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
        step, found = _levels(wf, execution.current_step or "", frames[:-1])[-1]
    except (LookupError, StopIteration):
        return None
    if found != path or not isinstance(step.config, ParallelConfig):
        return None
    return step, frame

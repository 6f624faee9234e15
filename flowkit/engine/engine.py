"""The public :class:`Engine`: runs workflows on a store with a driver (SPEC §6).

The engine is composed of small parts, each in its own module: the
:class:`~flowkit.engine.stepper.Stepper` runs one step and writes its
checkpoint, :class:`~flowkit.engine.fanout.Fanout` runs parallel branches,
the lease :class:`~flowkit.engine.leases.Tracker` keeps running executions
claimed, the :class:`~flowkit.engine.events.EventBus` delivers events, and a
:class:`~flowkit.abc.Driver` decides where steps run. This module holds the
life of an execution: create, drive, resume, timers, recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_future
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from .. import telemetry
from ..abc import Clock, Decision, Driver, Store
from ..adapters import connect, make_driver
from ..config import settings
from ..cursor import Cursor
from ..definitions import (
    WorkflowDef,
    WorkflowRegistry,
    check,
    definition_hash,
    load,
    validate_input,
)
from ..definitions import default_registry as default_workflows
from ..definitions.workflows import import_workflows
from ..errors import ConflictError, ExecutionError, FlowkitError, NotFoundError, ValidationError
from ..limits import problem_in
from ..records import Action, Entry, Execution, Schedule, Signal, Status
from ..services import ServiceRegistry
from ..services import default_registry as default_services
from .clock import SystemClock
from .control import cancel_requested, check_cancellable, check_retryable, child_of, retried
from .events import Event, EventBus
from .fanout import Fanout
from .leases import InFlight, Leases, Tracker
from .position import has_position, position_path, step_levels
from .results import Advance, Result, Sweep
from .schedules import schedule_problems, schedule_slots, slot_execution_id
from .stepper import NO_DECISION, RESUME, TIMER, Stepper, kind_of
from .transaction import Transaction, error_text

__all__ = ["Engine", "Handle"]

log = logging.getLogger("flowkit")

#: How many times ``cancel``, or a signal's delivery, reads an execution again that moved
#: on meanwhile.
ATTEMPTS = 5


class Engine:
    """Runs workflows on a store with a driver.

    Args:
        store: a :class:`~flowkit.abc.Store` or a store URL; defaults to the configured store.
        executor: ``"inline"``, ``"thread"``, ``"dramatiq"`` or a
            :class:`~flowkit.abc.Driver`; defaults to the configured executor.
        services: the service registry steps call (default: the global one).
        workflows: where definitions are found by id (default: the global registry).
        clock: the time source (tests pass a controllable clock).
        lease_seconds: how long a running execution stays claimed without a
            checkpoint before :meth:`recover` may take it over.
        owner: this engine's name in leases (default: host, pid and a random part).
        max_recoveries: how many times :meth:`recover` takes over an execution
            whose step never reaches its next checkpoint before failing it
            (default: the ``max_recoveries`` setting, 5).

    The modules of the ``imports`` setting are imported first: they register
    their services, and the workflows they define are registered in ``workflows``.

    Raises:
        ConfigError: a setting is wrong, or a module of ``imports`` cannot be imported.

    Attributes:
        store: the store.
        driver: the driver that moves executions forward.
        resources: objects extensions attach to this engine, by key (e.g. the
            model provider of :mod:`flowkit.ai`); steps read them as ``run.resources``.
    """

    def __init__(
        self,
        store: Store | str | None = None,
        executor: str | Driver | None = None,
        *,
        services: ServiceRegistry | None = None,
        workflows: WorkflowRegistry | None = None,
        clock: Clock | None = None,
        lease_seconds: float | None = None,
        owner: str | None = None,
        max_recoveries: int | None = None,
    ) -> None:
        config = settings()
        self._owns_store = store is None or isinstance(store, str)
        if store is None or isinstance(store, str):
            store = connect(store or config.store, **dict(config.store_options))
        self.store: Store = store
        self.services = services if services is not None else default_services
        if services is None and config.services:
            self.services.configure(config.services)
        self.workflows = workflows if workflows is not None else default_workflows
        if workflows is None and config.workflows:
            base = Path(config.source).parent if config.source else Path.cwd()
            self.workflows.add_sources(config.workflows, base)
        if config.imports:  # they register services; the workflows they define go here
            import_workflows(config.imports, self.workflows)
        self.clock: Clock = clock or SystemClock()
        lease = lease_seconds if lease_seconds is not None else config.lease_seconds
        self.lease = timedelta(seconds=lease)
        self.max_recoveries = (
            max_recoveries if max_recoveries is not None else config.max_recoveries
        )
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.events = EventBus()
        self.driver = make_driver(executor or config.executor)
        self.resources: dict[str, Any] = {}
        leases = Leases(store=self.store, clock=self.clock, duration=self.lease, owner=self.owner)
        self._tracker = Tracker(leases)
        self._stepper = Stepper(
            leases=leases,
            events=self.events,
            hands_off=self.driver.hands_off,
            services=self.services,
            resources=self.resources,
            children=self,
        )
        self._fanout = Fanout(self._stepper)
        self._checked: set[int] = set()

    # --- running workflows ---------------------------------------------------------------------

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
            timeout: how long to wait for a driver that runs elsewhere.

        Raises:
            ValidationError: the definition or the input is invalid; nothing is created.
            ConflictError: ``execution_id`` is taken.
            TimeoutError: the execution was still running after ``timeout``.
        """
        return self.start(workflow, input, execution_id=execution_id).result(timeout)

    async def run_async(
        self,
        workflow: Any,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        """:meth:`run` for asyncio: the same arguments, result and errors.

        It never blocks the event loop: the execution is created in a worker
        thread (with the inline driver, it also runs there until it ends or
        halts), then its result is awaited with :meth:`Handle.result_async`.

        Cancelling the await cancels only the waiting. A created execution goes
        on until it ends or halts, and its result stays in the store (pass
        ``execution_id`` to look it up); if the worker thread had not started
        yet, nothing was created.

        Raises:
            ValidationError: the definition or the input is invalid; nothing is created.
            ConflictError: ``execution_id`` is taken.
            TimeoutError: the execution was still running after ``timeout``.
        """
        handle = await asyncio.to_thread(self.start, workflow, input, execution_id=execution_id)
        return await handle.result_async(timeout)

    def start(
        self,
        workflow: Any,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> Handle:
        """Create an execution and hand it to the driver.

        Returns at once with a background driver; with the inline driver,
        after the execution ran until it ended or halted.

        Raises:
            ValidationError: the definition or the input is invalid; nothing is created.
            ConflictError: ``execution_id`` is taken.
        """
        execution = self.create(workflow, input, execution_id=execution_id)
        future = self.driver.dispatch(self, execution.id)
        return Handle(self, execution.id, future, workflow_id=execution.workflow_id)

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
            ValidationError: ``response`` is not JSON data within the limits of
                :mod:`flowkit.limits` (or ``by`` cannot be stored); nothing changed.
        """
        decision = Decision(approved=approved, by=by, response=response)
        return self._resume(execution_id, decision, allow_changed_definition, workflow).result()

    async def resume_async(
        self,
        execution_id: str,
        *,
        approved: bool | None = None,
        response: Any = None,
        by: str | None = None,
        allow_changed_definition: bool = False,
        workflow: Any = None,
    ) -> Result:
        """:meth:`resume` for asyncio: the same arguments, result and errors.

        It never blocks the event loop: the resume is applied in a worker
        thread (with the inline driver, the execution also runs there until it
        ends or halts again), then its result is awaited with
        :meth:`Handle.result_async`.

        Cancelling the await cancels only the waiting: an execution that was
        resumed goes on until it ends or halts; if the worker thread had not
        started yet, the execution was not resumed.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ExecutionError: it completed or failed, or the resume is refused; nothing changed.
            ConflictError: it is running, or another resume won the race.
            ValidationError: ``response`` or ``by`` cannot be stored; nothing changed.
        """
        decision = Decision(approved=approved, by=by, response=response)
        handle = await asyncio.to_thread(
            self._resume, execution_id, decision, allow_changed_definition, workflow
        )
        return await handle.result_async()

    def _resume(
        self, execution_id: str, decision: Decision, allow_changed_definition: bool, workflow: Any
    ) -> Handle:
        """Apply a resume and hand the execution to the driver if it goes on."""
        advance = self.resume_step(
            execution_id,
            decision,
            allow_changed_definition=allow_changed_definition,
            workflow=workflow,
        )
        future = None
        if advance.running:
            future = self.driver.dispatch(self, execution_id)
        else:
            self.notify_parent(advance.execution)
        return Handle(self, execution_id, future, workflow_id=advance.execution.workflow_id)

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
            ValidationError: the response cannot be stored (see :meth:`resume`).
        """
        _check_decision(execution_id, decision)
        execution = self.load(execution_id)
        _check_resumable(execution, internal=internal)
        wf = self._definition_for(execution, workflow, allow_changed_definition)
        with self._track(execution) as inflight:
            tx = self._stepper.transaction(wf, inflight)
            tx.internal = internal
            digest = definition_hash(wf)
            if digest != execution.definition_hash:
                tx.adopt = digest  # from now on the execution runs the new definition
            tx.event("workflow.resumed", None, by=decision.by, approved=decision.approved)
            return self._stepper.run_top(tx, inflight, RESUME, decision)

    def retry(
        self,
        execution_id: str,
        *,
        allow_changed_definition: bool = False,
        workflow: Any = None,
    ) -> Result:
        """Continue a failed execution at the step that failed, and run it until it ends
        or halts.

        The step runs again with the ctx it had and where it was: steps,
        loop iterations and parallel branches that completed do not run again
        (failed branches do), and the step keeps its idempotency key. A
        sub-workflow that failed under it is retried the same way. The step
        gets its ``retries`` afresh. An execution that failed because the
        workflow's ``timeout`` passed fails again at once.

        Args:
            execution_id: the failed execution.
            allow_changed_definition: continue with a definition that changed
                since the execution started (the step must still exist).
            workflow: the definition to use when it is not registered.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ExecutionError: it is not failed, or its definition changed; nothing changed.
            ConflictError: another process retried it first; nothing changed.
        """
        record = self.retry_step(
            execution_id, allow_changed_definition=allow_changed_definition, workflow=workflow
        )
        future = self.driver.dispatch(self, execution_id)
        return Handle(self, execution_id, future, workflow_id=record.workflow_id).result()

    def retry_step(
        self, execution_id: str, *, allow_changed_definition: bool = False, workflow: Any = None
    ) -> Execution:
        """Take a failed execution (and the failed sub-workflow under it) up again at the
        step that failed: one checkpoint each, no step run. Returns the running record.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ExecutionError: it is not failed, or its definition changed; nothing changed.
            ConflictError: another process changed it first; nothing changed.
        """
        execution = self.load(execution_id)
        check_retryable(execution)
        wf = self._definition_for(execution, workflow, allow_changed_definition)
        child = self._sub_workflow(execution)
        if child is not None and child.status is Status.FAILED:
            self.retry_step(child.id, allow_changed_definition=allow_changed_definition)
        last = self.store.entries(execution.id, after=execution.seq - 1)
        record, entry = retried(
            execution,
            last[-1] if last else None,
            now=self.clock.now(),
            lease=self.lease,
            definition_hash=definition_hash(wf),
            workflow_version=wf.version,
        )
        self.store.checkpoint(record, [entry], execution.version, changed=())
        telemetry.checkpointed(execution, record, [entry])  # metrics and logs
        self._stepper.emit(record, "workflow.retried", entry.step_id, {})
        return record

    def cancel(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        by: str | None = None,
        workflow: Any = None,
    ) -> Result:
        """Cancel an execution, with the sub-workflow it is running.

        A pending, waiting or halted execution is cancelled at once. A running
        one is asked to stop: the step under way finishes, but the execution
        ends cancelled instead of writing that step's result (a long service
        can see it coming with ``flowkit.current().cancel_requested``); its
        result says ``running`` until then (``engine.wait`` gives the final
        one). Either way the log gets a ``cancelled`` entry with the reason and
        who asked, and ``error`` holds the reason. Like :meth:`resume`, it
        needs the workflow's definition: registered, or given as ``workflow``.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ExecutionError: it completed, failed or was cancelled already; nothing changed.
            ValidationError: ``reason`` or ``by`` is not storable text; nothing changed.
        """
        problems = [
            problem
            for problem in (problem_in(reason, "reason"), problem_in(by, "by"))
            if problem is not None
        ]
        if problems:
            raise ValidationError(problems, subject=f"cancel of execution '{execution_id}'")
        for _ in range(ATTEMPTS):
            execution = self.load(execution_id)
            check_cancellable(execution)
            try:
                final, future = self._cancel(execution, reason, by, notify=True, workflow=workflow)
            except ConflictError:
                continue  # it moved on meanwhile: look again
            if future is None:
                return Result.of(final)
            # It runs the compensations of its completed steps before it ends cancelled.
            return Handle(self, execution_id, future, workflow_id=final.workflow_id).result()
        raise ConflictError(f"execution '{execution_id}' kept changing; cancel it again")

    def _cancel(
        self,
        execution: Execution,
        reason: str | None,
        by: str | None,
        *,
        notify: bool,
        workflow: Any = None,
    ) -> tuple[Execution, Future[Result] | None]:
        """One attempt: cancel it (or ask its runner to) and its running sub-workflow;
        with ``notify``, a parent halted on it then takes its step's failure. When it
        has compensations to run first, it is handed to the driver (the future).

        Raises:
            ConflictError: it changed since it was read.
        """
        wf = self._definition_for(execution, workflow, True)
        future = None
        if execution.status is Status.RUNNING:
            request = {"reason": reason, "by": by}
            cursor = attrs.evolve(Cursor.of(execution), cancel=request).to_json()
            final = attrs.evolve(
                execution,
                cursor=cursor,
                version=execution.version + 1,
                updated_at=self.clock.now(),
            )
            self.store.checkpoint(final, (), execution.version, changed=())
            self._stepper.emit(final, "workflow.cancelling", None, request)
        else:
            with self._track(execution) as inflight:
                tx = self._stepper.transaction(wf, inflight)
                final = self._stepper.cancel(tx, inflight, reason, by).execution
            if final.status is Status.RUNNING:  # compensations first
                future = self.driver.dispatch(self, final.id)
                if future is None:
                    final = self.load(final.id)  # the inline driver ran them
            elif notify:
                self.notify_parent(final)
        # The sub-workflow it runs or halted in goes too (found from the position read
        # before this write); it finds its parent no longer waiting, so that stays put.
        child = self._sub_workflow(execution)
        if child is not None and not child.status.finished:
            with contextlib.suppress(ConflictError, ExecutionError):
                self._cancel(child, reason, by, notify=False)  # its future: not awaited
        return final, future

    def _adopt_cancel(self, inflight: InFlight) -> bool:
        """After a conflict: whether a cancel was asked for while this process ran the
        execution. If so, the latest record is adopted, and the next step ends the
        execution (after its compensations); the step that ran is not recorded."""
        latest = self.store.load(inflight.record.id)
        if latest is None or latest.status is not Status.RUNNING or not cancel_requested(latest):
            return False
        inflight.refresh(latest)
        return True

    def _sub_workflow(self, execution: Execution) -> Execution | None:
        """The sub-workflow the step at the execution's position runs (or ran), if any."""
        child_id = child_of(execution)
        child = None if child_id is None else self.store.load(child_id)
        return child if child is not None and child.parent_id == execution.id else None

    # --- schedules (SPEC §16) -------------------------------------------------------------------

    def schedule(
        self,
        name: str,
        workflow_id: str,
        *,
        cron: str,
        input: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
    ) -> Schedule:
        """Save a schedule that starts ``workflow_id`` at every slot of ``cron``, read
        on the wall clock of ``timezone``, and return it.

        A schedule with that name is replaced, unless it is the same (workflow,
        expression, time zone and input): then it is kept as it is, with its
        ``created_at`` and ``last_slot``, so that saving it again changes nothing.

        :meth:`wake_due` starts the executions, in whichever process runs it:
        one per slot, with the id ``<name>@<slot in UTC>``, so each slot starts
        once however many processes try. When several slots passed while
        nothing ran, only the latest starts; no slot before now starts.
        Daylight-saving changes are described in :mod:`flowkit.engine.schedules`.

        Raises:
            ValidationError: the name, the expression, the time zone or the input
                is not valid; nothing is saved.
            NotFoundError: the workflow is not known here.
        """
        problems = schedule_problems(name, cron, timezone)
        if problems:
            raise ValidationError(problems, subject=f"schedule {name!r}")
        wf = self.workflows.get(workflow_id)
        _validated_input(wf, input)
        schedule = Schedule(
            name=name,
            workflow_id=wf.id,
            cron=cron,
            timezone=timezone,
            input=dict(input or {}),
            created_at=self.clock.now(),
        )
        for stored in self.store.schedules():
            if stored.name == name and _same_schedule(stored, schedule):
                return stored  # saving it again (a deploy script) keeps its history
        self.store.save_schedule(schedule)
        return schedule

    def schedules(self) -> list[Schedule]:
        """Every schedule in the store, by name (see :func:`flowkit.schedule_slots` for
        when each fires next)."""
        return self.store.schedules()

    def unschedule(self, name: str) -> bool:
        """Delete a schedule; the executions it started stay. False if there was none."""
        return self.store.delete_schedule(name)

    def wake_due(self, *, limit: int = 100) -> Sweep:
        """Move on executions whose timer fired (sleeps that are over, approval and
        wait timeouts, waits whose signal came), then start the executions of
        schedules that are due.

        Each execution is woken on its own: one that cannot be is listed in
        ``Sweep.stuck`` and the others go on. A schedule starts one execution
        per slot, only the latest when several passed (see :meth:`schedule`).
        """
        sweep = Sweep()
        for execution in self.store.due(self.clock.now(), limit=limit):
            try:
                final = self.wake(execution.id)
            except ConflictError:
                continue  # another process moved it on first
            except Exception as exc:  # one execution never stops the others
                _stuck(sweep, execution.id, "wake", exc)
                continue
            if final is not None:
                sweep.append(Result.of(final))
        now = self.clock.now()
        for schedule in self.store.schedules():
            execution_id = schedule.name
            try:
                slots = schedule_slots(schedule, now)
                if slots.due is None:
                    continue
                execution_id = slot_execution_id(schedule.name, slots.due)
                started = self._start_slot(schedule, slots.due, slots.missed)
            except Exception as exc:  # one schedule never stops the others
                _stuck(sweep, execution_id, "start", exc)
                continue
            if started is not None:
                sweep.append(started)
        return sweep

    def _start_slot(self, schedule: Schedule, slot: datetime, missed: int) -> Result | None:
        """Start the execution of a schedule's due slot unless another process did,
        then record the slot as the schedule's last."""
        execution_id = slot_execution_id(schedule.name, slot)
        if missed > 1:
            log.warning(
                "schedule %s missed %d slots; only the latest starts (%s)",
                schedule.name,
                missed,
                execution_id,
            )
        wf = self.workflows.get(schedule.workflow_id)
        try:
            self.create(wf, schedule.input, execution_id=execution_id)
        except ConflictError:  # another process started this slot
            self.store.schedule_fired(schedule.name, slot)
            return None
        self.store.schedule_fired(schedule.name, slot)
        self.driver.dispatch(self, execution_id)
        return Result.of(self.load(execution_id))

    def wake(self, execution_id: str) -> Execution | None:
        """Fire an execution's timer if it is due, and hand it to the driver if it goes
        on; the execution then, or None when it was not due.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ConflictError: another process moved it on first.
        """
        advance = self.fire_timer(execution_id)
        if advance.dropped:
            return None
        if advance.running:
            self.driver.dispatch(self, execution_id)
        final = self.load(execution_id)
        self.notify_parent(final)
        return final

    def fire_timer(self, execution_id: str) -> Advance:
        """Fire the timer of a halted or waiting execution if it is due: one checkpoint."""
        execution = self.load(execution_id)
        if (
            execution.status not in (Status.HALTED, Status.WAITING)
            or execution.wake_at is None
            or execution.wake_at > self.clock.now()
        ):
            return Advance(execution=execution, dropped=True)
        wf = self._definition_for(execution, None, False)
        with self._track(execution) as inflight:
            tx = self._stepper.transaction(wf, inflight)
            tx.event("workflow.resumed", None, timer=True)
            advance = self._stepper.run_top(tx, inflight, TIMER, NO_DECISION)
        return self._unless_signalled(advance)

    def signal(
        self, execution_id: str, name: str, payload: Any = None, *, key: str | None = None
    ) -> bool:
        """Send the signal ``name`` to an execution; False when ``key`` was seen before.

        The signal is kept in the execution's mailbox in the store. When the
        execution waits for ``name`` it is moved on at once: on Dramatiq by its
        timer message, sent from here; with the inline and thread executors
        here, when its workflow is known in this process, else by the next
        ``wake_due`` of any process (``flowkit wake``, ``flowkit worker``).
        Otherwise the signal waits in the mailbox for a ``wait`` step; a halted
        execution keeps it too (``resume`` is what moves a halt on). Signals are
        consumed once each, oldest first.

        Raises:
            NotFoundError: no such execution.
            ExecutionError: it completed, failed or was cancelled.
            ValidationError: the name, payload or key cannot be stored; nothing was sent.
        """
        subject = f"signal to execution '{execution_id}'"
        if not isinstance(name, str) or not name:
            raise ValidationError(["the signal name must be a non-empty string"], subject=subject)
        problems = [
            problem
            for problem in (
                _signal_text(name, "name"),
                problem_in(payload, "payload"),
                None if key is None else _signal_text(key, "key"),
            )
            if problem is not None
        ]
        if problems:
            raise ValidationError(problems, subject=subject)
        now = self.clock.now()
        sent = self.store.send_signal(
            Signal(
                execution_id=execution_id, seq=0, name=name, payload=payload, key=key, sent_at=now
            )
        )
        if sent is None:
            return False
        execution = self.store.load(execution_id)
        if execution is not None:
            self._stepper.emit(
                execution, "signal.received", None, {"name": name, "seq": sent.seq, "key": key}
            )
            self._deliver(execution, name)
        return True

    def _deliver(self, execution: Execution, name: str) -> None:
        """If the execution waits for signal ``name``, make its timer due and wake it."""
        for _ in range(ATTEMPTS):
            try:
                due = self._make_due(execution, name)
            except ConflictError:  # it changed meanwhile: look again
                latest = self.store.load(execution.id)
                if latest is None:
                    return
                execution = latest
                continue
            if due is None:
                return  # it does not wait for it (yet): a wait step finds it in the mailbox
            try:
                self.driver.wake(self, execution.id)
            except ConflictError:
                pass  # another process delivered it first
            except NotFoundError as exc:
                log.info("signal %r to %s waits for a worker: %s", name, execution.id, exc)
            return

    def _unless_signalled(self, advance: Advance) -> Advance:
        """After a ``wait`` step began to wait: if its signal came meanwhile (a sender
        that saw the execution still running left it in the mailbox), make the timer
        due now, so the signal is delivered."""
        execution = advance.execution
        name = _waits_for(execution)
        if name is None or not self.store.signals(execution.id, name=name):
            return advance
        try:
            poked = self._make_due(execution, name)
        except ConflictError:
            return advance  # whoever moved it on reads the mailbox
        return advance if poked is None else attrs.evolve(advance, execution=poked)

    def _make_due(self, execution: Execution, name: str) -> Execution | None:
        """Set the timer of an execution waiting for signal ``name`` to now (one
        checkpoint); None when it does not wait for it.

        Raises:
            ConflictError: it changed since it was read.
        """
        if _waits_for(execution) != name:
            return None
        now = self.clock.now()
        if execution.wake_at is not None and execution.wake_at <= now:
            return execution
        due = attrs.evolve(execution, wake_at=now, version=execution.version + 1, updated_at=now)
        self.store.checkpoint(due, (), execution.version, changed=())
        return due

    def recover(self, *, limit: int = 100) -> Sweep:
        """Continue running executions whose process died (their lease expired).

        Sub-workflows are continued through their parents. Each execution is
        recovered on its own: one that cannot be (its workflow is unknown here,
        its step raises) is listed in ``Sweep.stuck`` and the others go on. An
        execution taken over ``max_recoveries`` times without reaching another
        checkpoint fails, with the reason.
        """
        sweep = Sweep()
        for execution in self.store.stale(self.clock.now(), limit=limit):
            if execution.parent_id is not None:
                continue
            try:
                self._definition_for(execution, None, False)
                claimed = self._take_over(execution, owner=self._stepper.lease_owner(False))
                if claimed.status is Status.RUNNING:
                    self.driver.dispatch(self, execution.id)
                final = self.load(execution.id)
            except ConflictError:
                continue  # another process took it first
            except Exception as exc:  # one execution never stops the others
                _stuck(sweep, execution.id, "recover", exc)
                continue
            sweep.append(Result.of(final))
        return sweep

    def wait(self, execution_id: str, timeout: float | None = None) -> Result:
        """Poll the store until the execution is no longer running or pending.

        Raises:
            TimeoutError: it was still pending or running after ``timeout``
                seconds; the message says which, and at which step.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while True:
            execution = self.load(execution_id)
            if not _busy(execution):
                return Result.of(execution)
            if deadline is not None and time.monotonic() >= deadline:
                raise _timed_out(execution, timeout)
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

    def definition_of(self, execution: Execution) -> WorkflowDef:
        """The definition an execution runs (its registered workflow).

        Raises:
            NotFoundError: the workflow is not known in this process.
        """
        return self._definition_for(execution, None, False)

    def close(self) -> None:
        """Stop background work; close the store if the engine opened it."""
        self._tracker.close()
        self.driver.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- what drivers call -----------------------------------------------------------------------

    def drive(
        self, execution_id: str, *, deadline: float | None = None, notify: bool = True
    ) -> Result:
        """Advance an execution until it completes, fails or halts.

        Drivers call this. A ``ConflictError`` (another process took the
        execution over) ends the drive quietly: the other process continues.

        Args:
            execution_id: the execution.
            deadline: a ``time.monotonic()`` value; past it the execution fails
                (used for sub-workflow timeouts).
            notify: when a sub-workflow ends, move its halted parent on (off
                when the parent itself is driving it).
        """
        return Result.of(self._drive(execution_id, deadline, notify))

    def _drive(self, execution_id: str, deadline: float | None, notify: bool) -> Execution:
        execution = self.load(execution_id)
        if execution.status is Status.PENDING:
            execution = self._claim(execution, owner=self.owner)
        if execution.status is not Status.RUNNING:
            return execution
        wf = self._definition_for(execution, None, False)
        with self._track(execution) as inflight:
            while True:
                try:
                    advance = self._stepper.step(wf, inflight, deadline)
                except ConflictError:
                    if self._adopt_cancel(inflight):
                        continue  # the next step ends it
                    log.info("execution %s was taken over elsewhere", execution_id)
                    return self.load(execution_id)
                if advance.fanout is not None:
                    self._fanout.run_all(wf, inflight, advance.fanout)
                elif advance.delay:
                    self.clock.sleep(advance.delay)
                if not advance.running:
                    break
            final = inflight.record
        if self._unless_signalled(advance) is not advance:  # its signal came: deliver it now
            try:
                woken = self.fire_timer(execution_id)
            except ConflictError:
                return self.load(execution_id)
            if woken.running:
                return self._drive(execution_id, deadline, notify)
            final = woken.execution
        if notify:
            self.notify_parent(final)
        return final

    def step(
        self,
        execution_id: str,
        expected_seq: int | None = None,
        *,
        steps: int = 1,
        seconds: float | None = None,
    ) -> Advance:
        """Advance an execution by one step, or by up to ``steps`` consecutive ones,
        with a checkpoint each.

        With a driver that hands executions off between processes (Dramatiq),
        the steps run under one claim of the lease, which the last step's
        checkpoint releases: a second message for the execution (a
        redelivery, a recovery) finds it taken and is dropped.

        Args:
            execution_id: the execution.
            expected_seq: when given, do nothing unless the execution's last
                entry is still this one (a duplicate or redelivered request is
                dropped). Unlike the version, the seq does not move when a
                lease is claimed or renewed.
            steps: the most steps to run. It stops sooner after a step that
                needs a driver to go on: a fan-out, a retry's delay, a halt or
                wait, or the end.
            seconds: no step starts after this long (the first always runs).

        Raises:
            ValueError: ``steps`` is less than 1.
            Exception: what the store raised in the first step. In a later one
                it is logged, and the last checkpoint's :class:`Advance` is
                returned (the execution goes on from there).
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        execution = self.load(execution_id)
        stale = expected_seq is not None and execution.seq != expected_seq
        if stale or execution.status not in (Status.PENDING, Status.RUNNING):
            return Advance(execution=execution, dropped=True)
        if self.driver.hands_off:
            held = execution.lease_owner not in (None, self.owner)
            expires = execution.lease_expires_at
            if held and expires is not None and expires > self.clock.now():
                return Advance(execution=execution, dropped=True)
            try:
                if held:  # the process that held it died in the step: a recovery
                    execution = self._take_over(execution, owner=self.owner)
                    if execution.status is not Status.RUNNING:
                        return Advance(execution=execution)
                else:
                    execution = self._claim(execution, owner=self.owner)
            except ConflictError:
                return Advance(execution=execution, dropped=True)
        elif execution.status is Status.PENDING:
            execution = self._claim(execution, owner=self.owner)
        wf = self._definition_for(execution, None, False)
        until = None if seconds is None else time.monotonic() + seconds
        done: Advance | None = None
        with self._track(execution) as inflight:
            for ran in range(steps):
                last = ran == steps - 1 or (until is not None and time.monotonic() >= until)
                try:
                    advance = self._stepper.step(wf, inflight, None, hold=not last)
                except ConflictError:
                    if not self._adopt_cancel(inflight):
                        raise
                    # This step ends it (or starts its compensations) and hands it over.
                    advance = self._stepper.step(wf, inflight, None)
                    last = True
                except Exception:
                    if done is None:
                        raise
                    log.exception(
                        "execution %s: the step after entry %d failed; it goes on "
                        "from that checkpoint",
                        execution_id,
                        done.execution.seq,
                    )
                    return done
                if last or not advance.running or advance.fanout is not None or advance.delay:
                    break
                done = advance
        advance = self._unless_signalled(advance)
        if not advance.running:
            self.notify_parent(advance.execution)
        return advance

    def run_branch(
        self,
        execution_id: str,
        parallel_path: str,
        branch_id: str,
        visit: int,
        *,
        epoch: int | None = None,
    ) -> Advance:
        """Run one branch of a parallel step and record it; join when enough are done.

        A branch of a parallel step that has joined already, or a duplicate, is
        dropped; so is every branch of an execution that is no longer running,
        or that is being cancelled (its next step ends it), and, with ``epoch``
        (the :class:`~flowkit.engine.results.FanOut`'s), a branch sent before a retry of
        the execution.
        """
        execution = self.load(execution_id)
        if execution.status is not Status.RUNNING or cancel_requested(execution):
            return Advance(execution=execution, dropped=True)
        wf = self._definition_for(execution, None, False)
        with self._track(execution) as inflight:
            return self._fanout.run(wf, inflight, parallel_path, branch_id, visit, epoch)

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
        data = _validated_input(wf, input)
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
            lease_owner=self._stepper.lease_owner(parent_id is not None),
            lease_expires_at=now + self.lease,
        )
        execution = telemetry.with_trace(execution)  # the trace its step spans join
        self.store.create(execution)
        telemetry.created(execution)  # metrics and logs
        self._stepper.emit(execution, "workflow.started", None, {"input": data})
        return execution

    def check_resume(self, execution_id: str, decision: Decision) -> None:
        """Raise what :meth:`resume` would raise before changing anything.

        Raises:
            NotFoundError: no such execution, or its workflow is not known here.
            ExecutionError: the resume would be refused (see :meth:`resume`).
            ConflictError: it is running.
            ValidationError: the response or ``by`` cannot be stored.
        """
        _check_decision(execution_id, decision)
        execution = self.load(execution_id)
        _check_resumable(execution)
        wf = self._definition_for(execution, None, False)
        cursor = Cursor.of(execution)
        step, path = step_levels(wf, execution.current_step or "", cursor.frames)[-1]
        tx = Transaction(wf, execution, now=self.clock.now(), listening=self.events.active)
        visit = cursor.visit if cursor.visit is not None else execution.seq + 1
        run = self._stepper.runtime(tx, step, path, None, None, attempt=1, visit=visit)
        kind_of(step.type).check_resume(run, decision)

    def notify_parent(self, child: Execution) -> None:
        """A sub-workflow ended on its own (e.g. its timer fired): move its halted parent on."""
        if child.parent_id is None or child.status in (
            Status.RUNNING,
            Status.HALTED,
            Status.WAITING,
        ):
            return
        parent = self.store.load(child.parent_id)
        if parent is None or parent.status not in (Status.HALTED, Status.WAITING):
            return
        if (parent.halt_data or {}).get("child_id") != child.id:
            return
        try:
            advance = self.resume_step(parent.id, Decision(), internal=True)
        except FlowkitError as exc:
            log.warning("cannot continue parent %s: %s", parent.id, exc)
            return
        if advance.running:
            self.driver.dispatch(self, parent.id)
        else:
            self.notify_parent(advance.execution)

    # --- child executions (what a step's runtime asks for) ---------------------------------------

    def child_exists(self, child_id: str) -> bool:
        """Whether an execution with this id exists."""
        return self.store.load(child_id) is not None

    def create_child(self, workflow_id: str, input: Any, *, child_id: str, parent_id: str) -> None:
        """Create a child execution of a registered workflow.

        Raises:
            NotFoundError: the workflow is not known here.
            ConflictError: the child exists already.
        """
        self.create(
            self.workflows.get(workflow_id), input, execution_id=child_id, parent_id=parent_id
        )

    def run_child(self, child_id: str, deadline: float | None) -> Execution:
        """Drive a child until it completes, fails or halts (its parent moves on itself)."""
        return self._drive(child_id, deadline, notify=False)

    def resume_child(self, child_id: str, decision: Decision) -> None:
        """Apply a resume to a child if it is halted."""
        if self.load(child_id).status is Status.HALTED:
            self.resume_step(child_id, decision)

    # --- records ---------------------------------------------------------------------------------

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
            frames = Cursor.of(execution).frames
            if where is not None and not has_position(wf, where, frames):
                raise ExecutionError(
                    f"cannot continue execution '{execution.id}' with the changed definition: "
                    f"step '{position_path(where, frames)}' no longer exists in workflow "
                    f"'{wf.id}'"
                )
        return wf

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
        self.store.checkpoint(claimed, (), execution.version, changed=())
        telemetry.checkpointed(execution, claimed, ())  # metrics
        return claimed

    def _take_over(self, execution: Execution, *, owner: str | None) -> Execution:
        """Claim an execution whose lease expired, counting the recovery in its cursor;
        past ``max_recoveries``, fail it instead.

        Raises:
            ConflictError: another process changed the execution first.
        """
        cursor = execution.cursor or {}
        recoveries = Cursor.from_json(cursor).recoveries
        if recoveries >= self.max_recoveries:
            return self._give_up(execution, recoveries)
        counted = attrs.evolve(execution, cursor={**cursor, "recoveries": recoveries + 1})
        return self._claim(counted, owner=owner)

    def _give_up(self, execution: Execution, recoveries: int) -> Execution:
        """Fail an execution that recovery took over too often, with the reason; it keeps
        its position, for :meth:`retry`."""
        now = self.clock.now()
        path, step_type = execution.current_step or "", "unknown"
        with contextlib.suppress(FlowkitError, LookupError):  # the top-level step will do
            wf = self._definition_for(execution, None, False)
            frames = Cursor.of(execution).frames
            step, path = step_levels(wf, execution.current_step or "", frames)[-1]
            step_type = step.type
        error = (
            f"ExecutionError: recovery gave up on execution '{execution.id}' after "
            f"{recoveries} attempts: step '{path}' never reached its next checkpoint (each "
            "time, the process running it died or could not write it; see that process's "
            f"logs). Fix the cause, then retry it: flowkit retry {execution.id} (max_recoveries="
            f"{self.max_recoveries})"
        )
        seq = execution.seq + 1
        entry = Entry(
            id=f"{execution.id}:{seq}",
            execution_id=execution.id,
            seq=seq,
            step_id=path,
            step_type=step_type,
            action=Action.FAILED,
            error=error,
            timestamp=now,
        )
        # The position stays (a retry continues there, inside loops and branches); the
        # count goes, so a retry has its recoveries afresh.
        cursor = {key: value for key, value in execution.cursor.items() if key != "recoveries"}
        failed = attrs.evolve(
            execution,
            status=Status.FAILED,
            cursor=cursor,
            error=error,
            version=execution.version + 1,
            seq=seq,
            updated_at=now,
            wake_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )
        self.store.checkpoint(failed, [entry], execution.version, changed=())
        telemetry.checkpointed(execution, failed, [entry])  # metrics and logs
        log.error("%s", error)
        self._stepper.emit(failed, "workflow.failed", None, {"error": error})
        self.notify_parent(failed)
        return failed

    def _track(self, execution: Execution) -> _Tracked:
        return _Tracked(self._tracker, execution)


#: The longest signal name or key every store keeps (an indexed column on SQL stores).
SIGNAL_TEXT_LIMIT = 255


def _signal_text(text: str, field: str) -> str | None:
    """What is wrong with a signal's name or key, if anything."""
    if not isinstance(text, str) or len(text) > SIGNAL_TEXT_LIMIT or "\x00" in text:
        return (
            f"{field}: a signal's {field} is text of at most {SIGNAL_TEXT_LIMIT} characters "
            f"without NUL, got {text!r:.60}"
        )
    return problem_in(text, field)


def _waits_for(execution: Execution) -> str | None:
    """The signal a waiting execution waits for, if it waits for one."""
    if execution.status is not Status.WAITING or not execution.halt_data:
        return None
    name = execution.halt_data.get("signal")
    return name if isinstance(name, str) else None


def _stuck(sweep: Sweep, execution_id: str, verb: str, exc: Exception) -> None:
    reason = error_text(exc)
    sweep.stuck[execution_id] = reason
    # flowkit's own errors say all there is; anything else gets its traceback.
    trace = None if isinstance(exc, FlowkitError) else exc
    log.error("cannot %s execution %s: %s", verb, execution_id, reason, exc_info=trace)


def _same_schedule(one: Schedule, other: Schedule) -> bool:
    """Whether two schedules start the same workflow at the same times with the same input."""
    return attrs.evolve(one, created_at=other.created_at, last_slot=other.last_slot) == other


def _validated_input(wf: WorkflowDef, input: Mapping[str, Any] | None) -> dict[str, Any]:
    """The input with defaults applied, checked as the workflow's first step will.

    Raises:
        ValidationError: it does not fit the workflow's inputs.
    """
    first = wf.steps[0]
    check_declared = first.type != "start" or first.config.validate_input
    return validate_input(wf, input, check_declared=check_declared)


def _check_decision(execution_id: str, decision: Decision) -> None:
    """Refuse a response (or a ``by``) that could not be stored, before anything changes."""
    problems = [
        problem
        for problem in (
            problem_in(decision.response, "response"),
            None if decision.by is None else problem_in(decision.by, "by"),
        )
        if problem is not None
    ]
    if problems:
        raise ValidationError(problems, subject=f"resume of execution '{execution_id}'")


def _check_resumable(execution: Execution, *, internal: bool = False) -> None:
    """Refuse to resume what is not halted (the engine moves a parent waiting for its
    sub-workflow on itself: ``internal``)."""
    if execution.status.finished:
        raise ExecutionError(
            f"execution '{execution.id}' is {execution.status.value} and cannot be resumed"
        )
    if execution.status is Status.WAITING and not internal:
        raise ExecutionError(
            f"execution '{execution.id}' is waiting (for a time or a signal) and goes on by "
            "itself; it cannot be resumed (cancel it to stop it)"
        )
    if execution.status not in (Status.HALTED, Status.WAITING):
        raise ConflictError(
            f"execution '{execution.id}' is {execution.status.value}, not halted; "
            "it cannot be resumed while it runs"
        )


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


class Handle:
    """A started execution: ask its status, or wait for its result.

    Attributes:
        engine: the engine that started it.
        execution_id: the execution.
        workflow_id: its workflow.
    """

    def __init__(
        self, engine: Engine, execution_id: str, future: Future[Any] | None, *, workflow_id: str
    ) -> None:
        self.engine = engine
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        self._future = future

    def __repr__(self) -> str:
        return f"<Handle execution_id={self.execution_id!r} workflow_id={self.workflow_id!r}>"

    def status(self) -> Status:
        """The execution's current status."""
        return self.engine.load(self.execution_id).status

    def result(self, timeout: float | None = None) -> Result:
        """Wait until the execution completes, fails or halts; return its result.

        Raises:
            TimeoutError: it was still pending or running after ``timeout``
                seconds; the message says which, and at which step.
        """
        if self._future is None:
            return self.engine.wait(self.execution_id, timeout)
        if not wait_for_future([self._future], timeout).done:
            return self._late(timeout)
        self._future.result()  # raises what the driver raised
        return Result.of(self.engine.load(self.execution_id))

    async def result_async(self, timeout: float | None = None) -> Result:
        """:meth:`result` for asyncio: wait without blocking the event loop.

        With the thread executor it awaits the driver's future; with the others
        it reads the store in a worker thread, less and less often (at least
        ten times a second). Cancelling the await cancels only the waiting,
        never the execution.

        Raises:
            TimeoutError: as for :meth:`result`.
        """
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await self._ended()
        except TimeoutError:
            if not deadline.expired():
                raise  # the driver's own error
        return await asyncio.to_thread(self._late, timeout)

    async def _ended(self) -> Result:
        """The result, once the execution ended or halted."""
        if self._future is not None:
            # Shielded: a cancelled wait must not cancel a drive still queued in the pool.
            await asyncio.shield(asyncio.wrap_future(self._future))
            return Result.of(await asyncio.to_thread(self.engine.load, self.execution_id))
        pause = 0.001
        while True:
            execution = await asyncio.to_thread(self.engine.load, self.execution_id)
            if not _busy(execution):
                return Result.of(execution)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _late(self, timeout: float | None) -> Result:
        """The result after a wait timed out, if the execution ended meanwhile.

        Raises:
            TimeoutError: it is still pending or running.
        """
        execution = self.engine.load(self.execution_id)
        if _busy(execution):
            raise _timed_out(execution, timeout)
        return Result.of(execution)


def _busy(execution: Execution) -> bool:
    """Whether the execution has yet to end or halt."""
    return execution.status in (Status.PENDING, Status.RUNNING)


def _timed_out(execution: Execution, timeout: float | None) -> TimeoutError:
    """What a wait for a busy execution raises: where the execution is."""
    step = position_path(execution.current_step or "", Cursor.of(execution).frames)
    # Between steps on a queue (Dramatiq), nobody holds the lease until a worker takes it.
    queued = execution.status is Status.PENDING or execution.lease_owner is None
    where = f"queued for a worker at step '{step}'" if queued else f"at step '{step}'"
    return TimeoutError(
        f"execution '{execution.id}' is still {execution.status.value} after {timeout}s, {where}"
    )

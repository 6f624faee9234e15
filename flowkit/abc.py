"""What extensions implement: step types, stores, drivers and clocks.

- :class:`StepType` — one ``type:`` of step: its config class, how it is
  checked, drawn and built in Python, and how it runs. Each core step type is
  one module of :mod:`flowkit.steps` built on this class, registered with
  :func:`register_step_type` exactly as :mod:`flowkit.ai` and third parties do.
- :class:`Runtime` — what a running step sees: its definition and position,
  references, services, the clock, child executions. Never the engine.
- :class:`Outcome` — what a step gives back: where to go, what changed, whether
  it halts, fans out or stays inside itself.
- :class:`Store` — where executions and entries are kept (SPEC §10).
- :class:`Driver` — what moves executions forward (the ``executor`` setting).
- :class:`Clock` — time as the engine sees it.
- :class:`Builder` — what a step type's Python-DSL builder gets.

Imports :mod:`flowkit.services`, :mod:`flowkit.definitions` and the layers below them.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from .cursor import BranchResult, Frame, Joined
from .definitions import (
    BODY,
    BRANCHES,
    Extension,
    Nested,
    ReferenceCheck,
    SourceLocation,
    StepDef,
    WorkflowDef,
    register_check,
    register_extension,
)
from .definitions import kinds as _kinds
from .errors import ExecutionError
from .expressions import Scope
from .records import Action, Entry, Execution, Schedule, Signal, Status
from .services import StepContext

__all__ = [
    "BODY",
    "BRANCHES",
    "IMPLICIT",
    "Builder",
    "Clock",
    "Decision",
    "Drivable",
    "Driver",
    "Extension",
    "Inner",
    "Nested",
    "Outcome",
    "ReferenceCheck",
    "Runtime",
    "StepType",
    "Store",
    "register_check",
    "register_extension",
    "register_step_type",
    "step_type",
    "step_types",
]


# --- running a step ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Decision:
    """What a resume call said: ``approved``, ``by`` and ``response``."""

    approved: bool | None = None
    by: str | None = None
    response: Any = None


_NOTHING: Mapping[str, Any] = types.MappingProxyType({})
"""An empty mapping shared by every outcome that changes nothing (one is made per step)."""


@attrs.define(kw_only=True)  # not frozen: one is made per step, and frozen init is 3x slower
class Outcome:
    """What running (or resuming) a step produced.

    Attributes:
        target: the step to go to next in the same graph; None means the step's
            default continuation (the end of the workflow at the top level, the
            next listed step in a loop body).
        stay: remain at this step (it halted and will be resumed).
        finish: complete the workflow now (the ``end`` step).
        updates: ctx changes, applied in order.
        output: what the entry records as the step's output.
        input: what the entry records as the step's resolved input.
        halt: halt data; the execution becomes ``halted``.
        wait: what the step waits for, when no person is needed (a time, a
            signal); the execution becomes ``waiting``.
        wake_at_seconds: with ``halt`` or ``wait``, wake the execution after this
            many seconds (its step's ``timeout`` runs then).
        action: the entry's action.
        error: with ``action=Action.FAILED``, the entry's error: the step failed
            but goes on to ``target`` (a loop that ran out of iterations).
        payload: extra event details.
        consume: signals of the execution's mailbox (by seq) this step consumed:
            the checkpoint marks them consumed, atomically with the rest.
        progress: the step is not finished: checkpoint this JSON state (without
            an entry) and run the step again, which then finds it in
            ``Runtime.state``. A step that calls a model several times saves each
            reply this way, so a crash never repeats a finished call.
        inside: for step types that hold steps: the execution stays inside this
            step, at these frames (this step's own frame first); no entry is written.
        branches: for step types with branches: run these branches (by id) side
            by side; the engine keeps their results in the step's frame and runs
            the step again once they joined.
    """

    target: str | None = None
    stay: bool = False
    finish: bool = False
    updates: Mapping[str, Any] = _NOTHING
    output: Any = None
    input: Any = None
    halt: dict[str, Any] | None = None
    wait: dict[str, Any] | None = None
    wake_at_seconds: float | None = None
    action: Action = Action.COMPLETED
    error: str | None = None
    payload: Mapping[str, Any] = _NOTHING
    consume: tuple[int, ...] = ()
    progress: Any = None
    inside: tuple[Frame, ...] | None = None
    branches: tuple[str, ...] | None = None


@attrs.define  # not frozen, like Outcome: one is made per nested step
class Inner:
    """Where a nested step left its graph (what :meth:`Runtime.descend` returns).

    Attributes:
        target: the step of the same nested graph to go to next (None: the step
            has no ``next``), when the nested step finished.
        frames: when the nested step is not finished (it halted, waits for a
            retry, or is itself inside a step): the frames below the caller's own.
    """

    target: str | None = None
    frames: tuple[Frame, ...] | None = None


class Runtime(Protocol):
    """What a step sees while it runs: its definition, its position, and a few services.

    A step reads its config from ``run.step.config``, references through
    ``run.resolve`` (or ``run.scope``), calls services through ``run.call``,
    and answers with an :class:`Outcome`. It never sees the engine or the store.
    """

    @property
    def workflow(self) -> WorkflowDef:
        """The workflow's definition."""

    @property
    def step(self) -> StepDef:
        """The step's definition."""

    @property
    def path(self) -> str:
        """The step's id, qualified by enclosing steps (``each:charge``)."""

    @property
    def execution_id(self) -> str:
        """The execution."""

    @property
    def input(self) -> Mapping[str, Any]:
        """The execution's input."""

    @property
    def scope(self) -> Scope:
        """What references read: ctx, loop variables, ``$now``, ``$history``."""

    @property
    def attempt(self) -> int:
        """1, 2, 3… across retries."""

    @property
    def iteration(self) -> int | None:
        """The innermost enclosing loop's iteration, or None."""

    @property
    def key(self) -> str:
        """The idempotency key of this visit of the step (see :func:`flowkit.current`)."""

    @property
    def visit(self) -> int:
        """The position of this visit in the execution's history."""

    @property
    def branch(self) -> str | None:
        """The branch's id when the step runs as a parallel branch, else None."""

    @property
    def child_id(self) -> str:
        """The id of this visit's child execution (see :meth:`start_child`)."""

    @property
    def state(self) -> Mapping[str, Any] | None:
        """What the step saved with ``Outcome(progress=…)`` earlier in this visit
        (kept across crashes, retries and halts), or None."""

    @property
    def frame(self) -> Frame | None:
        """For a step type that holds steps: its frame, when the execution is already
        inside the step; None when it enters now."""

    @property
    def seq(self) -> int:
        """The seq of the last entry written (this checkpoint's included)."""

    @property
    def resources(self) -> Mapping[str, Any]:
        """What extensions attached to the engine (``Engine.resources``)."""

    @property
    def halt_data(self) -> Mapping[str, Any] | None:
        """What the step asked for when it halted or began to wait (``Outcome.halt`` or
        ``Outcome.wait``), while the engine resumes it or fires its timer."""

    def signals(self, name: str) -> Sequence[Signal]:
        """The execution's pending signals named ``name``, oldest first (those this
        checkpoint consumes already left out)."""

    def resolve(self, value: Any) -> Any:
        """``value`` with its ``$references`` resolved against :attr:`scope`."""

    def now(self) -> datetime:
        """The engine clock's current time (UTC)."""

    def remaining(self, timeout: float | None) -> float | None:
        """The time the step may take: ``timeout`` bounded by the workflow's deadline."""

    def context(self) -> StepContext:
        """What :func:`flowkit.current` tells the services this step calls."""

    def service(self, service: str, method: str) -> Callable[..., Any]:
        """The callable registered as ``service.method`` (raises ``NotFoundError``)."""

    def invoke(
        self,
        function: Callable[..., Any],
        input: Any,
        *,
        timeout: float | None = None,
        key: str | None = None,
        where: str | None = None,
    ) -> Any:
        """Call ``function`` with ``input`` (the calling convention of ``call`` steps).

        Async callables are awaited; ``timeout`` bounds the call; ``key``
        replaces the idempotency key :func:`flowkit.current` reports. Returns
        the result as JSON data.
        """

    def call(self, service: str, method: str, input: Any, *, timeout: float | None = None) -> Any:
        """Invoke the registered ``service.method`` with ``input``; its result as JSON data."""

    def start_child(self, workflow_id: str, input: Any) -> str:
        """Create this visit's child execution of ``workflow_id`` unless it exists; its id."""

    def follow_child(self, child_id: str, timeout: float | None) -> Execution:
        """Run the child until it completes, fails or halts; its record then."""

    def check_resume_child(self, child_id: str, decision: Decision) -> None:
        """Raise what resuming the child with ``decision`` would raise."""

    def resume_child(self, child_id: str, decision: Decision) -> None:
        """Apply ``decision`` to the child if it is halted."""

    def descend(self, step: StepDef, variables: Mapping[str, Any], iteration: int | None) -> Inner:
        """Run ``step``, a step of this step's nested graph, one level down.

        ``variables`` are in scope for it (a loop's ``item`` and ``index``), and
        ``iteration`` is recorded on its entries.

        A failure of the nested step that it does not handle itself fails this
        step the same way, and an ``end`` inside finishes the workflow: neither
        comes back here.
        """

    def child_outputs(self, since: int) -> Mapping[int, Any]:
        """The output of the last step that finished directly inside this step, per
        iteration, among the entries written after seq ``since``."""


class StepType:
    """One ``type:`` of step. Subclass it, set ``name`` and ``config``, override what you need.

    Register an instance with :func:`register_step_type`; the parser, the
    validator, the graph renderer, the engine and the DSL read it from there.

    Attributes:
        name: the ``type:`` value in YAML.
        config: the frozen attrs class holding the step's keys (see
            :mod:`flowkit.definitions.fields` for the field markers).
        in_loop: the step may appear in a loop body.
        in_parallel: the step may be a branch of a ``parallel`` step.
        halts: the step may halt; ``response`` is defined after it.
        terminal: the workflow always ends after this step.
        falls_through: in a loop body, a step without ``next`` continues with
            the step listed after it (a router never does).
        sets: ctx names the step may set besides its output fields.
        edge_sets: ctx names set when the step leaves through a given target
            field (``{"on_fail": ("_guardrail_failure",)}``).
        shape: how the graph renderer draws it: ``box``, ``start``, ``end``,
            ``decision``, ``wait``, ``stop``, ``subroutine`` or ``data``.
        holds_steps: the step holds other steps (:meth:`nested`); the engine
            runs it at every entry (run, resume or timer alike) with
            ``run.frame`` set while inside, and it moves through them with
            ``run.descend`` (or ``Outcome(branches=…)``).
        dsl_name: the name of its builder in the Python DSL (default: ``name``).
        build: the builder, ``build(graph, id, **options)``; ``graph`` is a
            :class:`Builder`.
    """

    name: str
    config: type[Any]
    in_loop: bool = True
    in_parallel: bool = True
    halts: bool = False
    terminal: bool = False
    falls_through: bool = True
    sets: tuple[str, ...] = ()
    edge_sets: Mapping[str, tuple[str, ...]] = types.MappingProxyType({})
    shape: str = "box"
    holds_steps: bool = False
    dsl_name: str | None = None
    build: Callable[..., Any] | None = None

    # --- definitions ---------------------------------------------------------------------------

    def defines(self, step: StepDef) -> Iterable[str]:
        """The ctx names a step sets when it finishes: its output fields, then :attr:`sets`."""
        return [*(key for key, _ in _kinds.outputs(step.config)), *self.sets]

    def check(self, step: StepDef) -> Iterable[str]:
        """Problems with the step's own config (messages without the location)."""
        return ()

    def check_references(
        self, step: StepDef, defined: frozenset[str], refs: ReferenceCheck
    ) -> None:
        """Check what the step reads; by default every marked field of its config."""
        refs.fields(step.config, defined)

    def nested(self, step: StepDef) -> Sequence[Nested]:
        """The graphs inside the step (a loop's body, a parallel step's branches)."""
        return ()

    def resumes_at(self, step: StepDef) -> str | None:
        """The step a resume continues at, when this step halted (shown in ``HaltInfo``)."""
        return step.id

    # --- running -------------------------------------------------------------------------------

    def run(self, run: Runtime) -> Outcome:
        """Run the step once."""
        raise NotImplementedError(f"step type '{self.name}' does not run")

    def check_resume(self, run: Runtime, decision: Decision) -> None:
        """Refuse a resume before anything changes (raise ``ExecutionError``)."""

    def resume(self, run: Runtime, decision: Decision) -> Outcome:
        """Continue after the step halted; by default at its ``next``."""
        return Outcome(
            target=run.step.next,
            output=decision.response,
            updates={"response": decision.response},
            action=Action.RESUMED,
        )

    def timeout(self, run: Runtime) -> Outcome:
        """The step's timer fired (``wake_at`` passed) while it was halted."""
        raise ExecutionError(f"step '{run.path}' has no timer to fire")

    def compensates(self, step: StepDef) -> bool:
        """Whether a finished run of ``step`` is undone when its execution unwinds
        (fails unhandled, or is cancelled): see :meth:`compensate`."""
        return False

    def compensate(self, run: Runtime, done: Entry) -> Any:
        """Undo a finished run of the step, whose entry is ``done``; what it returns is
        recorded. ``run`` has the step's definition, the ctx of the execution as it
        unwinds, the locals ``output`` and ``step_input`` (what ``done`` recorded) and
        an idempotency key of its own. Raise to record a failed compensation."""
        raise NotImplementedError(f"step type '{self.name}' has no compensation")

    def join(self, step: StepDef, done: Mapping[str, BranchResult]) -> Joined | None:
        """For a step that fans out branches: whether they joined, given those ``done``.

        The engine asks after every finished branch; None means "not yet". A
        branch's output is kept in its entry, not in the frame: results read back
        from a stored frame come with ``loaded`` false and no output, so decide
        from ``ok`` and ``error``. Once this returns a successful :class:`Joined`,
        the engine reads the outputs back and asks again, with every result loaded,
        for the joined outputs and ctx changes.
        """
        raise NotImplementedError(f"step type '{self.name}' has no branches to join")


def register_step_type(step_type: StepType) -> StepType:
    """Make ``step_type`` known by its name; registering a name again replaces it."""
    _kinds.register_kind(step_type)
    return step_type


# name -> (the registry's generation when it was looked up, the step type): the engine
# asks once a step, and the registry's lookup with its isinstance check costs 4 calls.
_found: dict[str, tuple[int, StepType]] = {}


def step_type(name: str) -> StepType | None:
    """The registered step type called ``name``, or None."""
    generation = _kinds.generation
    cached = _found.get(name)
    if cached is not None and cached[0] == generation:
        return cached[1]
    found = _kinds.kind(name)
    if not isinstance(found, StepType):
        return None
    _found[name] = (generation, found)
    return found


def step_types() -> Mapping[str, StepType]:
    """Every registered step type, by name."""
    return {name: found for name, found in _kinds.kinds().items() if isinstance(found, StepType)}


# --- the Python DSL ---------------------------------------------------------------------------


class _Implicit:
    """The default of ``next`` in the DSL: continue with the step declared after this one."""

    def __repr__(self) -> str:
        return "<next step>"


IMPLICIT: Any = _Implicit()
"""The default of ``next`` in the DSL: continue with the step declared after this one."""


class Builder(Protocol):
    """What a step type's DSL builder gets: the graph being declared (a workflow or a body)."""

    @property
    def workflow_id(self) -> str:
        """The id of the workflow being declared (for messages)."""

    def caller(self) -> SourceLocation:
        """Where user code called into the DSL (for messages and step sources)."""

    def config(
        self, cls: type[Any], step_id: str, source: SourceLocation | None = None, /, **options: Any
    ) -> Any:
        """``cls(**options)``; a bad option raises ``ValidationError`` naming the step and line."""

    def add_step(
        self,
        step_id: str,
        step_type: str,
        config: Any,
        next: Any = IMPLICIT,
        on_error: str | None = None,
        source: SourceLocation | None = None,
    ) -> StepDef:
        """Declare a step; with ``next=IMPLICIT`` it continues with the step declared after it."""

    def nested(self, *, branches: bool = False) -> Builder:
        """A builder for a nested graph: a body, or ``branches`` (single steps, no next)."""

    def compiled(self) -> tuple[StepDef, ...]:
        """The steps declared so far, with every implicit ``next`` made explicit."""


# --- stores, drivers and clocks -----------------------------------------------------------------


@runtime_checkable
class Store(Protocol):
    """Where executions and their entries are kept (SPEC §10).

    Every method is safe to call from several threads, and from several
    processes on the same database. Every store passes the conformance suite
    in :mod:`flowkit.testing.conformance`, which pins this contract:

    - Times must be timezone-aware (a naive one raises ``ValueError``) and
      come back in UTC with their microseconds.
    - JSON fields come back as the JSON data that went in: types kept apart
      (``True`` is not ``1``), ints of any size exact, mapping key order kept,
      tuples as lists. Data that is not JSON raises ``TypeError`` (NaN and
      infinities ``ValueError``) before anything is written.
    - The checks in :mod:`flowkit.backends.checks` run before the store is
      touched, so every store refuses the same bad arguments the same way.
    - Records are mapped to the store's values through a
      :class:`flowkit.records.RecordCodec`, by field name.
    """

    def create(self, execution: Execution) -> None:
        """Store a new execution (its entries start after ``execution.seq``).

        Raises:
            ConflictError: an execution with this id already exists; nothing was written.
            ValueError: a time is naive, or a value is NaN or infinite.
            TypeError: a value is not JSON data.
        """

    def load(self, execution_id: str) -> Execution | None:
        """The execution with this id, or None."""

    def checkpoint(
        self,
        execution: Execution,
        entries: Sequence[Entry],
        expected_version: int,
        *,
        changed: Collection[str] | None = None,
        consumed: Collection[int] = (),
    ) -> None:
        """Replace the execution and append ``entries``, atomically.

        ``consumed`` names signals of the execution's mailbox (by ``seq``) that
        this checkpoint consumes: in the same atomic write they are marked
        consumed by ``execution.version``, so :meth:`signals` no longer returns
        them. A seq that is not a pending signal of the execution raises
        ``ConflictError`` and nothing is written.

        ``changed`` says which ctx values changed since ``expected_version``:
        the names set, in the order they were set (a name new to ctx comes
        after those already there). The store may then write only those values
        and keep the others as stored, so that the cost of a checkpoint does
        not grow with the ctx (SPEC §18); ``load`` still returns the whole ctx.
        Every name in ``changed`` is in ``execution.ctx``: a checkpoint that
        removes keys passes ``None``, and so does a caller that does not know;
        with ``None`` the store writes ctx whole.

        ``execution.version`` is ``expected_version + 1``. The write happens
        only if the stored version is ``expected_version``; either the record
        and all entries are written, or nothing is. The fields
        :data:`flowkit.records.FIXED_FIELDS` (``id``, ``workflow_id``,
        ``input``, ``parent_id``, ``created_at``) never change after
        :meth:`create`: a store does not rewrite them and ignores the values a
        checkpoint passes for them (the engine keeps the input out of ctx for
        that reason, so a large input costs nothing per step).

        Checks on the arguments alone raise ``ValueError`` before the store
        is touched (``check_checkpoint`` in :mod:`flowkit.backends.checks`):
        ``execution.version == expected_version + 1``; every entry has
        ``execution_id == execution.id`` and ``id == f"{execution.id}:{seq}"``;
        the entries' seqs are consecutive, from 1 or more, in order; and
        ``execution.seq`` is the last entry's seq. Checks against the stored
        state raise ``ConflictError``.

        Raises:
            ConflictError: the execution does not exist, its stored version is
                not ``expected_version``, or the entries do not continue its
                log (``execution.seq - len(entries)`` is not the stored
                ``seq``); nothing was written.
            ValueError: the arguments are inconsistent (above), a time is
                naive, or a value is NaN or infinite; nothing was written.
            TypeError: a value is not JSON data; nothing was written.
        """

    def entries(self, execution_id: str, *, after: int = 0) -> list[Entry]:
        """The entries with ``seq > after``, in ``seq`` order (none for an unknown id).

        Reads only those entries, not the whole log.
        """

    def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | str | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[Execution]:
        """Executions matching the filters, most recently updated first.

        Ties on ``updated_at`` are ordered by id, descending (code-point order).
        ``after`` is a position in that order, ``(updated_at, id)`` of the last
        execution of a previous page: only executions strictly after it are
        returned (cursor pagination; it stays fast however deep the page).

        Raises:
            ValueError: the status is unknown, or ``limit`` is negative.
        """

    def delete(self, execution_id: str) -> bool:
        """Delete an execution with its entries and signals; False if it did not exist."""

    def due(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Halted or waiting executions whose ``wake_at`` is at or before ``now``,
        earliest first.

        Ties are ordered by id, ascending.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
        """

    def stale(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Running executions whose lease expired at or before ``now``, oldest first.

        Ties are ordered by id, ascending.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
        """

    def send_signal(self, signal: Signal) -> Signal | None:
        """Append ``signal`` to its execution's mailbox; the stored signal, with its ``seq``.

        The store assigns ``seq`` (the caller's is ignored) and stores
        ``consumed`` as None. Returns None, writing nothing, when the signal has
        a ``key`` that a signal already sent to the execution had. Sending does
        not change the execution record (its version stays), so it never
        conflicts with a checkpoint.

        Raises:
            NotFoundError: the execution does not exist.
            ExecutionError: the execution is completed, failed or cancelled
                (checked atomically with the append).
            ValueError: ``sent_at`` is naive, or the payload holds NaN or an infinity.
            TypeError: the payload is not JSON data.
        """

    def signals(self, execution_id: str, *, name: str | None = None) -> list[Signal]:
        """The execution's pending (not consumed) signals, of ``name`` if given, in seq order."""

    def save_schedule(self, schedule: Schedule) -> None:
        """Insert the schedule, or replace the one with its name (``last_slot`` included)."""

    def schedules(self) -> list[Schedule]:
        """Every schedule, by name."""

    def delete_schedule(self, name: str) -> bool:
        """Delete a schedule (never the executions it started); False if there was none."""

    def schedule_fired(self, name: str, slot: datetime) -> bool:
        """Record ``slot`` as the schedule's ``last_slot`` if it is later than the stored one.

        Atomic (a compare-and-set): of several callers with the same slot, one
        gets True. False when the schedule is gone or already at or past ``slot``.

        Raises:
            ValueError: ``slot`` is naive.
        """

    def prune(
        self,
        *,
        before: datetime,
        statuses: Iterable[Status | str],
        dry_run: bool = False,
    ) -> int:
        """Delete finished executions last updated before ``before``; how many went.

        Only completed, failed and cancelled executions are deleted, with their
        entries, ctx values, signals and index entries, in batches small enough
        that no lock is held for long (other executions keep checkpointing
        meanwhile). With ``dry_run`` nothing is deleted and the count is of what
        would go.

        Raises:
            ValueError: ``before`` is naive, or a status is unknown or not finished.
        """

    def close(self) -> None:
        """Release connections the store opened itself.

        Closing twice is fine; any other call afterwards raises
        ``FlowkitError("store is closed")``.
        """


class Drivable(Protocol):
    """What a driver needs of the engine it drives executions for."""

    def drive(self, execution_id: str) -> Any:
        """Advance an execution until it completes, fails or halts."""

    def load(self, execution_id: str) -> Execution:
        """The stored execution."""

    def wake(self, execution_id: str) -> Any:
        """Fire a waiting or halted execution's timer if it is due, and drive it on."""


class Driver:
    """Moves executions forward for an engine (chosen by the ``executor`` setting).

    Every driver calls the same engine functions (``Engine.drive``, or
    ``Engine.step`` and ``Engine.run_branch`` one step at a time), so the
    semantics have exactly one implementation.

    Attributes:
        name: the name the ``executor`` setting uses for it.
        hands_off: steps are handed to other processes (a queue): the engine
            then releases the lease after each step and claims it before the next.
    """

    name = "driver"
    hands_off = False

    def dispatch(self, engine: Drivable, execution_id: str) -> Future[Any] | None:
        """Start advancing an execution; may return a future that ends with it."""
        raise NotImplementedError

    def wake(self, engine: Drivable, execution_id: str) -> None:
        """Fire the timer of an execution that is due now (a signal came for it).

        By default in this process; a driver with a queue sends it there.
        """
        engine.wake(execution_id)

    def close(self) -> None:
        """Release what the driver holds."""


class Clock(Protocol):
    """What the engine needs of time: the current UTC time and waiting."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (retry delays)."""

"""The runtime a step sees: the engine's implementation of :class:`flowkit.abc.Runtime`.

A :class:`StepRun` is built for every step the stepper runs. It gives the step
its definition and position and a few services (references, the clock,
service calls, child executions, nested steps), each through a narrow
collaborator: the stepper that made it (:class:`Machine`) and the engine's
child executions (:class:`Children`). A step never reaches the engine itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import attrs

from ..abc import Clock, Decision, Inner, Store
from ..cursor import Frame
from ..definitions import StepDef, WorkflowDef
from ..errors import ConflictError
from ..expressions import Scope, resolve
from ..records import Execution, Signal, Status
from ..services import ServiceRegistry, StepContext, invoke
from .control import cancel_requested
from .transaction import History, Transaction

__all__ = ["COMPENSATE", "Children", "Machine", "StepRun"]


class Children(Protocol):
    """What a step's runtime needs of the engine to run child executions (sub-workflows)."""

    def child_exists(self, child_id: str) -> bool:
        """Whether an execution with this id exists."""

    def create_child(self, workflow_id: str, input: Any, *, child_id: str, parent_id: str) -> None:
        """Create the child execution (``ConflictError`` when it exists already)."""

    def run_child(self, child_id: str, deadline: float | None) -> Execution:
        """Advance the child until it completes, fails or halts; its record then."""

    def check_resume(self, execution_id: str, decision: Decision) -> None:
        """Raise what resuming the execution with ``decision`` would raise."""

    def resume_child(self, child_id: str, decision: Decision) -> None:
        """Apply ``decision`` to the child if it is halted."""


COMPENSATE = "compensate"
"""The mode of a step run that undoes a finished run of the step."""


class Machine(Protocol):
    """What a :class:`StepRun` needs of the stepper that made it."""

    store: Store
    clock: Clock
    services: ServiceRegistry
    resources: Mapping[str, Any]
    children: Children

    def descend(
        self, run: StepRun, step: StepDef, variables: Mapping[str, Any], iteration: int | None
    ) -> Inner:
        """Run a nested step one level below ``run``."""

    def child_outputs(self, run: StepRun, since: int) -> Mapping[int, Any]:
        """The last output per iteration of the steps directly inside ``run``'s step."""


#: The statuses in which an execution has ``halt_data`` for its step.
_PAUSED = frozenset({Status.HALTED, Status.WAITING})


class StepRun:
    """Everything one step may use to run once (see :class:`flowkit.abc.Runtime`).

    Built once per step, so it is a plain slotted class.
    """

    __slots__ = (
        "_decision",
        "_frames",
        "_local",
        "_machine",
        "_mode",
        "_scope",
        "_tx",
        "attempt",
        "branch",
        "deadline",
        "iteration",
        "path",
        "state",
        "step",
        "visit",
    )

    def __init__(
        self,
        machine: Machine,
        tx: Transaction,
        step: StepDef,
        path: str,
        local: Mapping[str, Any] | None,
        iteration: int | None,
        attempt: int,
        visit: int,
        frames: tuple[Frame, ...] = (),
        mode: str = "run",
        decision: Decision | None = None,
        branch: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self._machine = machine
        self._tx = tx
        self._scope: Scope | None = None
        self._local = local
        self._frames = frames
        self._mode = mode
        self._decision = decision
        self.step = step
        self.path = path
        self.attempt = attempt
        self.iteration = iteration
        self.visit = visit
        self.branch = branch
        self.state = state
        # The time the step must finish by: a sub-workflow's bound, or the workflow's timeout.
        deadline = tx.deadline
        if tx.wf.timeout is not None:
            elapsed = (tx.now - tx.base.created_at).total_seconds()
            limit = time.monotonic() + max(tx.wf.timeout - elapsed, 0.0)
            deadline = limit if deadline is None else min(deadline, limit)
        self.deadline = deadline

    # --- what the step reads -------------------------------------------------------------------

    @property
    def workflow(self) -> WorkflowDef:
        """The workflow's definition."""
        return self._tx.wf

    @property
    def execution_id(self) -> str:
        """The execution."""
        return self._tx.base.id

    @property
    def input(self) -> Mapping[str, Any]:
        """The execution's input."""
        return self._tx.base.input

    @property
    def key(self) -> str:
        """The idempotency key of this visit of the step (of its compensation: another)."""
        key = f"{self._tx.base.id}:{self.path}:{self.visit}"
        return key if self._mode != COMPENSATE else f"{key}:compensate"

    @property
    def frame(self) -> Frame | None:
        """This step's frame, when the execution is inside it (steps that hold steps)."""
        return self._frames[0] if self._frames else None

    @property
    def scope(self) -> Scope:
        """What references read; it follows ctx as nested steps change it."""
        tx = self._tx
        scope = self._scope
        if scope is None:
            execution = tx.base
            scope = self._scope = Scope(
                tx.ctx,
                history=History(self._machine.store, execution.id, tx.entries),
                now=self._machine.clock.now,
                local=self._local,
                input=execution.input,
            )
        elif scope.ctx is not tx.ctx:
            scope = self._scope = scope.with_ctx(tx.ctx)
        return scope

    @property
    def seq(self) -> int:
        """The seq of the last entry written (this checkpoint's included)."""
        return self._tx.seq

    @property
    def resources(self) -> Mapping[str, Any]:
        """What extensions attached to the engine."""
        return self._machine.resources

    @property
    def child_id(self) -> str:
        """The id of this visit's child execution (a branch's id is added to it)."""
        if self.branch is not None:
            return f"{self.execution_id}.{self.visit}.{self.branch}"
        return f"{self.execution_id}.{self.visit}"

    @property
    def halt_data(self) -> Mapping[str, Any] | None:
        """What the step asked for when it halted or began to wait, while resumed or woken."""
        base = self._tx.base
        return base.halt_data if base.status in _PAUSED else None

    def signals(self, name: str) -> list[Signal]:
        """The execution's pending signals named ``name``, oldest first."""
        pending = self._machine.store.signals(self.execution_id, name=name)
        return [signal for signal in pending if signal.seq not in self._tx.consumed]

    def resolve(self, value: Any) -> Any:
        """``value`` with its ``$references`` resolved."""
        return resolve(value, self.scope)

    def now(self) -> datetime:
        """The engine clock's current time."""
        return self._machine.clock.now()

    def remaining(self, timeout: float | None) -> float | None:
        """The time the step may take: its own ``timeout`` bounded by the deadline."""
        deadline = self.deadline
        if deadline is None:
            return timeout
        left = max(deadline - time.monotonic(), 0.0)
        return left if timeout is None else min(timeout, left)

    def context(self) -> StepContext:
        """The :func:`flowkit.current` value while this step runs."""
        return StepContext(
            execution_id=self.execution_id,
            workflow_id=self.workflow.id,
            step_id=self.path,
            attempt=self.attempt,
            iteration=self.iteration,
            idempotency_key=self.key,
            asks_cancel=self._cancel_requested,
        )

    def _cancel_requested(self) -> bool:
        cancellation = self._tx.cancellation
        if cancellation is not None and cancellation.requested:
            return True
        record = self._machine.store.load(self.execution_id)
        return record is None or record.status is Status.CANCELLED or cancel_requested(record)

    # --- services ------------------------------------------------------------------------------

    def service(self, service: str, method: str) -> Callable[..., Any]:
        """The callable registered as ``service.method``."""
        return self._machine.services.resolve(service, method)

    def invoke(
        self,
        function: Callable[..., Any],
        input: Any,
        *,
        timeout: float | None = None,
        key: str | None = None,
        where: str | None = None,
    ) -> Any:
        """Call ``function`` with the calling convention; its result as JSON data."""
        source = self if key is None else _Keyed(self, key)
        # A cancel stops the step's own calls, never the compensations it runs.
        cancellation = self._tx.cancellation if self._mode != COMPENSATE else None
        return invoke(
            function,
            input,
            source=source,
            timeout=timeout if self.deadline is None else self.remaining(timeout),
            where=where or f"step '{self.path}'",
            cancellation=cancellation,
        )

    def call(self, service: str, method: str, input: Any, *, timeout: float | None = None) -> Any:
        """Invoke the registered ``service.method`` with ``input``."""
        return self.invoke(self.service(service, method), input, timeout=timeout)

    # --- child executions ----------------------------------------------------------------------

    def start_child(self, workflow_id: str, input: Any) -> str:
        """Create this visit's child of ``workflow_id`` unless it exists; its id.

        ``input`` is resolved only when the child is created.
        """
        child = self.child_id
        children = self._machine.children
        if not children.child_exists(child):
            data = self.resolve(input)
            # An earlier attempt may have created it, then crashed before its checkpoint.
            with contextlib.suppress(ConflictError):
                children.create_child(
                    workflow_id, data, child_id=child, parent_id=self.execution_id
                )
        return child

    def follow_child(self, child_id: str, timeout: float | None) -> Execution:
        """Run the child until it completes, fails or halts (for at most ``timeout`` s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._machine.children.run_child(child_id, deadline)

    def check_resume_child(self, child_id: str, decision: Decision) -> None:
        """Raise what resuming the child with ``decision`` would raise."""
        self._machine.children.check_resume(child_id, decision)

    def resume_child(self, child_id: str, decision: Decision) -> None:
        """Apply ``decision`` to the child if it is halted."""
        self._machine.children.resume_child(child_id, decision)

    # --- nested steps --------------------------------------------------------------------------

    def descend(self, step: StepDef, variables: Mapping[str, Any], iteration: int | None) -> Inner:
        """Run a step of this step's nested graph one level down (see ``Runtime.descend``)."""
        return self._machine.descend(self, step, variables, iteration)

    def child_outputs(self, since: int) -> Mapping[int, Any]:
        """The last output per iteration of the steps directly inside this step."""
        return self._machine.child_outputs(self, since)


@attrs.frozen
class _Keyed:
    """A step's context with another idempotency key (an agent's tool call)."""

    run: StepRun
    key: str

    def context(self) -> StepContext:
        return attrs.evolve(self.run.context(), idempotency_key=self.key)

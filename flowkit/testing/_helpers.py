"""Deterministic helpers for testing workflows: a clock, service stubs, one-step runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ..cursor import Cursor
from ..definitions import WorkflowDef, definition_hash
from ..engine import Engine, FanOut
from ..errors import NotFoundError
from ..frozen import thaw
from ..records import Entry, Execution, Status
from ..services import ServiceRegistry

__all__ = ["Call", "FakeClock", "StepResult", "Stub", "run_step", "stub"]


class FakeClock:
    """A clock that only moves when told to: ``sleep`` and ``advance`` move it at once.

    Retry delays and approval timeouts then take no wall time: a retry's
    backoff is recorded in :attr:`sleeps`; an approval timeout fires once the
    clock is advanced past it and ``engine.wake_due()`` runs.

    Args:
        start: the time it starts at (default: 2030-01-01 00:00 UTC).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The clock's current time."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock forward by it, without waiting."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward; returns the new time."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


@attrs.frozen(kw_only=True)
class Call:
    """One call a stubbed service received."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class Stub:
    """A stand-in for a service: canned results or callables, and every call recorded.

    Args:
        name: the service name.
        behaviour: a mapping of method name to a result (returned as is), a
            callable (called with the step's arguments) or an exception
            instance (raised); or an object whose methods are called.
    """

    def __init__(self, name: str, behaviour: Any) -> None:
        self.name = name
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        if isinstance(behaviour, Mapping):
            methods = dict(behaviour)
        else:
            methods = {
                attr: getattr(behaviour, attr)
                for attr in dir(behaviour)
                if not attr.startswith("_") and callable(getattr(behaviour, attr))
            }
        self.methods: dict[str, Callable[..., Any]] = {
            method: self._recorder(method, value) for method, value in methods.items()
        }

    def _recorder(self, method: str, value: Any) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls.append(Call(method=method, args=args, kwargs=kwargs))
            if isinstance(value, BaseException):
                raise value
            if callable(value):
                return value(*args, **kwargs)
            return value

        record.__name__ = method
        return record

    def calls_to(self, method: str) -> list[Call]:
        """The calls of one method, in order."""
        return [call for call in self.calls if call.method == method]

    @property
    def called(self) -> bool:
        """Whether any method was called."""
        return bool(self.calls)


@contextmanager
def stub(registry: ServiceRegistry, name: str, behaviour: Any) -> Iterator[Stub]:
    """Replace service ``name`` in ``registry`` by a :class:`Stub` inside a ``with`` block."""
    replacement = Stub(name, behaviour)
    methods: dict[str, Any] = dict(replacement.methods)
    if isinstance(behaviour, Mapping) and name in registry:
        original = registry.get(name)
        if isinstance(original, Mapping):
            # Functions registered under one name (a workflow's @wf.step functions):
            # the methods not stubbed keep working.
            methods = {**original, **methods}
    with registry.override(name, methods):
        yield replacement


@attrs.frozen(kw_only=True)
class StepResult:
    """What running one step in isolation produced.

    Attributes:
        status: ``completed`` when the step finished, ``halted`` or ``failed``.
        ctx: ctx after the step.
        next: the step the workflow would go to next (the route a router
            chose, ``on_error`` after a handled error), or None.
        output: the step's output (its entry's output).
        halt: the halt data when it halted.
        error: ``"<Type>: <message>"`` when it failed.
        entries: the entries the step wrote.
    """

    status: Status
    ctx: dict[str, Any]
    next: str | None
    output: Any
    halt: dict[str, Any] | None
    error: str | None
    entries: list[Entry]


def run_step(
    engine: Engine,
    workflow: Any,
    step_id: str,
    *,
    ctx: Mapping[str, Any] | None = None,
    input: Mapping[str, Any] | None = None,
) -> StepResult:
    """Run one top-level step of ``workflow`` with the given ctx and input.

    The step runs through the real engine (retries on the engine's clock,
    timeouts, loops, parallel branches, sub-workflows) on ``engine``'s store
    and services, starting with exactly the ctx given, and stops as soon as
    the execution leaves the step.

    Raises:
        NotFoundError: the workflow has no top-level step ``step_id``.
    """
    wf: WorkflowDef = engine.definition(workflow)
    given = dict(input or {})
    for spec in wf.inputs:  # defaults apply as in a run; nothing else is required
        if given.get(spec.name) is None and spec.default is not None:
            given[spec.name] = thaw(spec.default)
    step = wf.step(step_id)
    if step is None:
        known = ", ".join(s.id for s in wf.steps)
        raise NotFoundError(f"workflow '{wf.id}' has no top-level step '{step_id}' ({known})")
    now = engine.clock.now()
    execution = Execution(
        id=f"run-step-{uuid.uuid4().hex[:12]}",
        workflow_id=wf.id,
        workflow_version=wf.version,
        status=Status.RUNNING,
        input=given,
        ctx=dict(ctx or {}),
        current_step=step.id,
        created_at=now,
        updated_at=now,
        definition_hash=definition_hash(wf),
        lease_owner=engine.owner,
        lease_expires_at=now + engine.lease,
    )
    engine.store.create(execution)
    record = execution
    while True:
        advance = engine.step(execution.id)
        if advance.fanout is not None:
            _run_branches(engine, execution.id, advance.fanout)
        if advance.delay:
            engine.clock.sleep(advance.delay)
        record = engine.load(execution.id)
        if record.status is not Status.RUNNING or Cursor.of(record).idle:
            break
    entries = engine.store.entries(execution.id)
    mine = [entry for entry in entries if entry.step_id == step.id]
    running = record.status is Status.RUNNING
    return StepResult(
        status=Status.COMPLETED if running else record.status,
        ctx=record.ctx,
        next=record.current_step if running else None,
        output=mine[-1].output if mine else None,
        halt=record.halt_data,
        error=record.error,
        entries=entries,
    )


def _run_branches(engine: Engine, execution_id: str, fanout: FanOut) -> None:
    """Run each branch until it is recorded, on the engine's clock (retries included)."""
    for branch in fanout.branches:
        while True:
            ran = engine.run_branch(execution_id, fanout.path, branch, fanout.visit)
            if not ran.delay:
                break
            engine.clock.sleep(ran.delay)

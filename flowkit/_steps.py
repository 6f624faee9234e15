"""How each simple step type runs. The engine owns loops and parallel steps.

A step executor turns a :class:`StepRun` into an :class:`Outcome` (or raises);
the engine applies the outcome, writes one checkpoint and moves on. Executors
are objects with hook methods on a no-op base, so an extension overrides only
what its step type needs (``resume`` for steps that halt, ``timeout`` for
steps with timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
import time
import weakref
from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import attrs

from . import _registry
from ._conditions import ConditionError, evaluate
from ._context import StepContext, _current
from ._definitions import (
    ApprovalConfig,
    AssignConfig,
    CallConfig,
    EndConfig,
    HaltConfig,
    RouterConfig,
    StepDef,
    TransformConfig,
    WorkflowDef,
)
from ._expressions import Scope, is_reference, parse_path, resolve, walk
from ._problems import did_you_mean
from ._services import bind_arguments, to_json
from ._transforms import apply as apply_transform
from .errors import ExecutionError, ValidationError
from .frozen import JsonTypeError, freeze, thaw
from .records import Action, Execution

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = [
    "Decision",
    "Outcome",
    "StepExecutor",
    "StepRun",
    "executor_for",
    "register_executor",
    "validate_input",
]


@attrs.frozen(kw_only=True)
class Decision:
    """What a resume call said: ``approved``, ``by`` and ``response``."""

    approved: bool | None = None
    by: str | None = None
    response: Any = None


@attrs.frozen(kw_only=True)
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
        wake_at_seconds: with ``halt``, wake the execution after this many seconds.
        action: the entry's action.
        payload: extra event details.
        progress: the step is not finished: checkpoint this JSON state (without
            an entry) and run the step again, which then finds it in
            ``StepRun.state``. A step that calls a model several times saves each
            reply this way, so a crash never repeats a finished call.
    """

    target: str | None = None
    stay: bool = False
    finish: bool = False
    updates: Mapping[str, Any] = attrs.field(factory=dict)
    output: Any = None
    input: Any = None
    halt: dict[str, Any] | None = None
    wake_at_seconds: float | None = None
    action: Action = Action.COMPLETED
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    progress: Any = None


@attrs.define(kw_only=True)  # not frozen: one is built per step, and frozen init is slower
class StepRun:
    """Everything an executor may use to run one step once.

    Attributes:
        engine: the engine running it (services, clock, sub-workflows).
        workflow: the definition.
        execution: the execution record before this step.
        step: the step definition.
        path: the step's id, qualified by enclosing loops (``each:charge``).
        scope: what references read (ctx, loop variables, ``$now``, ``$history``).
        attempt: 1, 2, 3… across retries.
        iteration: the innermost loop iteration, or None.
        key: the idempotency key of this visit.
        deadline: ``time.monotonic()`` value the step must finish by, or None.
        visit: the position of this visit in the execution's history.
        state: what the step saved with ``Outcome(progress=…)`` earlier in this
            visit (kept across crashes, retries and halts), or None.
        branch: the branch's id when the step runs as a branch of a parallel
            step (sibling branches share ``visit``), else None.
    """

    engine: Engine
    workflow: WorkflowDef
    execution: Execution
    step: StepDef
    path: str
    scope: Scope
    attempt: int
    iteration: int | None
    key: str
    deadline: float | None
    visit: int
    state: Mapping[str, Any] | None = None
    branch: str | None = None

    def context(self) -> StepContext:
        """The :func:`flowkit.current` value while this step runs."""
        return StepContext(
            execution_id=self.execution.id,
            workflow_id=self.workflow.id,
            step_id=self.path,
            attempt=self.attempt,
            iteration=self.iteration,
            idempotency_key=self.key,
        )

    def remaining(self, timeout: float | None) -> float | None:
        """The time the step may take: its own ``timeout`` bounded by the deadline."""
        if self.deadline is None:
            return timeout
        left = max(self.deadline - time.monotonic(), 0.0)
        return left if timeout is None else min(timeout, left)


class StepExecutor:
    """The no-op base of step executors; override the hooks a step type needs."""

    def run(self, run: StepRun) -> Outcome:
        """Run the step once."""
        raise NotImplementedError

    def check_resume(self, run: StepRun, decision: Decision) -> None:
        """Refuse a resume before anything changes (raise ``ExecutionError``)."""

    def resume(self, run: StepRun, decision: Decision) -> Outcome:
        """Continue after the step halted; by default at its ``next``."""
        return Outcome(
            target=run.step.next,
            output=decision.response,
            updates={"response": decision.response},
            action=Action.RESUMED,
        )

    def timeout(self, run: StepRun) -> Outcome:
        """The step's timer fired (``wake_at`` passed) while it was halted."""
        raise ExecutionError(f"step '{run.path}' has no timer to fire")


def register_executor(step_type: str, executor: StepExecutor) -> None:
    """Make ``executor`` run steps of ``step_type`` (extensions call this)."""
    _registry.register_executor(step_type, executor)


def executor_for(step_type: str) -> StepExecutor:
    """The executor of a step type.

    Raises:
        ExecutionError: no executor is registered for it.
    """
    executor = _registry.executor(step_type)
    if executor is None:
        raise ExecutionError(f"no executor is registered for step type '{step_type}'")
    assert isinstance(executor, StepExecutor)
    return executor


# --- input validation ---------------------------------------------------------------------------

_INPUT_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, (list, tuple)),
    "object": lambda v: isinstance(v, Mapping),
    "any": lambda v: True,
}


def validate_input(wf: WorkflowDef, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check an input against the workflow's declared inputs and apply defaults.

    Returns:
        The input as plain JSON data, with defaults filled in.

    Raises:
        ValidationError: every problem at once (missing, wrong type, undeclared,
            not JSON data).
    """
    given = dict(data or {})
    problems = []
    try:
        freeze(given)
    except JsonTypeError as exc:
        problems.append(f"input {exc}")
    declared = {spec.name: spec for spec in wf.inputs}
    if declared:
        for name in given:
            if name not in declared:
                hint = did_you_mean(name, declared) or f" (declared: {', '.join(declared)})"
                problems.append(f"unknown input '{name}'{hint}")
    for spec in wf.inputs:
        if spec.name not in given or given[spec.name] is None:
            if spec.default is not None:
                given[spec.name] = thaw(spec.default)
            elif spec.required:
                what = f" ({spec.description})" if spec.description else ""
                problems.append(f"missing required input '{spec.name}' of type {spec.type}{what}")
            continue
        value = given[spec.name]
        if not _INPUT_CHECKS[spec.type](value):
            problems.append(
                f"input '{spec.name}' must be of type {spec.type}, got {type(value).__name__} "
                f"{value!r:.60}"
            )
    if problems:
        raise ValidationError(problems, subject=f"input for workflow '{wf.id}'")
    plain: dict[str, Any] = thaw(given)
    return plain


# --- the simple step types ----------------------------------------------------------------------


class Start(StepExecutor):
    """The input was validated when the execution was created; ``$input`` reads it
    from the execution record, so it is not copied into ctx (and never rewritten)."""

    def run(self, run: StepRun) -> Outcome:
        return Outcome(target=run.step.next, output=run.execution.input)


class End(StepExecutor):
    def run(self, run: StepRun) -> Outcome:
        config: EndConfig = run.step.config
        if config.result is None:
            result = thaw(dict(run.scope.ctx))
        else:
            result = resolve(config.result, run.scope)
        return Outcome(finish=True, updates={"result": result}, output=result)


class Assign(StepExecutor):
    def run(self, run: StepRun) -> Outcome:
        config: AssignConfig = run.step.config
        assigned: dict[str, Any] = {}
        ctx = cast("MutableMapping[str, Any]", run.scope.ctx)  # ChainMap only reads it
        scope = run.scope.with_ctx(ChainMap(assigned, ctx))
        for key, value in config.set.items():
            assigned[key] = resolve(value, scope)
        return Outcome(target=run.step.next, updates=assigned, output=assigned)


class Router(StepExecutor):
    def run(self, run: StepRun) -> Outcome:
        config: RouterConfig = run.step.config
        errors: list[str] = []
        for route in config.routes:
            cond = route.when
            try:
                if evaluate(cond.field, cond.op, cond.value, run.scope):
                    return _routed(route.then, errors)
            except ConditionError as exc:
                errors.append(f"{cond.field} {cond.op}: {exc}")
        if config.default is not None:
            return _routed(config.default, errors)
        detail = f" (conditions that could not be evaluated: {'; '.join(errors)})" if errors else ""
        raise ExecutionError(
            f"router '{run.path}': no route matched and there is no default{detail}"
        )


def _routed(target: str, errors: list[str]) -> Outcome:
    payload = {"condition_errors": errors} if errors else {}
    return Outcome(target=target, output={"route": target}, payload=payload)


class Transform(StepExecutor):
    def run(self, run: StepRun) -> Outcome:
        config: TransformConfig = run.step.config
        if config.input is None:
            data: Any = dict(run.scope.ctx)
        else:
            ref = parse_path(config.input)
            data = None if ref is None else walk(run.scope.root(ref.root), ".".join(ref.path))
        ops = [(op.op, op.arg) for op in config.expression]
        result = apply_transform(data, ops, run.scope)
        return Outcome(target=run.step.next, updates={config.output: result}, output=result)


class Halt(StepExecutor):
    def run(self, run: StepRun) -> Outcome:
        config: HaltConfig = run.step.config
        data = {
            "reason": resolve(config.reason, run.scope),
            "halted_at": run.engine.clock.now().isoformat(),
            **resolve(config.data, run.scope),
        }
        return Outcome(stay=True, halt=data, output=data, action=Action.HALTED)

    def resume(self, run: StepRun, decision: Decision) -> Outcome:
        config: HaltConfig = run.step.config
        return Outcome(
            target=config.resume_step or run.step.next,
            output=decision.response,
            updates={"response": decision.response},
            action=Action.RESUMED,
        )


class Approval(StepExecutor):
    def run(self, run: StepRun) -> Outcome:
        config: ApprovalConfig = run.step.config
        now = run.engine.clock.now()
        data: dict[str, Any] = {
            "prompt": resolve(config.prompt, run.scope),
            "context": resolve(config.context, run.scope),
            "approvers": list(config.approvers),
            "halted_at": now.isoformat(),
        }
        if config.timeout is not None:
            data["expires_at"] = (now + timedelta(seconds=config.timeout)).isoformat()
        return Outcome(
            stay=True,
            halt=data,
            output=data,
            action=Action.HALTED,
            wake_at_seconds=config.timeout,
        )

    def check_resume(self, run: StepRun, decision: Decision) -> None:
        config: ApprovalConfig = run.step.config
        if decision.approved is None:
            raise ExecutionError(
                f"approval '{run.path}' of execution '{run.execution.id}' needs a decision: "
                "resume with approved=True or approved=False (CLI: --approve or --reject)"
            )
        if config.approvers and decision.by not in config.approvers:
            who = f"'{decision.by}'" if decision.by else "an anonymous caller"
            raise ExecutionError(
                f"approval '{run.path}' of execution '{run.execution.id}' can only be decided by "
                f"{', '.join(config.approvers)}; {who} is not one of them (pass by=<approver>)"
            )

    def resume(self, run: StepRun, decision: Decision) -> Outcome:
        config: ApprovalConfig = run.step.config
        output = {"approved": decision.approved, "by": decision.by, "response": decision.response}
        updates = {"response": decision.response}
        if decision.approved:
            return Outcome(
                target=run.step.next, output=output, updates=updates, action=Action.RESUMED
            )
        if config.on_reject is not None:
            return Outcome(
                target=config.on_reject, output=output, updates=updates, action=Action.RESUMED
            )
        by = f" by {decision.by}" if decision.by else ""
        raise ExecutionError(f"approval '{run.path}' was rejected{by}")

    def timeout(self, run: StepRun) -> Outcome:
        config: ApprovalConfig = run.step.config
        if config.on_timeout is not None:
            return Outcome(
                target=config.on_timeout, output={"timed_out": True}, action=Action.RESUMED
            )
        raise ExecutionError(
            f"approval '{run.path}' timed out after {config.timeout:g}s with no decision"
        )


class Call(StepExecutor):
    def run(self, run: StepRun) -> Outcome:
        config: CallConfig = run.step.config
        value = resolve(config.input, run.scope)
        function = run.engine.services.resolve(config.service, config.method)
        where = f"step '{run.path}'"
        result = invoke(function, value, run, run.remaining(config.timeout), where)
        output = config.output
        if output is None:
            return Outcome(target=run.step.next, output=result, input=value)
        if output.schema is not None:
            from ._services import validate_output

            validate_output(result, output.schema, where)
        return Outcome(
            target=run.step.next, updates={output.key: result}, output=result, input=value
        )


def invoke(
    function: Callable[..., Any], value: Any, run: StepRun, timeout: float | None, where: str
) -> Any:
    """Call a service callable with the calling convention, a timeout and ``current()``.

    Async callables are awaited (and cancelled on timeout); sync callables with
    a timeout run in a helper thread that is abandoned on timeout.

    Raises:
        ExecutionError: the call timed out, or its result is not JSON data.
    """
    args, kwargs = bind_arguments(function, value)
    token = _current.set(run)
    try:
        if _is_async(function):
            result = _run_async(function(*args, **kwargs), timeout, where)
        elif timeout is None:
            result = function(*args, **kwargs)
        else:
            result = _run_with_timeout(function, args, kwargs, timeout, where)
    finally:
        _current.reset(token)
    return to_json(result, where)


_async_cache: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _is_async(function: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, remembered per function (it is slow to ask)."""
    key = getattr(function, "__func__", function)
    try:
        return _async_cache[key]
    except (KeyError, TypeError):
        found = inspect.iscoroutinefunction(function)
        with contextlib.suppress(TypeError):  # not weak-referenceable: ask every time
            _async_cache[key] = found
        return found


def _timed_out(where: str, timeout: float) -> ExecutionError:
    return ExecutionError(f"{where[0].upper()}{where[1:]} timed out after {timeout:g}s")


_loops = threading.local()


def _run_async(coroutine: Any, timeout: float | None, where: str) -> Any:
    async def bounded() -> Any:
        if timeout is None:
            return await coroutine
        try:
            return await asyncio.wait_for(coroutine, timeout)
        except TimeoutError:
            raise _timed_out(where, timeout) from None

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        runner = getattr(_loops, "runner", None)
        if runner is None:
            runner = _loops.runner = asyncio.Runner()
        return runner.run(bounded())
    # Called from inside an event loop: run the coroutine on a loop of its own.
    box: dict[str, Any] = {}
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=lambda: context.run(_store_result, box, lambda: asyncio.run(bounded()))
    )
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _store_result(box: dict[str, Any], function: Callable[[], Any]) -> None:
    try:
        box["value"] = function()
    except BaseException as exc:
        box["error"] = exc


def _run_with_timeout(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float,
    where: str,
) -> Any:
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        context.run(_store_result, box, lambda: function(*args, **kwargs))
        done.set()

    threading.Thread(target=target, daemon=True, name=f"flowkit-call {where}").start()
    if not done.wait(timeout):
        raise _timed_out(where, timeout)  # the thread is abandoned; its result is discarded
    if "error" in box:
        raise box["error"]
    return box.get("value")


def over_items(value: Any, scope: Scope) -> Any:
    """The list a foreach loop iterates over, read without copying when it is a reference."""
    if is_reference(value):
        ref = parse_path(value)
        if ref is not None:
            return walk(scope.root(ref.root), ".".join(ref.path))
    return resolve(value, scope)


class Structural(StepExecutor):
    """Loops and parallel steps: the engine runs them itself (their frames need it)."""


for _name, _executor in {
    "loop": Structural(),
    "parallel": Structural(),
    "start": Start(),
    "end": End(),
    "assign": Assign(),
    "router": Router(),
    "transform": Transform(),
    "halt": Halt(),
    "approval": Approval(),
    "call": Call(),
}.items():
    register_executor(_name, _executor)

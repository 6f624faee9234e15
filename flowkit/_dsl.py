"""Writing workflows in plain Python (SPEC §5).

A :class:`Workflow` collects steps in the order they are declared and compiles
them into exactly the :class:`WorkflowDef` the YAML parser would build: every
``next`` is explicit, a ``start`` step is added first unless one is declared,
and the same validator reports mistakes, with the file and line of the Python
code that declared the step.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, overload

import attrs

from . import _registry
from ._definitions import (
    ApprovalConfig,
    AssignConfig,
    CallConfig,
    Condition,
    EndConfig,
    HaltConfig,
    InputDef,
    LoopConfig,
    OutputSpec,
    ParallelConfig,
    Route,
    RouterConfig,
    SourceLocation,
    StartConfig,
    StepDef,
    TransformConfig,
    TransformOp,
    WorkflowConfig,
    WorkflowDef,
)
from ._problems import Problem, did_you_mean
from .errors import ValidationError
from .frozen import FrozenDict

__all__ = ["Input", "Workflow", "register_builder", "register_method", "when"]

F = TypeVar("F", bound=Callable[..., Any])


class _Implicit:
    """The default of ``next``: continue with the step declared after this one."""

    def __repr__(self) -> str:
        return "<next step>"


IMPLICIT: Any = _Implicit()

_PY_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
    Any: "any",
    object: "any",
}


def _input_type(hint: Any) -> str:
    if isinstance(hint, str):
        return hint
    origin = typing.get_origin(hint) or hint
    if origin in _PY_TYPES:
        return _PY_TYPES[origin]
    raise TypeError(
        f"cannot map {hint!r} to an input type "
        "(use str, int, float, bool, list, dict, Any or flowkit.Input(type=...))"
    )


@attrs.frozen(kw_only=True)
class Input:
    """A workflow input declared in Python: ``flowkit.Input(type=float, required=False)``.

    Attributes:
        type: a Python type (``str``, ``int``, ``float``, ``bool``, ``list``,
            ``dict``, ``Any``) or an input type name (``"number"``).
        required: whether a run must give it.
        default: the value used when it is not given.
        description: what it is, for people reading the workflow.
    """

    type: Any = str
    required: bool = True
    default: Any = None
    description: str | None = None


@attrs.frozen
class _When:
    condition: Condition

    def then(self, target: str) -> Route:
        """The route: go to ``target`` when the condition holds."""
        return Route(when=self.condition, then=target)


def when(field: str, op: str, value: Any = None) -> _When:
    """Start a router route: ``flowkit.when("order.total", "gt", 100).then("approve")``."""
    return _When(Condition(field=field, op=op, value=value))


_INTERNAL_FILES = frozenset({__file__, contextlib.__file__})
"""Frames skipped when looking for the user's code (``with wf.loop(...)`` runs in contextlib)."""


def _message(exc: BaseException) -> str:
    """An exception's message; attrs' validators pass ``(message, attribute, ...)``."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _caller() -> SourceLocation:
    """Where user code called into the builder (for error messages)."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in _INTERNAL_FILES:
        frame = frame.f_back
    if frame is None:
        return SourceLocation()
    return SourceLocation(file=frame.f_code.co_filename, line=frame.f_lineno)


def _source_of(fn: Callable[..., Any]) -> SourceLocation:
    target = inspect.unwrap(fn)
    try:
        file = inspect.getsourcefile(target)
    except TypeError:
        file = None
    code = getattr(target, "__code__", None)
    return SourceLocation(file=file, line=code.co_firstlineno if code else None)


@attrs.define
class _Declared:
    """A step as declared: its definition and whether ``next`` was given."""

    step: StepDef
    implicit_next: bool


_BUILDERS: dict[str, Callable[..., StepDef]] = {}


_METHODS: dict[str, Callable[..., Any]] = {}


def register_method(name: str, method: Callable[..., Any]) -> None:
    """Add ``workflow.<name>(...)``, calling ``method(graph, ...)`` (e.g. ``@wf.tool``).

    ``graph`` is the workflow, loop body or parallel branches it was called on;
    ``graph.workflow`` is the :class:`Workflow`.
    """
    _METHODS[name] = method


def register_builder(name: str, build: Callable[..., StepDef]) -> None:
    """Add ``workflow.<name>(id, **options)`` for an extension step type.

    ``build(id, **options)`` returns the :class:`StepDef` (its ``next`` is
    filled in like any other step's unless the caller passes ``next=``).
    """
    _BUILDERS[name] = build


class _Graph:
    """Steps declared in one graph: the workflow, a loop body or parallel branches."""

    def __init__(self, owner: Workflow, *, branches: bool = False) -> None:
        self._owner = owner
        self._branches = branches
        self._declared: list[_Declared] = []

    # --- compiling ------------------------------------------------------------------------------

    def _steps(self) -> tuple[StepDef, ...]:
        """The steps with every implicit ``next`` made explicit."""
        steps = []
        for index, item in enumerate(self._declared):
            step = item.step
            if item.implicit_next:
                following = (
                    self._declared[index + 1].step.id if index + 1 < len(self._declared) else None
                )
                kind = _registry.step_type(step.type)
                terminal = kind is not None and kind.terminal
                if self._branches or terminal or step.type == "router":
                    following = None
                step = attrs.evolve(step, next=following)
            steps.append(step)
        return tuple(steps)

    def _add(
        self,
        step_id: str,
        kind: str,
        config: Any,
        next: Any,
        on_error: str | None,
        source: SourceLocation | None = None,
    ) -> StepDef:
        try:
            step = StepDef(
                id=step_id,
                type=kind,
                config=config,
                next=None if next is IMPLICIT else next,
                on_error=on_error,
                source=source or _caller(),
            )
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                [
                    Problem(
                        _message(exc),
                        workflow_id=self._owner.id,
                        step_id=str(step_id),
                        location=source or _caller(),
                    )
                ],
                subject=f"workflow '{self._owner.id}'",
            ) from None
        self._declared.append(_Declared(step, next is IMPLICIT))
        self._owner._changed()
        return step

    def _config(
        self,
        cls: type[Any],
        step_id: str,
        source: SourceLocation | None = None,
        /,
        **options: Any,
    ) -> Any:
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:
            where = source or _caller()
            raise ValidationError(
                [
                    Problem(
                        _message(exc), workflow_id=self._owner.id, step_id=step_id, location=where
                    )
                ],
                subject=f"workflow '{self._owner.id}'",
            ) from None

    def add(self, step: StepDef, *, implicit_next: bool = False) -> StepDef:
        """Add a ready :class:`StepDef` (any registered type).

        With ``implicit_next``, its ``next`` becomes the step declared after it.
        """
        self._declared.append(_Declared(step, implicit_next))
        self._owner._changed()
        return step

    # --- one builder per core step type ---------------------------------------------------------

    def start(
        self,
        id: str = "start",
        *,
        validate_input: bool = True,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> StepDef:
        """A ``start`` step: validates the input (added automatically when not declared)."""
        config = self._config(StartConfig, id, validate_input=validate_input)
        return self._add(id, "start", config, next, on_error)

    def end(self, id: str = "end", *, result: Any = None, on_error: str | None = None) -> StepDef:
        """An ``end`` step: sets the workflow's result and finishes."""
        config = self._config(EndConfig, id, result=result)
        return self._add(id, "end", config, IMPLICIT, on_error)

    def call(
        self,
        id: str,
        *,
        service: str,
        method: str,
        input: Any = None,
        output: str | OutputSpec | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> StepDef:
        """A ``call`` step invoking a registered service's method."""
        if isinstance(output, Mapping):
            output = OutputSpec(key=output["key"], schema=output.get("schema"))
        config = self._config(
            CallConfig,
            id,
            service=service,
            method=method,
            input=input,
            output=output,
            timeout=timeout,
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
        )
        return self._add(id, "call", config, next, on_error)

    def assign(
        self,
        id: str,
        *,
        set: Mapping[str, Any],
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> StepDef:
        """An ``assign`` step storing each value of ``set`` in ctx, in order."""
        return self._add(id, "assign", self._config(AssignConfig, id, set=set), next, on_error)

    def router(
        self,
        id: str,
        *,
        routes: Sequence[Route] = (),
        default: str | None = None,
        on_error: str | None = None,
        next: str | None = None,
    ) -> StepDef:
        """A ``router`` step: the first route whose condition holds, else ``default``.

        A router never continues to the step declared after it. ``next`` exists
        only because YAML allows the key on every step; the router ignores it.
        """
        config = self._config(RouterConfig, id, routes=tuple(routes), default=default)
        return self._add(id, "router", config, IMPLICIT if next is None else next, on_error)

    def transform(
        self,
        id: str,
        *,
        expression: Mapping[str, Any] | Sequence[tuple[str, Any]],
        output: str,
        input: str | None = None,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> StepDef:
        """A ``transform`` step applying ``expression`` ops (``{"pluck": "price"}``) in order."""
        pairs = expression.items() if isinstance(expression, Mapping) else expression
        ops = tuple(TransformOp(op=op, arg=arg) for op, arg in pairs)
        config = self._config(TransformConfig, id, expression=ops, output=output, input=input)
        return self._add(id, "transform", config, next, on_error)

    def halt(
        self,
        id: str,
        *,
        reason: str | None = None,
        data: Mapping[str, Any] | None = None,
        resume_step: str | None = None,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> StepDef:
        """A ``halt`` step: stop until the execution is resumed."""
        config = self._config(
            HaltConfig, id, reason=reason, data=data or {}, resume_step=resume_step
        )
        return self._add(id, "halt", config, next, on_error)

    def approval(
        self,
        id: str,
        *,
        prompt: str | None = None,
        context: Any = None,
        approvers: Sequence[str] = (),
        on_reject: str | None = None,
        timeout: float | None = None,
        on_timeout: str | None = None,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> StepDef:
        """An ``approval`` step: halt until someone approves or rejects."""
        config = self._config(
            ApprovalConfig,
            id,
            prompt=prompt,
            context=context,
            approvers=tuple(approvers),
            on_reject=on_reject,
            timeout=timeout,
            on_timeout=on_timeout,
        )
        return self._add(id, "approval", config, next, on_error)

    def subworkflow(
        self,
        id: str,
        *,
        workflow: str | Workflow | WorkflowDef,
        input: Any = None,
        output: str | None = None,
        timeout: float | None = None,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> StepDef:
        """A ``workflow`` step running another workflow as a child execution.

        A :class:`Workflow` or :class:`WorkflowDef` given here is registered, so
        the engine finds it by id.
        """
        if not isinstance(workflow, str):
            from ._workflows import register

            workflow = register(workflow).id
        config = self._config(
            WorkflowConfig, id, workflow_id=workflow, input=input, output=output, timeout=timeout
        )
        return self._add(id, "workflow", config, next, on_error)

    @contextmanager
    def loop(
        self,
        id: str,
        *,
        over: Any = None,
        while_: Condition | _When | None = None,
        as_: str = "item",
        index_as: str = "index",
        output: str | None = None,
        max: int = 100,
        on_exhausted: str | None = None,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> Iterator[_Graph]:
        """A ``loop`` step; declare its body on the builder this yields.

        ``with wf.loop("each", over="$input.items") as body: body.call(...)``
        """
        source = _caller()
        condition = while_.condition if isinstance(while_, _When) else while_
        options = {
            "over": over,
            "as_": as_,
            "index_as": index_as,
            "while_": condition,
            "output": output,
            "max": max,
            "on_exhausted": on_exhausted,
        }
        self._config(LoopConfig, id, source, do=(), **options)  # fail at the `with` line
        body = _Graph(self._owner)
        yield body
        config = self._config(LoopConfig, id, source, do=body._steps(), **options)
        self._add(id, "loop", config, next, on_error, source)

    @contextmanager
    def parallel(
        self,
        id: str,
        *,
        wait: str | int = "all",
        output: str | None = None,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> Iterator[_Graph]:
        """A ``parallel`` step; declare each branch (one step) on the builder this yields."""
        source = _caller()
        self._config(ParallelConfig, id, source, branches=(), wait=wait, output=output)
        branches = _Graph(self._owner, branches=True)
        yield branches
        config = self._config(
            ParallelConfig, id, source, branches=branches._steps(), wait=wait, output=output
        )
        self._add(id, "parallel", config, next, on_error, source)

    # --- Python functions as steps --------------------------------------------------------------

    @overload
    def step(self, fn: F, /) -> F: ...

    @overload
    def step(
        self,
        *,
        id: str | None = None,
        input: Any = None,
        output: str | OutputSpec | Mapping[str, Any] | None = None,
        service: str | None = None,
        method: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        next: Any = IMPLICIT,
        on_error: str | None = None,
    ) -> Callable[[F], F]: ...

    def step(self, fn: Any = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """Declare a function as a ``call`` step (``@wf.step`` or ``@wf.step(output=…)``).

        The function is registered as a service (``service`` = the workflow id,
        ``method`` = the function name, both overridable) and stays a plain
        callable. Its ``input`` defaults to one reference per parameter without
        a default value: ``$input.<name>`` for workflow inputs, ``$<name>``
        otherwise (workflow inputs are mapped even when they have defaults).
        """
        if fn is not None:
            return self._function_step(fn, {})

        def decorate(function: F) -> F:
            return self._function_step(function, options)

        return decorate

    def _function_step(self, fn: F, options: dict[str, Any]) -> F:
        name = fn.__name__
        unknown = sorted(set(options) - _STEP_OPTIONS)
        if unknown:
            raise ValidationError(
                [
                    Problem(
                        f"unknown option '{key}'{did_you_mean(key, _STEP_OPTIONS)}",
                        workflow_id=self._owner.id,
                        step_id=options.get("id") or name,
                        location=_source_of(fn),
                    )
                    for key in unknown
                ],
                subject=f"workflow '{self._owner.id}'",
            )
        service = options.pop("service", None) or self._owner.id
        method = options.pop("method", None) or name
        step_id = options.pop("id", None) or name
        if "input" not in options:
            options["input"] = self._owner._references_for(fn)
        self._owner._add_service(service, method, fn)
        source = _source_of(fn)
        next_ = options.pop("next", IMPLICIT)
        on_error = options.pop("on_error", None)
        output = options.pop("output", None)
        if isinstance(output, Mapping):
            output = OutputSpec(key=output["key"], schema=output.get("schema"))
        try:
            config = CallConfig(service=service, method=method, output=output, **options)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                [
                    Problem(
                        _message(exc), workflow_id=self._owner.id, step_id=step_id, location=source
                    )
                ],
                subject=f"workflow '{self._owner.id}'",
            ) from None
        self._add(step_id, "call", config, next_, on_error, source)
        return fn

    def route(
        self,
        *,
        targets: Sequence[str],
        id: str | None = None,
        input: Any = None,
        default: str | None = None,
    ) -> Callable[[F], F]:
        """Declare a function returning the id of the next step.

        Compiles to a ``call`` step storing the returned id under the function's
        name, then a router ``<name>_route`` with one route per target (and
        ``default``, else an unknown id fails the router).
        """

        def decorate(fn: F) -> F:
            name = id or fn.__name__
            options: dict[str, Any] = {"id": name, "output": name}
            if input is not None:
                options["input"] = input
            self.step(**options)(fn)
            source = _source_of(fn)
            routes = tuple(
                Route(when=Condition(field=name, op="eq", value=t), then=t) for t in targets
            )
            config = RouterConfig(routes=routes, default=default)
            self._add(f"{name}_route", "router", config, IMPLICIT, None, source)
            return fn

        return decorate

    @property
    def workflow(self) -> Workflow:
        """The workflow this graph belongs to."""
        return self._owner

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = _METHODS.get(name)
        if method is not None:
            return functools.partial(method, self)
        build = _BUILDERS.get(name)
        if build is None:
            raise AttributeError(
                f"{type(self).__name__} has no builder {name!r} "
                f"(core builders: {', '.join(_CORE_BUILDERS)}; extensions add more)"
            )

        def add(step_id: str, /, *, next: Any = IMPLICIT, **options: Any) -> StepDef:
            step = build(step_id, **options)
            step = attrs.evolve(step, source=step.source or _caller())
            if next is not IMPLICIT:
                step = attrs.evolve(step, next=next)
            return self.add(step, implicit_next=next is IMPLICIT)

        return add


_STEP_OPTIONS = frozenset(
    {
        "id",
        "input",
        "output",
        "service",
        "method",
        "timeout",
        "retries",
        "retry_delay",
        "retry_backoff",
        "next",
        "on_error",
    }
)
"""What ``@wf.step(...)`` accepts."""

_CORE_BUILDERS = (
    "start",
    "end",
    "call",
    "assign",
    "router",
    "loop",
    "parallel",
    "transform",
    "halt",
    "approval",
    "subworkflow",
    "step",
    "route",
)


class Workflow(_Graph):
    """A workflow written in Python; :attr:`definition` is its :class:`WorkflowDef`.

    Args:
        id: the workflow id (also the service name of its ``@wf.step`` functions).
        name: a display name.
        version: the workflow's version.
        description: what it does.
        timeout: seconds the whole execution may take.
        inputs: name → Python type (``str``, ``int``, ``float``, ``bool``,
            ``list``, ``dict``, ``Any``), input type name, or :class:`Input`.
        add_start: add a ``start`` step first unless one is declared.
        register_services: register ``@wf.step`` functions in the global
            service registry as they are declared (otherwise use
            :meth:`register_services`).
    """

    def __init__(
        self,
        id: str,
        *,
        name: str | None = None,
        version: str = "1.0",
        description: str | None = None,
        timeout: float | None = None,
        inputs: Mapping[str, Any] | None = None,
        add_start: bool = True,
        register_services: bool = True,
    ) -> None:
        self.id = id
        self._source = _caller()
        self._meta = {
            "name": name,
            "version": version,
            "description": description,
            "timeout": timeout,
        }
        self._inputs = tuple(self._input(key, value) for key, value in (inputs or {}).items())
        self._add_start = add_start
        self._register = register_services
        self._extensions: dict[str, Any] = {}
        self.services: dict[str, dict[str, Callable[..., Any]]] = {}
        self._filled: list[Any] = []  # registries that hold the current @wf.step functions
        self._definition: WorkflowDef | None = None
        super().__init__(self)
        self._workflow(())  # bad metadata fails here, not when the definition is built

    def _changed(self) -> None:
        self._definition = None

    def _input(self, name: str, value: Any) -> InputDef:
        try:
            if isinstance(value, Input):
                return InputDef(
                    name=name,
                    type=_input_type(value.type),
                    required=value.required,
                    default=value.default,
                    description=value.description,
                )
            return InputDef(name=name, type=_input_type(value))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                [
                    Problem(
                        f"input '{name}': {_message(exc)}",
                        workflow_id=self.id,
                        location=self._source,
                    )
                ],
                subject=f"workflow '{self.id}'",
            ) from None

    def extension(self, key: str, value: Any) -> None:
        """Set a top-level extension value (e.g. the AI extension's ``agents``).

        The value is given as in YAML and structured by the extension that
        registered ``key``, so the definition equals the parsed YAML's.

        Raises:
            ValidationError: no extension registered ``key``, or it rejects the value.
        """
        ext = _registry.extensions().get(key)
        try:
            if ext is None:
                known = ", ".join(sorted(_registry.extensions())) or "none registered"
                raise ValueError(f"unknown extension key '{key}' (known: {known})")
            structured = ext.structure(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                [Problem(f"'{key}': {_message(exc)}", workflow_id=self.id, location=_caller())],
                subject=f"workflow '{self.id}'",
            ) from None
        self._extensions[key] = structured
        self._changed()

    def _workflow(self, steps: tuple[StepDef, ...]) -> WorkflowDef:
        try:
            return WorkflowDef(
                id=self.id,
                steps=steps,
                inputs=self._inputs,
                extensions=FrozenDict(self._extensions),
                source=self._source,
                **self._meta,  # type: ignore[arg-type]
            )
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                [Problem(_message(exc), workflow_id=str(self.id), location=self._source)],
                subject=f"workflow '{self.id}'",
            ) from None

    @property
    def definition(self) -> WorkflowDef:
        """The compiled, validated definition.

        Raises:
            ValidationError: every problem, with the file and line that declared each step.
        """
        if self._definition is None:
            steps = self._steps()
            if self._add_start and not any(step.type == "start" for step in steps):
                first = steps[0].id if steps else None
                start = StepDef(id="start", type="start", config=StartConfig(), next=first)
                steps = (start, *steps)
            wf = self._workflow(steps)
            from ._validate import check

            problems = check(wf)
            if problems:
                raise ValidationError(problems, subject=f"workflow '{self.id}'")
            self._definition = wf
        return self._definition

    # --- services -------------------------------------------------------------------------------

    def _references_for(self, fn: Callable[..., Any]) -> dict[str, str] | None:
        inputs = {spec.name for spec in self._inputs}
        mapping = {}
        for parameter in inspect.signature(fn).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if parameter.name in inputs:
                mapping[parameter.name] = f"$input.{parameter.name}"
            elif parameter.default is parameter.empty:
                mapping[parameter.name] = f"${parameter.name}"
        return mapping or None

    def _add_service(self, service: str, method: str, fn: Callable[..., Any]) -> None:
        checked = _checked(fn, f"step '{fn.__name__}'")
        methods = self.services.setdefault(service, {})
        methods[method] = checked
        self._filled = []
        if self._register:
            from ._services import default_registry

            default_registry.register(service, dict(methods))
            self._filled.append(default_registry)

    def register_services(self, registry: Any) -> None:
        """Register this workflow's ``@wf.step`` functions in a service registry.

        The engine calls this for every run; a registry that already holds the
        current functions is left alone, so a test's ``stub_service`` for one
        of them stays in place.
        """
        if any(filled is registry for filled in self._filled):
            return
        for service, methods in self.services.items():
            registry.register(service, dict(methods))
        self._filled.append(registry)


# --- checking arguments against type hints -------------------------------------------------------


def _checked(fn: F, where: str) -> F:
    """``fn`` wrapped to check its arguments against its type hints when a step calls it."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: nothing to check against
        return fn
    signature = inspect.signature(fn)
    checks = {
        name: hint
        for name, hint in hints.items()
        if name != "return" and name in signature.parameters and _checkable(hint)
    }
    if not checks:
        return fn

    def verify(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        bound = signature.bind_partial(*args, **kwargs)
        problems = []
        for name, value in bound.arguments.items():
            hint = checks.get(name)
            if hint is not None and not _matches(value, hint):
                problems.append(
                    f"parameter '{name}' expects {_hint_name(hint)}, got "
                    f"{type(value).__name__} {value!r:.60}"
                )
        if problems:
            raise TypeError(f"{where}: {'; '.join(problems)}")

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def checked_async(*args: Any, **kwargs: Any) -> Any:
            verify(args, kwargs)
            return await fn(*args, **kwargs)

        return checked_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        verify(args, kwargs)
        return fn(*args, **kwargs)

    return checked  # type: ignore[return-value]


_SIMPLE = (str, int, float, bool, list, dict, tuple, type(None))


def _checkable(hint: Any) -> bool:
    if hint in _SIMPLE:
        return True
    origin = typing.get_origin(hint)
    if origin in (list, dict, tuple):
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_checkable(arg) for arg in typing.get_args(hint))
    return False


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    target = origin or hint
    if target is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if target is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if target in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, target)


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")

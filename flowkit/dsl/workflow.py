"""Writing workflows in plain Python (SPEC §5): :class:`Workflow` and its step-graph builder.

A :class:`Workflow` collects steps in the order they are declared and compiles
them into exactly the :class:`~flowkit.definitions.WorkflowDef` the YAML parser
would build: every ``next`` is explicit, a ``start`` step is added first
unless one is declared, and the same validator reports mistakes, with the file
and line of the Python code that declared the step.

Each step type declares its own builder (``StepType.build``, in its module of
:mod:`flowkit.steps`); a :class:`Graph` offers them as methods (``wf.loop(...)``),
the core ones with their full signatures.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

import attrs

from ..abc import IMPLICIT, step_type, step_types
from ..definitions import (
    Condition,
    InputDef,
    Problem,
    SourceLocation,
    StepDef,
    WorkflowDef,
    check,
    did_you_mean,
)
from ..definitions.fields import Duration
from ..definitions.kinds import extensions, kinds
from ..errors import ValidationError
from ..frozen import FrozenDict
from ..services import default_registry as default_services
from ..steps import approval as approval_step
from ..steps import assign as assign_step
from ..steps import call as call_step
from ..steps import end as end_step
from ..steps import halt as halt_step
from ..steps import loop as loop_step
from ..steps import parallel as parallel_step
from ..steps import router as router_step
from ..steps import start as start_step
from ..steps import transform as transform_step
from ..steps import workflow as workflow_step
from ..steps.call import CallConfig, Compensation, OutputSpec, output_spec
from ..steps.router import Route, RouterConfig
from ..steps.start import StartConfig
from .hints import checked

__all__ = ["Graph", "Input", "Workflow", "register_method"]

F = TypeVar("F", bound=Callable[..., Any])

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


def _message(exc: BaseException) -> str:
    """An exception's message; attrs' validators pass ``(message, attribute, ...)``."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def caller() -> SourceLocation:
    """Where user code called into the DSL: the first frame outside flowkit, outside
    step types' builders, and outside contextlib (which runs ``with wf.loop(...)``)."""
    # A builder that runs is registered already: no plugin needs loading to find it.
    builders = {
        getattr(inspect.unwrap(build), "__code__", None)
        for kind in kinds(load_plugins=False).values()
        if (build := getattr(kind, "build", None)) is not None
    }
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and (
        frame.f_code in builders
        or frame.f_globals.get("__name__", "").startswith("flowkit.")
        or frame.f_code.co_filename == contextlib.__file__
    ):
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


_METHODS: dict[str, Callable[..., Any]] = {}


def register_method(name: str, method: Callable[..., Any]) -> None:
    """Add ``workflow.<name>(...)``, calling ``method(graph, ...)`` (e.g. ``@wf.tool``).

    ``graph`` is the workflow, loop body or parallel branches it was called on;
    ``graph.workflow`` is the :class:`Workflow`. Steps get their builders from
    their step type instead (``StepType.build``).
    """
    _METHODS[name] = method


class Graph:
    """Steps declared in one graph: the workflow, a loop body or parallel branches.

    It is the :class:`flowkit.abc.Builder` that step types' builders get.
    """

    def __init__(self, owner: Workflow, *, branches: bool = False) -> None:
        self._owner = owner
        self._branches = branches
        self._declared: list[_Declared] = []

    # --- what builders use (flowkit.abc.Builder) ------------------------------------------------

    @property
    def workflow(self) -> Workflow:
        """The workflow this graph belongs to."""
        return self._owner

    @property
    def workflow_id(self) -> str:
        """The id of the workflow being declared."""
        return self._owner.id

    def caller(self) -> SourceLocation:
        """Where user code called into the DSL."""
        return caller()

    def compiled(self) -> tuple[StepDef, ...]:
        """The steps with every implicit ``next`` made explicit."""
        steps = []
        for index, item in enumerate(self._declared):
            step = item.step
            if item.implicit_next:
                following = (
                    self._declared[index + 1].step.id if index + 1 < len(self._declared) else None
                )
                kind = step_type(step.type)
                if self._branches or (
                    kind is not None and (kind.terminal or not kind.falls_through)
                ):
                    following = None
                step = attrs.evolve(step, next=following)
            steps.append(step)
        return tuple(steps)

    def nested(self, *, branches: bool = False) -> Graph:
        """A builder for a nested graph: a loop's body, or a parallel step's ``branches``."""
        return Graph(self._owner, branches=branches)

    def add_step(
        self,
        step_id: str,
        step_type: str,
        config: Any,
        next: Any = IMPLICIT,
        on_error: str | None = None,
        source: SourceLocation | None = None,
    ) -> StepDef:
        """Declare a step; with ``next=IMPLICIT`` it continues with the step declared after it.

        Raises:
            ValidationError: the step is malformed, with the line that declared it.
        """
        try:
            step = StepDef(
                id=step_id,
                type=step_type,
                config=config,
                next=None if next is IMPLICIT else next,
                on_error=on_error,
                source=source or caller(),
            )
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                [
                    Problem(
                        _message(exc),
                        workflow_id=self._owner.id,
                        step_id=str(step_id),
                        location=source or caller(),
                    )
                ],
                subject=f"workflow '{self._owner.id}'",
            ) from None
        return self.add(step, implicit_next=next is IMPLICIT)

    def config(
        self,
        cls: type[Any],
        step_id: str,
        source: SourceLocation | None = None,
        /,
        **options: Any,
    ) -> Any:
        """``cls(**options)``; a bad option raises ``ValidationError`` naming the step and line."""
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:
            where = source or caller()
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

    # --- one builder per core step type, from the step types' own modules -----------------------

    start = start_step.start
    end = end_step.end
    call = call_step.call
    assign = assign_step.assign
    router = router_step.router
    transform = transform_step.transform
    halt = halt_step.halt
    approval = approval_step.approval
    subworkflow = workflow_step.subworkflow
    loop = loop_step.loop
    parallel = parallel_step.parallel

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
        timeout: Duration | None = None,
        retries: int = 0,
        retry_delay: Duration = 1.0,
        retry_backoff: float = 2.0,
        compensate: Callable[..., Any] | Compensation | Mapping[str, Any] | None = None,
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
        ``compensate`` undoes the step when the execution unwinds: a function
        (registered like the step's, its parameters mapped the same way, where
        ``output`` and ``step_input`` are what the step returned and was given)
        or a mapping ``{service, method, input}``.
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
        output = output_spec(options.pop("output", None))
        compensate = options.pop("compensate", None)
        if callable(compensate):
            # Registered like the step's own function; its parameters read ctx, and
            # `output` and `step_input` (what the step returned and was given).
            undo = compensate
            self._owner._add_service(service, undo.__name__, undo)
            compensate = Compensation(
                service=service, method=undo.__name__, input=self._owner._references_for(undo)
            )
        config = self.config(
            CallConfig,
            step_id,
            source,
            service=service,
            method=method,
            output=output,
            compensate=compensate,
            **options,
        )
        self.add_step(step_id, "call", config, next_, on_error, source)
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
            self.add_step(f"{name}_route", "router", config, IMPLICIT, None, source)
            return fn

        return decorate

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = _METHODS.get(name)
        if method is not None:
            return functools.partial(method, self)
        for kind in step_types().values():
            if kind.build is not None and (kind.dsl_name or kind.name) == name:
                return functools.partial(kind.build, self)
        raise AttributeError(
            f"{type(self).__name__} has no builder {name!r} "
            f"(core builders: {', '.join(_CORE_BUILDERS)}; extensions add more)"
        )


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
        "compensate",
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
    "sleep",
    "wait",
    "subworkflow",
    "step",
    "route",
)


class Workflow(Graph):
    """A workflow written in Python; :attr:`definition` is its :class:`WorkflowDef`.

    Args:
        id: the workflow id (also the service name of its ``@wf.step`` functions).
        name: a display name.
        version: the workflow's version.
        description: what it does.
        timeout: how long the whole execution may take: seconds, text such as
            ``"7d"`` or ``"PT1H"``, or a timedelta.
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
        timeout: Duration | None = None,
        inputs: Mapping[str, Any] | None = None,
        add_start: bool = True,
        register_services: bool = True,
    ) -> None:
        self.id = id
        self._source = caller()
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
        registered ``key``, so the definition equals the parsed YAML's; keys
        are kept in the order extensions registered them, as the parser does.

        Raises:
            ValidationError: no extension registered ``key``, or it rejects the value.
        """
        registered = extensions()
        ext = registered.get(key)
        try:
            if ext is None:
                known = ", ".join(sorted(registered)) or "none registered"
                raise ValueError(f"unknown extension key '{key}' (known: {known})")
            structured = ext.structure(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                [Problem(f"'{key}': {_message(exc)}", workflow_id=self.id, location=caller())],
                subject=f"workflow '{self.id}'",
            ) from None
        self._extensions[key] = structured
        order = list(registered)
        self._extensions = {
            name: self._extensions[name]
            for name in sorted(self._extensions, key=lambda k: order.index(k))
        }
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
            steps = self.compiled()
            if self._add_start and not any(step.type == "start" for step in steps):
                first = steps[0].id if steps else None
                start_step = StepDef(id="start", type="start", config=StartConfig(), next=first)
                steps = (start_step, *steps)
            wf = self._workflow(steps)
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
        function = checked(fn, f"step '{fn.__name__}'")
        methods = self.services.setdefault(service, {})
        methods[method] = function
        self._filled = []
        if self._register:
            default_services.register(service, dict(methods))
            self._filled.append(default_services)

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

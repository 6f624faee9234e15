"""Hypothesis strategies for workflow definitions.

Reusable beyond the round-trip tests: a later test builds the same definitions
through the Python DSL and compares them with these. Everything generated has a
valid *shape* (it is what :func:`flowkit.parse` can produce): targets always name
a step of the same graph, step ids are unique per graph, parallel branches are
single steps (no ``next``/``on_error``) of the types allowed there, and loop
bodies hold only types allowed in a loop. With ``names=identifiers()`` every id
and ctx name is also an identifier. References are *not* guaranteed to be
defined, so :func:`flowkit.check` may still report problems.

Main entry points:

- :func:`workflow_defs`: whole :class:`flowkit.WorkflowDef` values;
- :func:`step_defs`: one graph of steps (a list of :class:`flowkit.StepDef`);
- :func:`json_values`: JSON data as it may appear inside a definition;
- :data:`CONFIGS`: one strategy factory per core step type.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from typing import Any, Literal

from hypothesis import strategies as st

from flowkit import (
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
    StartConfig,
    StepDef,
    TransformConfig,
    TransformOp,
    WorkflowConfig,
    WorkflowDef,
)
from flowkit.definitions import INPUT_TYPES
from flowkit.expressions.conditions import CONDITION_OPS
from flowkit.expressions.transforms import TRANSFORM_OPS
from flowkit.steps.parallel import Wait

__all__ = [
    "ALL_STEP_TYPES",
    "CONFIGS",
    "LOOP_STEP_TYPES",
    "PARALLEL_STEP_TYPES",
    "Names",
    "any_names",
    "conditions",
    "identifiers",
    "json_values",
    "multiline_text",
    "paths",
    "step_defs",
    "workflow_defs",
]

Names = st.SearchStrategy[str]

ALL_STEP_TYPES = (
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
    "workflow",
)
LOOP_STEP_TYPES = tuple(kind for kind in ALL_STEP_TYPES if kind not in ("start", "end"))
PARALLEL_STEP_TYPES = ("call", "assign", "transform", "workflow")
WAIT_WORDS: list[Literal["all", "any"]] = ["all", "any"]


# --- scalars and JSON ---------------------------------------------------------------------


@functools.cache
def identifiers() -> Names:
    """Names that are valid everywhere: ``$name`` can read them, DSL builders accept them."""
    return st.from_regex(r"[a-z_][a-z0-9_]{0,9}", fullmatch=True)


@functools.cache
def any_names() -> Names:
    """Any non-empty string without ':' (the separator of nested step ids), unicode too."""
    return st.one_of(
        identifiers(),
        st.text(
            st.characters(codec="utf-8", exclude_characters=":"),
            min_size=1,
            max_size=10,
        ),
    )


@functools.cache
def multiline_text() -> st.SearchStrategy[str]:
    """Strings with line breaks (written as YAML literal blocks when possible)."""
    line = st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=12)
    return st.lists(line, min_size=2, max_size=4).map("\n".join) | st.lists(
        line, min_size=1, max_size=3
    ).map(lambda lines: "\n".join(lines) + "\n")


@functools.cache
def texts() -> st.SearchStrategy[str]:
    """Any string: unicode, empty, multi-line, text that looks like a number or a date."""
    return st.one_of(
        st.text(max_size=16),
        multiline_text(),
        st.sampled_from(["true", "null", "1.0", "0x1F", "2024-01-01", "~", "yes", "- x", "a: b"]),
    )


@functools.cache
def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**64), max_value=2**64),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(),
    )


@functools.cache
def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """JSON data: scalars, lists and mappings with string keys, nested."""
    return st.recursive(
        json_scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.text(max_size=8), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def json_mappings(names: Names) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(names, json_values(4), max_size=3)


@functools.cache
def paths(names: Names) -> st.SearchStrategy[str]:
    """Reference paths without ``$``, such as ``order.items.0``."""
    return st.builds(
        lambda root, rest: ".".join([root, *rest]),
        identifiers(),
        st.lists(st.one_of(identifiers(), st.integers(0, 9).map(str)), max_size=2),
    )


@functools.cache
def references(names: Names) -> st.SearchStrategy[str]:
    return paths(names).map(lambda path: f"${path}")


@functools.cache
def expressions(names: Names) -> st.SearchStrategy[Any]:
    """Values that may hold references: ``$a.b``, ``"x ${a} y"`` or JSON data."""
    return st.one_of(
        references(names),
        paths(names).map(lambda path: f"total: ${{{path}}} EUR"),
        json_values(4),
    )


@functools.cache
def conditions(names: Names) -> st.SearchStrategy[Condition]:
    return st.builds(
        Condition,
        field=paths(names),
        op=st.sampled_from(sorted(CONDITION_OPS)),
        value=st.one_of(st.none(), json_values(4), references(names)),
    )


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@functools.cache
def _positive() -> st.SearchStrategy[float]:
    return st.one_of(
        st.integers(min_value=1, max_value=10**6),
        st.floats(min_value=0, max_value=1e9, exclude_min=True, allow_infinity=False),
    )


# --- step configs -------------------------------------------------------------------------

Targets = st.SearchStrategy[str]
ConfigFactory = Callable[[Names, Targets, int], st.SearchStrategy[Any]]
"""``(names, targets, depth) -> strategy of a config``.

``targets`` draws ids of the steps in the same graph; ``depth`` bounds nesting.
"""


def _start(_names: Names, _targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    return st.builds(StartConfig, validate_input=st.booleans())


def _end(names: Names, _targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    return st.builds(EndConfig, result=_opt(expressions(names)))


@functools.cache
def _outputs(names: Names) -> st.SearchStrategy[Any]:
    schema = st.fixed_dictionaries(
        {"type": st.just("object")},
        optional={
            "properties": st.dictionaries(
                names, st.sampled_from([{"type": kind} for kind in INPUT_TYPES[:6]]), max_size=3
            ),
            "required": st.lists(names, max_size=2, unique=True),
        },
    )
    return st.one_of(
        st.none(),
        names,
        st.builds(OutputSpec, key=names),
        st.builds(OutputSpec, key=names, schema=schema),
    )


def _call(names: Names, _targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    return st.builds(
        CallConfig,
        service=names,
        method=names,
        input=_opt(expressions(names)),
        output=_outputs(names),
        timeout=_opt(_positive()),
        retries=st.integers(min_value=0, max_value=10),
        retry_delay=st.one_of(st.just(1.0), st.integers(0, 60), st.floats(0, 60)),
        retry_backoff=st.one_of(st.just(2.0), st.floats(1, 10)),
    )


def _assign(names: Names, _targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    return st.builds(
        AssignConfig, set=st.dictionaries(names, expressions(names), min_size=1, max_size=4)
    )


def _router(names: Names, targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    route = st.builds(Route, when=conditions(names), then=targets)
    return st.builds(
        RouterConfig, routes=st.lists(route, max_size=3).map(tuple), default=_opt(targets)
    )


def _loop(names: Names, targets: Targets, depth: int) -> st.SearchStrategy[Any]:
    if depth <= 0:
        return st.nothing()
    body = step_defs(
        names=names, types=LOOP_STEP_TYPES, depth=depth - 1, min_size=1, max_size=2
    ).map(tuple)
    common = {
        "as_": st.just("item") | identifiers(),
        "index_as": st.just("index") | identifiers(),
        "output": _opt(names),
        "max": st.just(100) | st.integers(1, 10**6),
        "on_exhausted": _opt(targets),
        "do": body,
    }
    foreach = st.builds(
        LoopConfig, over=references(names) | st.lists(json_values(3), max_size=3), **common
    )
    loop_while = st.builds(LoopConfig, while_=conditions(names), **common)
    return foreach | loop_while


def _parallel(names: Names, _targets: Targets, depth: int) -> st.SearchStrategy[Any]:
    if depth <= 0:
        return st.nothing()
    branches = step_defs(
        names=names, types=PARALLEL_STEP_TYPES, depth=depth - 1, min_size=1, max_size=2, edges=False
    ).map(tuple)

    @st.composite
    def build(draw: st.DrawFn) -> ParallelConfig:
        drawn = draw(branches)
        wait: Wait = draw(st.sampled_from(WAIT_WORDS) | st.integers(1, len(drawn)))
        return ParallelConfig(branches=drawn, wait=wait, output=draw(_opt(names)))

    return build()


def _transform(names: Names, _targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    op = st.builds(
        TransformOp,
        op=st.sampled_from(sorted(TRANSFORM_OPS)) | names,
        arg=_opt(json_values(4)),
    )
    return st.builds(
        TransformConfig,
        expression=st.lists(op, max_size=4).map(tuple),
        output=names,
        input=_opt(paths(names) | references(names)),
    )


def _halt(names: Names, targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    return st.builds(
        HaltConfig,
        reason=_opt(texts()),
        data=json_mappings(names),
        resume_step=_opt(targets),
    )


def _approval(names: Names, targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    return st.builds(
        ApprovalConfig,
        prompt=_opt(texts()),
        context=_opt(expressions(names)),
        approvers=st.lists(names, max_size=3).map(tuple),
        on_reject=_opt(targets),
        timeout=_opt(_positive()),
        on_timeout=_opt(targets),
    )


def _workflow(names: Names, _targets: Targets, _depth: int) -> st.SearchStrategy[Any]:
    return st.builds(
        WorkflowConfig,
        workflow_id=names,
        input=_opt(expressions(names)),
        output=_opt(names),
        timeout=_opt(_positive()),
    )


CONFIGS: dict[str, ConfigFactory] = {
    "start": _start,
    "end": _end,
    "call": _call,
    "assign": _assign,
    "router": _router,
    "loop": _loop,
    "parallel": _parallel,
    "transform": _transform,
    "halt": _halt,
    "approval": _approval,
    "workflow": _workflow,
}


# --- steps and workflows ------------------------------------------------------------------


@st.composite
def step_defs(
    draw: st.DrawFn,
    *,
    names: Names | None = None,
    types: tuple[str, ...] = ALL_STEP_TYPES,
    depth: int = 2,
    min_size: int = 1,
    max_size: int = 5,
    edges: bool = True,
) -> list[StepDef]:
    """One graph of steps with unique ids; every target names a step of the same graph.

    Args:
        names: strategy for ids and ctx names (default :func:`any_names`).
        types: the step types to draw from.
        depth: how many levels of loop bodies / parallel branches may nest below.
        min_size: fewest steps.
        max_size: most steps.
        edges: whether steps get ``next``/``on_error`` (parallel branches do not).
    """
    names = any_names() if names is None else names
    allowed = [kind for kind in types if depth > 0 or kind not in ("loop", "parallel")]
    ids = draw(st.lists(names, min_size=min_size, max_size=max_size, unique=True))
    targets: Targets = st.sampled_from(ids)
    steps = []
    for step_id in ids:
        kind = draw(st.sampled_from(allowed))
        config = draw(CONFIGS[kind](names, targets, depth))
        terminal = kind == "end"
        steps.append(
            StepDef(
                id=step_id,
                type=kind,
                config=config,
                next=draw(_opt(targets)) if edges and not terminal else None,
                on_error=draw(_opt(targets)) if edges else None,
            )
        )
    return steps


@functools.cache
def inputs(names: Names) -> st.SearchStrategy[tuple[InputDef, ...]]:
    spec = st.builds(
        InputDef,
        name=names,
        type=st.sampled_from(INPUT_TYPES),
        required=st.booleans(),
        default=_opt(json_values(4)),
        description=_opt(texts()),
    )
    return st.lists(spec, max_size=3, unique_by=lambda item: item.name).map(tuple)


@st.composite
def workflow_defs(
    draw: st.DrawFn,
    *,
    names: Names | None = None,
    types: tuple[str, ...] = ALL_STEP_TYPES,
    depth: int = 2,
    min_steps: int = 2,
    max_steps: int = 5,
) -> WorkflowDef:
    """Whole workflow definitions (no extensions)."""
    names = any_names() if names is None else names
    return WorkflowDef(
        id=draw(names),
        name=draw(_opt(texts())),
        version=draw(st.just("1.0") | st.sampled_from(["2", "1.10", "0.1.0"]) | names),
        description=draw(_opt(texts())),
        timeout=draw(_opt(_positive())),
        inputs=draw(inputs(names)),
        steps=draw(
            step_defs(names=names, types=types, depth=depth, min_size=min_steps, max_size=max_steps)
        ),
    )

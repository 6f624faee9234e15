"""Validation of whole definitions (SPEC §9): every problem at once, each naming its step.

The checks that depend on a step's type come from its step type
(:class:`~flowkit.definitions.kinds.StepKind`): its own config checks, the
names it defines, the references it reads and the graphs nested in it. What is
checked here is the same for every type: ids, edges, reachability, cycles, and
which names are defined on every path to each step.

A workflow is checked as far as it could be read (a
:class:`~flowkit.definitions.convert.Reading`), and what follows from a problem
is not reported as a problem of its own: a target with a likely typo is followed
to the step it likely names; a step read in part may lead to the steps, and set
the names, that its unread keys mention; a step not read at all may also set
any name no other step sets.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from ..expressions import SPECIAL_ROOTS, Reference, check_condition, parse_path, references
from .convert import UNREAD, Reading
from .fields import EXPR, PATH
from .graph import CONTINUE_KINDS, Edge, edge_lists
from .kinds import BODY, checks, defines_of, extensions, kind, kinds, output_schema
from .model import Condition, StepDef
from .problems import Problem, Severity, closest, did_you_mean

__all__ = ["NAME", "RESERVED", "all_steps", "problems_in"]

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
"""What a ctx name must look like, so that ``$name`` can read it."""
RESERVED = frozenset({"input", *SPECIAL_ROOTS})
"""Names no step may set."""
RELAXED_OPS = frozenset({"exists", "empty", "truthy", "falsy"})
"""Ops that test whether a value is there: their field may be unset on some paths."""
MAYBE = "maybe"
"""The kind of edge from a step read in part to a step its unread keys name."""


def problems_in(reading: Reading) -> list[Problem]:
    """Every problem in a definition, warnings included, sorted by line; empty when it is valid.

    The problems found reading it come first on each line.
    """
    return _Checker(reading).run()


def all_steps(steps: Sequence[StepDef], prefix: str = "") -> Iterator[tuple[str, StepDef]]:
    """Every step with its path (``loop:inner``), nested graphs included, in order."""
    for step in steps:
        path = f"{prefix}{step.id}"
        yield path, step
        known = kind(step.type)
        for nested in known.nested(step) if known is not None else ():
            yield from all_steps(nested.steps, f"{path}:")


class _References:
    """The :class:`~flowkit.definitions.kinds.ReferenceCheck` of one step."""

    def __init__(self, checker: _Checker, step: StepDef, path: str) -> None:
        self._checker = checker
        self._step = step
        self._path = path

    def fields(self, value: Any, defined: Iterable[str]) -> None:
        self._checker.check_fields(value, defined, self._path, self._step)

    def value(self, value: Any, defined: Iterable[str]) -> None:
        self._checker.check_value(value, defined, self._path, self._step)


class _Checker:
    """Holds what is known about one workflow while its graphs are checked."""

    def __init__(self, reading: Reading) -> None:
        wf = reading.workflow
        self.reading = reading
        self.wf = wf
        self.partial = reading.partial
        self.unread_words = frozenset().union(*reading.partial.values())
        # A step that could not be read at all may set any name.
        self.opaque = any(step.type == UNREAD for _, step in all_steps(wf.steps))
        self.problems: list[Problem] = []
        self.inputs = [spec.name for spec in wf.inputs]
        self.setters: dict[str, list[str]] = {}
        self.schemas: dict[str, list[Mapping[str, Any] | None]] = {}
        self.loop_vars: dict[str, str] = {}
        extension_names: set[str] = set()
        for ext in extensions().values():
            if ext.key in wf.extensions or ext.key in reading.unread_extensions:
                extension_names.update(ext.defines)
        # `input` is the execution's input, readable from the first step on.
        self.always = frozenset(SPECIAL_ROOTS | extension_names | {"input"})
        for path, step in all_steps(wf.steps):
            for name in defines_of(step):
                self.setters.setdefault(name, []).append(path)
                if name != "input":
                    self.schemas.setdefault(name, []).append(output_schema(step))
            known = kind(step.type)
            for nested in known.nested(step) if known is not None else ():
                for var in nested.variables:
                    self.loop_vars.setdefault(var, path)
        for known in kinds().values():
            for names in known.edge_sets.values():
                for name in names:
                    self.setters.setdefault(name, [])
        self.setters.setdefault("_last_error", [])
        self.setters.setdefault("response", [])

    # --- reporting ------------------------------------------------------------------------

    def report(
        self,
        message: str,
        path: str | None = None,
        step: StepDef | None = None,
        *,
        severity: Severity = "error",
    ) -> None:
        location = step.source if step is not None else self.wf.source
        self.problems.append(
            Problem(
                message,
                workflow_id=self.reading.workflow_id,
                step_id=path,
                location=location,
                severity=severity,
            )
        )

    def run(self) -> list[Problem]:
        self.check_inputs()
        self.check_graph(self.wf.steps, "", frozenset(), body=False)
        # Extensions' checks name the workflow, and may find what follows from
        # an extension's key that could not be read: they wait for both.
        if self.reading.workflow_id is not None and not self.reading.unread_extensions:
            self.run_extension_checks()
        return sorted([*self.reading.problems, *self.problems], key=_line_of)

    def run_extension_checks(self) -> None:
        extra = [
            ext.check
            for ext in extensions().values()
            if ext.check is not None and ext.key in self.wf.extensions
        ]
        for run_check in [*extra, *checks()]:
            for message in run_check(self.wf):
                self.problems.append(
                    message
                    if isinstance(message, Problem)
                    else Problem(message, workflow_id=self.wf.id, location=self.wf.source)
                )

    def check_inputs(self) -> None:
        for spec in self.wf.inputs:
            if not NAME.match(spec.name):
                self.report(f"input name '{spec.name}' must be an identifier (letters, digits, _)")

    # --- one graph (the top level, a loop body) ---------------------------------------------

    def check_graph(
        self, steps: Sequence[StepDef], prefix: str, entry: frozenset[str] | None, *, body: bool
    ) -> None:
        """Check one graph; ``entry`` is None when the graph itself is unreachable."""
        ids = [step.id for step in steps]
        by_id: dict[str, StepDef] = {}
        for step in steps:
            path = prefix + step.id
            if step.id in by_id:
                self.report(f"duplicate step id '{step.id}' (step ids must be unique)", path, step)
            by_id.setdefault(step.id, step)
            if ":" in step.id:
                self.report(
                    "step ids may not contain ':' (it separates nested step ids)", path, step
                )
            self.check_step(step, path, body=body)

        for step, found in zip(steps, edge_lists(steps, body), strict=True):
            for edge in found:
                if edge.target not in by_id:
                    self.report_dangling(step, prefix + step.id, edge, ids, body)
        graph = self.successors(steps, prefix, body)

        if not steps:
            return
        reached = self.flow(steps, graph, by_id, prefix, entry)
        for step in steps if entry is not None else ():
            if step.id not in reached and prefix + step.id not in self.reading.unnamed:
                where = "the first step of the loop body" if body else "the first step"
                self.report(
                    f"unreachable: no path from {where} leads here "
                    "(point a next, route or on_error at it, or remove it)",
                    prefix + step.id,
                    step,
                )
        self.check_cycles(steps, graph, by_id, reached, prefix)

    def successors(
        self, steps: Sequence[StepDef], prefix: str, body: bool
    ) -> dict[str, list[Edge]]:
        """The edges of each step of one graph, by id (the first of duplicate ids wins).

        These are the edges the workflow means: a target that names no step goes
        to the step it likely names, if one is close; a step read in part may go
        to the steps its unread keys name (:data:`MAYBE`).
        """
        ids = dict.fromkeys(step.id for step in steps)
        graph: dict[str, list[Edge]] = {}
        for step, found in zip(steps, edge_lists(steps, body), strict=True):
            meant = [_meant(edge, ids) for edge in found]
            words = self.partial.get(prefix + step.id, frozenset())
            meant += [Edge(target, MAYBE) for target in sorted(words.intersection(ids))]
            graph.setdefault(step.id, meant)
        return graph

    def report_dangling(
        self, step: StepDef, path: str, edge: Edge, ids: list[str], body: bool
    ) -> None:
        key = "routes[].then" if edge.kind == "then" else edge.kind
        key = "next" if edge.kind == "continue" else key
        hint = did_you_mean(edge.target, ids)
        if body and not hint and any(top.id == edge.target for top in self.wf.steps):
            hint = " (a loop body can only go to steps of the same body)"
        self.report(f"{key}: no step '{edge.target}'{hint}", path, step)

    def check_step(self, step: StepDef, path: str, *, body: bool) -> None:
        known = kind(step.type)
        partial = path in self.partial  # what could not be read is reported already
        if known is None:
            if not partial:
                self.report(f"unknown step type '{step.type}'", path, step)
            return
        if not isinstance(step.config, known.config):
            self.report(
                f"config is a {type(step.config).__name__}, expected {known.config.__name__}",
                path,
                step,
            )
            return
        if body and not known.in_loop:
            self.report(f"{_a(step.type)} step cannot be used inside a loop body", path, step)
        if known.terminal and step.next is not None:
            self.report(f"{_a(step.type)} step finishes the workflow; remove 'next'", path, step)
        elif not known.falls_through and step.next is not None:
            self.report(
                f"'next' is never used: {_a(step.type)} step never continues to it; remove 'next'",
                path,
                step,
                severity="warning",
            )
        # What its own checks find in a step read in part may follow from what was left out.
        for message in () if partial else known.check(step):
            self.report(message, path, step)
        for nested in known.nested(step):
            for name in nested.variables:
                if not NAME.match(name) or name in RESERVED:
                    self.report(
                        f"loop variable '{name}' must be an identifier and not reserved",
                        path,
                        step,
                    )
        for name in defines_of(step):
            if name in RESERVED and not (step.type == "start" and name == "input"):
                self.report(
                    f"'{name}' is a reserved name; store the value under another", path, step
                )
            elif not NAME.match(name):
                self.report(
                    f"'{name}' is not a valid name (use letters, digits and _, "
                    "so that '$name' can read it)",
                    path,
                    step,
                )

    # --- definedness: which names are set on every path ---------------------------------------

    def flow(
        self,
        steps: Sequence[StepDef],
        graph: Mapping[str, list[Edge]],
        by_id: Mapping[str, StepDef],
        prefix: str,
        entry: frozenset[str] | None,
    ) -> set[str]:
        """Must-analysis of defined names; checks every reachable step's references."""
        defined: dict[str, frozenset[str]] = {}
        if entry is not None:
            defined[steps[0].id] = entry
        pending = list(defined)
        while pending:
            step = by_id[pending.pop()]
            before = defined[step.id]
            for edge in graph[step.id]:
                if edge.target not in by_id:
                    continue
                after = before | self.carried(step, edge)
                known = defined.get(edge.target)
                merged = after if known is None else known & after
                if merged != known:
                    defined[edge.target] = merged
                    pending.append(edge.target)
        for step in steps:
            self.check_references(step, prefix + step.id, defined.get(step.id))
        return set(defined)

    def carried(self, step: StepDef, edge: Edge) -> frozenset[str]:
        known = kind(step.type)
        if edge.kind in CONTINUE_KINDS or edge.kind == MAYBE:
            names = set(defines_of(step))
            if known is not None and known.halts:
                names.add("response")
            return frozenset(names)
        if edge.kind == "on_error":
            return frozenset({"_last_error"})
        if known is not None:
            return frozenset(known.edge_sets.get(edge.kind, ()))
        return frozenset()

    def check_references(self, step: StepDef, path: str, defined: frozenset[str] | None) -> None:
        """Check what ``step`` reads; ``defined`` is None for an unreachable step,
        whose nested graphs are still checked for structure."""
        known = kind(step.type)
        if known is None or not isinstance(step.config, known.config):
            return
        if defined is not None:
            known.check_references(step, defined, _References(self, step, path))
        for nested in known.nested(step):
            if nested.kind == BODY:
                entry = None if defined is None else defined | frozenset(nested.variables)
                self.check_graph(nested.steps, f"{path}:", entry, body=True)
            else:
                self.check_branches(nested.steps, path, defined)

    def check_fields(self, value: Any, defined: Iterable[str], path: str, step: StepDef) -> None:
        if isinstance(value, Condition):
            for message in check_condition(value.op, value.value):
                self.report(f"condition on '{value.field}': {message}", path, step)
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if item is None or isinstance(item, StepDef):
                continue
            if field.metadata.get(PATH):
                ref = parse_path(item)
                if ref is None:
                    self.report(f"{field.name}: '{item}' is not a valid path", path, step)
                else:
                    relaxed = isinstance(value, Condition) and value.op in RELAXED_OPS
                    self.check_reference(ref, defined, path, step, relaxed=relaxed)
            elif field.metadata.get(EXPR):
                self.check_value(item, defined, path, step)
            elif attrs.has(type(item)):
                self.check_fields(item, defined, path, step)
            elif isinstance(item, tuple) and item and attrs.has(type(item[0])):
                for element in item:
                    if not isinstance(element, StepDef):
                        self.check_fields(element, defined, path, step)

    def check_value(self, value: Any, defined: Iterable[str], path: str, step: StepDef) -> None:
        for ref in references(value):
            self.check_reference(ref, defined, path, step)

    def check_reference(
        self,
        ref: Reference,
        defined: Iterable[str],
        path: str,
        step: StepDef,
        *,
        relaxed: bool = False,
    ) -> None:
        root = ref.root
        if root in self.always or root in defined:
            self.check_reference_path(ref, path, step)
            return
        setters = self.setters.get(root)
        if relaxed and setters is not None:
            return
        shown = f"'{ref.text}'"
        if root in self.loop_vars:
            message = (
                f"{shown} reads '{root}', the loop variable of loop '{self.loop_vars[root]}'; "
                "it exists only inside that loop's body"
            )
        elif root == "_last_error":
            message = f"{shown} is only set on paths entered through an on_error edge"
        elif root == "response":
            message = f"{shown} is only set after a halt or approval step is resumed"
        elif root in self.unread_words or (self.opaque and not setters):
            return  # a step that could not be read (in full) may set it
        elif setters:
            names = ", ".join(f"'{setter}'" for setter in setters)
            message = (
                f"{shown} reads '{root}', which is not set on every path to this step "
                f"(set by {names}); set it on every path, e.g. with an assign step earlier"
            )
        else:
            candidates = [*self.setters, *self.always, *defined]
            message = f"{shown} reads '{root}', which no step sets{did_you_mean(root, candidates)}"
        self.report(message, path, step)

    def check_reference_path(self, ref: Reference, path: str, step: StepDef) -> None:
        if ref.root == "input" and ref.path and self.inputs and ref.path[0] not in self.inputs:
            name = ref.path[0]
            hint = did_you_mean(name, self.inputs) or f" (declared: {', '.join(self.inputs)})"
            self.report(
                f"'{ref.text}' reads input '{name}', which is not declared{hint}", path, step
            )
            return
        schemas = self.schemas.get(ref.root)
        if not schemas or any(schema is None for schema in schemas) or not ref.path:
            return
        problems = [_schema_problem(schema, ref.path) for schema in schemas if schema is not None]
        if all(problems):
            self.report(f"'{ref.text}': {problems[0]}", path, step)

    # --- nested branches ------------------------------------------------------------------------

    def check_branches(
        self, branches: Sequence[StepDef], path: str, defined: frozenset[str] | None
    ) -> None:
        seen: set[str] = set()
        for branch in branches:
            branch_path = f"{path}:{branch.id}"
            if branch.id in seen:
                self.report(f"duplicate branch id '{branch.id}'", branch_path, branch)
            seen.add(branch.id)
            known = kind(branch.type)
            if known is not None and not known.in_parallel:
                self.report(
                    f"{_a(branch.type)} step cannot be a parallel branch "
                    "(use a workflow step for a multi-step branch)",
                    branch_path,
                    branch,
                )
                continue
            for key in ("next", "on_error"):
                if getattr(branch, key) is not None:
                    self.report(
                        f"a parallel branch is a single step and cannot have '{key}' "
                        "(use a workflow step for a multi-step branch)",
                        branch_path,
                        branch,
                    )
            self.check_step(branch, branch_path, body=False)
            self.check_references(branch, branch_path, defined)

    # --- cycles -------------------------------------------------------------------------------

    def check_cycles(
        self,
        steps: Sequence[StepDef],
        graph: Mapping[str, list[Edge]],
        by_id: Mapping[str, StepDef],
        reached: set[str],
        prefix: str,
    ) -> None:
        """Report reachable steps from which no path leads to an end."""
        exits = set()
        incoming: dict[str, list[str]] = {step.id: [] for step in steps}
        for step in steps:
            known = kind(step.type)
            out = [edge for edge in graph[step.id] if edge.target in by_id]
            continues = any(
                edge.kind in ("next", "continue", "default", "resume_step") for edge in out
            )
            may_leave = prefix + step.id in self.partial  # by a key that could not be read
            if (known is not None and known.terminal) or not continues or may_leave:
                exits.add(step.id)
            for edge in out:
                incoming[edge.target].append(step.id)
        escapes = set(exits)
        pending = list(exits)
        while pending:
            for source in incoming[pending.pop()]:
                if source not in escapes:
                    escapes.add(source)
                    pending.append(source)
        stuck = {step.id for step in steps if step.id in reached and step.id not in escapes}
        # Name the steps on a cycle, not the ones that merely lead into it.
        cycle = [by_id[name] for name in by_id if name in stuck and _on_cycle(name, graph, stuck)]
        if cycle:
            names = ", ".join(f"'{step.id}'" for step in cycle)
            subject = f"steps {names} form" if len(cycle) > 1 else f"step {names} forms"
            self.report(
                f"{subject} a cycle that never reaches an end; give one of them a "
                "next or a router default that leads out",
                prefix + cycle[0].id,
                cycle[0],
            )


def _on_cycle(start: str, graph: Mapping[str, list[Edge]], within: set[str]) -> bool:
    """Whether ``start`` can reach itself through steps of ``within``."""
    seen: set[str] = set()
    pending = [edge.target for edge in graph[start] if edge.target in within]
    while pending:
        current = pending.pop()
        if current == start:
            return True
        if current not in seen:
            seen.add(current)
            pending.extend(edge.target for edge in graph[current] if edge.target in within)
    return False


def _a(step_type: str) -> str:
    """``a 'call'``, ``an 'end'``."""
    article = "an" if step_type[:1].lower() in "aeiou" else "a"
    return f"{article} '{step_type}'"


def _meant(edge: Edge, ids: Collection[str]) -> Edge:
    """``edge``, or, when its target names no step, an edge to the likely one if any."""
    if edge.target in ids:
        return edge
    likely = closest(edge.target, ids)
    return edge if likely is None else Edge(likely, edge.kind, edge.label)


def _line_of(problem: Problem) -> int:
    return (problem.location.line or 0) if problem.location is not None else 0


def _schema_problem(schema: Mapping[str, Any], path: Sequence[str]) -> str | None:
    node: Any = schema
    for segment in path:
        if not isinstance(node, Mapping):
            return None
        if segment.isdigit() and "items" in node:
            node = node["items"]
            continue
        properties = node.get("properties")
        if not isinstance(properties, Mapping):
            return None
        if segment not in properties:
            hint = did_you_mean(segment, list(properties))
            return f"the output schema has no property '{segment}'{hint}"
        node = properties[segment]
    return None

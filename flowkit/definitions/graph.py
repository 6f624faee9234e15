"""The step graph: edges between steps, and Mermaid/DOT renderings of it.

Edges come from the fields a config class marks with ``target()`` (see
:mod:`flowkit.definitions.fields`), plus ``next``/``on_error``; nested graphs
and shapes come from each step type (:mod:`flowkit.definitions.kinds`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from ..frozen import thaw
from .fields import TARGET
from .kinds import BODY, Nested, kind
from .model import Condition, StepDef, WorkflowDef

__all__ = [
    "CONTINUE_KINDS",
    "Edge",
    "condition_text",
    "edge_lists",
    "edges",
    "render",
    "successors_in",
]

CONTINUE_KINDS = frozenset({"next", "then", "default", "resume_step", "continue"})
"""Edge kinds along which a step finished normally (its outputs are set)."""


@attrs.frozen
class Edge:
    """An edge to ``target``; ``kind`` is the field it comes from (``next``, ``on_error``…)."""

    target: str
    kind: str
    label: str | None = None


def condition_text(cond: Condition) -> str:
    """A condition as people read it: ``order.total gt 100``."""
    if cond.op in ("exists", "empty", "truthy", "falsy"):
        return f"{cond.field} {cond.op}"
    return f"{cond.field} {cond.op} {json.dumps(thaw(cond.value), ensure_ascii=False)}"


def _targets(value: Any) -> Iterator[Edge]:
    """Every TARGET field inside a config (routes included; nested steps excluded)."""
    for field in attrs.fields(type(value)):
        item = getattr(value, field.name)
        if field.metadata.get(TARGET) and item is not None:
            when = getattr(value, "when", None)  # a router's route carries its condition
            label = condition_text(when) if isinstance(when, Condition) else None
            yield Edge(item, field.name, label)
        elif isinstance(item, tuple) and item and attrs.has(type(item[0])):
            for element in item:
                if not isinstance(element, StepDef):
                    yield from _targets(element)


def edges(step: StepDef, following: str | None = None) -> list[Edge]:
    """The edges leaving ``step``.

    Args:
        step: the step.
        following: the step listed after it in a loop body (a body step without
            ``next`` continues there); None at the top level, where a step
            without ``next`` ends the workflow.
    """
    known = kind(step.type)
    found: list[Edge] = []
    if not (known and known.terminal):
        if step.next is not None:
            found.append(Edge(step.next, "next"))
        elif following is not None and (known is None or known.falls_through):
            found.append(Edge(following, "continue"))
    if step.config is not None and attrs.has(type(step.config)):
        found.extend(_targets(step.config))
    if step.on_error is not None:
        found.append(Edge(step.on_error, "on_error"))
    return found


def edge_lists(steps: Sequence[StepDef], body: bool) -> list[list[Edge]]:
    """The edges of each step of one graph (the top level or one loop body), in order."""
    return [
        edges(step, steps[index + 1].id if body and index + 1 < len(steps) else None)
        for index, step in enumerate(steps)
    ]


def successors_in(steps: Sequence[StepDef], body: bool) -> dict[str, list[Edge]]:
    """Edges of every step of one graph, by id (the first of duplicate ids wins)."""
    result: dict[str, list[Edge]] = {}
    for step, found in zip(steps, edge_lists(steps, body), strict=True):
        result.setdefault(step.id, found)
    return result


# --- rendering ------------------------------------------------------------------------------

# A step type names its shape; these are the shapes in each format.
_MERMAID_SHAPES = {
    "start": ('(["', '"])'),
    "end": ('(["', '"])'),
    "decision": ('{"', '"}'),
    "wait": ('{{"', '"}}'),
    "stop": ('{{"', '"}}'),
    "subroutine": ('[["', '"]]'),
    "data": ('[/"', '"/]'),
}
_DOT_SHAPES = {
    "start": "oval",
    "end": "doublecircle",
    "decision": "diamond",
    "wait": "hexagon",
    "stop": "octagon",
    "subroutine": "box3d",
    "data": "parallelogram",
}
_MERMAID_ARROWS = {
    "next": "-->",
    "continue": "-->",
    "then": "-->",
    "default": "-.->",
    "on_error": "-.->",
    "on_reject": "-.->",
    "on_timeout": "-.->",
    "on_exhausted": "-.->",
    "resume_step": "-->",
}
_DOT_STYLES = {
    "default": 'style="dashed"',
    "on_error": 'style="dashed", color="red", fontcolor="red"',
    "on_reject": 'style="dashed", color="orange"',
    "on_timeout": 'style="dashed", color="orange"',
    "on_exhausted": 'style="dashed", color="orange"',
}


class _Renderer:
    """Collects nodes and edges of a workflow, nested graphs included."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.lines: list[str] = []
        self.ids: dict[str, str] = {}
        self.links = 0  # Mermaid numbers links in order; linkStyle refers to them
        self.error_links: list[int] = []

    def node_id(self, path: str) -> str:
        return self.ids.setdefault(path, f"s{len(self.ids)}")

    def text(self, value: str) -> str:
        if self.fmt == "mermaid":
            return value.replace('"', "#quot;")
        return value.replace("\\", "\\\\").replace('"', '\\"')

    def node(self, path: str, step: StepDef, indent: str) -> None:
        known = kind(step.type)
        shape = known.shape if known is not None else "box"
        label = self.text(f"{step.id}" if shape in ("start", "end") else f"{step.id}\n{step.type}")
        if self.fmt == "mermaid":
            left, right = _MERMAID_SHAPES.get(shape, ('["', '"]'))
            label = label.replace("\n", "<br/>")
            self.lines.append(f"{indent}{self.node_id(path)}{left}{label}{right}")
        else:
            shape = _DOT_SHAPES.get(shape, "box")
            label = label.replace("\n", "\\n")
            self.lines.append(f'{indent}{self.node_id(path)} [label="{label}", shape={shape}];')

    def edge(self, source: str, target: str, kind: str, label: str | None, indent: str) -> None:
        text = label if label is not None else (None if kind in ("next", "continue") else kind)
        src, dst = self.node_id(source), self.node_id(target)
        if self.fmt == "mermaid":
            arrow = {"branch": "==>", "loop": "==>", "iterate": "-.->"}.get(
                kind, _MERMAID_ARROWS.get(kind, "-->")
            )
            middle = f'|"{self.text(text)}"|' if text else ""
            self.lines.append(f"{indent}{src} {arrow}{middle} {dst}")
            if kind == "on_error":
                self.error_links.append(self.links)
            self.links += 1
        else:
            attrs_ = []
            if text:
                attrs_.append(f'label="{self.text(text)}"')
            style = {"branch": "penwidth=2", "loop": "penwidth=2", "iterate": 'style="dotted"'}.get(
                kind, _DOT_STYLES.get(kind)
            )
            if style:
                attrs_.append(style)
            suffix = f" [{', '.join(attrs_)}]" if attrs_ else ""
            self.lines.append(f"{indent}{src} -> {dst}{suffix};")

    def graph(self, steps: Sequence[StepDef], prefix: str, body: bool, indent: str) -> None:
        paths = {step.id: f"{prefix}{step.id}" for step in steps}
        for step in steps:
            self.node(paths[step.id], step, indent)
            known = kind(step.type)
            for nested in known.nested(step) if known is not None else ():
                self.nested(paths[step.id], nested, indent)
        for source, found in successors_in(steps, body).items():
            for edge in found:
                if edge.target in paths:
                    self.edge(paths[source], paths[edge.target], edge.kind, edge.label, indent)

    def cluster(self, path: str, title: str, indent: str) -> str:
        if self.fmt == "mermaid":
            self.lines.append(f'{indent}subgraph {self.node_id(path)}_g["{self.text(title)}"]')
        else:
            self.lines.append(f"{indent}subgraph cluster_{self.node_id(path)} {{")
            self.lines.append(f'{indent}  label="{self.text(title)}"; style="rounded,dashed";')
        return indent + "  "

    def close(self, indent: str) -> None:
        self.lines.append(f"{indent}end" if self.fmt == "mermaid" else f"{indent}}}")

    def nested(self, path: str, nested: Nested, indent: str) -> None:
        """A step's nested graph as a group: a body entered once per iteration, or branches."""
        inner = self.cluster(path, nested.title, indent)
        steps = nested.steps
        if nested.kind == BODY:
            self.graph(steps, f"{path}:", True, inner)
            self.close(indent)
            if steps:
                self.edge(path, f"{path}:{steps[0].id}", "loop", "each", indent)
                self.edge(f"{path}:{steps[-1].id}", path, "iterate", "next iteration", indent)
            return
        for branch in steps:
            self.node(f"{path}:{branch.id}", branch, inner)
        self.close(indent)
        for branch in steps:
            self.edge(path, f"{path}:{branch.id}", "branch", None, indent)


def render(wf: WorkflowDef, fmt: str = "mermaid") -> str:
    """The workflow as a Mermaid flowchart (``fmt="mermaid"``) or Graphviz DOT (``"dot"``).

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in ("mermaid", "dot"):
        raise ValueError(f"unknown graph format {fmt!r} (use 'mermaid' or 'dot')")
    renderer = _Renderer(fmt)
    if fmt == "mermaid":
        renderer.lines.append("flowchart TD")
        renderer.graph(wf.steps, "", False, "  ")
        if renderer.error_links:
            numbers = ",".join(str(number) for number in renderer.error_links)
            renderer.lines.append(f"  linkStyle {numbers} stroke:red,color:red")
    else:
        renderer.lines.append(f'digraph "{renderer.text(wf.id)}" {{')
        renderer.lines.append("  rankdir=TB;")
        renderer.graph(wf.steps, "", False, "  ")
        renderer.lines.append("}")
    return "\n".join(renderer.lines) + "\n"

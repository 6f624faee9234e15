"""The step graph: edges between steps, and Mermaid/DOT renderings of it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from ._definitions import Condition, LoopConfig, ParallelConfig, Route, StepDef, WorkflowDef
from ._registry import TARGET, step_type
from .frozen import thaw

__all__ = ["CONTINUE_KINDS", "Edge", "edge_lists", "edges", "render", "successors_in"]

CONTINUE_KINDS = frozenset({"next", "then", "default", "resume_step", "continue"})
"""Edge kinds along which a step finished normally (its outputs are set)."""


@attrs.frozen
class Edge:
    """An edge to ``target``; ``kind`` is the field it comes from (``next``, ``on_error``…)."""

    target: str
    kind: str
    label: str | None = None


def _condition_text(cond: Condition) -> str:
    if cond.op in ("exists", "empty", "truthy", "falsy"):
        return f"{cond.field} {cond.op}"
    return f"{cond.field} {cond.op} {json.dumps(thaw(cond.value), ensure_ascii=False)}"


def _targets(value: Any) -> Iterator[Edge]:
    """Every TARGET field inside a config (routes included; nested steps excluded)."""
    for field in attrs.fields(type(value)):
        item = getattr(value, field.name)
        if field.metadata.get(TARGET) and item is not None:
            label = _condition_text(value.when) if isinstance(value, Route) else None
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
    kind = step_type(step.type)
    found: list[Edge] = []
    if not (kind and kind.terminal):
        if step.next is not None:
            found.append(Edge(step.next, "next"))
        elif following is not None and step.type != "router":
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

_MERMAID_SHAPES = {
    "start": ('(["', '"])'),
    "end": ('(["', '"])'),
    "router": ('{"', '"}'),
    "approval": ('{{"', '"}}'),
    "halt": ('{{"', '"}}'),
    "workflow": ('[["', '"]]'),
    "assign": ('[/"', '"/]'),
    "transform": ('[/"', '"/]'),
}
_DOT_SHAPES = {
    "start": "oval",
    "end": "doublecircle",
    "router": "diamond",
    "approval": "hexagon",
    "halt": "octagon",
    "workflow": "box3d",
    "assign": "parallelogram",
    "transform": "parallelogram",
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
        label = self.text(
            f"{step.id}" if step.type in ("start", "end") else f"{step.id}\n{step.type}"
        )
        if self.fmt == "mermaid":
            left, right = _MERMAID_SHAPES.get(step.type, ('["', '"]'))
            label = label.replace("\n", "<br/>")
            self.lines.append(f"{indent}{self.node_id(path)}{left}{label}{right}")
        else:
            shape = _DOT_SHAPES.get(step.type, "box")
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
            if isinstance(step.config, LoopConfig):
                self.loop(paths[step.id], step, indent)
            elif isinstance(step.config, ParallelConfig):
                self.parallel(paths[step.id], step, indent)
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

    def loop(self, path: str, step: StepDef, indent: str) -> None:
        config: LoopConfig = step.config
        if config.while_ is not None:
            title = f"while {_condition_text(config.while_)}"
        else:
            over = config.over
            shown = over if isinstance(over, str) else json.dumps(thaw(over), ensure_ascii=False)
            title = f"for {config.as_} in {shown}"
        inner = self.cluster(path, title, indent)
        self.graph(config.do, f"{path}:", True, inner)
        self.close(indent)
        if config.do:
            self.edge(path, f"{path}:{config.do[0].id}", "loop", "each", indent)
            self.edge(f"{path}:{config.do[-1].id}", path, "iterate", "next iteration", indent)

    def parallel(self, path: str, step: StepDef, indent: str) -> None:
        config: ParallelConfig = step.config
        inner = self.cluster(path, f"parallel (wait {config.wait})", indent)
        for branch in config.branches:
            self.node(f"{path}:{branch.id}", branch, inner)
        self.close(indent)
        for branch in config.branches:
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

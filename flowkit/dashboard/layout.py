"""A layered layout of a workflow's step graph, for the dashboard to draw as SVG.

Steps are placed in rows by their longest distance from the first step along
forward edges (edges that close a cycle are drawn as back edges at the side),
each row in declaration order, centred. A step with a nested graph (a loop
body, parallel branches) is one box that says how many steps it holds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import attrs

from ..definitions import StepDef, WorkflowDef
from ..definitions.graph import Edge, successors_in
from ..definitions.kinds import kind

__all__ = ["BOX_HEIGHT", "BOX_WIDTH", "Box", "Layout", "Line", "layout"]

BOX_WIDTH = 150
BOX_HEIGHT = 44
_GAP_X = 40
_GAP_Y = 46
_MARGIN = 20
_UNLABELLED = frozenset({"next", "continue"})  # plain arrows; other edges say what they are


@attrs.frozen(kw_only=True)
class Box:
    """A step drawn as a box; ``state`` is ``current``, ``done`` or ``""``."""

    step_id: str
    caption: str
    x: int
    y: int
    shape: str
    state: str


@attrs.frozen(kw_only=True)
class Line:
    """An edge from step ``source`` to ``target``: an SVG path, and its label at
    ``(label_x, label_y)``; ``back`` when it goes up (it closes a cycle)."""

    source: str
    target: str
    back: bool
    path: str
    label: str | None
    kind: str
    label_x: int
    label_y: int


@attrs.frozen(kw_only=True)
class Layout:
    """Boxes and lines in a ``width`` by ``height`` drawing."""

    width: int
    height: int
    boxes: tuple[Box, ...]
    lines: tuple[Line, ...]


def _rows(steps: Sequence[StepDef], edges: dict[str, list[Edge]]) -> dict[str, int]:
    """Each step's row: its longest distance from the first step along forward edges."""
    order = {step.id: index for index, step in enumerate(steps)}
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 finished

    def visit(step_id: str) -> None:  # iterative DFS: definitions may be long chains
        stack = [(step_id, iter(edges.get(step_id, ())))]
        state[step_id] = 1
        while stack:
            source, pending = stack[-1]
            edge = next(pending, None)
            if edge is None:
                state[source] = 2
                stack.pop()
            elif edge.target in order:
                if state.get(edge.target) == 1:
                    back.add((source, edge.target))
                elif edge.target not in state:
                    state[edge.target] = 1
                    stack.append((edge.target, iter(edges.get(edge.target, ()))))

    for step in steps:
        if step.id not in state:
            visit(step.id)
    row = dict.fromkeys(order, 0)
    changed = True  # relax until nothing moves: without back edges the graph is acyclic
    while changed:
        changed = False
        for source in order:
            for edge in edges.get(source, ()):
                forward = edge.target in order and (source, edge.target) not in back
                if forward and row[edge.target] < row[source] + 1:
                    row[edge.target] = row[source] + 1
                    changed = True
    return row


def _caption(step: StepDef) -> str:
    known = kind(step.type)
    nested = known.nested(step) if known is not None else ()
    inside = sum(len(group.steps) for group in nested)
    return f"{step.type} · {inside} inside" if nested else step.type


def layout(wf: WorkflowDef, *, current: str | None = None, done: Collection[str] = ()) -> Layout:
    """Where each top-level step and edge of ``wf`` goes.

    Args:
        wf: the workflow.
        current: the step an execution is at (drawn marked).
        done: steps it completed (drawn shaded).
    """
    steps = wf.steps
    edges = successors_in(steps, False)
    row = _rows(steps, edges)
    rows: dict[int, list[StepDef]] = {}
    for step in steps:
        rows.setdefault(row[step.id], []).append(step)
    widest = max((len(members) for members in rows.values()), default=1)
    width = 2 * _MARGIN + widest * BOX_WIDTH + (widest - 1) * _GAP_X + 60  # room for back edges
    boxes: dict[str, Box] = {}
    for number, members in sorted(rows.items()):
        span = len(members) * BOX_WIDTH + (len(members) - 1) * _GAP_X
        left = (width - 60 - span) // 2
        for index, step in enumerate(members):
            known = kind(step.type)
            state = "current" if step.id == current else "done" if step.id in done else ""
            boxes.setdefault(
                step.id,
                Box(
                    step_id=step.id,
                    caption=_caption(step),
                    x=left + index * (BOX_WIDTH + _GAP_X),
                    y=_MARGIN + number * (BOX_HEIGHT + _GAP_Y),
                    shape=known.shape if known is not None else "box",
                    state=state,
                ),
            )
    lines = [
        _line(boxes[source], boxes[edge.target], edge, row, width)
        for source, found in edges.items()
        for edge in found
        if edge.target in boxes
    ]
    height = 2 * _MARGIN + (max(rows, default=0) + 1) * (BOX_HEIGHT + _GAP_Y) - _GAP_Y
    return Layout(width=width, height=height, boxes=tuple(boxes.values()), lines=tuple(lines))


def _line(source: Box, target: Box, edge: Edge, row: dict[str, int], width: int) -> Line:
    label = edge.label
    if label is None and edge.kind not in _UNLABELLED:
        label = edge.kind
    back = row[target.step_id] <= row[source.step_id]
    if not back:  # downwards: a gentle curve from the bottom of one box to the top of the next
        x1, y1 = source.x + BOX_WIDTH // 2, source.y + BOX_HEIGHT
        x2, y2 = target.x + BOX_WIDTH // 2, target.y
        middle = (y1 + y2) // 2
        path = f"M{x1},{y1} C{x1},{middle} {x2},{middle} {x2},{y2}"
        label_x, label_y = (x1 + x2) // 2, middle
    else:  # up (or sideways): out of the right side, round the drawing's right margin
        x1, y1 = source.x + BOX_WIDTH, source.y + BOX_HEIGHT // 2
        x2, y2 = target.x + BOX_WIDTH, target.y + BOX_HEIGHT // 2
        side = width - 12
        path = f"M{x1},{y1} C{side},{y1} {side},{y2} {x2},{y2}"
        label_x, label_y = side - 4, (y1 + y2) // 2
    return Line(
        source=source.step_id,
        target=target.step_id,
        back=back,
        path=path,
        label=label,
        kind=edge.kind,
        label_x=label_x,
        label_y=label_y,
    )

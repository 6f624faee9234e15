"""The layered layout of workflow graphs the dashboard draws."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import flowkit
from flowkit.dashboard.layout import BOX_HEIGHT, BOX_WIDTH, layout
from flowkit.definitions.graph import successors_in

from .conftest import EXPENSE


def rows(drawing: object) -> dict[str, int]:
    return {box.step_id: box.y for box in drawing.boxes}  # type: ignore[attr-defined]


def test_steps_go_down_in_rows_and_branches_sit_side_by_side() -> None:
    drawing = layout(EXPENSE)
    y = rows(drawing)

    assert y["start"] < y["remember"] < y["ask"] < y["ship"] < y["done"]
    assert y["rejected"] == y["ship"]  # both follow the approval
    boxes = {box.step_id: box for box in drawing.boxes}
    assert boxes["rejected"].x != boxes["ship"].x
    for box in drawing.boxes:
        assert box.x >= 0
        assert box.x + BOX_WIDTH <= drawing.width
        assert box.y >= 0
        assert box.y + BOX_HEIGHT <= drawing.height
    assert {line.label for line in drawing.lines} == {None, "on_reject"}


def test_boxes_never_overlap() -> None:
    drawing = layout(EXPENSE)
    for a in drawing.boxes:
        for b in drawing.boxes:
            if a is not b:
                apart_x = a.x + BOX_WIDTH <= b.x or b.x + BOX_WIDTH <= a.x
                apart_y = a.y + BOX_HEIGHT <= b.y or b.y + BOX_HEIGHT <= a.y
                assert apart_x or apart_y, (a.step_id, b.step_id)


def test_a_cycle_is_drawn_with_a_back_edge() -> None:
    wf = flowkit.load(
        {
            "id": "poll",
            "steps": [
                {"id": "start", "type": "start", "next": "check"},
                {
                    "id": "check",
                    "type": "router",
                    "routes": [{"when": {"field": "done", "op": "truthy"}, "then": "end"}],
                    "default": "again",
                },
                {"id": "again", "type": "assign", "set": {"done": True}, "next": "check"},
                {"id": "end", "type": "end"},
            ],
        }
    )
    drawing = layout(wf)
    y = rows(drawing)

    assert y["start"] < y["check"] < y["again"]
    back = [
        line for line in drawing.lines if line.path.startswith(f"M{BOX_WIDTH}") or "C" in line.path
    ]
    assert back  # every edge is drawn
    labels = {line.label for line in drawing.lines}
    assert "done truthy" in labels
    assert "default" in labels


def test_the_current_step_and_completed_steps_are_marked() -> None:
    drawing = layout(EXPENSE, current="ask", done={"start", "remember"})
    states = {box.step_id: box.state for box in drawing.boxes}
    assert states == {
        "start": "done",
        "remember": "done",
        "ask": "current",
        "ship": "",
        "done": "",
        "rejected": "",
    }


def test_a_loop_is_one_box_that_says_what_it_holds() -> None:
    wf = flowkit.load(
        {
            "id": "each",
            "steps": [
                {
                    "id": "items",
                    "type": "loop",
                    "over": "$input.items",
                    "do": [
                        {"id": "a", "type": "assign", "set": {"x": 1}},
                        {"id": "b", "type": "assign", "set": {"y": 2}},
                    ],
                },
            ],
        }
    )
    (box,) = layout(wf).boxes
    assert box.caption == "loop · 2 inside"


@st.composite
def step_graphs(draw: st.DrawFn) -> flowkit.WorkflowDef:
    """Workflows of assign and router steps whose edges go anywhere (cycles included)."""
    count = draw(st.integers(min_value=1, max_value=12))
    ids = [f"s{index}" for index in range(count)]
    steps: list[dict[str, object]] = []
    for step_id in ids:
        targets = draw(st.lists(st.sampled_from(ids), max_size=3))
        if len(targets) > 1:
            routes = [
                {"when": {"field": "x", "op": "eq", "value": n}, "then": target}
                for n, target in enumerate(targets[1:])
            ]
            steps.append({"id": step_id, "type": "router", "routes": routes, "default": targets[0]})
        else:
            step: dict[str, object] = {"id": step_id, "type": "assign", "set": {"x": 1}}
            if targets:
                step["next"] = targets[0]
            steps.append(step)
    return flowkit.parse({"id": "random", "steps": steps})  # drawn, not validated


@given(step_graphs())
def test_any_graph_is_laid_out_without_overlaps_and_with_every_edge(
    wf: flowkit.WorkflowDef,
) -> None:
    drawing = layout(wf)

    assert sorted(box.step_id for box in drawing.boxes) == sorted(step.id for step in wf.steps)
    for box in drawing.boxes:
        assert box.x >= 0
        assert box.x + BOX_WIDTH <= drawing.width
        assert box.y >= 0
        assert box.y + BOX_HEIGHT <= drawing.height
    corners = [(box.x, box.y) for box in drawing.boxes]
    assert len(set(corners)) == len(corners)  # one grid cell each: rows and columns are spaced
    y = rows(drawing)
    for line in drawing.lines:
        assert line.back is (y[line.target] <= y[line.source])
    edges = sum(len(found) for found in successors_in(wf.steps, False).values())
    assert len(drawing.lines) == edges

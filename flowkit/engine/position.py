"""Finding the steps an execution's position names, in a (possibly changed) definition.

The position is ``current_step`` plus the frames of the cursor; each loop
frame names the body step it is at (``LoopFrame.at``), and the innermost frame
may be a parallel step's. These functions follow them through the nested
graphs step types declare (:meth:`StepType.nested`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..cursor import Frame, LoopFrame, ParallelFrame
from ..definitions import BODY, BRANCHES, StepDef, WorkflowDef
from ..definitions.kinds import kind

__all__ = ["has_position", "nested_steps", "parallel_step", "position_path", "step_levels"]


def nested_steps(step: StepDef, nested_kind: str) -> tuple[StepDef, ...] | None:
    """The steps of ``step``'s nested graph of that kind (``BODY``, ``BRANCHES``), or None."""
    known = kind(step.type)
    for nested in known.nested(step) if known is not None else ():
        if nested.kind == nested_kind:
            return nested.steps
    return None


def step_levels(wf: WorkflowDef, top: str, frames: Sequence[Frame]) -> list[tuple[StepDef, str]]:
    """The step and its path at each level, following loop frames from ``top`` down.

    Raises:
        LookupError: the definition has no step where a frame points.
    """
    step = wf.step(top)
    if step is None:
        raise LookupError(top)
    levels = [(step, top)]
    for frame in frames:
        body = nested_steps(levels[-1][0], BODY)
        if body is None or not isinstance(frame, LoopFrame):
            raise LookupError(frame.step)
        child = next((c for c in body if c.id == frame.at), None)
        if child is None:
            raise LookupError(frame.at)
        levels.append((child, f"{levels[-1][1]}:{child.id}"))
    return levels


def has_position(wf: WorkflowDef, top: str, frames: Sequence[Frame]) -> bool:
    """Whether ``wf`` still has the step the position is at, and every step enclosing it."""
    step = wf.step(top)
    for frame in frames:
        if step is None or step.id != frame.step:
            return False
        if nested_steps(step, BRANCHES) is not None:
            return True  # the innermost frame: its branches are looked up when they run
        body = nested_steps(step, BODY)
        if body is None or not isinstance(frame, LoopFrame):
            return False
        step = next((child for child in body if child.id == frame.at), None)
    return step is not None


def position_path(top: str, frames: Sequence[Frame]) -> str:
    """The position as a path: ``top:body-step:inner-body-step``."""
    return ":".join([top, *(frame.at for frame in frames if isinstance(frame, LoopFrame))])


def parallel_step(
    wf: WorkflowDef, top: str, frames: Sequence[Frame], path: str, visit: int
) -> tuple[StepDef, ParallelFrame] | None:
    """The parallel step at ``path`` and its frame, if the position is inside it at ``visit``."""
    if not frames:
        return None
    frame = frames[-1]
    if not isinstance(frame, ParallelFrame) or frame.start != visit:
        return None
    try:
        step, found = step_levels(wf, top, frames[:-1])[-1]
    except LookupError:
        return None
    if found != path or nested_steps(step, BRANCHES) is None:
        return None
    return step, frame

"""Where an execution is inside its current step: the typed cursor, and its one codec.

An execution's position is its ``current_step`` (a top-level step) plus a
cursor: one frame per enclosing step that holds steps (a loop's body, a
parallel step's branches), and the bookkeeping of the innermost step (its
attempt after a retry, its visit, the progress it saved). The record keeps the
cursor as JSON data; :meth:`Cursor.of` reads it and :meth:`Cursor.to_json`
writes it, so no other module looks inside that JSON.

Imports only :mod:`flowkit.records`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .records import Execution

__all__ = [
    "EMPTY",
    "BranchResult",
    "Cursor",
    "Frame",
    "Joined",
    "LoopFrame",
    "ParallelFrame",
    "Unwinding",
    "with_cancel_of",
]


@attrs.frozen(kw_only=True)
class LoopFrame:
    """Inside the body of a loop: which iteration, and which body step runs next.

    Attributes:
        step: the loop's id.
        at: the body step to run next.
        index: the iteration (0, 1, 2…).
        start: the ``seq`` of the last entry written before the loop began
            (the loop's outputs are read from the entries after it).
        count: how many items a foreach loop has (None for a while loop).
    """

    step: str
    at: str
    index: int
    start: int
    count: int | None = None

    def moved(self, *, at: str, index: int | None = None) -> LoopFrame:
        """The frame at another body step (and iteration); cheaper than ``attrs.evolve``."""
        return LoopFrame(
            step=self.step,
            at=at,
            index=self.index if index is None else index,
            start=self.start,
            count=self.count,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "step": self.step,
            "index": self.index,
            "start": self.start,
            "at": self.at,
        }
        if self.count is not None:
            data["count"] = self.count
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoopFrame:
        return cls(
            step=data["step"],
            at=data["at"],
            index=data["index"],
            start=data["start"],
            count=data.get("count"),
        )


@attrs.frozen(kw_only=True)
class BranchResult:
    """What one finished branch of a parallel step produced (kept until the join).

    The stored frame keeps only whether the branch succeeded, its error and the
    names of the ctx values it changes: its entry holds its output (and its
    input, attempt and duration), so each later branch's checkpoint does not
    write every finished branch's output again. A result read back from a
    stored frame has ``loaded`` false: its ``output``, and the ``updates`` that
    ``from_output`` names, are None until the engine reads the output back from
    the entry at the join (:meth:`with_output`).

    Attributes:
        ok: whether the branch succeeded.
        output: what the branch produced.
        updates: the ctx values it changes, by name.
        input: its resolved input (for its entry).
        error: why it failed.
        attempt: its attempt (for its entry).
        duration: how long it ran, in ms (for its entry).
        from_output: the names in ``updates`` whose value is the output.
        loaded: whether ``output`` is known.
    """

    ok: bool
    output: Any = None
    updates: Mapping[str, Any] = attrs.field(factory=dict)
    input: Any = None
    error: str | None = None
    attempt: int = 1
    duration: float = 0.0
    from_output: tuple[str, ...] = ()
    loaded: bool = True

    def with_output(self, output: Any) -> BranchResult:
        """This result with its output read back, and the updates that take it."""
        updates = {
            name: output if name in self.from_output else value
            for name, value in self.updates.items()
        }
        return attrs.evolve(self, output=output, updates=updates, loaded=True)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": self.ok}
        if self.error is not None:
            data["error"] = self.error
        if self.updates:
            if self.loaded:
                output = self.output
                keys = tuple(name for name, value in self.updates.items() if value is output)
            else:
                keys = self.from_output
            data["updates"] = {
                name: None if name in keys else value for name, value in self.updates.items()
            }
            if keys:
                data["from_output"] = list(keys)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BranchResult:
        if "output" in data:  # written before outputs were left to the entries
            return cls(**data)
        return cls(
            ok=data["ok"],
            updates=data.get("updates", {}),
            error=data.get("error"),
            from_output=tuple(data.get("from_output", ())),
            loaded=False,
        )


@attrs.frozen(kw_only=True)
class Joined:
    """How a parallel step's branches ended: their outputs and ctx changes, or an error."""

    ok: bool
    outputs: list[Any] = attrs.field(factory=list)
    updates: Mapping[str, Any] = attrs.field(factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "outputs": self.outputs, "updates": dict(self.updates)}
        return {"ok": False, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Joined:
        return cls(**data)


@attrs.frozen(kw_only=True)
class ParallelFrame:
    """Inside a parallel step: the branches that finished, and the join once there is one.

    Attributes:
        step: the parallel step's id.
        start: the visit of the parallel step (the ``seq`` its first entry
            gets); branch messages carry it, so a late one for an earlier
            visit is dropped.
        done: the result of each finished branch, by branch id.
        local: the loop variables the branches see, when inside a loop body.
        iteration: the enclosing loop's iteration, if any.
        attempts: the next attempt of each branch that was retried.
        joined: set once enough branches finished (or too many failed).
        epoch: how many times a retry of the execution took the step up again;
            branch messages carry it, so a late one from before a retry is dropped.
    """

    step: str
    start: int
    done: Mapping[str, BranchResult] = attrs.field(factory=dict)
    local: Mapping[str, Any] | None = None
    iteration: int | None = None
    attempts: Mapping[str, int] = attrs.field(factory=dict)
    joined: Joined | None = None
    epoch: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "step": self.step,
            "start": self.start,
            "done": {name: result.to_json() for name, result in self.done.items()},
        }
        if self.local:
            data["local"] = dict(self.local)
        if self.iteration is not None:
            data["iteration"] = self.iteration
        if self.attempts:
            data["attempts"] = dict(self.attempts)
        if self.joined is not None:
            data["joined"] = self.joined.to_json()
        if self.epoch:
            data["epoch"] = self.epoch
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParallelFrame:
        joined = data.get("joined")
        return cls(
            step=data["step"],
            start=data["start"],
            done={name: BranchResult.from_json(value) for name, value in data["done"].items()},
            local=data.get("local"),
            iteration=data.get("iteration"),
            attempts=data.get("attempts", {}),
            joined=None if joined is None else Joined.from_json(joined),
            epoch=data.get("epoch", 0),
        )


Frame = LoopFrame | ParallelFrame
"""The frame of one enclosing step."""


@attrs.frozen(kw_only=True)
class Unwinding:
    """An execution that is running the compensations of its completed steps before it
    ends (SPEC §15).

    Attributes:
        end: the status it ends with: ``failed`` or ``cancelled``.
        error: its error then (the failure, or the cancel's reason).
        todo: the seqs of the entries of the completed steps still to compensate,
            the next one first (reverse order of completion).
        failed: what each compensation that failed raised, in order.
    """

    end: str
    error: str
    todo: tuple[int, ...]
    failed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "end": self.end,
            "error": self.error,
            "todo": list(self.todo),
            "failed": list(self.failed),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Unwinding:
        return cls(
            end=data["end"],
            error=data["error"],
            todo=tuple(data["todo"]),
            failed=tuple(data.get("failed", ())),
        )


def _frame(data: Mapping[str, Any]) -> Frame:
    return ParallelFrame.from_json(data) if "done" in data else LoopFrame.from_json(data)


@attrs.frozen(kw_only=True)
class Cursor:
    """The position inside the current step (see the module's docs).

    Attributes:
        frames: one frame per enclosing loop or parallel step, outermost first.
        attempt: the next attempt of the innermost step, after a retry.
        visit: the visit of the innermost step, while it is not finished (it
            halted, waits for a retry, or saved progress): its idempotency key
            and its child executions keep the visit it started with.
        state: the progress the innermost step saved (``Outcome(progress=…)``).
        recoveries: how many times ``recover`` took the execution over since its
            last checkpoint (every checkpoint starts again from 0).
        cancel: a cancel asked for while the execution ran (``reason``, ``by``):
            it ends cancelled instead of running its next step.
        unwinding: the execution runs compensations before it ends.
    """

    frames: tuple[Frame, ...] = ()
    attempt: int | None = None
    visit: int | None = None
    state: Any = None
    recoveries: int = 0
    cancel: Mapping[str, Any] | None = None
    unwinding: Unwinding | None = None

    @property
    def idle(self) -> bool:
        """Whether the execution is between two top-level steps (nothing is under way)."""
        return not self.frames and self.attempt is None and self.unwinding is None

    @classmethod
    def of(cls, execution: Execution) -> Cursor:
        """The cursor of an execution record."""
        return cls.from_json(execution.cursor)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cursor:
        """Read the JSON a record keeps."""
        if not data:
            return EMPTY
        return cls(
            frames=tuple(_frame(frame) for frame in data.get("frames", ())),
            attempt=data.get("attempt"),
            visit=data.get("visit"),
            state=data.get("state"),
            recoveries=data.get("recoveries", 0),
            cancel=data.get("cancel"),
            unwinding=None if "unwinding" not in data else Unwinding.from_json(data["unwinding"]),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON a record keeps."""
        data: dict[str, Any] = {}
        if self.visit is not None:
            data["visit"] = self.visit
        if self.attempt is not None:
            data["attempt"] = self.attempt
        if self.state is not None:
            data["state"] = self.state
        if self.frames:
            data["frames"] = [frame.to_json() for frame in self.frames]
        if self.recoveries:
            data["recoveries"] = self.recoveries
        if self.cancel is not None:
            data["cancel"] = dict(self.cancel)
        if self.unwinding is not None:
            data["unwinding"] = self.unwinding.to_json()
        return data


EMPTY = Cursor()
"""The cursor between two top-level steps."""


def with_cancel_of(written: dict[str, Any], latest: Mapping[str, Any]) -> dict[str, Any]:
    """``written`` (a new cursor's JSON), keeping a cancel request ``latest`` holds:
    a checkpoint never drops a cancel that was asked for while its step ran."""
    request = latest.get("cancel")
    return written if request is None else {**written, "cancel": request}

"""Loop steps: iterations kept in a cursor frame, so a halt or crash resumes inside one."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from ._checkpoint import (
    Done,
    Exit,
    Fail,
    Finish,
    Frames,
    Goto,
    Ran,
    Stay,
    Tx,
    direct_output,
    error_text,
)
from ._conditions import ConditionError, evaluate
from ._definitions import LoopConfig, StepDef
from ._expressions import Scope
from ._stepping import Stepper
from ._steps import Decision, Outcome, over_items
from .errors import ExecutionError
from .records import Action, Entry

__all__ = ["Exhausted", "LoopSteps"]


class Exhausted(ExecutionError):
    """A loop ran out of iterations (``max``)."""


class LoopSteps(Stepper):
    """Runs ``loop`` steps: one body step per checkpoint, iterations in a frame."""

    def _loop(
        self,
        tx: Tx,
        step: StepDef,
        path: str,
        frames: Frames,
        depth: int,
        local: dict[str, Any] | None,
        iteration: int | None,
        mode: str,
        decision: Decision,
    ) -> Ran:
        config: LoopConfig = step.config
        scope = Scope(tx.ctx, now=self.clock.now, local=local, input=tx.base.input)
        if depth < len(frames):
            frame = dict(frames[depth])
        else:
            try:
                entered = self._enter_loop(tx, step, path, scope, local)
            except ExecutionError as exc:
                return self._loop_failed(tx, step, path, exc, iteration)
            if entered is None:
                return self._loop_done(tx, step, path, [], iteration)
            frame = entered
            if tx.inflight is not None:
                tx.inflight.loop_outputs[f"{path}@{frame['start']}"] = {}
        tx.loops[path] = frame["start"]
        try:
            variables = self._loop_variables(config, scope, frame)
        except ExecutionError as exc:
            return self._loop_failed(tx, step, path, exc, iteration)
        body = next(child for child in config.do if child.id == frame["at"])
        moved = self._level(
            tx,
            config.do,
            body,
            f"{path}:",
            frames,
            depth + 1,
            {**(local or {}), **variables},
            frame["index"],
            mode,
            decision,
        )
        if isinstance(moved, Exit):
            # A body step without a next continues with the step listed after it.
            position = next(i for i, child in enumerate(config.do) if child.id == body.id)
            if position + 1 < len(config.do) and body.type != "router":
                moved = Goto(config.do[position + 1].id)
        if isinstance(moved, Goto):
            frame["at"] = moved.target
            return Stay((frame,))
        if isinstance(moved, Stay):
            return Stay((frame, *moved.frames))
        if isinstance(moved, (Fail, Finish)):
            return moved
        return self._next_iteration(tx, step, path, frame, local, iteration)

    def _next_iteration(
        self,
        tx: Tx,
        step: StepDef,
        path: str,
        frame: dict[str, Any],
        local: Mapping[str, Any] | None,
        iteration: int | None,
    ) -> Ran:
        config: LoopConfig = step.config
        index = frame["index"] + 1
        if tx.ctx.get("break_loop") is True:
            tx.update({"break_loop": False})
            return self._loop_done(tx, step, path, self._outputs(tx, path, frame), iteration)
        if config.while_ is None:
            if index >= frame["count"]:
                return self._loop_done(tx, step, path, self._outputs(tx, path, frame), iteration)
        else:
            holds = self._while_holds(tx, config, local, index)
            if isinstance(holds, ExecutionError):
                return self._loop_failed(tx, step, path, holds, iteration)
            if not holds:
                return self._loop_done(tx, step, path, self._outputs(tx, path, frame), iteration)
            if index >= config.max:
                exhausted = Exhausted(
                    f"loop '{path}' ran {config.max} iterations, its max, and was not done"
                )
                return self._loop_failed(tx, step, path, exhausted, iteration)
        frame["index"] = index
        frame["at"] = config.do[0].id
        return Stay((frame,))

    def _enter_loop(
        self,
        tx: Tx,
        step: StepDef,
        path: str,
        scope: Scope,
        local: Mapping[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The frame of a loop that starts now, or None when it has no iterations."""
        config: LoopConfig = step.config
        frame: dict[str, Any] = {
            "step": step.id,
            "index": 0,
            "start": tx.seq,
            "at": config.do[0].id,
        }
        if config.while_ is not None:
            holds = self._while_holds(tx, config, local, 0)
            if isinstance(holds, ExecutionError):
                raise holds
            return frame if holds else None
        items = over_items(config.over, scope)
        if not isinstance(items, list):
            raise ExecutionError(
                f"loop '{path}': 'over' must give a list, got {type(items).__name__}"
            )
        if len(items) > config.max:
            raise Exhausted(
                f"loop '{path}' has {len(items)} items, more than its max of {config.max}"
            )
        if not items:
            return None
        frame["count"] = len(items)
        return frame

    def _loop_variables(
        self, config: LoopConfig, scope: Scope, frame: Mapping[str, Any]
    ) -> dict[str, Any]:
        index = frame["index"]
        if config.while_ is not None:
            return {config.index_as: index}
        items = over_items(config.over, scope)
        if not isinstance(items, list) or len(items) != frame["count"]:
            raise ExecutionError(
                f"loop '{frame['step']}': the list in 'over' changed during the loop "
                f"(it had {frame['count']} items); don't modify the list a loop iterates over"
            )
        return {config.as_: items[index], config.index_as: index}

    def _while_holds(
        self, tx: Tx, config: LoopConfig, local: Mapping[str, Any] | None, index: int
    ) -> bool | ExecutionError:
        cond = config.while_
        assert cond is not None
        scope = Scope(
            tx.ctx,
            now=self.clock.now,
            local={**(local or {}), config.index_as: index},
            input=tx.base.input,
        )
        try:
            return evaluate(cond.field, cond.op, cond.value, scope)
        except ConditionError as exc:
            return ExecutionError(f"while condition cannot be evaluated: {exc}")

    def _loop_done(
        self, tx: Tx, step: StepDef, path: str, outputs: list[Any], iteration: int | None
    ) -> Ran:
        config: LoopConfig = step.config
        if config.output:
            tx.update({config.output: outputs})
        tx.entry(path, step.type, Action.COMPLETED, iteration=iteration, output=outputs)
        tx.event("step.completed", path, output=outputs)
        return Done(Outcome(target=step.next, output=outputs))

    def _outputs(self, tx: Tx, path: str, frame: Mapping[str, Any]) -> list[Any]:
        """Each iteration's last output: remembered when the loop started in this
        process, else read back from the entries written since it began."""
        start = frame["start"]
        key = f"{path}@{start}"
        cached = None if tx.inflight is None else tx.inflight.loop_outputs.pop(key, None)
        if cached is not None:
            last = cached
            stored: Iterable[Entry] = ()
        else:
            last = {}
            stored = self.store.entries(tx.base.id, after=start) if start < tx.base.seq else []
        for entry in itertools.chain(stored, tx.entries):
            if direct_output(entry, path):
                assert entry.iteration is not None
                last[entry.iteration] = entry.output
        return [last.get(index) for index in range(frame["index"] + 1)]

    def _loop_failed(
        self, tx: Tx, step: StepDef, path: str, exc: ExecutionError, iteration: int | None
    ) -> Ran:
        config: LoopConfig = step.config
        exhausted = isinstance(exc, Exhausted)
        if exhausted:  # users see (and `_last_error` names) the public type
            exc = ExecutionError(str(exc))
        tx.entry(path, step.type, Action.FAILED, iteration=iteration, error=error_text(exc))
        tx.event("step.failed", path, error=error_text(exc))
        if exhausted and config.on_exhausted is not None:
            return Done(Outcome(target=config.on_exhausted))
        return Fail(exc)

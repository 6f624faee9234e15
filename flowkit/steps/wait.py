"""``wait``: waits for a signal (status ``waiting``), then goes on with its payload (SPEC §15).

``signal`` names what to wait for; the payload of the signal that ends the
wait goes into ``output``. A signal sent before the step runs waits in the
execution's mailbox, so nothing is lost; each is consumed once, oldest first,
inside the checkpoint that moves the execution on. With ``timeout``, the step
moves to ``on_timeout`` (or fails) when no signal came in time. A signal and
the timeout firing together are settled by the checkpoint's version check:
exactly one of them moves the execution on (a signal already in the mailbox
when the timer fires wins).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import attrs

from ..abc import IMPLICIT, Builder, Decision, Outcome, Runtime, StepType, register_step_type
from ..definitions import OUTPUT, StepDef
from ..definitions.fields import SECONDS, Duration, duration, non_empty, optional_non_empty, target
from ..errors import ExecutionError
from ..records import Action, Signal

__all__ = ["WaitConfig", "WaitForSignal", "wait"]


@attrs.frozen(kw_only=True)
class WaitConfig:
    """``wait``: waits for the signal ``signal``; its payload goes into ``output``."""

    signal: str = attrs.field(validator=non_empty)
    output: str | None = attrs.field(
        default=None, validator=optional_non_empty, metadata={OUTPUT: True}
    )
    timeout: Annotated[float | None, SECONDS] = duration(default=None, positive=True)
    on_timeout: str | None = target()


def wait(
    graph: Builder,
    id: str,
    *,
    signal: str,
    output: str | None = None,
    timeout: Duration | None = None,
    on_timeout: str | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``wait`` step: wait for the signal ``signal``; its payload goes into ``output``."""
    config = graph.config(
        WaitConfig, id, signal=signal, output=output, timeout=timeout, on_timeout=on_timeout
    )
    return graph.add_step(id, "wait", config, next, on_error)


class WaitForSignal(StepType):
    name = "wait"
    config = WaitConfig
    in_parallel = False  # a branch runs inside its step: it cannot wait for days
    shape = "wait"
    build = staticmethod(wait)

    def check(self, step: StepDef) -> list[str]:
        config: WaitConfig = step.config
        if config.on_timeout is not None and config.timeout is None:
            return ["'on_timeout' needs a 'timeout'"]
        return []

    def run(self, run: Runtime) -> Outcome:
        config: WaitConfig = run.step.config
        received = self._received(run)
        if received is not None:
            return received
        now = run.now()
        data: dict[str, Any] = {"signal": config.signal, "since": now.isoformat(), "until": None}
        if config.timeout is not None:
            data["until"] = (now + timedelta(seconds=config.timeout)).isoformat()
        return Outcome(
            stay=True,
            wait=data,
            output=data,
            action=Action.WAITING,
            wake_at_seconds=config.timeout,
        )

    def resume(self, run: Runtime, decision: Decision) -> Outcome:
        # The engine moves a waiting execution on through its timer: see timeout().
        return self.timeout(run)

    def timeout(self, run: Runtime) -> Outcome:
        """The timer fired: a signal has come (delivery makes the timer due at once), or
        the time is up, or neither (the workflow's own timer): then wait on."""
        config: WaitConfig = run.step.config
        received = self._received(run)
        if received is not None:
            return received
        waited = run.halt_data or {}
        until = waited.get("until")
        now = run.now()
        if until is None or now < datetime.fromisoformat(until):
            left = None if until is None else (datetime.fromisoformat(until) - now).total_seconds()
            return Outcome(
                stay=True,
                wait=dict(waited),
                output=dict(waited),
                action=Action.WAITING,
                wake_at_seconds=left,
            )
        if config.on_timeout is not None:
            return Outcome(
                target=config.on_timeout,
                output={"timed_out": True, "signal": config.signal},
                action=Action.RESUMED,
            )
        raise ExecutionError(
            f"step '{run.path}' timed out after {config.timeout:g}s waiting for signal "
            f"'{config.signal}'"
        )

    def _received(self, run: Runtime) -> Outcome | None:
        """Consume the oldest pending signal of the step's name, if there is one."""
        config: WaitConfig = run.step.config
        pending = run.signals(config.signal)
        if not pending:
            return None
        signal: Signal = pending[0]
        updates = {} if config.output is None else {config.output: signal.payload}
        return Outcome(
            target=run.step.next,
            updates=updates,
            output=signal.payload,
            input={"signal": signal.name, "seq": signal.seq, "key": signal.key},
            consume=(signal.seq,),
        )


register_step_type(WaitForSignal())

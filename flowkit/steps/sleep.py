"""``sleep``: waits for a time (status ``waiting``), then goes on at ``next`` (SPEC §15).

Exactly one of ``seconds`` (a duration: ``30``, ``"5m"``, ``"PT1H"``, or a
reference to one) and ``until`` (an ISO 8601 time, UTC when it has no offset,
or a reference to one). The wake-up time is in the checkpoint, so a crash
loses nothing; ``engine.wake_due()`` (``flowkit wake``, every worker, a
delayed message on Dramatiq) moves the execution on once it is due. A time
already past goes on at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ..abc import IMPLICIT, Builder, Outcome, Runtime, StepType, register_step_type
from ..definitions import EXPR, StepDef
from ..definitions.fields import Duration, seconds
from ..errors import ExecutionError
from ..records import Action

__all__ = ["Sleep", "SleepConfig", "sleep"]


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


def _seconds_or_reference(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or _is_reference(value):
        return
    try:
        amount = seconds(value)
    except ValueError as exc:
        raise ValueError(f"'{attribute.name}': {exc}, or a $reference to one") from None
    if amount < 0:
        raise ValueError(f"'{attribute.name}' must be at least 0 seconds, got {value!r}")


def _time_or_reference(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or _is_reference(value):
        return
    _instant(value, f"'{attribute.name}'")


def _instant(value: Any, where: str) -> datetime:
    """``value`` as an aware time (UTC when it has no offset).

    Raises:
        ValueError: it is not ISO 8601 text.
    """
    if not isinstance(value, str):
        raise ValueError(f"{where} must be an ISO 8601 time, got {value!r}")
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{where} must be an ISO 8601 time such as 2030-01-31T09:00:00Z, got {value!r}"
        ) from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _to_seconds(value: Any) -> Any:
    if value is None or _is_reference(value) or isinstance(value, bool):
        return value
    try:
        return seconds(value)
    except ValueError:
        return value  # the validator says what is wrong with it


@attrs.frozen(kw_only=True)
class SleepConfig:
    """``sleep``: waits ``seconds`` or ``until`` a time, then goes on."""

    seconds: Any = attrs.field(
        default=None,
        converter=_to_seconds,
        validator=_seconds_or_reference,
        metadata={EXPR: True},
    )
    until: Any = attrs.field(default=None, validator=_time_or_reference, metadata={EXPR: True})


def sleep(
    graph: Builder,
    id: str,
    *,
    seconds: Duration | str | None = None,
    until: str | datetime | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``sleep`` step: wait ``seconds`` (a duration or a reference), or ``until`` a time."""
    if isinstance(until, datetime):
        until = (until if until.tzinfo is not None else until.replace(tzinfo=UTC)).isoformat()
    config = graph.config(SleepConfig, id, seconds=seconds, until=until)
    return graph.add_step(id, "sleep", config, next, on_error)


class Sleep(StepType):
    name = "sleep"
    config = SleepConfig
    in_parallel = False
    shape = "wait"
    build = staticmethod(sleep)

    def check(self, step: StepDef) -> list[str]:
        config: SleepConfig = step.config
        if (config.seconds is None) == (config.until is None):
            return ["give exactly one of 'seconds' and 'until'"]
        return []

    def run(self, run: Runtime) -> Outcome:
        config: SleepConfig = run.step.config
        now = run.now()
        if config.seconds is not None:
            value = run.resolve(config.seconds)
            try:
                delay = float(seconds(value))
            except ValueError as exc:
                raise ExecutionError(f"step '{run.path}': 'seconds' is {exc}") from None
            if delay < 0:
                raise ExecutionError(f"step '{run.path}': cannot sleep {delay:g} seconds")
            wake = now + timedelta(seconds=delay)
        else:
            try:
                wake = _instant(run.resolve(config.until), "'until'")
            except ValueError as exc:
                raise ExecutionError(f"step '{run.path}': {exc}") from None
            delay = (wake - now).total_seconds()
        if delay <= 0:
            return Outcome(target=run.step.next, output={"until": wake.isoformat()})
        data = {"until": wake.isoformat(), "since": now.isoformat()}
        return Outcome(
            stay=True, wait=data, output=data, action=Action.WAITING, wake_at_seconds=delay
        )

    def timeout(self, run: Runtime) -> Outcome:
        return Outcome(target=run.step.next, output={"woke_at": run.now().isoformat()})


register_step_type(Sleep())

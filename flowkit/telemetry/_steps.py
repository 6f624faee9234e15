"""Spans, metrics and log records of step runs and checkpoints (see :mod:`flowkit.telemetry`)."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import attrs

from .._version import __version__
from ..records import Action, Entry, Execution, Status

__all__ = [
    "StepWatch",
    "attached",
    "carrier",
    "checkpointed",
    "created",
    "log",
    "watch_step",
    "with_trace",
]

log = logging.getLogger("flowkit.steps")
"""The logger of step starts, finishes, retries and failures."""

_COMPLETED = frozenset({Action.COMPLETED, Action.RESUMED})
_LEVELS = {Action.FAILED: logging.WARNING}  # the others are INFO


class _Otel:
    """The OpenTelemetry API and flowkit's instruments, made once when it is installed."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, propagate, trace
        from opentelemetry.metrics import _internal as metrics_internal
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.context = context
        self.trace = trace
        self.metrics = metrics_internal
        self.propagate = propagate
        self.w3c = TraceContextTextMapPropagator()
        self.off = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self.tracer = trace.get_tracer("flowkit", __version__)
        meter = metrics.get_meter("flowkit", __version__)
        self.completed = meter.create_counter(
            "flowkit.steps.completed", unit="{step}", description="Steps that completed."
        )
        self.failed = meter.create_counter(
            "flowkit.steps.failed", unit="{step}", description="Steps that failed (no retry left)."
        )
        self.retried = meter.create_counter(
            "flowkit.steps.retried",
            unit="{step}",
            description="Step attempts that failed and will be retried.",
        )
        self.duration = meter.create_histogram(
            "flowkit.step.duration", unit="s", description="How long step runs took."
        )
        self.executions = meter.create_up_down_counter(
            "flowkit.executions",
            unit="{execution}",
            description="Executions by status: +1 when this process moves one into a status, "
            "-1 when it moves one out.",
        )
        self.tracing = False
        self.metering = False

    def tracing_on(self) -> bool:
        """Whether the application set a tracer provider (once set, it stays)."""
        if not self.tracing:
            # Until a provider is set, get_tracer_provider() looks in the environment
            # on every call (about 1 µs a step); the API's module global says "none
            # yet" for free. Should a release drop that global, the call decides.
            if getattr(self.trace, "_TRACER_PROVIDER", True) is None:
                return False
            self.tracing = not isinstance(self.trace.get_tracer_provider(), self.off)
        return self.tracing

    def metering_on(self) -> bool:
        """Whether the application set a meter provider (once set, it stays): until
        then the instruments drop what they are given, so nothing is counted."""
        if not self.metering:
            # As for tracing: the API's module global (a provider configured in the
            # environment was set when the meter was made); the call decides without it.
            self.metering = getattr(self.metrics, "_METER_PROVIDER", True) is not None
        return self.metering

    @functools.lru_cache(maxsize=1024)  # noqa: B019  (one instance, for the process's life)
    def parent(self, traceparent: str) -> Any:
        """The context a stored ``traceparent`` stands for."""
        return self.w3c.extract({"traceparent": traceparent})


@functools.cache
def _otel() -> _Otel | None:
    """OpenTelemetry, when ``opentelemetry-api`` is installed."""
    try:
        return _Otel()
    except ImportError:
        return None


# --- the trace of an execution ------------------------------------------------------------------


def with_trace(execution: Execution) -> Execution:
    """A new execution with the ``traceparent`` of the trace its spans will join.

    The caller's trace when a span is active, else a new trace: with a tracer
    provider set, its root is a ``flowkit.start <workflow_id>`` span (ended at
    once); without one, the execution keeps no traceparent (its steps then use
    one derived from its id, so they still share a trace).
    """
    otel = _otel()
    if otel is None or execution.traceparent is not None:
        return execution
    context = None
    if otel.tracing_on():
        span = otel.tracer.start_span(
            f"flowkit.start {execution.workflow_id}",
            attributes={
                "flowkit.execution_id": execution.id,
                "flowkit.workflow_id": execution.workflow_id,
            },
        )
        span.end()
        context = otel.trace.set_span_in_context(span)
    carrier: dict[str, str] = {}
    otel.w3c.inject(carrier, context)
    traceparent = carrier.get("traceparent")
    if traceparent is None:
        return execution
    return attrs.evolve(execution, traceparent=traceparent)


def _traceparent_of(execution: Execution) -> str:
    """The execution's stored traceparent, or one derived from its id (the same in
    every process) for an execution created where tracing was off."""
    if execution.traceparent is not None:
        return execution.traceparent
    digest = hashlib.sha256(execution.id.encode()).hexdigest()
    return f"00-{digest[:32]}-{digest[32:48]}-01"


def carrier() -> dict[str, str]:
    """The current trace context, to send along with a message (empty without one)."""
    otel = _otel()
    found: dict[str, str] = {}
    if otel is not None:
        otel.propagate.inject(found)
    return found


@contextmanager
def attached(received: Mapping[str, str] | None) -> Iterator[None]:
    """Make a context a message carried (see :func:`carrier`) the current one meanwhile."""
    otel = _otel()
    if otel is None or not received:
        yield
        return
    token = otel.context.attach(otel.propagate.extract(received))
    try:
        yield
    finally:
        otel.context.detach(token)


# --- a step run ------------------------------------------------------------------------------


class StepWatch:
    """A step run while it runs: its span is current, its start is in the log.

    A context manager around the span's scope; :meth:`ended` tells it how the
    step ended when it did not raise (an exception it sees is recorded on the
    span, with status ERROR).
    """

    __slots__ = ("_scope", "_span")

    def __init__(self, span: Any, scope: Any) -> None:
        self._span = span
        self._scope = scope

    def __enter__(self) -> StepWatch:
        self._scope.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._scope.__exit__(kind, error, traceback)

    def ended(self, action: Action, error: str | None) -> None:
        """The step returned: a failure it reports (``action`` failed) marks the span ERROR."""
        if action is Action.FAILED:
            otel = _otel()
            assert otel is not None
            self._span.set_status(otel.trace.Status(otel.trace.StatusCode.ERROR, error))


def watch_step(
    execution: Execution, step_id: str, step_type: str, attempt: int, entered: str
) -> StepWatch | None:
    """Watch a step run (``entered``: ``run``, ``resume`` or ``timer``): its span, or
    None without tracing (the caller then skips the context manager: once a step)."""
    if log.isEnabledFor(logging.DEBUG):
        verb = {"run": "started", "resume": "resumed"}.get(entered, "timed out")
        log.debug(
            "execution %s: step '%s' %s (attempt %d)",
            execution.id,
            step_id,
            verb,
            attempt,
            extra=_fields(execution, step_id, step_type, attempt),
        )
    otel = _otel()
    if otel is None or not otel.tracing_on():
        return None
    parent = otel.parent(_traceparent_of(execution))
    parent_span = otel.trace.get_current_span(parent).get_span_context()
    current = otel.trace.get_current_span().get_span_context()
    links = None
    if current.is_valid and (current.is_remote or current.trace_id != parent_span.trace_id):
        links = [otel.trace.Link(current)]
    span = otel.tracer.start_span(
        f"flowkit.step {step_id}",
        context=parent,
        links=links,
        attributes={
            "flowkit.execution_id": execution.id,
            "flowkit.workflow_id": execution.workflow_id,
            "flowkit.step_id": step_id,
            "flowkit.step_type": step_type,
            "flowkit.attempt": attempt,
        },
    )
    return StepWatch(span, otel.trace.use_span(span, end_on_exit=True))


# --- what a checkpoint wrote -------------------------------------------------------------------


def checkpointed(before: Execution, after: Execution, entries: Sequence[Entry]) -> None:
    """Count and log what a checkpoint wrote: its entries, and the status change."""
    otel = _otel()
    if otel is not None and otel.metering_on():
        if before.status is not after.status:
            _moved(otel, after.workflow_id, before.status, after.status)
        for entry in entries:
            _count(otel, after.workflow_id, entry)
    if entries and log.isEnabledFor(logging.WARNING):  # the highest level of an entry
        every = log.isEnabledFor(logging.INFO)  # else only failures
        for entry in entries:
            level = _LEVELS.get(entry.action, logging.INFO)
            if every or level > logging.INFO:
                _log_entry(after, entry, level)


def created(execution: Execution) -> None:
    """Count and log a new execution."""
    otel = _otel()
    if otel is not None and otel.metering_on():
        _moved(otel, execution.workflow_id, None, execution.status)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "execution %s of workflow '%s' started",
            execution.id,
            execution.workflow_id,
            extra={
                "execution_id": execution.id,
                "workflow_id": execution.workflow_id,
                "trace_id": _traceparent_of(execution)[3:35],
            },
        )


def _moved(otel: _Otel, workflow_id: str, before: Status | None, after: Status) -> None:
    if before is not None:
        otel.executions.add(
            -1, {"flowkit.workflow_id": workflow_id, "flowkit.status": before.value}
        )
    otel.executions.add(1, {"flowkit.workflow_id": workflow_id, "flowkit.status": after.value})


def _count(otel: _Otel, workflow_id: str, entry: Entry) -> None:
    attributes = {"flowkit.workflow_id": workflow_id, "flowkit.step_type": entry.step_type}
    if entry.action in _COMPLETED:
        otel.completed.add(1, attributes)
    elif entry.action is Action.FAILED:
        otel.failed.add(1, attributes)
    elif entry.action is Action.RETRIED:
        otel.retried.add(1, attributes)
    # A loop's or a parallel step's own entry has no run time; a compensation is no run.
    if entry.duration_ms and entry.action is not Action.COMPENSATED:
        otel.duration.record(entry.duration_ms / 1000, attributes)


def _log_entry(execution: Execution, entry: Entry, level: int) -> None:
    text = f"execution %s: step '%s' {entry.action.value} (attempt %d, %.1f ms)"
    if entry.error is not None:
        text += f": {entry.error.replace('%', '%%')}"
    fields = _fields(execution, entry.step_id, entry.step_type, entry.attempt)
    fields["action"] = entry.action.value
    log.log(
        level,
        text,
        execution.id,
        entry.step_id,
        entry.attempt,
        entry.duration_ms,
        extra=fields,
    )


def _fields(execution: Execution, step_id: str, step_type: str, attempt: int) -> dict[str, Any]:
    """The ``extra`` of a step's log records."""
    return {
        "execution_id": execution.id,
        "workflow_id": execution.workflow_id,
        "step_id": step_id,
        "step_type": step_type,
        "attempt": attempt,
        "trace_id": _traceparent_of(execution)[3:35],
    }

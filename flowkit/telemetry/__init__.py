"""What flowkit tells operators: OpenTelemetry spans and metrics, and step logs (SPEC §17).

- **Spans**, through the global tracer provider: one per step run
  (``flowkit.step <step_id>``), current while the step runs, so that the
  spans of the services it calls nest under it. Every execution belongs to one
  trace, kept in its record as a W3C ``traceparent`` (:func:`with_trace`):
  the caller's trace if a span was active when it was created, else a new one
  whose root is a short ``flowkit.start <workflow_id>`` span. Each step span's
  parent is that stored context, so a step resumed in another process, days
  later, joins the same trace; it also *links* to the span that moved the
  execution on when that one is remote or in another trace (the ``resume``
  call's span, or the context a Dramatiq message carried: :func:`carrier`,
  :func:`attached`).
- **Metrics**, through the global meter provider: ``flowkit.steps.completed``,
  ``flowkit.steps.failed``, ``flowkit.steps.retried`` (counters),
  ``flowkit.step.duration`` (histogram, seconds) and ``flowkit.executions``
  (an up-down counter by status: +1 when this process moves an execution into
  a status, -1 when it moves it out).
- **Logs**, on the ``flowkit.steps`` logger: every step start (debug), finish,
  retry (info) and failure (warning), with ``execution_id``, ``workflow_id``,
  ``step_id``, ``step_type``, ``attempt`` and ``trace_id`` in ``extra``.

Without the ``opentelemetry-api`` package (extra ``otel``), or before the
application sets a tracer provider, a step costs a check or two here; with no
log handler enabled, an ``isEnabledFor`` check. The engine calls this module
at a few marked places; :func:`configure_logging` is how long-running
commands print logs (``--log-format``, ``--log-level``). It imports only
:mod:`flowkit.records`.
"""

from ._output import LEVELS as LOG_LEVELS
from ._output import JSONFormatter, configure_logging
from ._steps import (
    StepWatch,
    attached,
    carrier,
    checkpointed,
    created,
    log,
    watch_step,
    with_trace,
)

__all__ = [
    "LOG_LEVELS",
    "JSONFormatter",
    "StepWatch",
    "attached",
    "carrier",
    "checkpointed",
    "configure_logging",
    "created",
    "log",
    "watch_step",
    "with_trace",
]

"""The engine: advances executions one checkpointed step at a time (SPEC §6).

Composed of small parts, one module each:

- :mod:`~flowkit.engine.engine` — the public :class:`Engine`: create, drive,
  resume, timers, recovery;
- :mod:`~flowkit.engine.stepper` — the engine loop's core: run the step at an
  execution's position, write one checkpoint;
- :mod:`~flowkit.engine.runtime` — :class:`StepRun`, the runtime a step sees;
- :mod:`~flowkit.engine.transaction` — what one checkpoint changes;
- :mod:`~flowkit.engine.fanout` — parallel branches, run and joined;
- :mod:`~flowkit.engine.position` — following a cursor through a definition;
- :mod:`~flowkit.engine.leases` — executions in flight and their leases;
- :mod:`~flowkit.engine.schedules` — cron slots, the one due, its execution id;
- :mod:`~flowkit.engine.retention` — finished executions pruned periodically;
- :mod:`~flowkit.engine.events`, :mod:`~flowkit.engine.results`,
  :mod:`~flowkit.engine.drivers` (inline, thread), :mod:`~flowkit.engine.clock`,
  :mod:`~flowkit.engine.default` (``flowkit.run``/``flowkit.resume`` and their
  async twins).

Imports the step types' layer and below; adapters (stores, Dramatiq) are
chosen through :mod:`flowkit.adapters`, never imported here.
"""

from .clock import SystemClock
from .default import default_engine, resume, resume_async, run, run_async, signal
from .drivers import InlineDriver, ThreadDriver
from .engine import Engine, Handle
from .events import EVENT_NAMES, Event, EventBus
from .position import has_position, step_levels
from .results import Advance, FanOut, HaltInfo, Result, Sweep
from .retention import FINISHED, Retention
from .schedules import (
    MISSED_COUNT_LIMIT,
    ScheduleSlots,
    Timetable,
    schedule_slots,
    slot_execution_id,
)

__all__ = [
    "EVENT_NAMES",
    "FINISHED",
    "MISSED_COUNT_LIMIT",
    "Advance",
    "Engine",
    "Event",
    "EventBus",
    "FanOut",
    "HaltInfo",
    "Handle",
    "InlineDriver",
    "Result",
    "Retention",
    "ScheduleSlots",
    "Sweep",
    "SystemClock",
    "ThreadDriver",
    "Timetable",
    "default_engine",
    "has_position",
    "resume",
    "resume_async",
    "run",
    "run_async",
    "schedule_slots",
    "signal",
    "slot_execution_id",
    "step_levels",
]

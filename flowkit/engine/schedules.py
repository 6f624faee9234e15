"""Cron schedules: when their slots fall, which one is due, and the id of its execution
(SPEC §16).

A schedule's cron expression (parsed by croniter, imported when first used)
is read in its time zone, on the wall clock: ``30 2 * * *`` in
``Europe/Berlin`` is 02:30 Berlin time, whatever the offset that day. Each
wall-clock time becomes one UTC instant, its *slot*, by one rule:

- a time that occurs twice (the hour repeated when clocks go back) is its
  first occurrence;
- a time that does not exist (the hour skipped when clocks go forward) is
  read with the offset in force before the change, so it falls as far after
  the change as it was meant to fall after the hour began: 02:30 on a day
  that skips 02:00-03:00 is 03:30.

That is :mod:`zoneinfo`'s reading of such times (``fold=0``). So a daily
job runs once on both change days, and an hourly job once per hour that
exists. Two wall-clock times that land on one instant are one slot.

The engine starts one execution per slot, with the id :func:`slot_execution_id`
gives; the store's ``create`` refuses a second one, so any number of
processes may try. Imports the records and definitions layers only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import attrs

from ..definitions import did_you_mean
from ..records import Schedule

if TYPE_CHECKING:
    from croniter import croniter

__all__ = [
    "MISSED_COUNT_LIMIT",
    "ScheduleSlots",
    "Timetable",
    "due_slot",
    "schedule_problems",
    "schedule_slots",
    "slot_execution_id",
]

#: :func:`schedule_slots` stops counting missed slots here (a minutely schedule
#: stopped for a month has missed tens of thousands; the count says "at least").
MISSED_COUNT_LIMIT = 1000

# A name becomes part of execution ids (``<name>@<slot>``), which stores keep
# in 255 characters.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
# Longer than any change of a zone's UTC offset (daylight saving moves an hour).
_CHANGE = timedelta(hours=3)


class Timetable:
    """The slots of a cron expression read in a time zone, as UTC instants.

    Args:
        cron: a cron expression in croniter's syntax: five fields (minute,
            hour, day of month, month, day of week), an optional sixth for
            seconds, or ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``.
        timezone: an IANA time zone name (``"Europe/Berlin"``).

    Raises:
        ValueError: the expression or the time zone is not valid (the message
            says which, and what is expected).
    """

    def __init__(self, cron: str, timezone: str = "UTC") -> None:
        problems = _cron_problems(cron) + _timezone_problems(timezone)
        if problems:
            raise ValueError("; ".join(problems))
        self.cron = cron
        self.timezone = timezone
        self._zone: tzinfo = UTC if timezone == "UTC" else ZoneInfo(timezone)

    @classmethod
    def of(cls, schedule: Schedule) -> Timetable:
        """The timetable of a stored schedule.

        Raises:
            ValueError: its expression or time zone is not valid (here).
        """
        return cls(schedule.cron, schedule.timezone)

    def __repr__(self) -> str:
        return f"<Timetable {self.cron!r} in {self.timezone}>"

    def slot(self, wall: datetime) -> datetime:
        """The UTC instant of a naive wall-clock time in this time zone (see the module)."""
        return wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)

    def around(self, now: datetime) -> tuple[datetime, datetime]:
        """The latest slot at or before ``now`` and the first slot after it."""
        margin = self._margin(now)
        end = self._wall(now) + margin
        latest: datetime | None = None
        upcoming: datetime | None = None
        for wall, slot in self._walk(self._wall(now) - margin):
            if slot <= now:
                latest = slot if latest is None else max(latest, slot)
            elif upcoming is None or slot < upcoming:
                upcoming = slot
            if wall >= end and latest is not None and upcoming is not None:
                return latest, upcoming
        raise AssertionError("unreachable: a cron expression matches forever")

    def count(self, after: datetime, until: datetime, *, limit: int) -> int:
        """How many slots are later than ``after`` and at or before ``until``, counting
        up to ``limit``."""
        margin = self._margin(after, until)
        end = self._wall(until) + margin
        seen: set[datetime] = set()
        for wall, slot in self._walk(self._wall(after) - margin):
            if wall > end or len(seen) >= limit:
                break
            if after < slot <= until:
                seen.add(slot)
        return len(seen)

    def _margin(self, *moments: datetime) -> timedelta:
        """How far around ``moments`` to look: near a change of the UTC offset, slots
        are not in wall-clock order (a skipped time lands after the change)."""
        for moment in moments:
            before = (moment - _CHANGE).astimezone(self._zone).utcoffset()
            if before != (moment + _CHANGE).astimezone(self._zone).utcoffset():
                return _CHANGE
        return timedelta(0)

    def _wall(self, moment: datetime) -> datetime:
        """The naive wall-clock time of a UTC instant in this time zone."""
        return moment.astimezone(self._zone).replace(tzinfo=None)

    def _walk(self, wall: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The wall-clock times of the expression from the last one at or before ``wall``
        on, in order, each with its slot."""
        croniter = _croniter()
        # get_prev is exclusive: from just after ``wall`` it finds ``wall`` itself.
        times = croniter(self.cron, wall + timedelta(microseconds=1))
        first: datetime = times.get_prev(datetime)
        yield first, self.slot(first)
        times = croniter(self.cron, first)
        while True:
            nxt: datetime = times.get_next(datetime)
            yield nxt, self.slot(nxt)


@attrs.frozen(kw_only=True)
class ScheduleSlots:
    """Where a schedule stands at a moment (what ``flowkit schedule list`` shows).

    Attributes:
        next: the first slot after the moment.
        due: the slot a wake-up would start now, if any: the latest slot that
            passed and has not started.
        missed: how many slots passed since the last one started (or since
            the schedule was saved) without starting: when a wake-up comes,
            only the latest of them starts and the others are skipped.
            Counting stops at :data:`MISSED_COUNT_LIMIT`.
    """

    next: datetime
    due: datetime | None
    missed: int


def due_slot(schedule: Schedule, now: datetime) -> datetime | None:
    """The slot of ``schedule`` to start at ``now``: the latest one at or before ``now``,
    later than its ``last_slot`` and not before its ``created_at``; None if there is none.

    Raises:
        ValueError: the schedule's expression or time zone is not valid (here).
    """
    latest, _ = Timetable.of(schedule).around(now)
    return _unstarted(schedule, latest)


def schedule_slots(schedule: Schedule, now: datetime) -> ScheduleSlots:
    """The next slot of ``schedule`` after ``now``, the one due and how many were missed.

    Raises:
        ValueError: the schedule's expression or time zone is not valid (here).
    """
    timetable = Timetable.of(schedule)
    latest, upcoming = timetable.around(now)
    due = _unstarted(schedule, latest)
    missed = 0
    if due is not None:
        after = schedule.created_at - timedelta(microseconds=1)
        if schedule.last_slot is not None:
            after = max(after, schedule.last_slot)
        missed = timetable.count(after, now, limit=MISSED_COUNT_LIMIT)
    return ScheduleSlots(next=upcoming, due=due, missed=missed)


def _unstarted(schedule: Schedule, slot: datetime) -> datetime | None:
    """``slot`` if the schedule may still start it: not before it was saved, and later
    than its last slot."""
    if slot < schedule.created_at:
        return None
    if schedule.last_slot is not None and slot <= schedule.last_slot:
        return None
    return slot


def slot_execution_id(name: str, slot: datetime) -> str:
    """The id of the execution a schedule starts for a slot: ``<name>@<slot in UTC>``,
    e.g. ``nightly@2030-01-02T02:30:00Z``."""
    return f"{name}@{slot.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def schedule_problems(name: str, cron: str, timezone: str) -> list[str]:
    """What is wrong with a schedule's name, expression and time zone, one line each."""
    problems = []
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(
            f"name {name!r}: use 1 to 200 letters, digits and '_', '.', ':', '-', "
            "starting with a letter or digit (it becomes part of execution ids)"
        )
    return problems + _cron_problems(cron) + _timezone_problems(timezone)


def _cron_problems(cron: object) -> list[str]:
    if not isinstance(cron, str) or not cron.strip():
        return [f"cron {cron!r}: expected a cron expression such as '30 2 * * *'"]
    from croniter import CroniterBadDateError

    croniter = _croniter()
    fields = len(cron.split())
    try:
        if not cron.startswith("@") and fields not in (5, 6):
            raise ValueError(f"{fields} fields")
        times = croniter(cron, datetime(2000, 1, 1))
        times.get_next(datetime)
    except CroniterBadDateError:  # '0 0 30 2 *'
        return [f"cron {cron!r} matches no date; check its day and month fields"]
    except (ValueError, KeyError) as exc:
        return [
            f"cron {cron!r} is not a valid cron expression ({exc}); expected five fields "
            "'minute hour day-of-month month day-of-week' such as '30 2 * * *' "
            "(02:30 every day) or '*/15 * * * 1-5', or @hourly, @daily, @weekly, @monthly"
        ]
    return []


def _timezone_problems(timezone: object) -> list[str]:
    if timezone == "UTC":
        return []
    if isinstance(timezone, str) and _known_zone(timezone):
        return []
    hint = ""
    if isinstance(timezone, str):
        same = [zone for zone in _zone_names() if zone.lower() == timezone.lower()]
        hint = f" (did you mean '{same[0]}'?)" if same else did_you_mean(timezone, _zone_names())
    return [
        f"time zone {timezone!r} is not known{hint}; use an IANA name such as "
        "'Europe/Berlin', 'America/New_York' or 'UTC'"
    ]


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a path-like name
        return False
    return True


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _croniter() -> type[croniter]:
    """croniter's class, imported on first use (``import flowkit`` stays light)."""
    from croniter import croniter

    return croniter

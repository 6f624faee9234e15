"""Cron slots on a time zone's wall clock, across daylight-saving changes (SPEC §16)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowkit
from flowkit.engine import Timetable, schedule_slots, slot_execution_id
from flowkit.engine.schedules import schedule_problems  # the validation messages themselves
from flowkit.records import Schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local_days(slots: list[datetime], zone: ZoneInfo) -> list[str]:
    return [f"{slot.astimezone(zone):%m-%d %H:%M %Z}" for slot in slots]


def slots_between(timetable: Timetable, start: datetime, end: datetime) -> list[datetime]:
    """Every slot in (start, end], found by walking ``around`` from slot to slot."""
    found = []
    _, upcoming = timetable.around(start)
    while upcoming <= end:
        found.append(upcoming)
        _, upcoming = timetable.around(upcoming)
    return found


def test_latest_and_next_slot_in_utc() -> None:
    timetable = Timetable("30 2 * * *")
    assert timetable.around(utc(2030, 1, 1, 12)) == (utc(2030, 1, 1, 2, 30), utc(2030, 1, 2, 2, 30))
    # A slot is "at or before" itself.
    assert timetable.around(utc(2030, 1, 1, 2, 30)) == (
        utc(2030, 1, 1, 2, 30),
        utc(2030, 1, 2, 2, 30),
    )


def test_the_expression_is_read_on_the_zones_wall_clock() -> None:
    timetable = Timetable("30 2 * * *", "Europe/Berlin")
    latest, upcoming = timetable.around(utc(2030, 1, 1, 12))
    assert latest == utc(2030, 1, 1, 1, 30)  # 02:30 CET
    assert upcoming == utc(2030, 1, 2, 1, 30)
    summer, _ = timetable.around(utc(2030, 7, 1, 12))
    assert summer == utc(2030, 7, 1, 0, 30)  # 02:30 CEST


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        # Berlin skips 02:00-03:00 on 2026-03-29: 02:30 is read as 03:30 CEST.
        (
            "Europe/Berlin",
            utc(2026, 3, 27, 12),
            ["03-28 02:30 CET", "03-29 03:30 CEST", "03-30 02:30 CEST"],
        ),
        # Berlin repeats 02:00-03:00 on 2026-10-25: 02:30 runs at its first occurrence.
        (
            "Europe/Berlin",
            utc(2026, 10, 23, 12),
            ["10-24 02:30 CEST", "10-25 02:30 CEST", "10-26 02:30 CET"],
        ),
        # New York skips 02:00-03:00 on 2026-03-08 and repeats 01:00-02:00 on 2026-11-01.
        (
            "America/New_York",
            utc(2026, 3, 6, 18),
            ["03-07 02:30 EST", "03-08 03:30 EDT", "03-09 02:30 EDT"],
        ),
        (
            "America/New_York",
            utc(2026, 10, 30, 18),
            ["10-31 02:30 EDT", "11-01 02:30 EST", "11-02 02:30 EST"],
        ),
    ],
)
def test_a_0230_daily_job_runs_once_on_each_daylight_saving_day(
    zone: str, start: datetime, expected: list[str]
) -> None:
    timetable = Timetable("30 2 * * *", zone)
    slots = slots_between(timetable, start, start + timedelta(days=3))
    assert local_days(slots, ZoneInfo(zone)) == expected
    assert timetable.count(start, start + timedelta(days=3), limit=100) == 3


def test_a_time_in_the_repeated_hour_runs_at_its_first_occurrence() -> None:
    # New York repeats 01:00-02:00 on 2026-11-01: 01:30 EDT (05:30 UTC), then 01:30 EST.
    timetable = Timetable("30 1 * * *", "America/New_York")
    slots = slots_between(timetable, utc(2026, 10, 31, 12), utc(2026, 11, 2, 12))
    assert slots == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_an_hourly_job_runs_once_per_hour_that_exists() -> None:
    timetable = Timetable("0 * * * *", "Europe/Berlin")
    # 2026-03-29 00:00 to 06:00 CET/CEST: the day has no 02:00; 02:00 reads as 03:00.
    spring = slots_between(timetable, utc(2026, 3, 28, 22, 59), utc(2026, 3, 29, 4))
    assert local_days(spring, BERLIN) == [
        "03-29 00:00 CET",
        "03-29 01:00 CET",
        "03-29 03:00 CEST",
        "03-29 04:00 CEST",
        "03-29 05:00 CEST",
        "03-29 06:00 CEST",
    ]
    # 2026-10-25: the second 02:00 (CET) is the same wall-clock time: it does not run again.
    autumn = slots_between(timetable, utc(2026, 10, 24, 22, 59), utc(2026, 10, 25, 2))
    assert local_days(autumn, BERLIN) == [
        "10-25 01:00 CEST",
        "10-25 02:00 CEST",
        "10-25 03:00 CET",
    ]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
    cron=st.sampled_from(["30 2 * * *", "0 * * * *", "*/20 * * * *", "15 1,2,3 * * *"]),
    offset=st.integers(min_value=0, max_value=2 * 366 * 24 * 60),
)
def test_latest_and_next_bracket_the_moment_with_no_slot_between(
    zone: str, cron: str, offset: int
) -> None:
    timetable = Timetable(cron, zone)
    now = utc(2025, 1, 1) + timedelta(minutes=offset, seconds=7)
    latest, upcoming = timetable.around(now)
    assert latest <= now < upcoming
    assert timetable.count(latest, upcoming - timedelta(microseconds=1), limit=10) == 0
    assert timetable.count(latest - timedelta(microseconds=1), upcoming, limit=10) == 2


@settings(max_examples=40, deadline=None)
@given(
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney"]),
    hour=st.integers(min_value=0, max_value=23),
    minute=st.sampled_from([0, 15, 30, 59]),
    year=st.sampled_from([2025, 2026, 2027]),
)
def test_a_daily_job_runs_exactly_once_on_every_local_day_of_a_year(
    zone: str, hour: int, minute: int, year: int
) -> None:
    tz = ZoneInfo(zone)
    timetable = Timetable(f"{minute} {hour} * * *", zone)
    start = datetime(year, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(microseconds=1)
    end = datetime(year + 1, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(microseconds=1)
    slots = slots_between(timetable, start, end)
    days = [slot.astimezone(tz).date() for slot in slots]
    assert len(days) == len(set(days)) == (datetime(year + 1, 1, 1) - datetime(year, 1, 1)).days
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert all(timedelta(hours=22) <= gap <= timedelta(hours=26) for gap in gaps)


def test_schedule_slots_counts_the_slots_missed_since_the_last_one() -> None:
    schedule = Schedule(
        name="nightly",
        workflow_id="report",
        cron="30 2 * * *",
        created_at=utc(2030, 1, 1),
        last_slot=utc(2030, 1, 2, 2, 30),
    )
    now = utc(2030, 1, 6, 12)
    slots = schedule_slots(schedule, now)
    assert slots.due == utc(2030, 1, 6, 2, 30)
    assert slots.missed == 4  # the 3rd, 4th, 5th and 6th
    assert slots.next == utc(2030, 1, 7, 2, 30)


def test_no_slot_before_the_schedule_was_saved_is_due() -> None:
    schedule = Schedule(
        name="nightly", workflow_id="report", cron="30 2 * * *", created_at=utc(2030, 1, 1, 3)
    )
    slots = schedule_slots(schedule, utc(2030, 1, 1, 12))
    assert (slots.due, slots.missed, slots.next) == (None, 0, utc(2030, 1, 2, 2, 30))
    on_time = schedule_slots(schedule, utc(2030, 1, 2, 2, 30))
    assert (on_time.due, on_time.missed) == (utc(2030, 1, 2, 2, 30), 1)


def test_the_missed_count_stops_at_its_limit() -> None:
    schedule = Schedule(
        name="often", workflow_id="report", cron="* * * * *", created_at=utc(2030, 1, 1)
    )
    slots = schedule_slots(schedule, utc(2030, 2, 1))
    assert slots.missed == 1000
    assert slots.due == utc(2030, 2, 1)


def test_the_slot_execution_id_names_the_schedule_and_the_utc_slot() -> None:
    slot = datetime(2030, 1, 2, 3, 30, tzinfo=BERLIN)
    assert slot_execution_id("nightly", slot) == "nightly@2030-01-02T02:30:00Z"


@pytest.mark.parametrize(
    ("name", "cron", "timezone", "problems"),
    [
        (
            "a b",
            "30 2 * * *",
            "UTC",
            [
                "name 'a b': use 1 to 200 letters, digits and '_', '.', ':', '-', starting "
                "with a letter or digit (it becomes part of execution ids)"
            ],
        ),
        (
            "nightly",
            "30 2 * *",
            "UTC",
            [
                "cron '30 2 * *' is not a valid cron expression (4 fields); expected five "
                "fields 'minute hour day-of-month month day-of-week' such as '30 2 * * *' "
                "(02:30 every day) or '*/15 * * * 1-5', or @hourly, @daily, @weekly, @monthly"
            ],
        ),
        (
            "nightly",
            "0 0 30 2 *",
            "UTC",
            ["cron '0 0 30 2 *' matches no date; check its day and month fields"],
        ),
        (
            "nightly",
            "@daily",
            "europe/berlin",
            [
                "time zone 'europe/berlin' is not known (did you mean 'Europe/Berlin'?); use an "
                "IANA name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
            ],
        ),
        ("nightly", "*/5 * * * * 30", "Asia/Tokyo", []),
    ],
)
def test_schedule_problems_name_what_is_wrong(
    name: str, cron: str, timezone: str, problems: list[str]
) -> None:
    assert schedule_problems(name, cron, timezone) == problems


def test_a_timetable_refuses_a_bad_expression_or_zone() -> None:
    with pytest.raises(ValueError, match="time zone 'Mars/Olympus' is not known"):
        Timetable("@daily", "Mars/Olympus")


def test_croniter_is_imported_only_when_a_schedule_is_read() -> None:
    code = (
        "import sys, flowkit\n"
        "before = 'croniter' in sys.modules\n"
        "flowkit.engine.Timetable('@daily')\n"
        "print(before, 'croniter' in sys.modules)\n"
    )
    root = str(Path(flowkit.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]

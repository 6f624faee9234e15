"""engine.schedule / schedules / unschedule, and wake_due starting due slots (SPEC §16)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowkit
from flowkit.backends.memory import MemoryStore
from flowkit.definitions import WorkflowRegistry
from flowkit.engine import Timetable, slot_execution_id
from flowkit.testing import FakeClock
from tests.schedules.conftest import START, EngineFactory, report_workflow


def started(store: MemoryStore) -> list[str]:
    return sorted(execution.id for execution in store.find(workflow_id="report", limit=1000))


def test_a_schedule_starts_one_execution_per_slot(
    engine: flowkit.Engine, store: MemoryStore, clock: FakeClock
) -> None:
    saved = engine.schedule("nightly", "report", cron="30 2 * * *", input={"region": "us"})
    assert saved == flowkit.Schedule(
        name="nightly",
        workflow_id="report",
        cron="30 2 * * *",
        input={"region": "us"},
        created_at=START,
    )
    assert list(engine.wake_due()) == []  # 00:00: the first slot is at 02:30

    clock.advance(3 * 3600)
    [result] = engine.wake_due()
    assert result.execution_id == "nightly@2030-01-01T02:30:00Z"
    assert result.completed
    assert result.output == "report for us"
    assert list(engine.wake_due()) == []  # the slot started already
    [schedule] = engine.schedules()
    assert schedule.last_slot == datetime(2030, 1, 1, 2, 30, tzinfo=UTC)

    clock.advance(24 * 3600)
    assert [r.execution_id for r in engine.wake_due()] == ["nightly@2030-01-02T02:30:00Z"]
    assert started(store) == ["nightly@2030-01-01T02:30:00Z", "nightly@2030-01-02T02:30:00Z"]


def test_only_the_latest_of_several_missed_slots_starts(
    engine: flowkit.Engine,
    store: MemoryStore,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine.schedule("nightly", "report", cron="30 2 * * *")
    clock.advance(5 * 24 * 3600)  # 2030-01-06 00:00: slots of the 1st to the 5th passed
    [slots] = [flowkit.schedule_slots(s, clock.now()) for s in engine.schedules()]
    assert (slots.missed, slots.due) == (5, datetime(2030, 1, 5, 2, 30, tzinfo=UTC))

    with caplog.at_level(logging.WARNING, logger="flowkit"):
        results = engine.wake_due()
    assert [r.execution_id for r in results] == ["nightly@2030-01-05T02:30:00Z"]
    assert started(store) == ["nightly@2030-01-05T02:30:00Z"]
    assert (
        "schedule nightly missed 5 slots; only the latest starts "
        "(nightly@2030-01-05T02:30:00Z)" in caplog.messages
    )
    [after] = [flowkit.schedule_slots(s, clock.now()) for s in engine.schedules()]
    assert (after.missed, after.due) == (0, None)


def test_no_slot_before_the_schedule_was_saved_starts(
    engine: flowkit.Engine, store: MemoryStore, clock: FakeClock
) -> None:
    clock.advance(3 * 3600)  # 03:00, after today's 02:30
    engine.schedule("nightly", "report", cron="30 2 * * *")
    assert list(engine.wake_due()) == []
    clock.advance(24 * 3600)
    assert [r.execution_id for r in engine.wake_due()] == ["nightly@2030-01-02T02:30:00Z"]


def test_saving_a_schedule_again_replaces_it(engine: flowkit.Engine, clock: FakeClock) -> None:
    engine.schedule("nightly", "report", cron="30 2 * * *")
    clock.advance(60)
    engine.schedule(
        "nightly", "report", cron="0 4 * * *", input={"region": "us"}, timezone="Asia/Tokyo"
    )
    [schedule] = engine.schedules()
    assert (schedule.cron, schedule.timezone, schedule.input) == (
        "0 4 * * *",
        "Asia/Tokyo",
        {"region": "us"},
    )
    assert schedule.created_at == START + timedelta(seconds=60)


def test_unscheduling_never_touches_the_executions_it_started(
    engine: flowkit.Engine, store: MemoryStore, clock: FakeClock
) -> None:
    engine.schedule("nightly", "report", cron="30 2 * * *")
    clock.advance(3 * 3600)
    engine.wake_due()
    assert engine.unschedule("nightly") is True
    assert engine.unschedule("nightly") is False
    assert engine.schedules() == []
    assert started(store) == ["nightly@2030-01-01T02:30:00Z"]
    clock.advance(24 * 3600)
    assert list(engine.wake_due()) == []


def test_a_bad_schedule_is_refused_with_every_problem_and_nothing_is_saved(
    engine: flowkit.Engine,
) -> None:
    with pytest.raises(flowkit.ValidationError) as caught:
        engine.schedule("night ly", "report", cron="61 2 * * *", timezone="Europe/Berln")
    assert str(caught.value).startswith("invalid schedule 'night ly' (3 problems):")
    assert [problem.split(":")[0].split(" ")[0] for problem in caught.value.problems] == [
        "name",
        "cron",
        "time",
    ]
    assert "did you mean 'Europe/Berlin'?" in caught.value.problems[2]
    assert engine.schedules() == []


def test_an_unknown_workflow_is_refused_and_says_how_to_register_it(
    engine: flowkit.Engine,
) -> None:
    unknown = "workflow 'reprot' is not known in this process"
    with pytest.raises(flowkit.NotFoundError, match=unknown):
        engine.schedule("nightly", "reprot", cron="30 2 * * *")
    assert engine.schedules() == []


def test_an_input_that_does_not_fit_the_workflow_is_refused(engine: flowkit.Engine) -> None:
    with pytest.raises(flowkit.ValidationError, match="input 'region' must be of type string"):
        engine.schedule("nightly", "report", cron="30 2 * * *", input={"region": 3})
    assert engine.schedules() == []


def test_a_process_that_does_not_know_the_workflow_leaves_the_slot_to_one_that_does(
    engine: flowkit.Engine, store: MemoryStore, clock: FakeClock
) -> None:
    engine.schedule("nightly", "report", cron="30 2 * * *")
    clock.advance(3 * 3600)
    stranger = flowkit.Engine(
        store=store, executor="inline", clock=clock, workflows=WorkflowRegistry()
    )
    sweep = stranger.wake_due()
    assert list(sweep) == []
    assert list(sweep.stuck) == ["nightly@2030-01-01T02:30:00Z"]
    assert (
        "workflow 'report' is not known in this process"
        in sweep.stuck["nightly@2030-01-01T02:30:00Z"]
    )
    assert engine.schedules()[0].last_slot is None  # not recorded: the slot is still due
    assert [r.execution_id for r in engine.wake_due()] == ["nightly@2030-01-01T02:30:00Z"]


def test_a_slot_another_process_started_is_not_started_again(
    engine: flowkit.Engine, store: MemoryStore, clock: FakeClock
) -> None:
    engine.schedule("nightly", "report", cron="30 2 * * *")
    clock.advance(3 * 3600)
    # Another process created the slot's execution and died before recording the slot.
    engine.create(engine.workflows.get("report"), {}, execution_id="nightly@2030-01-01T02:30:00Z")
    assert list(engine.wake_due()) == []
    assert engine.schedules()[0].last_slot == datetime(2030, 1, 1, 2, 30, tzinfo=UTC)
    assert started(store) == ["nightly@2030-01-01T02:30:00Z"]


def test_one_broken_schedule_does_not_stop_the_others(
    engine: flowkit.Engine, store: MemoryStore, clock: FakeClock
) -> None:
    engine.schedule("nightly", "report", cron="30 2 * * *")
    # Written by hand (or a newer flowkit): an expression this process cannot read.
    store.save_schedule(
        flowkit.Schedule(name="broken", workflow_id="report", cron="bad", created_at=START)
    )
    clock.advance(3 * 3600)
    sweep = engine.wake_due()
    assert [r.execution_id for r in sweep] == ["nightly@2030-01-01T02:30:00Z"]
    assert list(sweep.stuck) == ["broken"]
    assert "cron 'bad' is not a valid cron expression" in sweep.stuck["broken"]


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        (
            "Europe/Berlin",
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            [
                "nightly@2026-03-28T01:30:00Z",  # 02:30 CET
                "nightly@2026-03-29T01:30:00Z",  # 03:30 CEST: 02:30 does not exist that day
                "nightly@2026-03-30T00:30:00Z",  # 02:30 CEST
            ],
        ),
        (
            "Europe/Berlin",
            datetime(2026, 10, 23, 12, tzinfo=UTC),
            [
                "nightly@2026-10-24T00:30:00Z",  # 02:30 CEST
                "nightly@2026-10-25T00:30:00Z",  # the first of that day's two 02:30s
                "nightly@2026-10-26T01:30:00Z",  # 02:30 CET
            ],
        ),
    ],
)
def test_a_0230_job_starts_once_on_each_daylight_saving_day(
    make_engine: EngineFactory,
    store: MemoryStore,
    zone: str,
    start: datetime,
    expected: list[str],
) -> None:
    clock = FakeClock(start)
    engine = make_engine(clock=clock)
    engine.schedule("nightly", "report", cron="30 2 * * *", timezone=zone)
    for _ in range(3 * 24 * 4):  # a wake-up every 15 minutes for three days
        clock.advance(15 * 60)
        engine.wake_due()
    assert started(store) == expected


def test_processes_waking_at_once_start_each_slot_exactly_once(
    make_engine: EngineFactory, store: MemoryStore, clock: FakeClock
) -> None:
    engines = [make_engine() for _ in range(6)]
    engines[0].schedule("often", "report", cron="*/5 * * * *")
    engines[0].schedule("hourly", "report", cron="0 * * * *")
    barrier = threading.Barrier(len(engines))
    results: list[str] = []
    lock = threading.Lock()

    def wake(engine: flowkit.Engine) -> None:
        for _ in range(24):
            barrier.wait()
            if engine is engines[0]:
                clock.advance(5 * 60)
            barrier.wait()
            ids = [r.execution_id for r in engine.wake_due()]
            with lock:
                results.extend(ids)

    threads = [threading.Thread(target=wake, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == started(store)  # each start reported by the one that made it
    often = [f"often@2030-01-01T{m // 60:02}:{m % 60:02}:00Z" for m in range(5, 121, 5)]
    hourly = [f"hourly@2030-01-01T0{h}:00:00Z" for h in range(3)]  # 00:00 is when it was saved
    assert started(store) == sorted(hourly + often)
    assert len(results) == len(set(results))


@settings(max_examples=30, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=0, max_value=3 * 3600), min_size=1, max_size=12),
    cron=st.sampled_from(["*/10 * * * *", "0 * * * *", "30 2 * * *", "15,45 */2 * * *"]),
)
def test_every_wake_up_starts_the_latest_passed_slot_once(steps: list[int], cron: str) -> None:
    clock = FakeClock(START)
    store = MemoryStore(warn=False)
    engine = flowkit.Engine(
        store=store,
        executor="inline",
        clock=clock,
        services=flowkit.ServiceRegistry(),
        workflows=WorkflowRegistry(),
    )
    engine.definition(report_workflow())
    engine.schedule("s", "report", cron=cron)
    timetable = Timetable(cron)
    expected: set[str] = set()
    for seconds in steps:
        clock.advance(seconds)
        latest, _ = timetable.around(clock.now())
        if latest >= START:
            expected.add(slot_execution_id("s", latest))
        engine.wake_due()
        assert started(store) == sorted(expected)
    engine.close()
    store.close()


def test_saving_the_same_schedule_again_keeps_its_history(
    engine: flowkit.Engine, clock: FakeClock
) -> None:
    first = engine.schedule("nightly", "report", cron="30 2 * * *", input={"region": "us"})
    clock.advance(3 * 3600)
    engine.wake_due()
    [started] = engine.schedules()
    assert started.last_slot == datetime(2030, 1, 1, 2, 30, tzinfo=UTC)

    again = engine.schedule("nightly", "report", cron="30 2 * * *", input={"region": "us"})
    assert again == started  # created_at and last_slot kept
    assert again.created_at == first.created_at
    assert engine.schedules() == [started]

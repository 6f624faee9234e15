"""Testing nightly_digest: the workflow, and its schedule driven by the test's clock.

``flowkit_clock`` moves only when the test says so, so a schedule's slots come
when the test advances it and calls ``wake_due`` (what workers do every few
seconds).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import flowkit
from examples.nightly_digest import workflow

YAML = Path(__file__).resolve().parents[1] / "nightly_digest.yml"


@pytest.mark.parametrize("form", [workflow, flowkit.load(YAML)], ids=["python", "yaml"])
def test_the_whole_workflow(flowkit_engine, flowkit_clock, form):
    result = flowkit_engine.run(form, {"team": "ops"})
    assert result.output == {
        "team": "ops",
        "title": "Digest for ops",
        "generated_at": flowkit_clock.now().isoformat(),
    }


def test_the_schedule_starts_one_digest_per_night(flowkit_engine, flowkit_clock):
    flowkit_engine.definition(workflow)
    flowkit_engine.schedule(
        "nightly-digest",
        "nightly_digest",
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        input={"team": "ops"},
    )
    try:
        # The clock starts at 2030-01-01 00:00 UTC: 01:00 in Berlin.
        assert list(flowkit_engine.wake_due()) == []
        flowkit_clock.advance(3600)  # 02:00 in Berlin: still before the slot
        assert list(flowkit_engine.wake_due()) == []

        flowkit_clock.advance(3600)  # 03:00 in Berlin
        [digest] = flowkit_engine.wake_due()
        assert digest.execution_id == "nightly-digest@2030-01-01T01:30:00Z"
        assert digest.output["title"] == "Digest for ops"
        assert list(flowkit_engine.wake_due()) == []  # once per slot

        flowkit_clock.advance(24 * 3600)
        [tomorrow] = flowkit_engine.wake_due()
        assert tomorrow.execution_id == "nightly-digest@2030-01-02T01:30:00Z"
        [schedule] = flowkit_engine.schedules()
        assert schedule.last_slot == datetime(2030, 1, 2, 1, 30, tzinfo=UTC)
    finally:
        flowkit_engine.unschedule("nightly-digest")

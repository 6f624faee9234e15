"""One process of the schedule race (``python -m tests.schedules.racer URL SLOTS``).

It opens the store at URL, registers the ``tick`` workflow, prints ``ready``
and waits for a line on stdin, so that every racer starts at once. Then it
calls ``wake_due`` at each of the first SLOTS minutes of 2030 (its clock is set
to each in turn) and prints the ids of the executions it started, as JSON.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import flowkit
from flowkit.definitions import WorkflowRegistry
from flowkit.testing import FakeClock

START = datetime(2030, 1, 1, tzinfo=UTC)
TICK = {"id": "tick", "steps": [{"id": "done", "type": "end", "result": "$now"}]}


def main(url: str, slots: int) -> None:
    clock = FakeClock(START)
    engine = flowkit.Engine(store=url, executor="inline", clock=clock, workflows=WorkflowRegistry())
    engine.definition(TICK)
    print("ready", flush=True)
    sys.stdin.readline()
    started: list[str] = []
    try:
        for minute in range(1, slots + 1):
            clock.advance((START + timedelta(minutes=minute) - clock.now()).total_seconds())
            sweep = engine.wake_due()
            assert not sweep.stuck, sweep.stuck
            started.extend(result.execution_id for result in sweep)
    finally:
        engine.close()
    print(json.dumps(started), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

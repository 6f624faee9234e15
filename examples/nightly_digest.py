"""nightly_digest: a workflow meant to run on a schedule, written in Python.

The twin of ``nightly_digest.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: what a scheduled execution sees (its input comes from the schedule,
``$now`` is when it started) and how to schedule it. Every slot starts one
execution, named after the schedule and the slot
(``nightly-digest@2030-01-02T01:30:00Z``), whichever worker gets there first.

Services: none.

    engine = flowkit.Engine()
    engine.definition(examples.nightly_digest.workflow)
    engine.schedule("nightly-digest", "nightly_digest", cron="30 2 * * *",
                    timezone="Europe/Berlin", input={"team": "ops"})
    engine.wake_due()  # workers call it every few seconds; or `flowkit wake` from cron
    -> at 02:30 Berlin time, output {"team": "ops", "title": "Digest for ops", ...}
"""

from __future__ import annotations

import flowkit

__all__ = ["workflow"]

workflow = flowkit.Workflow(
    "nightly_digest",
    name="Nightly Digest",
    description="Builds the nightly digest of a team.",
    inputs={
        "team": flowkit.Input(
            type=str, required=False, default="everyone", description="Whose digest to build."
        ),
    },
)

workflow.assign("title", set={"title": "Digest for $input.team", "generated_at": "$now"})

workflow.end(
    "done",
    result={"team": "$input.team", "title": "$title", "generated_at": "$generated_at"},
)

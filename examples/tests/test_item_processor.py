"""Testing item_processor: the call with a stub, its output schema, the whole run."""

from __future__ import annotations

from examples.item_processor import workflow

ITEMS = [{"sku": "A-1", "quantity": 3, "price": 2.5}, {"sku": "B-2", "quantity": 1, "price": 10}]
PROCESSED = {
    "items": [
        {"sku": "A-1", "quantity": 3, "price": 2.5, "line_total": 7.5},
        {"sku": "B-2", "quantity": 1, "price": 10.0, "line_total": 10.0},
    ],
    "count": 2,
    "total": 17.5,
}


def test_process_passes_the_batch_to_the_service(run_step, stub_service):
    items = stub_service("Items", {"process": PROCESSED})
    result = run_step(workflow, "process", input={"batch_id": "b-1", "items": ITEMS})
    assert result.ctx["processed"] == PROCESSED
    assert items.calls_to("process")[0].kwargs == {"items": ITEMS, "batch_id": "b-1"}


def test_an_answer_that_breaks_the_schema_fails_the_step(run_step, stub_service):
    stub_service("Items", {"process": {"count": "two"}})
    result = run_step(workflow, "process", input={"batch_id": "b-1", "items": ITEMS})
    assert result.status == "failed"
    assert "'items' is a required property" in result.error


def test_the_whole_workflow(flowkit_engine):
    result = flowkit_engine.run(workflow, {"batch_id": "b-7", "items": ITEMS})
    assert result.output == {
        "batch_id": "b-7",
        "count": 2,
        "total": 17.5,
        "first_sku": "A-1",
        "items": PROCESSED["items"],
        "summary": "Batch b-7: 2 items, total 17.5",
    }

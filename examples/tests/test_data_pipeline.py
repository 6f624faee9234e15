"""Testing data_pipeline: the loop with a stubbed service, each transform, the whole run."""

from __future__ import annotations

from examples.data_pipeline import workflow

ENRICHED = [
    {"customer": "Ada", "amount": 120.5, "score": 120.5, "valid": True},
    {"customer": "Grace", "amount": 80.0, "score": 120.0, "valid": True},
    {"customer": "", "amount": 10.0, "score": 0.0, "valid": False},
    {"customer": "Ada", "amount": 100.0, "score": 100.0, "valid": True},
]


def test_the_loop_enriches_every_record_in_order(run_step, stub_service):
    records = stub_service(
        "Records", {"enrich": lambda record, position, source: {**record, "n": position}}
    )
    result = run_step(
        workflow, "enrich_all", input={"records": [{"id": "a"}, {"id": "b"}], "source": "crm"}
    )
    assert result.ctx["enriched"] == [{"id": "a", "n": 0}, {"id": "b", "n": 1}]
    assert [call.kwargs for call in records.calls] == [
        {"record": {"id": "a"}, "position": 0, "source": "crm"},
        {"record": {"id": "b"}, "position": 1, "source": "crm"},
    ]


def test_rank_keeps_the_valid_records_best_first(run_step):
    result = run_step(workflow, "rank", ctx={"enriched": ENRICHED})
    assert [record["score"] for record in result.ctx["ranked"]] == [120.5, 120.0, 100.0]


def test_top_customers_are_unique(run_step):
    ranked = [record for record in ENRICHED if record["valid"]]
    result = run_step(workflow, "top_customers", ctx={"ranked": ranked})
    assert result.ctx["top_customers"] == ["Ada", "Grace"]


def test_the_whole_workflow(flowkit_engine):
    raw = [
        {"customer": "ada lovelace", "amount": "$120.50"},
        {"customer": "Grace Hopper", "amount": 80, "priority": "high"},
        {"customer": "", "amount": 10},
    ]
    result = flowkit_engine.run(workflow, {"records": raw})
    assert result.output["valid_count"] == 2
    assert result.output["invalid_count"] == 1
    assert result.output["total_amount"] == 200.5
    assert result.output["top_customers"] == ["Ada Lovelace", "Grace Hopper"]
    assert result.output["source"] == "import"

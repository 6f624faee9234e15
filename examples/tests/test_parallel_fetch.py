"""Testing parallel_fetch: every branch stubbed, the parallel step alone, the whole run."""

from __future__ import annotations

import pytest

from examples.parallel_fetch import workflow

PROFILE = {"id": "u-1", "name": "Ada"}
ORDERS = [{"order_id": "o-2"}, {"order_id": "o-1"}]
PICKS = [{"sku": "MUG-4", "title": "Enamel mug", "score": 0.9}]


@pytest.fixture
def stubs(stub_service):
    return (
        stub_service("Profiles", {"fetch_user": PROFILE}),
        stub_service("Orders", {"fetch_orders": ORDERS}),
        stub_service("Recommendations", {"fetch": PICKS}),
    )


def test_fetch_all_runs_every_branch(run_step, stubs):
    profiles, orders, recommendations = stubs
    result = run_step(workflow, "fetch_all", input={"user_id": "u-1", "order_limit": 2})
    assert result.ctx["fetched"] == [PROFILE, ORDERS, PICKS]  # in branch order
    assert result.ctx["profile"] == PROFILE
    assert profiles.calls[0].kwargs == {"user_id": "u-1"}
    assert orders.calls[0].kwargs == {"user_id": "u-1", "limit": 2}
    assert recommendations.calls[0].kwargs == {"user_id": "u-1", "count": 3}


def test_the_whole_workflow_with_stubs(flowkit_engine, flowkit_clock, stubs):
    result = flowkit_engine.run(workflow, {"user_id": "u-1"})
    assert result.output["dashboard"] == {
        "user": "Ada",
        "greeting": "Welcome back, Ada!",
        "recent_orders": ORDERS,
        "last_order": {"order_id": "o-2"},
        "recommended": PICKS,
        "built_at": flowkit_clock.now().isoformat(),
    }
    assert stubs[1].calls[0].kwargs["limit"] == 5  # the input's default


def test_a_failing_branch_fails_the_run(flowkit_engine, stub_service):
    stub_service("Profiles", {"fetch_user": LookupError("no user 'u-404'")})
    result = flowkit_engine.run(workflow, {"user_id": "u-404"})
    assert result.failed
    assert "no user 'u-404'" in result.error


def test_the_whole_workflow_with_the_real_services(flowkit_engine):
    result = flowkit_engine.run(workflow, {"user_id": "u-100", "order_limit": 1})
    assert result.completed
    assert result.output["dashboard"]["user"] == "Ada Lovelace"
    assert len(result.output["dashboard"]["recent_orders"]) == 1

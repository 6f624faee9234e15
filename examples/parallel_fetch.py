"""parallel_fetch: three service calls at once, then one combined answer,
written in Python.

The twin of ``parallel_fetch.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: a parallel step whose branches are declared in a ``with`` block (each
branch is one step), ``wait="all"`` (every branch must succeed), the branch
outputs in branch order under the parallel step's ``output``, each branch's
own output key, and an assign that combines them before the end step.

Services (``examples.services.dashboard``):
    Profiles.fetch_user(user_id: str) -> dict                      # {"id", "name", "email", ...}
    Orders.fetch_orders(user_id: str, limit: int) -> list[dict]    # newest first
    Recommendations.fetch(user_id: str, count: int) -> list[dict]  # [{"sku", "title", "score"}]
"""

from __future__ import annotations

import flowkit

__all__ = ["workflow"]

workflow = flowkit.Workflow(
    "parallel_fetch",
    name="Parallel Fetch",
    description="Builds a customer dashboard from three services queried concurrently.",
    inputs={
        "user_id": flowkit.Input(type=str, description="The customer to show."),
        "order_limit": flowkit.Input(
            type=int, required=False, default=5, description="How many recent orders to fetch."
        ),
    },
)

with workflow.parallel("fetch_all", wait="all", output="fetched") as branches:
    branches.call(
        "profile",
        service="Profiles",
        method="fetch_user",
        input={"user_id": "$input.user_id"},
        output="profile",
        timeout=5,
    )
    branches.call(
        "orders",
        service="Orders",
        method="fetch_orders",
        input={"user_id": "$input.user_id", "limit": "$input.order_limit"},
        output="orders",
        timeout=5,
        retries=2,
        retry_delay=0.2,
    )
    branches.call(
        "recommendations",
        service="Recommendations",
        method="fetch",
        input={"user_id": "$input.user_id", "count": 3},
        output="recommendations",
        timeout=5,
    )

workflow.assign(
    "combine",
    set={
        "dashboard": {
            "user": "$profile.name",
            "greeting": "Welcome back, $profile.name!",
            "recent_orders": "$orders",
            "last_order": "$orders.0",
            "recommended": "$recommendations",
            "built_at": "$now",
        }
    },
)

workflow.end(
    "done",
    # The parallel step's output: the three branch outputs, in branch order.
    result={"dashboard": "$dashboard", "responses": "$fetched"},
)

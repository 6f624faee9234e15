"""Every workflow in examples/ run end to end with the example services.

Each test gets a fresh memory store, a fresh service registry holding only the
services of the example under test, and a clock that only moves when told to
(retry delays advance it instead of sleeping).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from examples_helpers import (
    ManualClock,
    load_example,
    make_engine,
    snapshot,
    steps,
    trail,
)

import examples.services
import flowkit
from examples.services import calculator, dashboard, items, orders, records, warehouse, weather
from flowkit.backends.memory import MemoryStore

EngineFactory = Callable[..., flowkit.Engine]


@pytest.fixture(autouse=True)
def _fresh_services() -> Iterator[None]:
    examples.services.reset()
    yield
    examples.services.reset()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def engine_for(clock: ManualClock) -> Iterator[EngineFactory]:
    """``engine_for(module, ...)``: an engine whose registry holds those modules' services."""
    engines: list[flowkit.Engine] = []

    def make(*modules: ModuleType) -> flowkit.Engine:
        engine = make_engine(clock, *modules)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


# --- hello_world ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "greeting", "name"),
    [({"name": "Ada"}, "Hello, Ada!", "Ada"), ({}, "Hello, World!", "World")],
)
def test_hello_world(
    engine_for: EngineFactory, given: dict[str, Any], greeting: str, name: str
) -> None:
    engine = engine_for()
    result = engine.run(load_example("hello_world"), given)
    assert result.completed
    assert result.output == {"greeting": greeting, "name": name}
    assert steps(engine, result.execution_id) == ["start", "greet", "done"]


# --- expense_approval -------------------------------------------------------------------------


@pytest.fixture
def expenses(engine_for: EngineFactory) -> flowkit.Engine:
    return engine_for()


def _claim(engine: flowkit.Engine, amount: float, **extra: Any) -> flowkit.Result:
    return engine.run(
        load_example("expense_approval"), {"amount": amount, "employee": "Ada", **extra}
    )


def test_expense_under_the_limit_is_approved_at_once(expenses: flowkit.Engine) -> None:
    result = _claim(expenses, 100)  # not above the default limit of 100
    assert result.completed
    assert result.output == {"status": "auto_approved", "employee": "Ada", "amount": 100}
    assert steps(expenses, result.execution_id) == ["start", "check", "auto_approved"]


def test_expense_over_the_limit_halts_for_a_listed_approver(
    expenses: flowkit.Engine, clock: ManualClock
) -> None:
    result = _claim(expenses, 250, note="team dinner")
    assert result.halted
    assert result.halt is not None
    assert result.halt.prompt == "Approve an expense of 250 from Ada? team dinner"
    assert result.halt.resume_step == "ask"
    assert result.halt.data["approvers"] == ["alice", "bob"]
    assert result.halt.data["context"] == {
        "employee": "Ada",
        "amount": 250,
        "note": "team dinner",
        "limit": 100,
    }
    assert expenses.load(result.execution_id).wake_at == clock.now() + timedelta(days=3)
    assert trail(expenses, result.execution_id) == [
        ("start", "completed"),
        ("check", "completed"),
        ("ask", "halted"),
    ]


def test_expense_limit_comes_from_the_input(expenses: flowkit.Engine) -> None:
    assert _claim(expenses, 250, limit=500).output["status"] == "auto_approved"
    assert _claim(expenses, 250, limit=200).halted


def test_expense_approved_by_a_listed_approver(expenses: flowkit.Engine) -> None:
    halted = _claim(expenses, 250)
    result = expenses.resume(
        halted.execution_id, approved=True, by="alice", response={"comment": "fine"}
    )
    assert result.completed
    assert result.output == {
        "status": "approved",
        "employee": "Ada",
        "amount": 250,
        "comment": "fine",
    }
    assert trail(expenses, result.execution_id) == [
        ("start", "completed"),
        ("check", "completed"),
        ("ask", "halted"),
        ("ask", "resumed"),
        ("approved", "completed"),
    ]


def test_expense_rejected(expenses: flowkit.Engine) -> None:
    halted = _claim(expenses, 250)
    result = expenses.resume(
        halted.execution_id, approved=False, by="bob", response={"comment": "no receipt"}
    )
    assert result.completed
    assert result.output == {
        "status": "rejected",
        "employee": "Ada",
        "amount": 250,
        "comment": "no receipt",
    }
    assert steps(expenses, result.execution_id) == ["start", "check", "ask", "ask", "rejected"]


@pytest.mark.parametrize("by", ["mallory", None])
def test_expense_decision_from_someone_not_listed_is_refused(
    expenses: flowkit.Engine, by: str | None
) -> None:
    halted = _claim(expenses, 250)
    before = snapshot(expenses, halted.execution_id)
    with pytest.raises(flowkit.ExecutionError, match="alice"):
        expenses.resume(halted.execution_id, approved=True, by=by)
    assert snapshot(expenses, halted.execution_id) == before
    # The refusal changed nothing: a listed approver can still decide.
    result = expenses.resume(halted.execution_id, approved=True, by="bob")
    assert result.output["status"] == "approved"
    assert result.output["comment"] is None


def test_expense_expires_when_nobody_decides_in_three_days(
    expenses: flowkit.Engine, clock: ManualClock
) -> None:
    halted = _claim(expenses, 250)
    clock.advance(timedelta(days=3).total_seconds() - 1)
    assert expenses.wake_due() == []
    assert expenses.load(halted.execution_id).status is flowkit.Status.HALTED

    clock.advance(2)
    [result] = expenses.wake_due()
    assert result.execution_id == halted.execution_id
    assert result.completed
    assert result.output == {"status": "expired", "employee": "Ada", "amount": 250}
    assert trail(expenses, result.execution_id) == [
        ("start", "completed"),
        ("check", "completed"),
        ("ask", "halted"),
        ("ask", "resumed"),
        ("expired", "completed"),
    ]
    with pytest.raises(flowkit.ExecutionError):  # too late to decide now
        expenses.resume(halted.execution_id, approved=True, by="alice")


# --- calculator -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "value"),
    [("add", 9), ("subtract", 5), ("multiply", 14), ("divide", 3.5)],
)
def test_calculator(engine_for: EngineFactory, operation: str, value: float) -> None:
    engine = engine_for(calculator)
    result = engine.run(load_example("calculator"), {"a": 7, "b": 2, "operation": operation})
    assert result.completed
    assert result.output == {"operation": operation, "a": 7, "b": 2, "value": value}
    assert steps(engine, result.execution_id) == ["start", "dispatch", operation, "done"]


def test_calculator_division_by_zero_goes_through_on_error(engine_for: EngineFactory) -> None:
    engine = engine_for(calculator)
    result = engine.run(load_example("calculator"), {"a": 7, "b": 0, "operation": "divide"})
    assert result.completed
    assert result.output == {"operation": "divide", "error": "cannot divide 7 by zero"}
    assert trail(engine, result.execution_id) == [
        ("start", "completed"),
        ("dispatch", "completed"),
        ("divide", "failed"),
        ("division_by_zero", "completed"),
        ("failed", "completed"),
    ]
    ctx = engine.load(result.execution_id).ctx
    assert ctx["cause"] == "division by zero"
    assert ctx["_last_error"]["type"] == "ZeroDivisionError"


def test_calculator_unknown_operation(engine_for: EngineFactory) -> None:
    engine = engine_for(calculator)
    result = engine.run(load_example("calculator"), {"a": 7, "b": 2, "operation": "modulo"})
    assert result.output == {
        "operation": "modulo",
        "error": "unknown operation 'modulo' (use add, subtract, multiply or divide)",
    }
    assert steps(engine, result.execution_id) == [
        "start",
        "dispatch",
        "unknown_operation",
        "failed",
    ]


def test_services_come_only_from_the_engines_registry(engine_for: EngineFactory) -> None:
    engine = engine_for()  # an empty registry, although Calculator is registered globally
    result = engine.run(load_example("calculator"), {"a": 1, "b": 2, "operation": "add"})
    assert result.failed
    assert result.error is not None
    assert result.error.startswith("NotFoundError: unknown service 'Calculator'")


def test_importing_the_package_registers_every_service_globally() -> None:
    with flowkit.Engine(store=MemoryStore(warn=False)) as engine:  # the default registry
        for module in examples.services.MODULES:
            for name in module.SERVICES:
                assert name in engine.services


# --- item_processor ---------------------------------------------------------------------------

BATCH = [
    {"sku": "A-1", "quantity": 3, "price": 2.5},
    {"sku": "B-2", "quantity": 1, "price": 10},
    {"sku": "C-3", "quantity": 4, "price": 0.35},
]


def test_item_processor(engine_for: EngineFactory) -> None:
    engine = engine_for(items)
    result = engine.run(load_example("item_processor"), {"batch_id": "b-7", "items": BATCH})
    assert result.completed
    assert result.output == {
        "batch_id": "b-7",
        "count": 3,
        "total": 18.9,
        "first_sku": "A-1",
        "items": [
            {"sku": "A-1", "quantity": 3, "price": 2.5, "line_total": 7.5},
            {"sku": "B-2", "quantity": 1, "price": 10.0, "line_total": 10.0},
            {"sku": "C-3", "quantity": 4, "price": 0.35, "line_total": 1.4},
        ],
        "summary": "Batch b-7: 3 items, total 18.9",
    }
    assert steps(engine, result.execution_id) == ["start", "process", "done"]


def test_item_processor_bad_line_fails_the_run(engine_for: EngineFactory) -> None:
    engine = engine_for(items)
    bad = [*BATCH[:1], {"sku": "B-2", "quantity": 0, "price": 10}]
    result = engine.run(load_example("item_processor"), {"batch_id": "b-8", "items": bad})
    assert result.failed
    assert result.error == "ValueError: items[1].quantity must be a positive integer, got 0"
    assert trail(engine, result.execution_id) == [("start", "completed"), ("process", "failed")]


def test_item_processor_output_is_checked_against_its_schema(engine_for: EngineFactory) -> None:
    engine = engine_for(items)
    engine.services.register("Items", {"process": lambda items, batch_id: {"count": "three"}})
    result = engine.run(load_example("item_processor"), {"batch_id": "b-9", "items": BATCH})
    assert result.failed
    assert result.error is not None
    assert "output does not match its schema" in result.error
    assert "'items' is a required property" in result.error


# --- parallel_fetch ---------------------------------------------------------------------------


def test_parallel_fetch(engine_for: EngineFactory, clock: ManualClock) -> None:
    engine = engine_for(dashboard)
    result = engine.run(load_example("parallel_fetch"), {"user_id": "u-100", "order_limit": 2})
    assert result.completed
    profile = dashboard.USERS["u-100"]
    recent = [
        {"order_id": "o-1017", "placed_at": "2024-03-21", "total": 129.0, "skus": ["LAMP-2"]},
        {"order_id": "o-1042", "placed_at": "2024-02-11", "total": 18.9, "skus": ["PEN-3"]},
    ]
    recommended = result.output["responses"][2]
    # The parallel step's output: one entry per branch, in branch order.
    assert result.output["responses"] == [profile, recent, recommended]
    assert [item["sku"] for item in recommended] == ["GLOBE-7", "NOTE-5", "CHAIR-6"]
    assert not {"BOOK-1", "LAMP-2", "PEN-3"} & {item["sku"] for item in recommended}
    assert result.output["dashboard"] == {
        "user": "Ada Lovelace",
        "greeting": "Welcome back, Ada Lovelace!",
        "recent_orders": recent,
        "last_order": recent[0],
        "recommended": recommended,
        "built_at": clock.now().isoformat(),
    }
    ids = steps(engine, result.execution_id)
    assert ids[0] == "start"
    # Branches run concurrently: their entries may land in any order.
    assert sorted(ids[1:4]) == [
        "fetch_all:orders",
        "fetch_all:profile",
        "fetch_all:recommendations",
    ]
    assert ids[4:] == ["fetch_all", "combine", "done"]


def test_parallel_fetch_new_customer_has_no_orders(engine_for: EngineFactory) -> None:
    engine = engine_for(dashboard)
    result = engine.run(load_example("parallel_fetch"), {"user_id": "u-200"})
    assert result.completed
    assert result.output["dashboard"]["recent_orders"] == []
    assert result.output["dashboard"]["last_order"] is None
    assert len(result.output["dashboard"]["recommended"]) == 3


def test_parallel_fetch_fails_when_a_branch_fails(engine_for: EngineFactory) -> None:
    engine = engine_for(dashboard)
    result = engine.run(load_example("parallel_fetch"), {"user_id": "u-404"})
    assert result.failed
    assert result.error is not None
    assert "no user 'u-404'" in result.error
    assert "combine" not in steps(engine, result.execution_id)


# --- service_integration ----------------------------------------------------------------------


@pytest.fixture
def forecasts(engine_for: EngineFactory) -> flowkit.Engine:
    return engine_for(weather)


def _forecast(engine: flowkit.Engine, city: str) -> flowkit.Result:
    return engine.run(load_example("service_integration"), {"city": city})


def test_forecast_without_alert(forecasts: flowkit.Engine) -> None:
    result = _forecast(forecasts, "Lisbon")
    assert result.completed
    assert result.output == {
        "city": "Lisbon",
        "source": "live",
        "forecast": {
            "city": "Lisbon",
            "days": 1,
            "max_temp": 24.0,
            "min_temp": 16.0,
            "conditions": "sunny",
        },
        "alert": None,
    }
    assert steps(forecasts, result.execution_id) == [
        "start",
        "fetch_forecast",
        "mark_live",
        "classify",
        "no_alert",
        "report",
    ]
    assert weather.sent() == []


def test_forecast_heat_warning_is_sent(forecasts: flowkit.Engine) -> None:
    result = _forecast(forecasts, "Seville")
    assert result.output["alert"] == "Heat warning for Seville: up to 39.5 °C"
    assert steps(forecasts, result.execution_id)[-4:] == [
        "classify",
        "heat_warning",
        "notify",
        "report",
    ]
    [sent] = weather.sent()
    assert sent["channel"] == "#weather-alerts"
    assert sent["message"] == "Heat warning for Seville: up to 39.5 °C"
    assert forecasts.load(result.execution_id).ctx["notification"]["id"] == sent["id"]


def test_forecast_retries_then_succeeds(forecasts: flowkit.Engine, clock: ManualClock) -> None:
    weather.fail_next(2)
    result = _forecast(forecasts, "Miami")
    assert result.completed
    assert result.output["source"] == "live"
    assert result.output["alert"] == "Storm warning for Miami: hurricane expected"
    assert trail(forecasts, result.execution_id) == [
        ("start", "completed"),
        ("fetch_forecast", "retried"),
        ("fetch_forecast", "retried"),
        ("fetch_forecast", "completed"),
        ("mark_live", "completed"),
        ("classify", "completed"),
        ("storm_warning", "completed"),
        ("notify", "completed"),
        ("report", "completed"),
    ]
    assert weather.api_calls() == ["Miami"] * 3
    assert clock.sleeps == [0.5, 1.0]  # retry_delay 0.5, retry_backoff 2


def test_forecast_falls_back_to_the_cache_when_retries_run_out(
    forecasts: flowkit.Engine, clock: ManualClock
) -> None:
    live = _forecast(forecasts, "Oslo")  # fills the cache
    assert live.output["source"] == "live"
    clock.sleeps.clear()

    weather.fail_next(4, "connection refused")
    result = _forecast(forecasts, "Oslo")
    assert result.completed
    assert result.output["source"] == "cache"
    assert result.output["forecast"] == live.output["forecast"]
    assert trail(forecasts, result.execution_id)[:7] == [
        ("start", "completed"),
        ("fetch_forecast", "retried"),
        ("fetch_forecast", "retried"),
        ("fetch_forecast", "retried"),
        ("fetch_forecast", "failed"),
        ("use_cache", "completed"),
        ("mark_cached", "completed"),
    ]
    assert clock.sleeps == [0.5, 1.0, 2.0]
    ctx = forecasts.load(result.execution_id).ctx
    assert ctx["api_error"] == "weather API unreachable: connection refused"


def test_forecast_unavailable_without_api_or_cache(forecasts: flowkit.Engine) -> None:
    result = _forecast(forecasts, "Atlantis")
    assert result.completed
    assert result.output == {
        "city": "Atlantis",
        "source": None,
        "error": "no forecast available: no cached forecast for 'Atlantis'",
    }
    assert steps(forecasts, result.execution_id)[-3:] == [
        "fetch_forecast",
        "use_cache",
        "unavailable",
    ]
    assert weather.api_calls() == ["Atlantis"] * 4


def test_forecast_notification_failure_does_not_fail_the_run(
    forecasts: flowkit.Engine,
) -> None:
    weather.fail_notifications(3)  # the first attempt and both retries
    result = _forecast(forecasts, "Seville")
    assert result.completed
    assert result.output["alert"] == "Heat warning for Seville: up to 39.5 °C"
    assert trail(forecasts, result.execution_id)[-5:] == [
        ("heat_warning", "completed"),
        ("notify", "retried"),
        ("notify", "retried"),
        ("notify", "failed"),
        ("report", "completed"),
    ]
    assert weather.sent() == []


# --- data_pipeline ----------------------------------------------------------------------------

RAW_RECORDS = [
    {"customer": "  ada   lovelace ", "amount": "$120.50"},
    {"customer": "Grace Hopper", "amount": 80, "priority": "high"},
    {"customer": "", "amount": 10},
    {"customer": "Alan Turing", "amount": "n/a"},
    {"name": "ADA LOVELACE", "amount": "1,00.00"},
    {"customer": "Edsger Dijkstra", "amount": 45.25},
]


def test_data_pipeline(engine_for: EngineFactory) -> None:
    engine = engine_for(records)
    result = engine.run(load_example("data_pipeline"), {"records": RAW_RECORDS, "source": "crm"})
    assert result.completed
    output = result.output
    assert output["source"] == "crm"
    assert output["valid_count"] == 4
    assert output["invalid_count"] == 2
    assert output["total_amount"] == 345.75  # 120.50 + 80 + 100 + 45.25
    assert output["top_customers"] == ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]
    ranked = output["records"]
    assert [(r["customer"], r["score"], r["position"]) for r in ranked] == [
        ("Ada Lovelace", 120.5, 0),
        ("Grace Hopper", 120.0, 1),  # 80 weighted 1.5 for high priority
        ("Ada Lovelace", 100.0, 4),
        ("Edsger Dijkstra", 45.25, 5),
    ]
    assert all(r["source"] == "crm" and r["valid"] for r in ranked)
    enriched = engine.load(result.execution_id).ctx["enriched"]
    assert [r["position"] for r in enriched] == [0, 1, 2, 3, 4, 5]
    assert steps(engine, result.execution_id) == [
        "start",
        *["enrich_all:enrich"] * 6,
        "enrich_all",
        "rank",
        "top_customers",
        "total_amount",
        "count_valid",
        "count_invalid",
        "done",
    ]


def test_data_pipeline_with_no_records(engine_for: EngineFactory) -> None:
    engine = engine_for(records)
    result = engine.run(load_example("data_pipeline"), {"records": []})
    assert result.completed
    assert result.output == {
        "source": "import",
        "valid_count": 0,
        "invalid_count": 0,
        "total_amount": 0,
        "top_customers": [],
        "records": [],
    }


# --- order_fulfillment ------------------------------------------------------------------------

CUSTOMER = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "address": "12 St James's Square, London",
}
CARD = {"card_number": "4242424242424242"}
DECLINED_CARD = {"card_number": "4000000000000000"}
SMALL_ORDER = [
    {"sku": "WIDGET", "quantity": 2, "price": 25.0},
    {"sku": "GADGET", "quantity": 1, "price": 40.0},
]
SMALL_TOTALS = {"subtotal": 90.0, "discount": 0.0, "tax": 7.2, "shipping": 7.5, "total": 104.7}
BIG_ORDER = [{"sku": "LAPTOP", "quantity": 2, "price": 1299.0}]
BIG_TOTALS = {"subtotal": 2598.0, "discount": 0.0, "tax": 207.84, "shipping": 0.0, "total": 2805.84}

HAPPY_PATH = [
    "start",
    "validate",
    "check_validation",
    "check_inventory",
    "inventory_decision",
    "calculate_totals",
    "check_approval",
    "process_payment",
    "reserve_inventory",
    "create_shipment",
    "completed",
]


@pytest.fixture
def shop(engine_for: EngineFactory) -> flowkit.Engine:
    return engine_for(orders)


def _order(
    engine: flowkit.Engine,
    order_id: str = "o-1",
    *,
    workflow: flowkit.WorkflowDef | None = None,
    **changes: Any,
) -> flowkit.Result:
    given = {"order_id": order_id, "customer": CUSTOMER, "items": SMALL_ORDER, "payment": CARD}
    return engine.run(workflow or load_example("order_fulfillment"), {**given, **changes})


def test_order_happy_path(shop: flowkit.Engine) -> None:
    result = _order(shop)
    assert result.completed
    [charge] = orders.charges()
    [shipment] = orders.shipments()
    assert result.output == {
        "order_id": "o-1",
        "status": "completed",
        "totals": SMALL_TOTALS,
        "payment_id": charge["payment_id"],
        "tracking_number": shipment["tracking_number"],
        "error": None,
    }
    assert steps(shop, result.execution_id) == HAPPY_PATH
    assert charge["amount"] == 104.7
    assert charge["order_id"] == "o-1"
    assert charge["card_last4"] == "4242"
    assert orders.stock_level("WIDGET") == orders.INITIAL_STOCK["WIDGET"] - 2
    assert orders.stock_level("GADGET") == orders.INITIAL_STOCK["GADGET"] - 1
    reservation = shop.load(result.execution_id).ctx["reservation"]
    assert shipment["reservation_id"] == reservation["reservation_id"]


def test_order_options_change_the_totals(shop: flowkit.Engine) -> None:
    result = _order(shop, options={"express": True, "coupon": "SAVE10"})
    assert result.output["totals"] == {
        "subtotal": 90.0,
        "discount": 9.0,
        "tax": 6.48,
        "shipping": 19.99,
        "total": 107.47,
    }


def test_order_out_of_stock(shop: flowkit.Engine) -> None:
    lines = [*SMALL_ORDER, {"sku": "DISCONTINUED", "quantity": 1, "price": 5.0}]
    result = _order(shop, items=lines)
    assert result.completed
    assert result.output == {
        "order_id": "o-1",
        "status": "out_of_stock",
        "error": 'not in stock: ["DISCONTINUED"]',
    }
    assert steps(shop, result.execution_id) == [
        *HAPPY_PATH[:5],
        "out_of_stock",
        "failed",
    ]
    assert orders.charges() == []


def test_order_invalid(shop: flowkit.Engine) -> None:
    customer = {"name": "Ada Lovelace", "email": "ada-at-example.com"}
    result = _order(shop, customer=customer)
    assert result.output == {
        "order_id": "o-1",
        "status": "invalid",
        "error": (
            "order o-1 is invalid: "
            "[\"customer.email 'ada-at-example.com' is not an email address\", "
            '"customer.address is missing"]'
        ),
    }
    assert steps(shop, result.execution_id) == [
        "start",
        "validate",
        "check_validation",
        "invalid",
        "failed",
    ]


def test_order_malformed_goes_through_on_error(shop: flowkit.Engine) -> None:
    result = _order(shop, items=["WIDGET"])
    assert result.output == {
        "order_id": "o-1",
        "status": "failed",
        "error": "could not validate the order: items[0] must be an object, got str",
    }
    assert trail(shop, result.execution_id) == [
        ("start", "completed"),
        ("validate", "failed"),
        ("validation_error", "completed"),
        ("failed", "completed"),
    ]


def test_order_payment_declined(shop: flowkit.Engine, clock: ManualClock) -> None:
    result = _order(shop, payment=DECLINED_CARD)
    assert result.completed
    assert result.output == {
        "order_id": "o-1",
        "status": "payment_failed",
        "error": "payment failed: card ending in 0000 was declined",
    }
    assert trail(shop, result.execution_id)[7:] == [
        ("process_payment", "retried"),
        ("process_payment", "retried"),
        ("process_payment", "failed"),
        ("payment_failed", "completed"),
        ("failed", "completed"),
    ]
    assert clock.sleeps == [2.0, 4.0]  # retry_delay 2, default backoff 2
    assert orders.charges() == []
    assert orders.stock_level("WIDGET") == orders.INITIAL_STOCK["WIDGET"]


def test_order_lost_payment_response_is_retried_without_charging_twice(
    shop: flowkit.Engine,
) -> None:
    orders.lose_next_payment_responses(1)
    result = _order(shop)
    assert result.completed
    [charge] = orders.charges()
    assert result.output["payment_id"] == charge["payment_id"]
    assert trail(shop, result.execution_id)[7:9] == [
        ("process_payment", "retried"),
        ("process_payment", "completed"),
    ]


def test_order_reservation_failure_refunds_the_payment(shop: flowkit.Engine) -> None:
    class SoldOutAfterTheCheck(orders.InventoryService):
        """Another order takes the last widgets between the check and the reservation."""

        def check_availability(self, items: Any) -> dict[str, Any]:
            answer = super().check_availability(items)
            orders.set_stock("WIDGET", 1)
            return answer

    shop.services.register("InventoryService", SoldOutAfterTheCheck)
    result = _order(shop)
    assert result.output == {
        "order_id": "o-1",
        "status": "reservation_failed",
        "error": "could not reserve the items (payment refunded): not enough stock for WIDGET",
    }
    assert trail(shop, result.execution_id)[7:] == [
        ("process_payment", "completed"),
        ("reserve_inventory", "failed"),
        ("refund_payment", "completed"),
        ("reservation_failed", "completed"),
        ("failed", "completed"),
    ]
    [charge] = orders.charges()
    [refund] = orders.refunds()
    assert refund["payment_id"] == charge["payment_id"]
    assert refund["amount"] == charge["amount"] == 104.7
    assert refund["reason"] == "not enough stock for WIDGET"
    assert orders.shipments() == []


def test_big_order_halts_for_approval(shop: flowkit.Engine) -> None:
    result = _order(shop, items=BIG_ORDER)
    assert result.halted
    assert result.halt is not None
    assert result.halt.prompt == "Order o-1 totals 2805.84 (limit 1000). Approve?"
    assert result.halt.data["approvers"] == ["sales_manager", "finance"]
    assert result.halt.data["context"] == {
        "order_id": "o-1",
        "customer": "Ada Lovelace",
        "total": 2805.84,
        "items": BIG_ORDER,
    }
    assert steps(shop, result.execution_id) == [*HAPPY_PATH[:7], "require_approval"]
    assert orders.charges() == []


def test_big_order_approved(shop: flowkit.Engine) -> None:
    halted = _order(shop, items=BIG_ORDER)
    result = shop.resume(halted.execution_id, approved=True, by="finance")
    assert result.completed
    assert result.output["status"] == "completed"
    assert result.output["totals"] == BIG_TOTALS
    [charge] = orders.charges()
    assert charge["amount"] == 2805.84
    assert steps(shop, result.execution_id) == [
        *HAPPY_PATH[:7],
        "require_approval",
        "require_approval",
        *HAPPY_PATH[7:],
    ]
    assert orders.stock_level("LAPTOP") == orders.INITIAL_STOCK["LAPTOP"] - 2


def test_big_order_rejected(shop: flowkit.Engine) -> None:
    halted = _order(shop, items=BIG_ORDER)
    result = shop.resume(
        halted.execution_id, approved=False, by="sales_manager", response={"reason": "too risky"}
    )
    assert result.output == {
        "order_id": "o-1",
        "status": "rejected",
        "error": "rejected by a manager: too risky",
    }
    assert steps(shop, result.execution_id)[-4:] == [
        "require_approval",
        "require_approval",
        "rejected",
        "failed",
    ]
    assert orders.charges() == []


def test_big_order_threshold_comes_from_the_input(shop: flowkit.Engine) -> None:
    result = _order(shop, items=BIG_ORDER, approval_threshold=5000)
    assert result.completed
    assert steps(shop, result.execution_id) == HAPPY_PATH


def test_big_order_expires_after_a_day(shop: flowkit.Engine, clock: ManualClock) -> None:
    halted = _order(shop, items=BIG_ORDER)
    clock.advance(timedelta(days=1).total_seconds() + 1)
    [result] = shop.wake_due()
    assert result.execution_id == halted.execution_id
    assert result.output == {
        "order_id": "o-1",
        "status": "expired",
        "error": "nobody approved the order within a day",
    }
    assert steps(shop, result.execution_id)[-3:] == [
        "require_approval",
        "approval_expired",
        "failed",
    ]


# --- the durable_workflow gem's order_fulfillment.yml, unchanged ------------------------------

GEM_HAPPY_PATH = [*HAPPY_PATH, "end"]


def test_gem_order_happy_path(shop: flowkit.Engine, gem_workflow: flowkit.WorkflowDef) -> None:
    result = _order(shop, workflow=gem_workflow)  # no options: calculate_totals gets None
    assert result.completed
    [charge] = orders.charges()
    [shipment] = orders.shipments()
    assert result.output == {
        "order_id": "o-1",
        "status": "completed",
        "totals": SMALL_TOTALS,
        "payment_id": charge["payment_id"],
        "tracking_number": shipment["tracking_number"],
        "error": None,
    }
    assert charge["order_id"] is None  # the gem's charge step passes no order_id
    assert shipment["reservation_id"] is None  # nor does its create_shipment a reservation
    assert steps(shop, result.execution_id) == GEM_HAPPY_PATH


def test_gem_order_big_order_approved(
    shop: flowkit.Engine, gem_workflow: flowkit.WorkflowDef
) -> None:
    halted = _order(shop, workflow=gem_workflow, items=BIG_ORDER)
    assert halted.halted
    assert halted.halt is not None
    assert halted.halt.prompt == "High-value order requires approval"
    result = shop.resume(halted.execution_id, approved=True)  # the gem lists no approvers
    assert result.completed
    assert result.output["totals"] == BIG_TOTALS
    assert steps(shop, result.execution_id) == [
        *HAPPY_PATH[:7],
        "require_approval",
        "require_approval",
        *GEM_HAPPY_PATH[7:],
    ]


def test_gem_order_payment_declined(
    shop: flowkit.Engine, gem_workflow: flowkit.WorkflowDef
) -> None:
    result = _order(shop, workflow=gem_workflow, payment=DECLINED_CARD)
    assert result.output == {
        "order_id": "o-1",
        "status": "payment_failed",
        "totals": SMALL_TOTALS,
        "payment_id": None,
        "tracking_number": None,
        "error": "Payment processing failed",
    }
    assert trail(shop, result.execution_id)[7:] == [
        ("process_payment", "failed"),  # the gem's step has no retries
        ("payment_failed", "completed"),
        ("end", "completed"),
    ]


def test_gem_order_out_of_stock(shop: flowkit.Engine, gem_workflow: flowkit.WorkflowDef) -> None:
    result = _order(
        shop, workflow=gem_workflow, items=[{"sku": "LAPTOP", "quantity": 11, "price": 1.0}]
    )
    assert result.output["status"] == "out_of_stock"
    assert steps(shop, result.execution_id)[-3:] == ["inventory_decision", "out_of_stock", "end"]


def test_the_readme_demo_runs_across_two_processes(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    demo = root / "examples" / "demo.py"
    done = subprocess.run(
        [sys.executable, str(demo)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "is halted: Order demo-1 totals 2805.84" in done.stdout
    # The second process ran the command the demo printed, as printed (through a shell).
    (printed,) = [line for line in done.stdout.splitlines() if line.startswith("2. ")]
    assert printed.startswith(f"2. in another process: PYTHONPATH={root} ")
    assert " resume " in printed
    assert printed.endswith(
        f" --approve --by sales_manager --workflow {root}/examples/order_fulfillment.yml "
        "-m examples.services"
    )
    assert "is completed; its output:" in done.stdout
    assert "require_approval     resumed" in done.stdout
    assert (tmp_path / "flowkit.db").exists()


# --- order_payment ----------------------------------------------------------------------------

HELD_LINES = [{"sku": "MUG", "quantity": 2}]


@pytest.fixture
def store_front(engine_for: EngineFactory) -> flowkit.Engine:
    return engine_for(warehouse)


def _unpaid_order(store_front: flowkit.Engine) -> flowkit.Result:
    waiting = store_front.run(
        load_example("order_payment"), {"order_id": "A-1", "items": HELD_LINES}
    )
    assert waiting.waiting
    return waiting


def test_order_payment_ships_once_the_payment_signal_comes(store_front: flowkit.Engine) -> None:
    waiting = _unpaid_order(store_front)
    assert list(warehouse.held.values()) == [{"order_id": "A-1", "items": HELD_LINES}]
    paid = {"amount": 42.0, "payment_id": "pay_123"}
    assert store_front.signal(waiting.execution_id, "payment", paid, key="pay_123") is True
    result = store_front.wait(waiting.execution_id, timeout=30)
    assert result.completed
    assert result.output["order_id"] == "A-1"
    assert result.output["tracking"].startswith("trk_")
    assert warehouse.held == {}
    assert warehouse.released == {}
    assert trail(store_front, waiting.execution_id) == [
        ("start", "completed"),
        ("hold", "completed"),
        ("payment", "waiting"),
        ("payment", "completed"),
        ("ship", "completed"),
        ("done", "completed"),
    ]


def test_order_payment_gives_the_stock_back_when_the_payment_never_comes(
    store_front: flowkit.Engine, clock: ManualClock
) -> None:
    waiting = _unpaid_order(store_front)
    clock.advance(30 * 60)
    store_front.wake_due()
    result = store_front.wait(waiting.execution_id, timeout=30)
    assert result.failed
    assert result.error == (
        "ExecutionError: step 'payment' timed out after 1800s waiting for signal 'payment'"
    )
    assert warehouse.held == {}
    assert len(warehouse.released) == 1
    assert trail(store_front, waiting.execution_id)[-2:] == [
        ("payment", "failed"),
        ("hold", "compensated"),
    ]


def test_order_payment_cancelled_by_support_gives_the_stock_back(
    store_front: flowkit.Engine,
) -> None:
    waiting = _unpaid_order(store_front)
    result = store_front.cancel(waiting.execution_id, reason="customer called", by="support")
    assert result.cancelled
    assert result.error == "customer called"
    assert warehouse.held == {}
    assert len(warehouse.released) == 1
    assert trail(store_front, waiting.execution_id)[-2:] == [
        ("payment", "cancelled"),
        ("hold", "compensated"),
    ]
    with pytest.raises(flowkit.ExecutionError, match="cancelled"):
        store_front.signal(waiting.execution_id, "payment", {"amount": 42.0})

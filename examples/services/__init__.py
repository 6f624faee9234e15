"""In-memory services for the workflows in ``examples/``.

Importing this package registers every example service in flowkit's default
registry (each class is decorated with ``@flowkit.service("Name")``), which is
what ``flowkit run --import examples.services`` style setups rely on. One
module per example:

======================  ==============================================================
module                  services (example)
======================  ==============================================================
``calculator``          Calculator (calculator.yml)
``items``               Items (item_processor.yml)
``dashboard``           Profiles, Orders, Recommendations (parallel_fetch.yml)
``weather``             WeatherApi, ForecastCache, Notifications (service_integration.yml)
``orders``              OrderService, InventoryService, PaymentService, ShippingService
                        (order_fulfillment.yml, and the durable_workflow gem's version)
``records``             Records (data_pipeline.yml)
``support``             SupportServices (support_agent.yml, the gem's support agent)
``warehouse``           Warehouse (order_payment.yml)
======================  ==============================================================

hello_world.yml and expense_approval.yml call no services.

Each module lists its services in ``SERVICES`` (name → object), so they can be
put in a registry of your own, e.g. for an isolated test::

    registry = flowkit.ServiceRegistry()
    examples.services.register(registry, examples.services.orders)
    engine = flowkit.Engine(store=..., services=registry)

The modules keep their state (stock, charges, the forecast cache…) at module
level; :func:`reset` puts all of it back to the initial state.
"""

from __future__ import annotations

from types import ModuleType

import flowkit

from . import calculator, dashboard, items, orders, records, support, warehouse, weather

__all__ = [
    "MODULES",
    "calculator",
    "dashboard",
    "items",
    "orders",
    "records",
    "register",
    "reset",
    "support",
    "warehouse",
    "weather",
]

MODULES: tuple[ModuleType, ...] = (
    calculator,
    items,
    dashboard,
    weather,
    orders,
    records,
    support,
    warehouse,
)
"""Every example services module."""


def register(registry: flowkit.ServiceRegistry, *modules: ModuleType) -> None:
    """Register the services of ``modules`` (default: all of them) in ``registry``.

    Raises:
        AttributeError: a module has no ``SERVICES`` mapping.
    """
    for module in modules or MODULES:
        services: dict[str, object] = module.SERVICES
        for name, obj in services.items():
            registry.register(name, obj)


def reset() -> None:
    """Put every module's in-memory state (stock, charges, cache…) back to the start."""
    orders.reset()
    weather.reset()
    support.reset()
    warehouse.reset()

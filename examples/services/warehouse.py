"""The ``Warehouse`` service: holds stock for an order until it is paid, then ships it.

Used by: examples/order_payment.yml.

Holds and shipments live in module-level dicts, each remembered by
``flowkit.current().idempotency_key``, so a re-run step (after a crash) or a
re-run compensation holds, releases or ships once. :func:`reset` forgets them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import flowkit

from ._support import idempotency_key, stable_id

__all__ = ["SERVICES", "Warehouse", "held", "released", "reset", "shipped"]

_lock = threading.Lock()
held: dict[str, dict[str, Any]] = {}
"""Hold id → ``{"order_id", "items"}``, while the stock is held."""
released: dict[str, str] = {}
"""Hold id → the idempotency key of the compensation that released it."""
shipped: dict[str, dict[str, Any]] = {}
"""Idempotency key → the shipment made."""


@flowkit.service("Warehouse")
class Warehouse:
    """Holds, releases and ships stock."""

    def hold(self, order_id: str, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Hold the items of an order; returns ``{"id", "order_id", "items"}``."""
        hold_id = stable_id("hold", idempotency_key())
        with _lock:
            held.setdefault(hold_id, {"order_id": order_id, "items": [dict(i) for i in items]})
            return {"id": hold_id, **held[hold_id]}

    def release(self, hold: str) -> dict[str, Any]:
        """Give held stock back (the compensation of ``hold``); releasing twice is fine."""
        with _lock:
            held.pop(hold, None)
            released.setdefault(hold, idempotency_key())
        return {"released": hold}

    def ship(self, hold: str, paid: float) -> dict[str, Any]:
        """Ship held stock once it is paid; returns ``{"tracking", "paid"}``."""
        key = idempotency_key()
        with _lock:
            if key not in shipped:
                if hold not in held:
                    raise LookupError(f"no stock is held as {hold!r}")
                held.pop(hold)
                shipped[key] = {"tracking": stable_id("trk", key), "paid": paid}
            return dict(shipped[key])


SERVICES: dict[str, object] = {"Warehouse": Warehouse}


def reset() -> None:
    """Forget every hold, release and shipment."""
    with _lock:
        held.clear()
        released.clear()
        shipped.clear()

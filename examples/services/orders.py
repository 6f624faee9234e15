"""The ``OrderService``, ``InventoryService``, ``PaymentService`` and ``ShippingService`` services.

Used by: examples/order_fulfillment.yml, and by the durable_workflow gem's
order_fulfillment.yml, which calls the same methods with fewer keys (``charge``
without ``order_id``, ``create_shipment`` without ``reservation_id``, and
``calculate_totals`` with ``options`` null when the input has none).

Stock, charges, refunds, reservations and shipments live in module-level
dicts; :func:`reset` restores the initial stock and forgets the rest. The
services with side effects (reserve, charge, refund, create_shipment) remember
each effect by ``flowkit.current().idempotency_key``, so a retried or re-run
step returns the first result instead of charging or reserving twice.

Order lines are ``{"sku": str, "quantity": int, "price": number}``; customers
``{"name", "email", "address"}``; payments ``{"card_number": str}`` (a card
ending in ``0000`` is declined).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import flowkit

from ._support import cents, digest, idempotency_key, money, stable_id

__all__ = [
    "COUPONS",
    "EXPRESS_SHIPPING",
    "FREE_SHIPPING_FROM",
    "INITIAL_STOCK",
    "SERVICES",
    "STANDARD_SHIPPING",
    "TAX_RATE",
    "InventoryService",
    "OrderService",
    "OutOfStockError",
    "PaymentDeclinedError",
    "PaymentService",
    "ShippingService",
    "charges",
    "lose_next_payment_responses",
    "refunds",
    "reset",
    "set_stock",
    "shipments",
    "stock_level",
]

TAX_RATE: Final = Decimal("0.08")
STANDARD_SHIPPING: Final = Decimal("7.50")
EXPRESS_SHIPPING: Final = Decimal("19.99")
FREE_SHIPPING_FROM: Final = Decimal(100)
"""Standard shipping is free when the discounted subtotal reaches this."""
COUPONS: Final[dict[str, Decimal]] = {"SAVE10": Decimal("0.10"), "VIP20": Decimal("0.20")}
"""Coupon code → fraction of the subtotal taken off."""

INITIAL_STOCK: Final[dict[str, int]] = {
    "WIDGET": 100,
    "GADGET": 25,
    "LAPTOP": 10,
    "CABLE": 500,
    "DISCONTINUED": 0,
}


class OutOfStockError(Exception):
    """Some items cannot be reserved."""


class PaymentDeclinedError(Exception):
    """The card issuer declined the charge."""


_lock = threading.RLock()
_stock: dict[str, int] = dict(INITIAL_STOCK)
_reservations: dict[str, dict[str, Any]] = {}  # by idempotency key
_charges: dict[str, dict[str, Any]] = {}  # by idempotency key
_refunds: dict[str, dict[str, Any]] = {}  # by idempotency key
_shipments: dict[str, dict[str, Any]] = {}  # by idempotency key
_lost_responses = 0


# --- test and demo controls (module functions, so no workflow can call them) -----------------


def reset(stock: Mapping[str, int] | None = None) -> None:
    """Restore the stock (``INITIAL_STOCK`` or ``stock``) and forget every effect."""
    global _lost_responses
    with _lock:
        _stock.clear()
        _stock.update(INITIAL_STOCK if stock is None else stock)
        for effects in (_reservations, _charges, _refunds, _shipments):
            effects.clear()
        _lost_responses = 0


def stock_level(sku: str) -> int:
    """Units of ``sku`` in stock (0 for an unknown sku)."""
    with _lock:
        return _stock.get(sku, 0)


def set_stock(sku: str, units: int) -> None:
    """Set the units of ``sku`` in stock (e.g. to simulate another order taking them)."""
    with _lock:
        _stock[sku] = units


def charges() -> list[dict[str, Any]]:
    """Every charge made, in order."""
    with _lock:
        return [dict(charge) for charge in _charges.values()]


def refunds() -> list[dict[str, Any]]:
    """Every refund made, in order."""
    with _lock:
        return [dict(refund) for refund in _refunds.values()]


def shipments() -> list[dict[str, Any]]:
    """Every shipment created, in order."""
    with _lock:
        return [dict(shipment) for shipment in _shipments.values()]


def lose_next_payment_responses(times: int) -> None:
    """Make the next ``times`` charges succeed but raise ``TimeoutError`` (a lost response).

    The retry that follows finds the charge by its idempotency key and returns
    it: the customer is charged once.
    """
    global _lost_responses
    with _lock:
        _lost_responses = times


# --- helpers ----------------------------------------------------------------------------------


def _lines(items: object) -> list[tuple[str, int, Decimal]]:
    """``(sku, quantity, price)`` for well-formed lines.

    Raises:
        TypeError: ``items`` is not a list of objects (a malformed request).
    """
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise TypeError(f"items must be a list of objects, got {type(items).__name__}")
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TypeError(f"items[{index}] must be an object, got {type(item).__name__}")
        lines.append((str(item.get("sku", "")), _quantity(item), _price(item)))
    return lines


def _quantity(item: Mapping[str, Any]) -> int:
    quantity = item.get("quantity", 1)
    return quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else 0


def _price(item: Mapping[str, Any]) -> Decimal:
    price = item.get("price")
    if isinstance(price, bool) or not isinstance(price, int | float):
        return Decimal(-1)
    return Decimal(str(price))


def _requested(items: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Units requested per sku, in order of first appearance."""
    wanted: dict[str, int] = {}
    for sku, quantity, _ in _lines(items):
        wanted[sku] = wanted.get(sku, 0) + quantity
    return wanted


def _subtotal(items: Sequence[Mapping[str, Any]]) -> Decimal:
    return sum((price * quantity for _, quantity, price in _lines(items)), Decimal(0))


# --- services ---------------------------------------------------------------------------------


@flowkit.service("OrderService")
class OrderService:
    """Order checks and pricing (no side effects)."""

    def validate_order(
        self, order_id: str, customer: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Check the order's id, customer and lines.

        Args:
            order_id: must be non-empty.
            customer: needs a ``name``, an ``email`` with ``@`` and an ``address``.
            items: at least one line, each with a ``sku``, an integer
                ``quantity`` ≥ 1 and a ``price`` ≥ 0.

        Returns:
            ``{"valid": bool, "total": float, "errors": [str, ...]}``; ``total``
            is the sum of the well-formed lines.

        Raises:
            TypeError: ``customer`` is not an object, or ``items`` is not a
                list of objects (a malformed request rather than an invalid order).
        """
        if not isinstance(customer, Mapping):
            raise TypeError(f"customer must be an object, got {type(customer).__name__}")
        lines = _lines(items)
        errors = []
        if not str(order_id or "").strip():
            errors.append("order_id is empty")
        if not str(customer.get("name") or "").strip():
            errors.append("customer.name is missing")
        email = str(customer.get("email") or "")
        if "@" not in email:
            errors.append(f"customer.email {email!r} is not an email address")
        if not customer.get("address"):
            errors.append("customer.address is missing")
        if not lines:
            errors.append("the order has no items")
        total = Decimal(0)
        for index, (sku, quantity, price) in enumerate(lines):
            line_errors = []
            if not sku:
                line_errors.append(f"items[{index}].sku is missing")
            if quantity < 1:
                line_errors.append(f"items[{index}].quantity must be a positive integer")
            if price < 0:
                line_errors.append(f"items[{index}].price must be a non-negative number")
            if line_errors:
                errors.extend(line_errors)
            else:
                total += price * quantity
        return {"valid": not errors, "total": cents(total), "errors": errors}

    def calculate_totals(
        self, items: Sequence[Mapping[str, Any]], options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Price the order.

        Args:
            items: the order lines.
            options: ``{"express": bool, "coupon": str}``, both optional; None
                is the same as no options.

        Returns:
            ``{"subtotal", "discount", "tax", "shipping", "total"}`` in cents
            precision: tax is 8% of the discounted subtotal; standard shipping
            7.50, free from 100 after discount; express shipping 19.99.

        Raises:
            ValueError: the coupon is unknown.
            TypeError: ``items`` is malformed.
        """
        options = options or {}
        subtotal = _subtotal(items)
        coupon = options.get("coupon")
        discount = Decimal(0)
        if coupon:
            if coupon not in COUPONS:
                raise ValueError(f"unknown coupon {coupon!r} (known: {', '.join(COUPONS)})")
            discount = subtotal * COUPONS[coupon]
        discounted = subtotal - discount
        if options.get("express"):
            shipping = EXPRESS_SHIPPING
        else:
            shipping = Decimal(0) if discounted >= FREE_SHIPPING_FROM else STANDARD_SHIPPING
        tax = money(discounted * TAX_RATE)
        return {
            "subtotal": cents(subtotal),
            "discount": cents(discount),
            "tax": float(tax),
            "shipping": float(shipping),
            "total": cents(money(discounted) + tax + shipping),
        }


@flowkit.service("InventoryService")
class InventoryService:
    """Stock levels and reservations."""

    def check_availability(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Whether every line can be served from stock (nothing is reserved).

        Returns:
            ``{"all_available": bool, "missing": [sku, ...]}``: the skus whose
            requested units (summed over lines) exceed the stock.

        Raises:
            TypeError: ``items`` is malformed.
        """
        wanted = _requested(items)
        with _lock:
            missing = [sku for sku, units in wanted.items() if units > _stock.get(sku, 0)]
        return {"all_available": not missing, "missing": missing}

    def reserve(self, order_id: str, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Take the items out of stock for ``order_id``: all of them or none.

        Returns:
            ``{"reservation_id": str, "order_id": str, "units": {sku: int}}``;
            a retry of the same step visit returns the first reservation.

        Raises:
            OutOfStockError: some sku has fewer units than requested.
            TypeError: ``items`` is malformed.
        """
        wanted = _requested(items)
        key = idempotency_key()
        with _lock:
            done = _reservations.get(key)
            if done is not None:
                return dict(done)
            short = [sku for sku, units in wanted.items() if units > _stock.get(sku, 0)]
            if short:
                raise OutOfStockError(f"not enough stock for {', '.join(short)}")
            for sku, units in wanted.items():
                _stock[sku] -= units
            reservation = {
                "reservation_id": stable_id("rsv", key),
                "order_id": order_id,
                "units": wanted,
            }
            _reservations[key] = reservation
            return dict(reservation)


@flowkit.service("PaymentService")
class PaymentService:
    """Card payments (simulated): charges and refunds."""

    def charge(
        self, payment: Mapping[str, Any], amount: float, order_id: str | None = None
    ) -> dict[str, Any]:
        """Charge ``amount`` to the card in ``payment``.

        The payment id derives from the step's idempotency key, and a charge
        already made under that key is returned again instead of charging
        twice (retries, re-runs after a crash).

        Args:
            payment: ``{"card_number": str}`` (``"token"`` is accepted too).
            amount: a positive amount.
            order_id: the order, recorded with the charge.

        Returns:
            ``{"payment_id": str, "status": "captured", "amount": float}``.

        Raises:
            PaymentDeclinedError: the card number ends in ``0000``.
            ValueError: no card number, or ``amount`` is not positive.
            TypeError: ``payment`` is not an object.
            TimeoutError: a simulated lost response (see
                :func:`lose_next_payment_responses`); the charge was made.
        """
        global _lost_responses
        if not isinstance(payment, Mapping):
            raise TypeError(f"payment must be an object, got {type(payment).__name__}")
        card = str(payment.get("card_number") or payment.get("token") or "")
        if not card:
            raise ValueError("payment has no card_number")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
            raise ValueError(f"amount must be a positive number, got {amount!r}")
        key = idempotency_key()
        with _lock:
            done = _charges.get(key)
            if done is None:
                if card.endswith("0000"):
                    raise PaymentDeclinedError(f"card ending in {card[-4:]} was declined")
                done = _charges[key] = {
                    "payment_id": stable_id("pay", key),
                    "status": "captured",
                    "amount": float(amount),
                    "order_id": order_id,
                    "card_last4": card[-4:],
                }
            if _lost_responses > 0:
                _lost_responses -= 1
                raise TimeoutError("the payment gateway did not answer in time")
        return {key: done[key] for key in ("payment_id", "status", "amount")}

    def refund(self, payment_id: str, amount: float, reason: str) -> dict[str, Any]:
        """Give back ``amount`` of the charge ``payment_id``.

        Returns:
            ``{"refund_id": str, "payment_id": str, "amount": float}``; a retry
            of the same step visit returns the first refund.

        Raises:
            LookupError: no charge has that id.
            ValueError: ``amount`` is not positive or exceeds what is left to refund.
        """
        key = idempotency_key()
        with _lock:
            done = _refunds.get(key)
            if done is not None:
                return {k: done[k] for k in ("refund_id", "payment_id", "amount")}
            charge = next((c for c in _charges.values() if c["payment_id"] == payment_id), None)
            if charge is None:
                raise LookupError(f"no payment '{payment_id}'")
            refunded = sum(r["amount"] for r in _refunds.values() if r["payment_id"] == payment_id)
            if not 0 < amount <= charge["amount"] - refunded:
                raise ValueError(
                    f"cannot refund {amount} of payment '{payment_id}' "
                    f"({charge['amount'] - refunded} left)"
                )
            done = _refunds[key] = {
                "refund_id": stable_id("ref", key),
                "payment_id": payment_id,
                "amount": float(amount),
                "reason": reason,
            }
        return {k: done[k] for k in ("refund_id", "payment_id", "amount")}


_SHIPMENT_KEYS: Final = ("shipment_id", "tracking_number", "carrier", "address", "units")


@flowkit.service("ShippingService")
class ShippingService:
    """Shipments with a (simulated) carrier."""

    def create_shipment(
        self,
        order_id: str,
        customer: Mapping[str, Any],
        items: Sequence[Mapping[str, Any]],
        reservation_id: str | None = None,
    ) -> dict[str, Any]:
        """Book a shipment of ``items`` to the customer's address.

        Returns:
            ``{"shipment_id", "tracking_number", "carrier", "address", "units"}``;
            the tracking number derives from ``order_id``, and a retry of the
            same step visit returns the first shipment.

        Raises:
            ValueError: the customer has no address.
            TypeError: ``items`` is malformed.
        """
        address = customer.get("address")
        if not address:
            raise ValueError(f"order {order_id}: the customer has no shipping address")
        units = sum(_requested(items).values())
        key = idempotency_key()
        with _lock:
            done = _shipments.get(key)
            if done is None:
                done = _shipments[key] = {
                    "shipment_id": stable_id("shp", key),
                    "tracking_number": "FP" + digest(order_id)[:12].upper(),
                    "carrier": "FlowPost",
                    "address": address,
                    "units": units,
                    "order_id": order_id,
                    "reservation_id": reservation_id,
                }
        return {k: done[k] for k in _SHIPMENT_KEYS}


SERVICES: Final[dict[str, object]] = {
    "OrderService": OrderService,
    "InventoryService": InventoryService,
    "PaymentService": PaymentService,
    "ShippingService": ShippingService,
}
"""The services this module registers, by name (see :func:`examples.services.register`)."""

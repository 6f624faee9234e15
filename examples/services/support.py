"""The ``SupportServices`` service: the tools of the customer-support agents.

Used by: examples/support_agent.yml and examples/support_agent.py (the
durable_workflow gem's support agent, unchanged). Agents call these methods as
tools; the model picks the arguments, so every method checks what it gets and
answers with plain data (or raises with a message the model can act on).

Orders, tickets, refunds, password resets and escalations live in module-level
dicts; :func:`reset` restores the sample orders and forgets the rest. Methods
with side effects (refund_order, create_ticket, reset_password, escalate)
remember each effect by ``flowkit.current().idempotency_key`` (one key per tool
call of an agent step), so a tool call that runs again after a crash returns
the first result instead of refunding or escalating twice.

The method signatures and docstrings are the tools' descriptions: the Python
twin of the workflow (``examples/support_agent.py``) derives its ``tools``
from them with ``workflow.tool(...)``, and they equal the YAML file's.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Final

import flowkit

from ._support import idempotency_key, stable_id

__all__ = [
    "INITIAL_ORDERS",
    "SERVICES",
    "SupportServices",
    "escalations",
    "password_resets",
    "refunds",
    "reset",
    "tickets",
]

INITIAL_ORDERS: Final[dict[str, dict[str, Any]]] = {
    "ORD-1001": {
        "order_id": "ORD-1001",
        "email": "ada@example.com",
        "status": "delivered",
        "total": 129.99,
        "items": ["Smart Thermostat"],
    },
    "ORD-1002": {
        "order_id": "ORD-1002",
        "email": "ada@example.com",
        "status": "shipped",
        "total": 24.5,
        "items": ["Mounting Kit"],
    },
    "ORD-2001": {
        "order_id": "ORD-2001",
        "email": "grace@example.com",
        "status": "processing",
        "total": 899.0,
        "items": ["Laptop"],
    },
}

CATEGORIES: Final = ("billing", "technical", "general")
URGENCIES: Final = ("low", "medium", "high")

_lock = threading.RLock()
_orders: dict[str, dict[str, Any]] = copy.deepcopy(INITIAL_ORDERS)
refunds: dict[str, dict[str, Any]] = {}
"""Refunds made, by idempotency key."""
tickets: dict[str, dict[str, Any]] = {}
"""Tickets by ticket id."""
_tickets_by_key: dict[str, str] = {}
password_resets: dict[str, dict[str, Any]] = {}
"""Password reset emails sent, by idempotency key."""
escalations: dict[str, dict[str, Any]] = {}
"""Escalations to humans, by idempotency key."""


def reset() -> None:
    """Restore the sample orders; forget refunds, tickets, resets and escalations."""
    with _lock:
        _orders.clear()
        _orders.update(copy.deepcopy(INITIAL_ORDERS))
        for store in (refunds, tickets, _tickets_by_key, password_resets, escalations):
            store.clear()


@flowkit.service("SupportServices")
class SupportServices:
    """Order lookups, refunds, tickets, password resets and escalations for support agents."""

    def classify_request(self, category: str, urgency: str, summary: str) -> dict[str, Any]:
        """Classify the customer's support request

        Args:
            category: Category: billing, technical, or general
            urgency: Urgency: low, medium, or high
            summary: Brief summary of the request
        """
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
        if urgency not in URGENCIES:
            raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}, got {urgency!r}")
        return {"category": category, "urgency": urgency, "summary": summary, "recorded": True}

    def lookup_order(self, order_id: str | None = None, email: str | None = None) -> dict[str, Any]:
        """Look up an order by ID or customer email

        Args:
            order_id: Order ID to look up
            email: Customer email to find orders
        """
        with _lock:
            if order_id:
                order = _orders.get(order_id.strip().upper())
                if order is None:
                    return {"found": False, "message": f"no order {order_id}"}
                return {"found": True, "orders": [copy.deepcopy(order)]}
            if email:
                found = [
                    copy.deepcopy(order)
                    for order in _orders.values()
                    if order["email"].lower() == email.strip().lower()
                ]
                return {"found": bool(found), "orders": found}
        raise ValueError("give an order_id or an email to look up orders")

    def refund_order(
        self, order_id: str, reason: str, amount: float | None = None
    ) -> dict[str, Any]:
        """Process a refund for an order

        Args:
            order_id: Order ID to refund
            reason: Reason for refund
            amount: Partial refund amount (omit for full refund)
        """
        key = idempotency_key()
        with _lock:
            if key in refunds:
                return refunds[key]
            order = _orders.get(order_id.strip().upper())
            if order is None:
                raise LookupError(f"no order {order_id}")
            already = sum(
                refund["amount"] for refund in refunds.values() if refund["order_id"] == order_id
            )
            left = round(order["total"] - already, 2)
            value = left if amount is None else float(amount)
            if value <= 0 or value > left:
                raise ValueError(f"a refund of {value} is not possible; {left} can be refunded")
            refund = {
                "refund_id": stable_id("rf", key),
                "order_id": order["order_id"],
                "amount": round(value, 2),
                "reason": reason,
                "status": "refunded",
            }
            refunds[key] = refund
            if value == left:
                order["status"] = "refunded"
            return refund

    def create_ticket(
        self, subject: str, description: str, priority: str | None = None
    ) -> dict[str, Any]:
        """Create a support ticket for follow-up

        Args:
            subject: Ticket subject
            description: Detailed description
            priority: Priority: low, medium, high
        """
        key = idempotency_key()
        with _lock:
            if key in _tickets_by_key:
                return tickets[_tickets_by_key[key]]
            ticket_id = f"TCK-{len(tickets) + 1:04d}"
            ticket = {
                "ticket_id": ticket_id,
                "subject": subject,
                "description": description,
                "priority": priority or "medium",
                "status": "open",
            }
            tickets[ticket_id] = ticket
            _tickets_by_key[key] = ticket_id
            return ticket

    def check_status(self, ticket_id: str) -> dict[str, Any]:
        """Check the status of a support ticket

        Args:
            ticket_id: Ticket ID to check
        """
        with _lock:
            ticket = tickets.get(ticket_id.strip().upper())
        if ticket is None:
            return {"found": False, "message": f"no ticket {ticket_id}"}
        return {"found": True, **ticket}

    def reset_password(self, email: str) -> dict[str, Any]:
        """Send password reset email to customer

        Args:
            email: Customer's email address
        """
        if "@" not in email:
            raise ValueError(f"{email!r} is not an email address")
        key = idempotency_key()
        with _lock:
            if key not in password_resets:
                password_resets[key] = {"email": email, "sent": True}
            return password_resets[key]

    def escalate(self, reason: str, urgency: str) -> dict[str, Any]:
        """Escalate to a human support agent

        Args:
            reason: Reason for escalation
            urgency: Urgency level: medium or high
        """
        key = idempotency_key()
        with _lock:
            if key not in escalations:
                escalations[key] = {
                    "escalation_id": stable_id("esc", key),
                    "reason": reason,
                    "urgency": urgency,
                    "queue": "tier-2",
                }
            return escalations[key]


SERVICES: Final[dict[str, object]] = {"SupportServices": SupportServices}
"""Every service of this module, by name."""

"""The ``Profiles``, ``Orders`` and ``Recommendations`` services: a customer dashboard.

Used by: examples/parallel_fetch.yml (three calls run as parallel branches).

The data is a small in-memory sample; every answer is deterministic.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

import flowkit

__all__ = ["CATALOG", "ORDERS", "SERVICES", "USERS", "Orders", "Profiles", "Recommendations"]

USERS: Final[dict[str, dict[str, Any]]] = {
    "u-100": {
        "id": "u-100",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "tier": "gold",
        "member_since": "2019-03-14",
    },
    "u-200": {
        "id": "u-200",
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "tier": "silver",
        "member_since": "2021-11-02",
    },
}

ORDERS: Final[dict[str, list[dict[str, Any]]]] = {
    "u-100": [
        {"order_id": "o-1001", "placed_at": "2024-01-05", "total": 42.5, "skus": ["BOOK-1"]},
        {"order_id": "o-1017", "placed_at": "2024-03-21", "total": 129.0, "skus": ["LAMP-2"]},
        {"order_id": "o-1042", "placed_at": "2024-02-11", "total": 18.9, "skus": ["PEN-3"]},
    ],
    "u-200": [],
}

CATALOG: Final[dict[str, str]] = {
    "BOOK-1": "Notes on the Analytical Engine",
    "LAMP-2": "Brass desk lamp",
    "PEN-3": "Fountain pen",
    "MUG-4": "Enamel mug",
    "NOTE-5": "Squared notebook",
    "CHAIR-6": "Oak reading chair",
    "GLOBE-7": "Desk globe",
}


@flowkit.service("Profiles")
class Profiles:
    """Customer profiles."""

    def fetch_user(self, user_id: str) -> dict[str, Any]:
        """The profile of ``user_id``: ``{id, name, email, tier, member_since}``.

        Raises:
            LookupError: there is no such user.
        """
        try:
            return dict(USERS[user_id])
        except KeyError:
            raise LookupError(f"no user '{user_id}'") from None


@flowkit.service("Orders")
class Orders:
    """Order history."""

    def fetch_orders(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` most recent orders of ``user_id``, newest first (none for a new user).

        Raises:
            ValueError: ``limit`` is negative.
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        history = sorted(ORDERS.get(user_id, ()), key=lambda o: o["placed_at"], reverse=True)
        return [dict(order) for order in history[:limit]]


@flowkit.service("Recommendations")
class Recommendations:
    """Product suggestions."""

    def fetch(self, user_id: str, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` products ``user_id`` has not bought, best first.

        Returns:
            ``[{"sku", "title", "score"}, ...]``; the score (0 to 1) is a stable
            function of the user and the product, ties broken by sku.

        Raises:
            ValueError: ``count`` is negative.
        """
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        bought = {sku for order in ORDERS.get(user_id, ()) for sku in order["skus"]}
        scored: list[dict[str, Any]] = [
            {"sku": sku, "title": title, "score": _affinity(user_id, sku)}
            for sku, title in CATALOG.items()
            if sku not in bought
        ]
        scored.sort(key=lambda item: (-item["score"], item["sku"]))
        return scored[:count]


def _affinity(user_id: str, sku: str) -> float:
    return (zlib.crc32(f"{user_id}:{sku}".encode()) % 1000) / 1000


SERVICES: Final[dict[str, object]] = {
    "Profiles": Profiles,
    "Orders": Orders,
    "Recommendations": Recommendations,
}
"""The services this module registers, by name (see :func:`examples.services.register`)."""

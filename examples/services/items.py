"""The ``Items`` service: prices a batch of order lines.

Used by: examples/item_processor.yml.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import flowkit

from ._support import cents

__all__ = ["SERVICES", "Items"]


@flowkit.service("Items")
class Items:
    """Prices batches of items given as ``{sku, quantity, price}``."""

    def process(self, items: Sequence[Mapping[str, Any]], batch_id: str) -> dict[str, Any]:
        """Add a ``line_total`` to every item and total the batch.

        Args:
            items: the lines; ``quantity`` a positive integer, ``price`` a
                non-negative number.
            batch_id: the batch's identifier (only checked to be non-empty).

        Returns:
            ``{"items": [{sku, quantity, price, line_total}, ...], "count": int,
            "total": float}``, amounts rounded to cents.

        Raises:
            ValueError: ``batch_id`` is empty or a line is malformed (the
                message names the line, e.g. ``items[2].quantity``).
        """
        if not batch_id:
            raise ValueError("batch_id must not be empty")
        lines = []
        total = Decimal(0)
        for index, item in enumerate(items):
            where = f"items[{index}]"
            if not isinstance(item, Mapping):
                raise ValueError(f"{where} must be an object, got {type(item).__name__}")
            sku = item.get("sku")
            quantity = item.get("quantity")
            price = item.get("price")
            if not isinstance(sku, str) or not sku:
                raise ValueError(f"{where}.sku must be a non-empty string")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                raise ValueError(f"{where}.quantity must be a positive integer, got {quantity!r}")
            if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                raise ValueError(f"{where}.price must be a non-negative number, got {price!r}")
            line_total = Decimal(str(price)) * quantity
            total += line_total
            lines.append(
                {
                    "sku": sku,
                    "quantity": quantity,
                    "price": float(price),
                    "line_total": cents(line_total),
                }
            )
        return {"items": lines, "count": len(lines), "total": cents(total)}


SERVICES: Final[dict[str, object]] = {"Items": Items}
"""The services this module registers, by name (see :func:`examples.services.register`)."""

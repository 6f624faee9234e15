"""The ``Records`` service: cleans and scores one raw record at a time.

Used by: examples/data_pipeline.yml (called once per record inside a foreach loop).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import flowkit

from ._support import cents

__all__ = ["HIGH_PRIORITY_WEIGHT", "SERVICES", "Records"]

HIGH_PRIORITY_WEIGHT: Final = Decimal("1.5")
"""Records with ``"priority": "high"`` score this many times their amount."""


@flowkit.service("Records")
class Records:
    """Record enrichment for the data pipeline."""

    def enrich(self, record: Mapping[str, Any], position: int, source: str) -> dict[str, Any]:
        """Normalize ``record`` and add what the pipeline aggregates on.

        The customer name is trimmed and title-cased (``customer`` or ``name``);
        the amount is parsed from a number or text such as ``"$1,200.50"``.
        A record is valid when it has a customer and a positive amount.

        Args:
            record: the raw record.
            position: its index in the input (kept as ``position``).
            source: where the records come from (kept as ``source``).

        Returns:
            A copy of ``record`` with ``customer`` (str), ``amount`` (float, 0.0
            when unreadable), ``score`` (float: the amount, weighted for
            high-priority records; 0.0 when invalid), ``valid`` (bool),
            ``position`` and ``source``.

        Raises:
            TypeError: ``record`` is not a mapping.
        """
        if not isinstance(record, Mapping):
            raise TypeError(f"record {position} must be an object, got {type(record).__name__}")
        raw_name = record.get("customer") or record.get("name") or ""
        customer = " ".join(str(raw_name).split()).title()
        amount = _amount(record.get("amount"))
        valid = bool(customer) and amount is not None and amount > 0
        weight = HIGH_PRIORITY_WEIGHT if record.get("priority") == "high" else Decimal(1)
        score = amount * weight if valid and amount is not None else Decimal(0)
        return {
            **record,
            "customer": customer,
            "amount": cents(amount) if amount is not None else 0.0,
            "score": cents(score),
            "valid": valid,
            "position": position,
            "source": source,
        }


def _amount(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().lstrip("$").replace(",", "")
    else:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


SERVICES: Final[dict[str, object]] = {"Records": Records}
"""The services this module registers, by name (see :func:`examples.services.register`)."""

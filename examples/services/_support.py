"""Helpers shared by the example services (not services themselves)."""

from __future__ import annotations

import hashlib
import itertools
from decimal import ROUND_HALF_UP, Decimal

import flowkit

__all__ = ["cents", "digest", "idempotency_key", "money", "stable_id"]

_direct_calls = itertools.count(1)


def idempotency_key() -> str:
    """The running step's idempotency key, or a fresh one outside a workflow.

    Inside a workflow every attempt of one visit of a step (retries, and re-runs
    after a crash) gets the same key, so a service that remembers its effects by
    this key performs each of them once. Called directly (from a REPL or a unit
    test), each call is a new operation: ``direct-1``, ``direct-2``…
    """
    try:
        return flowkit.current().idempotency_key
    except flowkit.FlowkitError:
        return f"direct-{next(_direct_calls)}"


def digest(*parts: object) -> str:
    """A hex digest of ``parts``: the same parts always give the same digest."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def stable_id(prefix: str, *parts: object) -> str:
    """A short identifier derived from ``parts``, such as ``pay_3f2a…``."""
    return f"{prefix}_{digest(*parts)[:16]}"


def money(value: Decimal) -> Decimal:
    """``value`` rounded half-up to cents."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def cents(value: Decimal) -> float:
    """``value`` rounded half-up to cents, as a float for JSON."""
    return float(money(value))

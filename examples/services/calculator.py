"""The ``Calculator`` service.

Used by: examples/calculator.yml.
"""

from __future__ import annotations

from typing import Final

import flowkit

__all__ = ["SERVICES", "Calculator"]


@flowkit.service("Calculator")
class Calculator:
    """Four arithmetic operations; every method takes keyword arguments ``a`` and ``b``."""

    @staticmethod
    def add(a: float, b: float) -> float:
        """Return ``a + b``."""
        return a + b

    @staticmethod
    def subtract(a: float, b: float) -> float:
        """Return ``a - b``."""
        return a - b

    @staticmethod
    def multiply(a: float, b: float) -> float:
        """Return ``a * b``."""
        return a * b

    @staticmethod
    def divide(a: float, b: float) -> float:
        """Return ``a / b``.

        Raises:
            ZeroDivisionError: ``b`` is zero (the workflow's ``on_error`` handles it).
        """
        if b == 0:
            raise ZeroDivisionError("division by zero")
        return a / b


SERVICES: Final[dict[str, object]] = {"Calculator": Calculator}
"""The services this module registers, by name (see :func:`examples.services.register`)."""

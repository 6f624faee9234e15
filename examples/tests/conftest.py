"""Shared setup for the example tests: the example services, fresh for every test.

Importing ``examples.services`` registers every example service (``Calculator``,
``OrderService``...) in flowkit's default registry, which the plugin's
``flowkit_engine`` uses; the services keep some state (stock, charges, the
forecast cache), which ``examples.services.reset()`` puts back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import examples.services


@pytest.fixture(autouse=True)
def _fresh_example_services() -> Iterator[None]:
    examples.services.reset()
    yield
    examples.services.reset()

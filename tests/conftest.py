"""Shared fixtures: the Ruby gem's example workflow, which flowkit must load unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

import flowkit

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def gem_workflow() -> flowkit.WorkflowDef:
    """The gem's ``order_fulfillment.yml`` (a byte-for-byte copy in ``tests/data``)."""
    return flowkit.load(Path(__file__).parent / "data" / "gem_order_fulfillment.yml")

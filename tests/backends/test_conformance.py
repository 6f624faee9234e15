"""The store conformance suite, run against every backend in conftest.BACKENDS."""

from flowkit.testing.conformance import *  # noqa: F403

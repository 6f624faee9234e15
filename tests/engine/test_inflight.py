"""The in-process record of an execution being advanced (``flowkit.engine.leases``).

A private part of the engine, tested directly: a late parallel branch that reads the
store after a conflict must not set the execution back to an older record.
"""

from __future__ import annotations

import attrs

from flowkit.engine.leases import InFlight
from flowkit.testing.conformance import make_execution


def test_refresh_adopts_only_a_newer_record() -> None:
    current = make_execution(version=3)
    inflight = InFlight(current)
    inflight.refresh(attrs.evolve(current, version=2))  # read before this process wrote v3
    assert inflight.record is current
    assert inflight.content_version == 3
    newer = attrs.evolve(current, version=5)
    inflight.refresh(newer)
    assert inflight.record is newer
    assert inflight.content_version == 5

"""The real clock (tests use :class:`flowkit.testing.FakeClock`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["SystemClock"]


class SystemClock:
    """The real clock: a :class:`flowkit.abc.Clock` reading the system time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

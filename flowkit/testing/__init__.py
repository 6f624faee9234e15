"""Testing support for flowkit workflows.

The pytest plugin (:mod:`flowkit.testing.plugin`, loaded automatically) gives
the fixtures ``flowkit_clock``, ``flowkit_store``, ``flowkit_engine``,
``run_step`` and ``stub_service``; the helpers behind them are importable from
here for use outside pytest. :mod:`flowkit.testing.conformance` is the test
suite every store adapter must pass.
"""

from ._helpers import Call, FakeClock, StepResult, Stub, run_step, stub

__all__ = ["Call", "FakeClock", "StepResult", "Stub", "run_step", "stub"]

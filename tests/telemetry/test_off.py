"""Without a tracer provider, or without OpenTelemetry at all: nothing changes.

Each check runs in a fresh interpreter: this session's tests set global providers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUN = """
import sys, warnings
warnings.simplefilter("ignore")
import flowkit
assert not [m for m, v in sys.modules.items() if m.startswith("opentelemetry") and v]
wf = flowkit.load({"id": "w", "steps": [
    {"id": "start", "type": "start", "next": "a"},
    {"id": "a", "type": "assign", "set": {"x": 1}}]})
engine = flowkit.Engine(store="memory://", executor="inline")
result = engine.run(wf, {})
print(result.status.value, engine.load(result.execution_id).traceparent)
"""


def _python(code: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


def test_without_a_provider_steps_run_and_no_trace_is_kept() -> None:
    assert _python(RUN) == "completed None"


def test_without_opentelemetry_steps_run() -> None:
    blocked = "import sys; sys.modules['opentelemetry'] = None\n" + RUN
    assert _python(blocked) == "completed None"


def test_without_a_provider_an_active_context_is_still_kept() -> None:
    # A context propagated into the process (e.g. from a request header) is kept,
    # so steps that run where a provider is set join the caller's trace.
    code = RUN.replace(
        "result = engine.run(wf, {})",
        "from opentelemetry import context, propagate\n"
        "token = context.attach(propagate.extract({'traceparent': "
        "'00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'}))\n"
        "result = engine.run(wf, {})",
    )
    assert _python(code) == ("completed 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")

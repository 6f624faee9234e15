"""What telemetry costs per step: a 100-step chain on memory://, telemetry off and on.

Three cases, each measured in runs interleaved with runs of ``off`` in the same
process (this machine is shared: interleaving makes both see the same load):
  - ``off``: flowkit finds opentelemetry missing (as without the ``otel`` extra);
  - ``api, no provider``: opentelemetry-api installed, no provider configured
    (the usual case for an application that does not use OpenTelemetry);
  - ``sdk, spans and metrics``: the SDK's tracer provider (every span sampled,
    handed to a span processor that drops it) and meter provider (a reader
    that is never read): the cost of making spans and recording metrics.
    Measured last: a tracer provider, once set, stays set.

Logging stays at Python's default (warnings only) throughout. Each case's
median (and minimum) µs per step over ``--repeat`` runs is compared with that
of the ``off`` runs interleaved with it.

Prints a table and writes bench/results/telemetry.json.
Usage: python bench/telemetry.py [--repeat 31]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import chain, services

import flowkit
from flowkit.backends.memory import MemoryStore
from flowkit.telemetry import _steps  # to make it find opentelemetry missing

RESULTS = Path(__file__).parent / "results"
STEPS = 100


def per_step(engine: flowkit.Engine, wf: flowkit.WorkflowDef) -> float:
    """µs per step of one run."""
    gc.collect()
    started = time.perf_counter()
    result = engine.run(wf, {})
    elapsed = time.perf_counter() - started
    assert result.completed, result.error
    return elapsed / (STEPS + 1) * 1e6


_FOUND = _steps._otel


def otel(importable: bool) -> None:
    """Make flowkit find opentelemetry, or find it missing (as without the extra)."""
    _steps._otel = _FOUND if importable else _missing  # type: ignore[assignment]


def _missing() -> None:
    return None


def compare(repeat: int, setup: Callable[[], None]) -> tuple[list[float], list[float]]:
    """µs per step with telemetry off and with it on (after ``setup``), runs interleaved."""
    engine = flowkit.Engine(store=MemoryStore(warn=False), services=services())
    wf = chain(STEPS)
    setup()
    off: list[float] = []
    on: list[float] = []
    for n in range(repeat + 3):  # three rounds to warm up
        otel(importable=False)
        off_run = per_step(engine, wf)
        otel(importable=True)
        on_run = per_step(engine, wf)
        if n >= 3:
            off.append(off_run)
            on.append(on_run)
    engine.close()
    return off, on


def row(runs: list[float], off: list[float]) -> dict[str, float]:
    median = statistics.median(runs)
    return {
        "us_per_step_median": median,
        "us_per_step_min": min(runs),
        "ratio_to_off": median / statistics.median(off),
        "ratio_of_min_to_off": min(runs) / min(off),
    }


def configure_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())  # the base class: drops every span
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()

    rows: dict[str, dict[str, Any]] = {}
    off, on = compare(args.repeat, lambda: None)
    rows["off (no opentelemetry)"] = row(off, off)
    rows["api, no provider"] = row(on, off)
    off, on = compare(args.repeat, configure_sdk)
    rows["off, again"] = row(off, off)
    rows["sdk, spans and metrics"] = row(on, off)

    print(
        f"flowkit telemetry cost, {STEPS}-step chain on memory:// (python "
        f"{platform.python_version()}, {args.repeat} runs each)"
    )
    print(f"{'case':<26} {'µs/step median':>15} {'min':>8} {'vs off':>7} {'min vs off':>11}")
    for name, found in rows.items():
        print(
            f"{name:<26} {found['us_per_step_median']:>15.1f} {found['us_per_step_min']:>8.1f} "
            f"{found['ratio_to_off']:>7.3f} {found['ratio_of_min_to_off']:>11.3f}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "telemetry.json"
    out.write_text(
        json.dumps(
            {"python": sys.version, "machine": platform.machine(), "steps": STEPS, "rows": rows},
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

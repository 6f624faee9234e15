"""Per-step engine overhead on the memory store (issue #3's bench).

Runs, in one process and one run:
  - a chain of 100 trivial call steps (µs per step);
  - a 1,000-iteration foreach loop with one trivial call step in its body;
  - loops of 100, 1,000 and 10,000 iterations, to show the per-step cost stays flat.

Prints a table and writes bench/results/engine.json.
Usage: python bench/engine.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import chain, loop

import flowkit
from flowkit.backends.memory import MemoryStore

RESULTS = Path(__file__).parent / "results"


def measure(
    engine: flowkit.Engine, wf: flowkit.WorkflowDef, data: dict[str, Any], steps: int, repeat: int
) -> dict[str, Any]:
    per_step = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        result = engine.run(wf, data)
        elapsed = time.perf_counter() - started
        assert result.completed, result.error
        per_step.append(elapsed / steps * 1e6)
    return {
        "steps": steps,
        "us_per_step_min": min(per_step),
        "us_per_step_median": statistics.median(per_step),
        "us_per_step_max": max(per_step),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    services = flowkit.ServiceRegistry()
    services.register("Bench", {"noop": lambda i: i})
    engine = flowkit.Engine(store=MemoryStore(warn=False), services=services)

    rows = {}
    rows["chain of 100 call steps"] = measure(engine, chain(100), {}, 101, args.repeat)
    for n in (100, 1_000, 10_000):
        items = list(range(n))
        # n body steps + start + the loop step itself
        rows[f"loop of {n:,} iterations"] = measure(
            engine, loop(n), {"items": items}, n + 2, args.repeat if n < 10_000 else 3
        )

    print(f"flowkit engine overhead on memory:// (python {platform.python_version()})")
    print(f"{'case':<28} {'µs/step min':>12} {'median':>10} {'max':>10}")
    for name, row in rows.items():
        print(
            f"{name:<28} {row['us_per_step_min']:>12.1f} {row['us_per_step_median']:>10.1f} "
            f"{row['us_per_step_max']:>10.1f}"
        )
    flat = (
        rows["loop of 10,000 iterations"]["us_per_step_median"]
        / rows["loop of 100 iterations"]["us_per_step_median"]
    )
    print(f"10,000-iteration loop / 100-iteration loop per-step ratio: {flat:.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "engine.json"
    out.write_text(
        json.dumps(
            {
                "python": sys.version,
                "machine": platform.machine(),
                "rows": rows,
                "loop_flatness_ratio": flat,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

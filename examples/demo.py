"""The flowkit demo: a big order waits for a manager, then ships — across two processes.

Run it from the repository root (``python examples/demo.py``). It uses the
default store, ``sqlite:///flowkit.db`` in the working directory, so what it
does is still there afterwards: try ``flowkit list`` and ``flowkit show ID``.

1. This process runs ``examples/order_fulfillment.yml`` for an order above the
   approval threshold; the workflow validates, prices and halts for approval.
2. A separate process, ``flowkit resume ID --approve --by sales_manager``,
   continues it from its last checkpoint: payment, reservation, shipment.
3. This process reads the finished execution and its audit log back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import examples.services  # noqa: E402, F401  (registers the example services)
import flowkit  # noqa: E402

WORKFLOW = HERE / "order_fulfillment.yml"
ORDER = {
    "order_id": "demo-1",
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "address": "London"},
    "items": [{"sku": "LAPTOP", "quantity": 2, "price": 1299.0}],
    "payment": {"card_number": "4242424242424242"},
}


def main() -> None:
    engine = flowkit.Engine()  # the configured store: sqlite:///flowkit.db by default
    store_url = flowkit.configure().store
    print(f"store: {store_url}\n")

    result = engine.run(flowkit.load(WORKFLOW), ORDER)
    assert result.halt is not None, result
    print(f"1. {result.execution_id} is {result.status}: {result.halt.prompt}")

    command = [
        str(Path(sys.executable).parent / "flowkit"),
        "resume",
        result.execution_id,
        "--approve",
        "--by",
        "sales_manager",
        "--workflow",
        str(WORKFLOW),
        "-m",
        "examples.services",
        "--store",
        store_url,
    ]
    print(
        "2. in another process: flowkit resume", result.execution_id, "--approve --by sales_manager"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)

    final = engine.load(result.execution_id)
    print(f"3. {final.id} is {final.status}; its output:")
    for key, value in final.result.items():
        print(f"     {key}: {value}")
    print("\n   the audit log (one checkpoint per step):")
    for entry in engine.store.entries(final.id):
        print(f"     {entry.seq:>2}  {entry.step_id:<20} {entry.action}")
    engine.close()


if __name__ == "__main__":
    main()

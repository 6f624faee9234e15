"""The flowkit demo: a big order waits for a manager, then ships — across two processes.

Run it from the repository root (``python examples/demo.py``). It uses the
default store, ``sqlite:///flowkit.db`` in the working directory, so what it
does is still there afterwards: try ``flowkit list`` and ``flowkit show ID``.

1. This process runs ``examples/order_fulfillment.yml`` for an order above the
   approval threshold; the workflow validates, prices and halts for approval.
2. A separate process, ``flowkit resume ID --approve --by sales_manager
   --workflow examples/order_fulfillment.yml -m examples.services`` (printed as
   it runs, so that you can run it yourself), continues it from its last
   checkpoint: payment, reservation, shipment.
3. This process reads the finished execution and its audit log back.
"""

from __future__ import annotations

import os
import shlex
import shutil
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


def _flowkit() -> str:
    """The ``flowkit`` command of this Python, as the user can type it here."""
    installed = Path(sys.executable).parent / "flowkit"
    found = shutil.which("flowkit")
    if found is not None and Path(found).resolve() == installed.resolve():
        return "flowkit"
    return _shown(installed)


def _shown(path: Path) -> str:
    """``path`` as typed here: relative below the working directory, else absolute."""
    relative = os.path.relpath(path)
    return shlex.quote(str(path) if relative.startswith("..") else relative)


def main() -> None:
    engine = flowkit.Engine()  # the configured store: sqlite:///flowkit.db by default
    store_url = flowkit.configure().store
    print(f"store: {store_url}\n")

    result = engine.run(flowkit.load(WORKFLOW), ORDER)
    assert result.halt is not None, result
    print(f"1. {result.execution_id} is {result.status}: {result.halt.prompt}")

    # What another process runs, printed as a command that works as printed here.
    command = f"{_flowkit()} resume {result.execution_id} --approve --by sales_manager"
    command += f" --workflow {_shown(WORKFLOW)} -m examples.services"
    if Path.cwd() != ROOT:  # -m imports from the working directory, and from PYTHONPATH
        command = f"PYTHONPATH={shlex.quote(str(ROOT))} {command}"
    if "FLOWKIT_STORE" in os.environ:
        command += f" --store {shlex.quote(store_url)}"
    print(f"2. in another process: {command}")
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)

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

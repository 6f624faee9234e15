"""The process the crash test kills: runs an agent whose second tool call blocks.

Usage: ``python crash_worker.py STORE_URL EXECUTION_ID WORKDIR``

The model is a :class:`flowkit.ai.ScriptedProvider` logging every request to
``WORKDIR/model_calls.jsonl``; the tools log their calls to
``WORKDIR/tool_calls.jsonl``. With ``CRASH_WORKER_BLOCK=1`` the ``wait`` tool
writes ``WORKDIR/blocked`` and never returns, so the test can SIGKILL the
process between the first and the second model turn.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import flowkit
import flowkit.ai as ai
from flowkit.ai import ScriptedProvider, reply, tool_call

WORKFLOW: dict[str, Any] = {
    "id": "crashing_agent",
    "inputs": {"order_id": {"type": "string"}},
    "agents": [{"id": "clerk", "model": "m", "tools": ["lookup", "wait"]}],
    "tools": [
        {
            "id": "lookup",
            "parameters": [{"name": "order_id", "required": True}],
            "service": "Work",
            "method": "lookup",
        },
        {"id": "wait", "service": "Work", "method": "wait"},
    ],
    "steps": [
        {"id": "start", "type": "start", "next": "help"},
        {
            "id": "help",
            "type": "agent",
            "agent_id": "clerk",
            "prompt": "Order $input.order_id",
            "output": "answer",
        },
    ],
}


def first_turn() -> Any:
    """The model's first reply: look the order up, then wait."""
    return reply(
        tool_calls=[tool_call("lookup", _id="c1", order_id="A-1"), tool_call("wait", _id="c2")]
    )


class Work:
    """The tools; each call is appended to ``tool_calls.jsonl`` in ``workdir``."""

    def __init__(self, workdir: Path, block: bool) -> None:
        self.workdir = workdir
        self.block = block

    def _log(self, name: str) -> None:
        line = {"tool": name, "pid": os.getpid(), "key": flowkit.current().idempotency_key}
        with (self.workdir / "tool_calls.jsonl").open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    def lookup(self, order_id: str) -> dict[str, Any]:
        self._log("lookup")
        return {"order_id": order_id, "status": "shipped"}

    def wait(self) -> str:
        self._log("wait")
        if self.block:
            (self.workdir / "blocked").write_text(str(os.getpid()))
            while True:
                time.sleep(1)
        return "waited"


def main() -> None:
    url, execution_id, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    services = flowkit.ServiceRegistry()
    services.register("Work", Work(workdir, block=os.environ.get("CRASH_WORKER_BLOCK") == "1"))
    engine = flowkit.Engine(store=url, services=services, lease_seconds=1)
    provider = ScriptedProvider(
        [first_turn(), reply("never requested")], log=workdir / "model_calls.jsonl"
    )
    ai.set_provider(provider, engine=engine)
    engine.run(flowkit.load(WORKFLOW), {"order_id": "A-1"}, execution_id=execution_id)


if __name__ == "__main__":
    main()

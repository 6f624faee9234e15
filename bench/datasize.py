"""Per-step cost with a big value in ctx: 1 KB next to 1 MB, on every store (SPEC §18).

Each round runs, on each store, one execution of each of these, one at a time:

  - ``1kb`` and ``1mb``: a step stores a string of 1 KiB (or 1 MiB) in ctx, then
    ``--steps`` (50) small steps follow, each a call of a service that returns its
    input. A small step's cost is the time from one small step's call to the next
    one's (the median of a run's, which a burst of other work on the machine moves
    little; the mean is kept in the results too): the engine's work and the
    checkpoint of each small step, which should not grow with what an earlier step
    stored. The step that stores the value is timed too (from its call to the next
    step's call: mostly its own checkpoint).
  - ``loop`` (flowkit only): a foreach loop over ``--loop`` (10,000) items whose body
    is one small call step, collecting every output. Per iteration over the whole
    loop (the mean), and in its first and its last tenth (the median): the last ÷ the
    first stays near 1 when an iteration does not rewrite what earlier iterations
    collected.
  - ``fan8`` and ``fan64`` (flowkit only): a parallel step whose 8 (or 64) branches
    each return a string of 16 KiB. Per branch: the execution's time ÷ its branches;
    64 ÷ 8 stays near 1 when a branch's checkpoint does not write again what the
    branches before it returned.

flowkit runs with the inline executor on memory, SQLite (a file: WAL,
synchronous=FULL, or what ``--sqlite-synchronous`` says), PostgreSQL (a scratch
database), MariaDB and Redis. The same workload runs on LangGraph (a node storing
the value in the graph's state, then a chain of small nodes, ``durability="sync"``)
with InMemorySaver, SqliteSaver and PostgresSaver, and on DBOS Transact (a
``@DBOS.workflow`` whose first ``@DBOS.step`` returns the value, kept in a local
variable, then small steps: DBOS records step outputs, not the workflow's variables)
on SQLite (the file in WAL) and PostgreSQL.

Reported: µs per small step after 1 KB and after 1 MB (median and min-max over
``--repeat`` rounds), the ratio 1 MB ÷ 1 KB of the same round (median; SPEC §18's
goal: ≤ 1.2), the value-storing step, and for the loop µs per iteration overall,
in its first and last tenth, and last ÷ first. Every contestant runs in a process of
its own; rounds rotate the contestants and their ways; a first round warms up.

Usage:
  python bench/datasize.py [--repeat 5] [--only sqlite,postgresql] [--steps 50]
      [--loop 10000] [--peers-python /tmp/peers/bin/python]
      [--baseline-python /tmp/before/.venv/bin/python] [--label after]
  python bench/datasize.py --from-json bench/results/datasize.json   # the .md again

As for ``bench/concurrency.py``: flowkit comes from wherever the interpreter finds
it (the results name it), ``--baseline-python`` adds a second flowkit in the same
rounds (the rows "flowkit, baseline"), the peers run with ``--peers-python``, the
servers are found through the same variables, and results go to
``bench/results/datasize[.LABEL].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _remote import (
    add_arguments,
    check_arguments,
    dbos_launch,
    flowkit_specs,
    header,
    langgraph_saver,
    peer_specs,
    rewrite,
    run,
    serve,
    settings_text,
    spread,
    store_title,
    write,
)

#: The sizes of the stored value, in characters of ASCII (= bytes of JSON text).
SIZES = {"1kb": 1 << 10, "1mb": 1 << 20}
#: SPEC §18's goal for the small steps' cost after 1 MB ÷ after 1 KB.
GOAL = 1.2
#: The fan-outs: branches of the parallel step, by way.
FANOUTS = {"fan8": 8, "fan64": 64}
#: What each branch of a fan-out returns: a string of this many characters.
BRANCH_SIZE = 16 << 10


class Ticks:
    """The moments the service calls happened, in the contestant's process."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def blob(self, size: int) -> str:
        self.times.append(time.perf_counter())
        return "x" * size

    def tick(self, i: int) -> int:
        self.times.append(time.perf_counter())
        return i

    def run(self, work: Callable[[], object]) -> list[float]:
        self.times = []
        gc.collect()
        work()
        return self.times


def after_value(times: Sequence[float]) -> dict[str, float]:
    """From the calls' moments (the value-storing step's, then the small steps'): µs
    per small step — the median of the intervals between consecutive small calls, which
    a burst of other work on the machine moves little, and their mean — and µs from the
    value-storing step's call to the next call."""
    small = times[1:]
    return {
        "us_per_step": median_interval(small) * 1e6,
        "mean_us_per_step": (small[-1] - small[0]) / (len(small) - 1) * 1e6,
        "value_step_us": (times[1] - times[0]) * 1e6,
    }


def median_interval(times: Sequence[float]) -> float:
    return statistics.median(b - a for a, b in itertools.pairwise(times))


# --- the contestants (each in its own process) --------------------------------------------------


class FlowkitData:
    """flowkit (inline executor) on one store."""

    def __init__(self, url: str, prefix: str, steps: int, loop: int) -> None:
        self.url, self.prefix, self.steps, self.loop = url, prefix, steps, loop

    def setup(self) -> dict[str, Any]:
        from _common import open_store, provenance, store_settings

        import flowkit

        self.ticks = Ticks()
        registry = flowkit.ServiceRegistry()
        registry.register("Data", {"blob": self.ticks.blob, "tick": self.ticks.tick})
        self.store = open_store(self.url, self.prefix)
        self.engine = flowkit.Engine(store=self.store, executor="inline", services=registry)
        self.workflows = {way: self._after_value(size) for way, size in SIZES.items()}
        self.collecting = self._collecting() if self.loop else None
        self.fanouts = {way: self._fanout(count) for way, count in FANOUTS.items()}
        return {"flowkit": provenance(), **store_settings(self.store)}

    def _after_value(self, size: int) -> Any:
        import flowkit

        steps: list[dict[str, Any]] = [
            {"id": "start", "type": "start", "next": "value"},
            {
                "id": "value",
                "type": "call",
                "service": "Data",
                "method": "blob",
                "input": {"size": size},
                "output": "value",
                "next": "s0",
            },
        ]
        for i in range(self.steps):
            steps.append(
                {
                    "id": f"s{i}",
                    "type": "call",
                    "service": "Data",
                    "method": "tick",
                    "input": {"i": i},
                    "output": "last",
                    **({"next": f"s{i + 1}"} if i + 1 < self.steps else {}),
                }
            )
        return flowkit.load({"id": f"after_{size}", "steps": steps})

    def _collecting(self) -> Any:
        import flowkit

        return flowkit.load(
            {
                "id": "collecting",
                "inputs": {"items": {"type": "array"}},
                "steps": [
                    {"id": "start", "type": "start", "next": "each"},
                    {
                        "id": "each",
                        "type": "loop",
                        "over": "$input.items",
                        "max": self.loop,
                        "output": "results",
                        "do": [
                            {
                                "id": "work",
                                "type": "call",
                                "service": "Data",
                                "method": "tick",
                                "input": {"i": "$item"},
                            }
                        ],
                    },
                ],
            }
        )

    def _fanout(self, count: int) -> Any:
        import flowkit

        branch = {"type": "call", "service": "Data", "method": "blob"}
        return flowkit.load(
            {
                "id": f"fanout_{count}",
                "steps": [
                    {"id": "start", "type": "start", "next": "all"},
                    {
                        "id": "all",
                        "type": "parallel",
                        "output": "outputs",
                        "branches": [
                            {"id": f"b{i}", "input": {"size": BRANCH_SIZE}, **branch}
                            for i in range(count)
                        ],
                    },
                ],
            }
        )

    def run(self, way: str) -> dict[str, float]:
        def execute(wf: Any, data: dict[str, Any]) -> None:
            result = self.engine.run(wf, data)
            if not result.completed:
                raise RuntimeError(f"the execution did not complete: {result.error}")

        if way in FANOUTS:
            started = time.perf_counter()
            execute(self.fanouts[way], {})
            return {"us_per_branch": (time.perf_counter() - started) / FANOUTS[way] * 1e6}
        if way != "loop":
            return after_value(self.ticks.run(lambda: execute(self.workflows[way], {})))
        times = self.ticks.run(lambda: execute(self.collecting, {"items": list(range(self.loop))}))
        if len(times) != self.loop:
            raise RuntimeError(f"{len(times)} iterations instead of {self.loop}")
        tenth = self.loop // 10
        return {
            "us_per_iteration": (times[-1] - times[0]) / (self.loop - 1) * 1e6,
            "first_us": median_interval(times[:tenth]) * 1e6,
            "last_us": median_interval(times[-tenth:]) * 1e6,
        }

    def close(self) -> None:
        from _common import drop_store

        self.engine.close()
        try:
            drop_store(self.store, self.prefix)
        finally:
            self.store.close()


class LangGraphData:
    """LangGraph: a node that stores the value in the state, then a chain of small
    nodes; ``durability="sync"``; a new thread id per run."""

    def __init__(self, url: str, steps: int) -> None:
        self.url, self.steps = url, steps

    def setup(self) -> dict[str, Any]:
        import importlib.metadata
        from typing import TypedDict

        from langgraph.graph import END, START, StateGraph

        ticks = self.ticks = Ticks()

        class State(TypedDict):
            size: int
            value: str
            i: int

        def value(state: State) -> dict[str, str]:
            return {"value": ticks.blob(state["size"])}

        def small(state: State) -> dict[str, int]:
            return {"i": ticks.tick(state["i"]) + 1}

        self.saver, settings, self._close = langgraph_saver(self.url, 1)
        graph = StateGraph(State)
        graph.add_node("value", value)
        for k in range(self.steps):
            graph.add_node(f"n{k}", small)
        graph.add_edge(START, "value")
        graph.add_edge("value", "n0")
        for k in range(self.steps - 1):
            graph.add_edge(f"n{k}", f"n{k + 1}")
        graph.add_edge(f"n{self.steps - 1}", END)
        self.graph = graph.compile(checkpointer=self.saver)
        return {"langgraph": importlib.metadata.version("langgraph"), **settings}

    def run(self, way: str) -> dict[str, float]:
        config = {
            "configurable": {"thread_id": uuid.uuid4().hex},
            "recursion_limit": self.steps + 10,
        }
        state = {"size": SIZES[way], "value": "", "i": 0}

        def invoke() -> None:
            out = self.graph.invoke(state, config, durability="sync")
            assert out["i"] == self.steps, out["i"]
            assert len(out["value"]) == SIZES[way]

        return after_value(self.ticks.run(invoke))

    def close(self) -> None:
        self._close()


class DBOSData:
    """DBOS Transact: a workflow whose first step returns the value, then small steps."""

    def __init__(self, url: str, steps: int) -> None:
        self.url, self.steps = url, steps

    def setup(self) -> dict[str, Any]:
        from dbos import DBOS

        ticks = self.ticks = Ticks()

        @DBOS.step(name="value")
        def value_step(size: int) -> str:
            return ticks.blob(size)

        @DBOS.step(name="small")
        def small_step(i: int) -> int:
            return ticks.tick(i)

        @DBOS.workflow(name="after_value")
        def after_value_workflow(size: int, steps: int) -> int:
            value = value_step(size)
            for i in range(steps):
                small_step(i)
            return len(value)

        self.workflow = after_value_workflow
        self.dbos, settings = dbos_launch(self.url)
        return settings

    def run(self, way: str) -> dict[str, float]:
        def call() -> None:
            assert self.workflow(SIZES[way], self.steps) == SIZES[way]

        return after_value(self.ticks.run(call))

    def close(self) -> None:
        self.dbos.destroy()


FACTORIES: dict[str, Callable[..., Any]] = {
    "flowkit": FlowkitData,
    "dbos": DBOSData,
    "langgraph": LangGraphData,
}


# --- the run -----------------------------------------------------------------------------------


def derive(samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """The sizes side by side (with the ratio of the same round's), and the loop."""
    found: dict[str, Any] = {
        way: {
            "us_per_step": spread([s["us_per_step"] for s in samples[way]]),
            "value_step_us": statistics.median(s["value_step_us"] for s in samples[way]),
        }
        for way in SIZES
    }
    pairs = zip(samples["1kb"], samples["1mb"], strict=True)
    found["ratio"] = spread([big["us_per_step"] / small["us_per_step"] for small, big in pairs])
    if samples.get("loop"):
        loop = samples["loop"]
        found["loop"] = {
            "us_per_iteration": spread([s["us_per_iteration"] for s in loop]),
            "first_us": statistics.median(s["first_us"] for s in loop),
            "last_us": statistics.median(s["last_us"] for s in loop),
            "ratio": spread([s["last_us"] / s["first_us"] for s in loop]),
        }
    if samples.get("fan64"):
        small, big = samples["fan8"], samples["fan64"]
        found["fanout"] = {
            way: spread([s["us_per_branch"] for s in samples[way]]) for way in FANOUTS
        } | {
            "ratio": spread(
                [b["us_per_branch"] / a["us_per_branch"] for a, b in zip(small, big, strict=True)]
            )
        }
    return found


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(FACTORIES)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--steps", type=int, default=50, help="small steps after the value")
    parser.add_argument("--loop", type=int, default=10_000, help="loop iterations (0: none)")
    args = parser.parse_args()
    if args.from_json:
        rewrite(args.from_json, report)
        return
    check_arguments(parser, args)
    if args.steps < 3 or 0 < args.loop < 30:
        parser.error("--steps must be 3 or more, --loop 0 or 30 or more")
    script = str(Path(__file__).resolve())

    def contestants(
        store: str, where: dict[str, str], peers: dict[str, Any]
    ) -> list[dict[str, Any]]:
        params = {"steps": args.steps, "loop": args.loop}
        ways = [*SIZES, *(["loop"] if args.loop else []), *FANOUTS]
        flowkits = flowkit_specs(script, where, args, params, ways)
        return flowkits + peer_specs(script, store, where, peers, {"steps": args.steps}, [*SIZES])

    document = run(args, contestants)
    for result in document["stores"].values():
        for row in result["rows"].values():
            row |= derive(row["samples"])
    document |= {"sizes": SIZES, "steps": args.steps, "loop": args.loop}
    write("datasize", args, document, report)


# --- the report --------------------------------------------------------------------------------


def report(document: dict[str, Any]) -> str:
    lines = header(document, "Per-step cost with a big value in ctx", "python bench/datasize.py")
    lines += [
        f"After one step stored a string of 1 KiB or 1 MiB in ctx, {document['steps']} small "
        "steps: µs per small step (a run's median step; the median of the rounds', "
        "min-max in brackets), and 1 MB ÷ 1 KB of the "
        f"same round (median; goal ≤ {GOAL}). Value step: µs from the call of the step "
        "that stored the value to the next step's call (mostly its checkpoint).",
        "",
        "| store | contestant | after 1 KB, µs/step | after 1 MB, µs/step | 1 MB ÷ 1 KB "
        "| value step µs, 1 KB / 1 MB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for store, result in document["stores"].items():
        title = store_title(document, store)
        for key, row in result["rows"].items():
            label = f"**{row['label']}**" if key == "flowkit" else row["label"]
            small, big, ratio = row["1kb"]["us_per_step"], row["1mb"]["us_per_step"], row["ratio"]
            lines.append(
                f"| {title} | {label} | {_spread(small)} | {_spread(big)} "
                f"| {ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f}) "
                f"| {row['1kb']['value_step_us']:,.0f} / {row['1mb']['value_step_us']:,.0f} |"
            )
            title = ""
        for key, why in result["failed"].items():
            lines.append(f"| {title} | {key} failed: {why} | | | | |")
    for store, why in document["skipped"].items():
        lines.append(f"| {store_title(document, store)} | skipped: {why} | | | | |")
    if document["loop"]:
        tenth = document["loop"] // 10
        lines += [
            "",
            f"## A loop collecting {document['loop']:,} outputs",
            "",
            f"µs per iteration: the mean over the whole loop, the median iteration of its "
            f"first {tenth:,} and of its last {tenth:,}, and last ÷ first (median of the "
            "rounds' ratios, min-max in brackets).",
            "",
            "| store | contestant | µs/iteration | first | last | last ÷ first |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += _table(
            document,
            "loop",
            lambda loop: (
                f"{_spread(loop['us_per_iteration'])} | {loop['first_us']:,.0f} "
                f"| {loop['last_us']:,.0f} | {_ratio(loop['ratio'])}"
            ),
        )
    fanouts = _table(
        document,
        "fanout",
        lambda fanout: (
            f"{_spread(fanout['fan8'])} | {_spread(fanout['fan64'])} | {_ratio(fanout['ratio'])}"
        ),
    )
    if fanouts:
        lines += [
            "",
            "## A parallel step's branches",
            "",
            f"µs per branch of a parallel step whose branches each return "
            f"{BRANCH_SIZE >> 10} KiB (the execution's time ÷ its branches), and 64 ÷ 8 "
            "branches (median of the rounds' ratios, min-max in brackets).",
            "",
            "| store | contestant | 8 branches | 64 branches | 64 ÷ 8 |",
            "|---|---|---:|---:|---:|",
            *fanouts,
        ]
    lines += ["", "## Settings and machine", ""]
    for store, result in document["stores"].items():
        lines.append(f"- {store_title(document, store)}: {result['load']}. {settings_text(result)}")
    return "\n".join(lines).rstrip() + "\n"


def _table(document: dict[str, Any], key: str, cells: Callable[[dict[str, Any]], str]) -> list[str]:
    """A line per contestant that measured ``key``: its store (once), its label, ``cells``."""
    lines = []
    for store, result in document["stores"].items():
        title = store_title(document, store)
        for row in result["rows"].values():
            if row.get(key):
                lines.append(f"| {title} | {row['label']} | {cells(row[key])} |")
                title = ""
    return lines


def _spread(cell: dict[str, float]) -> str:
    return f"{cell['median']:,.0f} ({cell['min']:,.0f}-{cell['max']:,.0f})"


def _ratio(cell: dict[str, float]) -> str:
    return f"{cell['median']:.2f} ({cell['min']:.2f}-{cell['max']:.2f})"


if __name__ == "__main__":
    main()

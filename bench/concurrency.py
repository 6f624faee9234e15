"""Throughput under concurrency: steps/s with 1, 8 and 32 executions at a time (SPEC §18).

The workload is a batch of ``--executions`` (64) executions of a 20-step chain: a
start step and 20 ``call`` steps of a service that returns its input. Each round
runs the batch, on each store, in these ways:

  - one after another on the thread executor, ``engine.start(wf).result()`` for each
    execution: the baseline of every ratio;
  - one after another with the inline executor (``engine.run``), for reference;
  - N at a time, for N in ``--levels`` (1, 8, 32): the thread executor with N workers
    (``flowkit.ThreadDriver(max_workers=N)``); the whole batch is started with
    ``engine.start``, then every result awaited.

Stores: memory (no I/O, for reference), SQLite (a file: WAL, synchronous=FULL, or
what ``--sqlite-synchronous`` says), PostgreSQL (a scratch database), MariaDB and
Redis (a unique table or key prefix).
The peers, on the same store in the same run, run the same batch one after another
and 8 at a time (``--peer-levels``): DBOS Transact (a ``@DBOS.workflow`` calling 20
``@DBOS.step`` functions; N at a time = enqueued on a queue with
``global_concurrency=N``) on SQLite (the file in WAL) and PostgreSQL; LangGraph (a
20-node chain, ``durability="sync"``; N at a time = N threads calling ``invoke``) on
SQLite, PostgreSQL and memory (InMemorySaver).

Reported per way: steps/s (steps of the batch / its wall time; median and min-max
over ``--repeat`` rounds), its ratio to the same contestant's one-after-another
batch of the same round (median of the rounds' ratios), CPU µs per step of the
contestant's process and of the database server, and how many CPUs the whole
machine kept busy meanwhile (near 2 on a 2-CPU machine: the machine set the pace).
With ``--baseline-python``, a second flowkit (that Python's: e.g. a worktree at an
earlier commit) runs in the same rounds, and flowkit's rows say how much faster
they are than the baseline's (÷ baseline).

Usage:
  python bench/concurrency.py [--repeat 5] [--only sqlite,postgresql] [--levels 1,8,32]
      [--executions 64] [--peers-python /tmp/peers/bin/python]
      [--baseline-python /tmp/before/.venv/bin/python] [--label after]
  python bench/concurrency.py --from-json bench/results/concurrency.json   # the .md again

flowkit is imported from wherever the interpreter finds it (run the script with a
checkout's interpreter to measure that checkout); the results name its file, git
commit and changed files, and go to ``bench/results/concurrency[.LABEL].json`` and
``.md``. The peers run with ``--peers-python`` (a virtualenv of their own).
Servers (loopback): FLOWKIT_BENCH_POSTGRESQL_ADMIN_URL (default
postgresql://postgres@127.0.0.1:5432/postgres; a scratch database is created and
dropped), FLOWKIT_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306/test),
FLOWKIT_BENCH_REDIS_URL (default redis://127.0.0.1:6379/0); tables and keys get a
unique prefix and are removed afterwards.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _remote import (
    DBOS_POLL,
    add_arguments,
    check_arguments,
    dbos_launch,
    flowkit_specs,
    header,
    langgraph_saver,
    machine_busy_seconds,
    peer_specs,
    rewrite,
    run,
    serve,
    settings_text,
    spread,
    store_title,
    write,
)

STEPS = 20
#: SPEC §18's goals for 8 at a time ÷ one after another.
GOALS = {"sqlite": 2.5, "postgresql": 2.5, "redis": 1.5}


def measured(work: Callable[[], object]) -> dict[str, float]:
    """Run ``work`` once: its wall seconds, this process's CPU seconds (all threads), and
    the CPU seconds the whole machine was busy meanwhile."""
    gc.collect()
    cpu, busy = time.process_time(), machine_busy_seconds()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": time.process_time() - cpu,
        "busy_s": machine_busy_seconds() - busy,
    }


def at_a_time(way: str) -> int:
    """N of ``concurrent-N``."""
    return int(way.rpartition("-")[2])


# --- the contestants (each in its own process) --------------------------------------------------


class FlowkitBatch:
    """flowkit on one store: the batch one after another (thread executor, and inline),
    and N at a time on the thread executor with N workers."""

    def __init__(self, url: str, prefix: str, executions: int, levels: list[int]) -> None:
        self.url, self.prefix, self.executions, self.levels = url, prefix, executions, levels

    def setup(self) -> dict[str, Any]:
        from _common import chain, open_store, provenance, services, store_settings

        import flowkit

        self.store = open_store(self.url, self.prefix)
        registry = services()
        self.engines = {
            "sequential": flowkit.Engine(store=self.store, executor="thread", services=registry),
            "inline": flowkit.Engine(store=self.store, executor="inline", services=registry),
        }
        for n in self.levels:
            self.engines[f"concurrent-{n}"] = flowkit.Engine(
                store=self.store, executor=flowkit.ThreadDriver(max_workers=n), services=registry
            )
        self.wf = chain(STEPS)
        return {"flowkit": provenance(), **store_settings(self.store)}

    def run(self, way: str) -> dict[str, float]:
        engine, wf, count = self.engines[way], self.wf, self.executions

        def check(result: Any) -> None:
            if not result.completed:
                raise RuntimeError(f"an execution did not complete: {result.error}")

        def inline() -> None:
            for _ in range(count):
                check(engine.run(wf))

        def sequential() -> None:
            for _ in range(count):
                check(engine.start(wf).result())

        def concurrent() -> None:
            handles = [engine.start(wf) for _ in range(count)]
            for handle in handles:
                check(handle.result())

        return measured({"inline": inline, "sequential": sequential}.get(way, concurrent))

    def close(self) -> None:
        from _common import drop_store

        for engine in self.engines.values():
            engine.close()
        try:
            drop_store(self.store, self.prefix)
        finally:
            self.store.close()


class DBOSBatch:
    """DBOS Transact: the batch called one after another, and enqueued on a queue with
    ``global_concurrency`` N."""

    def __init__(self, url: str, executions: int, levels: list[int]) -> None:
        self.url, self.executions, self.levels = url, executions, levels

    def setup(self) -> dict[str, Any]:
        from dbos import DBOS

        steps = [DBOS.step(name=f"s{i}")(_identity) for i in range(STEPS)]

        @DBOS.workflow(name="chain")
        def chain_workflow(n: int) -> int:
            for i in range(n):
                steps[i](i)
            return n

        self.chain = chain_workflow
        self.dbos, settings = dbos_launch(self.url)
        self.queues = {
            n: DBOS.register_queue(
                f"bench_{n}", global_concurrency=n, polling_interval_sec=DBOS_POLL
            )
            for n in self.levels
        }
        return {"queue": f"global_concurrency=N, polling every {DBOS_POLL} s", **settings}

    def run(self, way: str) -> dict[str, float]:
        chain_workflow, count = self.chain, self.executions

        def sequential() -> None:
            for _ in range(count):
                assert chain_workflow(STEPS) == STEPS

        def concurrent() -> None:
            queue = self.queues[at_a_time(way)]
            handles = [queue.enqueue(chain_workflow, STEPS) for _ in range(count)]
            for handle in handles:
                assert handle.get_result(polling_interval_sec=DBOS_POLL) == STEPS

        return measured(sequential if way == "sequential" else concurrent)

    def close(self) -> None:
        self.dbos.destroy()


def _identity(i: int) -> int:
    return i


class LangGraphBatch:
    """LangGraph: a 20-node chain, ``durability="sync"``; the batch invoked one after
    another, and by N threads."""

    def __init__(self, url: str, executions: int, levels: list[int]) -> None:
        self.url, self.executions, self.levels = url, executions, levels

    def setup(self) -> dict[str, Any]:
        import importlib.metadata
        from typing import TypedDict

        from langgraph.graph import END, START, StateGraph

        class State(TypedDict):
            i: int

        def step(state: State) -> dict[str, int]:
            return {"i": state["i"] + 1}

        self.saver, settings, self._close = langgraph_saver(self.url, max(self.levels, default=1))
        graph = StateGraph(State)
        for k in range(STEPS):
            graph.add_node(f"n{k}", step)
        graph.add_edge(START, "n0")
        for k in range(STEPS - 1):
            graph.add_edge(f"n{k}", f"n{k + 1}")
        graph.add_edge(f"n{STEPS - 1}", END)
        self.graph = graph.compile(checkpointer=self.saver)
        self.pools = {n: ThreadPoolExecutor(n) for n in self.levels}
        return {"langgraph": importlib.metadata.version("langgraph"), **settings}

    def invoke(self, _: object = None) -> None:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        out = self.graph.invoke({"i": 0}, config, durability="sync")
        assert out["i"] == STEPS, out

    def run(self, way: str) -> dict[str, float]:
        count = self.executions

        def sequential() -> None:
            for _ in range(count):
                self.invoke()

        def concurrent() -> None:
            list(self.pools[at_a_time(way)].map(self.invoke, range(count)))

        return measured(sequential if way == "sequential" else concurrent)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown()
        self._close()


FACTORIES: dict[str, Callable[..., Any]] = {
    "flowkit": FlowkitBatch,
    "dbos": DBOSBatch,
    "langgraph": LangGraphBatch,
}


# --- the run -----------------------------------------------------------------------------------


def derive(samples: dict[str, list[dict[str, float]]], steps: int) -> dict[str, Any]:
    """Per way: steps/s, the ratio to one after another in the same round, CPU per step."""
    baseline = samples["sequential"]
    out: dict[str, Any] = {}
    for way, found in samples.items():
        out[way] = {
            "steps_per_s": spread([steps / s["seconds"] for s in found]),
            "over_sequential": spread(
                [base["seconds"] / s["seconds"] for base, s in zip(baseline, found, strict=True)]
            ),
            "cpu_us_per_step": statistics.median(s["cpu_s"] / steps * 1e6 for s in found),
            "server_cpu_us_per_step": statistics.median(
                s["server_cpu_s"] / steps * 1e6 for s in found
            ),
            "busy_cpus": statistics.median(s["busy_s"] / s["seconds"] for s in found),
        }
    return out


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(FACTORIES)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--executions", type=int, default=64, help="executions per batch")
    parser.add_argument("--levels", default="1,8,32", help="flowkit: executions at a time")
    parser.add_argument("--peer-levels", default="8", help="peers: executions at a time")
    args = parser.parse_args()
    if args.from_json:
        rewrite(args.from_json, report)
        return
    check_arguments(parser, args)
    levels = [int(n) for n in args.levels.split(",") if n]
    peer_levels = [int(n) for n in args.peer_levels.split(",") if n]
    script = str(Path(__file__).resolve())

    def contestants(
        store: str, where: dict[str, str], peers: dict[str, Any]
    ) -> list[dict[str, Any]]:
        concurrent = [f"concurrent-{n}" for n in levels]
        flowkits = flowkit_specs(
            script,
            where,
            args,
            {"executions": args.executions, "levels": levels},
            ["sequential", "inline", *concurrent],
        )
        params = {"executions": args.executions, "levels": peer_levels}
        ways = ["sequential", *(f"concurrent-{n}" for n in peer_levels)]
        return flowkits + peer_specs(script, store, where, peers, params, ways)

    document = run(args, contestants)
    for result in document["stores"].values():
        rows = result["rows"]
        for row in rows.values():
            row["ways"] = derive(row["samples"], args.executions * STEPS)
        if "flowkit" in rows and "baseline" in rows:
            for way, found in rows["flowkit"]["ways"].items():
                mine, theirs = rows["flowkit"]["samples"][way], rows["baseline"]["samples"][way]
                pairs = zip(theirs, mine, strict=True)
                found["over_baseline"] = spread([b["seconds"] / f["seconds"] for b, f in pairs])
    document |= {
        "executions": args.executions,
        "steps_per_execution": STEPS,
        "levels": levels,
        "peer_levels": peer_levels,
    }
    write("concurrency", args, document, report)


# --- the report --------------------------------------------------------------------------------


def _way_label(way: str) -> str:
    if way == "sequential":
        return "one after another"
    if way == "inline":
        return "one after another, inline executor"
    return f"{at_a_time(way)} at a time"


def report(document: dict[str, Any]) -> str:
    levels = document["levels"]
    lines = header(document, "Throughput under concurrency", "python bench/concurrency.py")
    lines += [
        f"A batch of {document['executions']} executions of a "
        f"{document['steps_per_execution']}-step chain of trivial call steps, one after "
        "another and N at a time (flowkit: the thread executor with N workers; DBOS: a "
        "queue with global_concurrency N; LangGraph: N threads). steps/s = steps of the "
        "batch / its wall time; ÷ seq = the batch's time one after another (thread "
        "executor) ÷ its time this way, in the same round; ÷ baseline = the baseline "
        "flowkit's time ÷ this flowkit's, the same way in the same round. Medians over "
        "the rounds, min-max in brackets.",
        "",
        "## Summary",
        "",
        "| store | contestant | ÷ seq at " + " / ".join(map(str, levels)) + " at a time "
        "| goal at 8 | steps/s one after another | steps/s 8 at a time "
        "| ÷ baseline: one after another / 8 at a time |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for store, result in document["stores"].items():
        title = store_title(document, store)
        for key, row in result["rows"].items():
            ways = row["ways"]

            def get(way: str, field: str, form: str, ways: dict[str, Any] = ways) -> str:
                return (
                    format(ways[way][field]["median"], form) if field in ways.get(way, {}) else "-"
                )

            ratios = " / ".join(get(f"concurrent-{n}", "over_sequential", ".2f") for n in levels)
            versus = " / ".join(
                get(w, "over_baseline", ".2f") for w in ("sequential", "concurrent-8")
            )
            goal = f"≥ {GOALS[store]}" if key == "flowkit" and _has_goal(document, store) else ""
            lines.append(
                f"| {title} | {_bold(key, row['label'])} | {ratios} | {goal} "
                f"| {get('sequential', 'steps_per_s', ',.0f')} "
                f"| {get('concurrent-8', 'steps_per_s', ',.0f')} "
                f"| {versus if key == 'flowkit' and 'baseline' in result['rows'] else ''} |"
            )
            title = ""
    for store, why in document["skipped"].items():
        lines.append(f"| {store_title(document, store)} | skipped: {why} | | | | | |")
    lines.append("")
    for store, result in document["stores"].items():
        lines += [
            f"## {store_title(document, store)}",
            "",
            f"Machine: {result['load']}.",
            "",
            "| contestant | way | steps/s | ÷ seq | ÷ baseline | process CPU µs/step "
            "| server CPU µs/step | busy CPUs |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key, row in result["rows"].items():
            label = _bold(key, row["label"])
            for way, found in row["ways"].items():
                rate, over = found["steps_per_s"], found["over_sequential"]
                versus = found.get("over_baseline")
                lines.append(
                    f"| {label} | {_way_label(way)} | {rate['median']:,.0f} "
                    f"({rate['min']:,.0f}-{rate['max']:,.0f}) | {over['median']:.2f} "
                    f"| {format(versus['median'], '.2f') if versus else ''} "
                    f"| {found['cpu_us_per_step']:,.0f} "
                    f"| {found['server_cpu_us_per_step']:,.0f} | {found['busy_cpus']:.2f} |"
                )
                label = ""
        for key, why in result["failed"].items():
            lines.append(f"| {key} | failed: {why} | | | | | | |")
        settings = settings_text(result)
        lines += ["", f"Settings read back: {settings}." if settings else "", ""]
    return "\n".join(lines).rstrip() + "\n"


def _has_goal(document: dict[str, Any], store: str) -> bool:
    """SPEC §18 sets a goal for ``store`` (on SQLite, for ``synchronous=FULL`` only)."""
    if store == "sqlite" and document.get("sqlite_synchronous", "full") != "full":
        return False
    return store in GOALS


def _bold(key: str, label: str) -> str:
    return f"**{label}**" if key == "flowkit" else label


if __name__ == "__main__":
    main()

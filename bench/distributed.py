"""Throughput and latency of the Dramatiq executor with 1, 2 and 4 worker processes.

Many short workflows (a start step and ``FLOWKIT_BENCH_STEPS`` call steps each) are
created up front; then the first message of every one is sent at once, and the
clock runs until the last one completed (the ``updated_at`` of the last
checkpoint). Each configuration starts real ``flowkit worker`` processes on
the Redis broker; the store is the Redis store when ``flowkit.backends.redis``
exists, else PostgreSQL. The inline executor runs the same workflows on the
same store in the same run, one after the other in this process.

Reported per configuration (median of ``--repeat`` rounds): steps/s,
workflows/s, scaling efficiency (throughput / (processes * the 1-process
throughput)), messages per workflow, the workers' CPU per step and its ratio to
the inline executor's, and per-message latency percentiles — from the moment a
message is sent to the moment the worker has written its last checkpoint and
sent the next message — under that load; and, separately, the time per step
with one workflow at a time on one worker process.

A step message drives its execution through consecutive steps for up to the
workers' time slice (``FLOWKIT_SLICE_SECONDS``/``FLOWKIT_SLICE_STEPS``);
``--slice-steps 1`` gives one message per step, and ``--slice-steps default,1``
runs both in the same run (rows ``dramatiq PxT`` and ``dramatiq PxT 1/msg``).

Every worker group is started at the beginning, each on its own queue, and the
rounds are interleaved (x1, x2, x4, inline, x1, …) so that every configuration
sees the same machine; idle groups only wait on their queues.

Usage: python bench/distributed.py [--workflows 200] [--repeat 5]
           [--processes 1,2,4] [--threads 8] [--slice-steps default]
           [--latency-workflows 50] [--log-level LEVEL] [--profile]
(the number of call steps per workflow is FLOWKIT_BENCH_STEPS, default 10)
Servers (loopback): FLOWKIT_BENCH_REDIS_URL (default redis://127.0.0.1:6379; the
broker uses DB 14 with a fresh key namespace, the Redis store DB 15 with a fresh key
prefix; both deleted afterwards),
FLOWKIT_BENCH_POSTGRESQL_URL (default postgresql://postgres@127.0.0.1:5432/test;
a fresh table prefix, dropped afterwards).

This file is also the module the worker processes import (``flowkit worker
distributed`` with ``bench/`` on the path): importing it registers the workflow,
its service and, when ``FLOWKIT_BENCH_LATENCY_DIR`` is set, the middleware that
records latencies.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import math
import os
import platform
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import dramatiq
import redis

import flowkit
from flowkit.backends import dramatiq as fk_dramatiq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
REDIS_URL = os.environ.get("FLOWKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRESQL_URL = os.environ.get(
    "FLOWKIT_BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BROKER_DB = 14
STORE_DB = 15
LATENCY_DIR = "FLOWKIT_BENCH_LATENCY_DIR"
STEPS = int(os.environ.get("FLOWKIT_BENCH_STEPS", "10"))
LEASE_SECONDS = 120  # longer than any round: nothing is recovered while it runs


def chain(n: int) -> flowkit.WorkflowDef:
    steps: list[dict[str, Any]] = [{"id": "start", "type": "start", "next": "s0"}]
    for i in range(n):
        steps.append(
            {
                "id": f"s{i}",
                "type": "call",
                "service": "DistBench",
                "method": "noop",
                "input": {"i": i},
                "output": "last",
                **({"next": f"s{i + 1}"} if i + 1 < n else {}),
            }
        )
    return flowkit.load({"id": f"dist_bench_{n}", "steps": steps})


WORKFLOW = chain(STEPS)


# --- what the worker processes import -------------------------------------------------------------


class LatencyRecorder(dramatiq.Middleware):
    """Stamps messages when they are sent; records send → done for each processed one."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.samples: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: Any) -> None:
        message.options["bench_sent"] = time.time()

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        sent = message.options.get("bench_sent")
        if sent is not None:
            done = time.time()
            with self.lock:
                self.samples.append((done, done - sent))

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.dump()

    def dump(self) -> None:
        if self.directory is None:
            return
        with self.lock:
            samples, self.samples = self.samples, []
        with (self.directory / f"latency-{os.getpid()}.txt").open("a") as out:
            out.writelines(f"{done:.6f} {latency:.6f}\n" for done, latency in samples)


def _register() -> None:
    flowkit.register_service("DistBench", {"noop": lambda i: i})
    flowkit.register(WORKFLOW)
    directory = os.environ.get(LATENCY_DIR)
    if directory and os.environ.get("FLOWKIT_BROKER"):
        broker = fk_dramatiq.get_runtime(queue=os.environ.get("FLOWKIT_QUEUE", "flowkit")).broker
        broker.add_middleware(LatencyRecorder(Path(directory)))


_register()


# --- the driver -----------------------------------------------------------------------------------


def pick_store() -> tuple[str, str, Any]:
    """(label, URL, cleanup) for the Redis store if it exists, else PostgreSQL."""
    try:
        import flowkit.backends.redis  # noqa: F401
    except ImportError:
        prefix = f"b{uuid.uuid4().hex[:10]}_"
        url = f"{POSTGRESQL_URL}?prefix={prefix}"
        return "postgresql", url, lambda: _drop_sql(url)
    prefix = f"fkbench-{uuid.uuid4().hex[:8]}:"
    url = f"{REDIS_URL}/{STORE_DB}?prefix={prefix}"
    return "redis", url, lambda: _drop_redis(f"{REDIS_URL}/{STORE_DB}", f"{prefix}*")


def _drop_sql(url: str) -> None:
    from flowkit.backends.sqlalchemy import SQLStore

    store = SQLStore(url)
    quote = store.engine.dialect.identifier_preparer.quote
    with store.engine.begin() as connection:
        for name in ("entries", "executions", "schema_version"):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(store.prefix + name)}")
    store.close()


def _drop_redis(url: str, pattern: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


class Workers:
    """``flowkit worker distributed`` in a process group of its own, on its own queue."""

    def __init__(
        self,
        env: dict[str, str],
        processes: int,
        threads: int,
        queue: str,
        slice_steps: int | None,
        log_level: str | None,
    ) -> None:
        self.processes = processes
        if slice_steps is not None:
            env = {**env, fk_dramatiq.SLICE_STEPS_VAR: str(slice_steps)}
        self.log = tempfile.NamedTemporaryFile(prefix="flowkit-bench-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "flowkit"),
                "worker",
                "distributed",
                "--processes",
                str(processes),
                "--threads",
                str(threads),
                "--queue",
                queue,
                *(["--log-level", log_level] if log_level else []),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until Dramatiq said every worker process is ready."""
        deadline = time.monotonic() + timeout
        while self.output().count("is ready for action") < self.processes:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not start:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        # Dramatiq's main process passes SIGTERM on to its workers, which finish
        # their messages and run the shutdown hooks (that write the latencies).
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # forked children left behind
        self.log.close()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def pids(self) -> list[int]:
        """Dramatiq's main process and its worker processes."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            return [self.process.pid, *map(int, children.read_text().split())]
        except OSError:
            return [self.process.pid]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``), 0 if unknown."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, all CPUs), from ``/proc/stat``."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def redis_server_pid(url: str) -> int | None:
    """The pid of the Redis server at ``url`` when it runs on this machine."""
    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return pid if Path(f"/proc/{pid}").exists() else None


class CpuMeter:
    """CPU seconds used by the workers, the Redis server and this process over a round."""

    def __init__(self, workers: Workers | None, redis_pid: int | None) -> None:
        self.pids = workers.pids() if workers is not None else []
        self.redis_pid = redis_pid

    def read(self) -> dict[str, float]:
        return {
            "workers": sum(cpu_seconds(pid) for pid in self.pids),
            "redis": cpu_seconds(self.redis_pid or 0),
            "driver": time.process_time(),
            "machine": machine_busy_seconds(),
        }

    @staticmethod
    def per_step(before: dict[str, float], after: dict[str, float], steps: int) -> dict[str, float]:
        return {key: (after[key] - before[key]) / steps * 1000 for key in before}


def run_round(
    engine: flowkit.Engine, runtime: fk_dramatiq.Runtime, count: int, timeout: float = 300
) -> tuple[float, int]:
    """Create ``count`` executions, send their first messages at once; (seconds, steps)."""
    created = [engine.create(WORKFLOW) for _ in range(count)]
    started = time.time()
    for execution in created:
        runtime.send_step(execution)
    deadline = time.monotonic() + timeout
    pending = [execution.id for execution in created]
    last: datetime | None = None
    while pending:  # the last created is about the last to finish: poll it first
        record = engine.load(pending[-1])
        if record.status is flowkit.Status.RUNNING:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} workflows still running after {timeout}s")
            time.sleep(0.01)
            continue
        if record.status is not flowkit.Status.COMPLETED:
            raise RuntimeError(f"execution {record.id} is {record.status}: {record.error}")
        pending.pop()
        last = record.updated_at if last is None else max(last, record.updated_at)
    assert last is not None
    return last.timestamp() - started, count * (STEPS + 1)


def run_inline(engine: flowkit.Engine, count: int) -> tuple[float, int]:
    """Run ``count`` workflows one after the other in this process; (seconds, steps)."""
    started = time.perf_counter()
    for _ in range(count):
        assert engine.run(WORKFLOW).completed
    return time.perf_counter() - started, count * (STEPS + 1)


def read_latencies(directory: Path, since: float, until: float) -> list[float]:
    """The latencies (ms) of the messages processed between ``since`` and ``until``."""
    found = []
    for path in directory.glob("latency-*.txt"):
        for line in path.read_text().splitlines():
            done, latency = map(float, line.split())
            if since <= done <= until:
                found.append(latency * 1000)
    return found


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    if len(samples) < 2:
        return {}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": max(samples)}


def profile_steps(store_url: str, broker_url: str, count: int) -> None:
    """cProfile the step actor's work (load, claim, step, checkpoint, send) in this process."""
    runtime = fk_dramatiq.Runtime(fk_dramatiq.make_broker(broker_url), queue="bench-profile")
    engine = flowkit.Engine(store=store_url, executor=fk_dramatiq.DramatiqDriver(runtime=runtime))
    runtime.attach(engine)  # the actors use this engine, not one built from the settings
    executions = [engine.create(WORKFLOW) for _ in range(count)]
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for execution in executions:
        record = execution
        while record.status is flowkit.Status.RUNNING:
            runtime.step(record.id, record.seq)
            record = engine.load(record.id)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"step actor in this process: {elapsed / (count * (STEPS + 1)) * 1e6:.0f} µs per step")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    runtime.close()
    engine.close()


def _broker(url: str) -> dramatiq.Broker:
    broker = fk_dramatiq.make_broker(url)
    broker.add_middleware(LatencyRecorder(None))  # stamps the first messages
    return broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=200, help="workflows per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per configuration")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts")
    parser.add_argument("--threads", default="8", help="threads per worker process (a list)")
    parser.add_argument(
        "--slice-steps",
        default="default",
        help="the workers' FLOWKIT_SLICE_STEPS (a list; 'default' keeps theirs, 1 = one "
        "message per step)",
    )
    parser.add_argument("--latency-workflows", type=int, default=50)
    parser.add_argument(
        "--log-level",
        help="the workers' --log-level (default: theirs, warning; info logs every step)",
    )
    parser.add_argument("--profile", action="store_true", help="profile the step actor instead")
    args = parser.parse_args()
    slices = [None if n == "default" else int(n) for n in args.slice_steps.split(",")]
    configs = [
        (int(p), int(t), n)
        for n in slices
        for t in args.threads.split(",")
        for p in args.processes.split(",")
    ]

    store_label, store_url, drop_store = pick_store()
    namespace = f"fkbench-{uuid.uuid4().hex[:8]}"
    broker_url = f"{REDIS_URL}/{BROKER_DB}?namespace={namespace}"
    tmp = Path(tempfile.mkdtemp(prefix="flowkit-bench-"))
    env = {
        **os.environ,
        "FLOWKIT_STORE": store_url,
        "FLOWKIT_BROKER": broker_url,
        "FLOWKIT_EXECUTOR": "dramatiq",
        "FLOWKIT_LEASE_SECONDS": str(LEASE_SECONDS),
        "FLOWKIT_BENCH_STEPS": str(STEPS),
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        LATENCY_DIR: str(tmp),
    }
    os.environ["FLOWKIT_LEASE_SECONDS"] = str(LEASE_SECONDS)
    if args.profile:
        try:
            profile_steps(store_url, broker_url, 100)
        finally:
            drop_store()
            _drop_redis(f"{REDIS_URL}/{BROKER_DB}", f"{namespace}:*")
        return

    # One queue per configuration: every worker group is up for the whole run,
    # idle while the others work, so the rounds can be interleaved.
    names = {config: _name(*config) for config in configs}
    runtimes = {
        config: fk_dramatiq.Runtime(
            _broker(broker_url), queue=f"bench-{config[0]}x{config[1]}-{config[2] or 'd'}"
        )
        for config in configs
    }
    engines = {
        config: flowkit.Engine(store=store_url, executor=fk_dramatiq.DramatiqDriver(runtime=rt))
        for config, rt in runtimes.items()
    }
    inline = flowkit.Engine(store=store_url, executor="inline")
    groups: dict[tuple[int, int, int | None], Workers] = {}
    load_before = os.getloadavg()
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in [*names.values(), "inline"]}
    windows: dict[str, list[tuple[float, float]]] = {name: [] for name in names.values()}
    cpu: dict[str, list[dict[str, float]]] = {name: [] for name in [*names.values(), "inline"]}
    redis_pid = redis_server_pid(f"{REDIS_URL}/{BROKER_DB}")
    try:
        for config in configs:
            processes, threads, slice_steps = config
            groups[config] = Workers(
                env, processes, threads, runtimes[config].queue, slice_steps, args.log_level
            )
        for config in configs:
            groups[config].wait_ready()
            run_round(engines[config], runtimes[config], 20, timeout=60)  # warm up
        run_inline(inline, 20)
        for _ in range(args.repeat):
            for config, name in names.items():
                since = time.time()
                meter = CpuMeter(groups[config], redis_pid)
                before = meter.read()
                sample = run_round(engines[config], runtimes[config], args.workflows)
                cpu[name].append(CpuMeter.per_step(before, meter.read(), sample[1]))
                samples[name].append(sample)
                windows[name].append((since, time.time()))
            meter = CpuMeter(None, redis_pid)
            before = meter.read()
            sample = run_inline(inline, args.workflows)
            after = meter.read()
            cpu["inline"].append(CpuMeter.per_step(before, after, sample[1]))
            samples["inline"].append(sample)
        # One workflow at a time: the time per step, without waiting in a queue.
        unloaded = {
            names[config]: [
                seconds / steps * 1000
                for seconds, steps in (
                    run_round(engines[config], runtimes[config], 1)
                    for _ in range(args.latency_workflows)
                )
            ]
            for config in configs
            if config[0] == 1
        }
    except BaseException:
        for group in groups.values():
            print(group.output()[-4000:], file=sys.stderr)
        raise
    finally:
        for group in groups.values():
            group.stop()  # the workers write their latencies when they stop
        for engine in [*engines.values(), inline]:
            engine.close()
        for runtime in runtimes.values():
            runtime.close()
        drop_store()
        _drop_redis(f"{REDIS_URL}/{BROKER_DB}", f"{namespace}:*")

    rows: dict[str, Any] = {}
    for (processes, threads, slice_steps), name in [*names.items(), ((1, 1, None), "inline")]:
        seconds = statistics.median(s for s, _ in samples[name])
        steps = samples[name][0][1]
        row: dict[str, Any] = {
            "processes": processes,
            "threads": threads,
            "seconds": [round(s, 3) for s, _ in samples[name]],
            "steps_per_s": steps / seconds,
            "workflows_per_s": args.workflows / seconds,
        }
        if name != "inline":
            row["slice_steps"] = slice_steps
            one = rows.get(_name(1, threads, slice_steps))
            if one is not None:
                row["speedup"] = row["steps_per_s"] / one["steps_per_s"]
                row["efficiency"] = row["speedup"] / processes
            latencies = [x for window in windows[name] for x in read_latencies(tmp, *window)]
            row["messages_per_workflow"] = len(latencies) / args.workflows / len(windows[name])
            row["latency_ms"] = percentiles(latencies)
        row["cpu_ms_per_step"] = {
            key: statistics.median(round_[key] for round_ in cpu[name])
            for key in ("workers", "redis", "driver", "machine")
        }
        if name != "inline":
            # The goal of issue #16: the workers' CPU per step next to what the inline
            # executor's process spends per step (the Redis server's CPU apart in both).
            inline_cpu = statistics.median(round_["driver"] for round_ in cpu["inline"])
            row["cpu_vs_inline"] = row["cpu_ms_per_step"]["workers"] / inline_cpu
        # How many CPUs were busy during the rounds, with everything else on the machine.
        row["machine_busy_cpus"] = row["cpu_ms_per_step"]["machine"] / 1000 * row["steps_per_s"]
        rows[name] = row
    unloaded_ms = {
        name: {"median": statistics.median(times), **percentiles(times)}
        for name, times in unloaded.items()
    }
    report(rows, store_label, unloaded_ms)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "distributed.json"
    out.write_text(
        json.dumps(
            {
                "command": " ".join(["python", "bench/distributed.py", *sys.argv[1:]]),
                "python": sys.version,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "load_average_before": load_before,
                "dramatiq": dramatiq.__version__,
                "store": store_label,
                "broker": "redis",
                "workflows": args.workflows,
                "steps_per_workflow": STEPS + 1,
                "repeat": args.repeat,
                "rows": rows,
                "slice_steps": args.slice_steps,
                "worker_log_level": args.log_level or "the worker's default",
                # What the workers of the rows without "1/msg" used.
                "default_slice": {
                    "seconds": float(
                        env.get(fk_dramatiq.SLICE_SECONDS_VAR) or fk_dramatiq.SLICE_SECONDS
                    ),
                    "steps": int(env.get(fk_dramatiq.SLICE_STEPS_VAR) or fk_dramatiq.SLICE_STEPS),
                },
                "step_ms_one_workflow_at_a_time": unloaded_ms,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


def report(rows: dict[str, Any], store: str, unloaded: dict[str, dict[str, float]]) -> None:
    print(
        f"store: {store}; broker: redis; PxT = worker processes x threads each; "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        f"{'executor':<20} {'steps/s':>8} {'workflows/s':>12} {'speedup':>8} {'efficiency':>10} "
        f"{'msgs/wf':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'CPU µs/step: workers':>21} {'redis':>6} {'driver':>6} {'÷inline':>7} "
        f"{'busy CPUs':>9}"
    )
    for name, row in rows.items():
        latency = row.get("latency_ms", {})
        efficiency = row.get("efficiency")
        cpu = {key: value * 1000 for key, value in row["cpu_ms_per_step"].items()}
        print(
            f"{name:<20} {row['steps_per_s']:>8.0f} {row['workflows_per_s']:>12.1f} "
            f"{_num(row.get('speedup'), 2, 'x'):>8} "
            f"{_num(efficiency and efficiency * 100, 0, '%'):>10} "
            f"{_num(row.get('messages_per_workflow'), 1):>7} "
            f"{_num(latency.get('p50')):>7} {_num(latency.get('p90')):>7} "
            f"{_num(latency.get('p99')):>7} {cpu['workers']:>21.0f} {cpu['redis']:>6.0f} "
            f"{cpu['driver']:>6.0f} {_num(row.get('cpu_vs_inline'), 2, 'x'):>7} "
            f"{row['machine_busy_cpus']:>9.2f}"
        )
    for name, times in unloaded.items():
        print(
            f"one workflow at a time on {name}, ms per step: median {times['median']:.2f}, "
            f"p90 {times.get('p90', math.nan):.2f}, max {times.get('max', math.nan):.2f}"
        )


def _name(processes: int, threads: int, slice_steps: int | None) -> str:
    suffix = "" if slice_steps is None else f" {slice_steps}/msg"
    return f"dramatiq {processes}x{threads}{suffix}"


def _num(value: float | None, digits: int = 0, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


if __name__ == "__main__":
    main()

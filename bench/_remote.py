"""What concurrency.py and datasize.py share: contestants in processes of their own.

Each contestant (flowkit on one store, or a peer on it) runs in a process of its own,
started as ``python SCRIPT --serve FACTORY PARAMS``; the bench sends it commands and
runs the rounds, rotating contestants and their ways so that noise from the machine
hits all alike. flowkit runs with the bench's own interpreter (wherever it finds
flowkit), a second flowkit — the baseline — with ``--baseline-python`` (e.g. a
worktree's at an earlier commit), the peers with a Python of their own that has
DBOS and LangGraph (never flowkit's environment).

Also here: the options and the run the two scripts share, where each contestant
keeps its data on each store, how the peers open their stores, what the machine was
doing (CPU of the database servers, busy CPUs, load), and the report's header.

Standard library only at import time: the peers' Python has no flowkit.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import select
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
STORES = ("memory", "sqlite", "postgresql", "mariadb", "redis")
TITLES = {
    "memory": "memory (no I/O)",
    "sqlite": "SQLite (file, WAL, synchronous={synchronous})",
    "postgresql": "PostgreSQL",
    "mariadb": "MariaDB",
    "redis": "Redis",
}
#: SQLite's ``PRAGMA synchronous`` for flowkit's database (``--sqlite-synchronous``).
SYNCHRONOUS = ("full", "normal", "off")
MYSQL_URL = os.environ.get("FLOWKIT_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("FLOWKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
#: The packages whose versions the results record, from the peers' Python.
PEER_PACKAGES = (
    "dbos",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "psycopg",
    "SQLAlchemy",
)
#: How often DBOS looks for queued work and for an enqueued workflow's result (its
#: defaults, 1 s each, would measure the polls, not the store).
DBOS_POLL = 0.01
#: The processes of the database servers, by store (for their CPU time).
SERVER_PROCESSES = {
    "postgresql": ("postgres",),
    "mariadb": ("mariadbd", "mysqld"),
    "redis": ("redis-server",),
}


# --- the contestant's side ---------------------------------------------------------------------


def serve(factories: dict[str, Callable[..., Any]]) -> None:
    """A contestant's process: ``python SCRIPT --serve FACTORY PARAMS_JSON``.

    Builds the contestant, replies with what its ``setup()`` returns, then with the
    result of each command read on stdin (``["run", way]``, …; ``["close"]`` ends it):
    one JSON line, ``["ok", value]`` or ``["error", traceback]``. What libraries print
    goes to stderr.
    """
    name, params = sys.argv[2], json.loads(sys.argv[3])
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def reply(status: str, value: Any) -> None:
        replies.write(json.dumps([status, value]) + "\n")

    try:
        contestant = factories[name](**params)
        reply("ok", contestant.setup())
    except BaseException:
        reply("error", traceback.format_exc())
        return
    for line in sys.stdin:
        command, *args = json.loads(line)
        try:
            reply("ok", getattr(contestant, command)(*args))
        except BaseException:
            reply("error", traceback.format_exc())
        if command == "close":
            return


# --- the bench's side --------------------------------------------------------------------------


class Remote:
    """A contestant's process, seen from the bench.

    Between its commands the process is stopped (SIGSTOP), so that an idle
    contestant's background threads (DBOS polls its queues) take no CPU or database
    time from the one being measured.
    """

    def __init__(self, spec: dict[str, Any], timeout: float) -> None:
        self.key, self.label, self.ways = spec["key"], spec["label"], list(spec["ways"])
        self.timeout = timeout
        self.process = subprocess.Popen(
            [
                spec["python"],
                spec["script"],
                "--serve",
                spec["factory"],
                json.dumps(spec["params"]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.settings: dict[str, Any] = self._receive()
        self.process.send_signal(signal.SIGSTOP)

    def _receive(self) -> Any:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], self.timeout)
        if not ready:
            self.process.kill()
            raise RuntimeError(f"{self.label}: no answer within {self.timeout:.0f} s")
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label}: its process ended (exit {self.process.wait()})")
        status, value = json.loads(line)
        if status != "ok":
            raise RuntimeError(f"{self.label} failed:\n{value}")
        return value

    def call(self, *command: Any) -> Any:
        stdin = self.process.stdin
        assert stdin is not None
        self.process.send_signal(signal.SIGCONT)
        try:
            stdin.write(json.dumps(command) + "\n")
            stdin.flush()
            return self._receive()
        finally:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGSTOP)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("close")
            except (RuntimeError, OSError) as exc:
                print(f"  {self.label}: close failed: {exc}", file=sys.stderr)
            self.process.send_signal(signal.SIGCONT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def rounds(
    store: str, specs: Sequence[dict[str, Any]], repeat: int, timeout: float
) -> tuple[dict[str, Any], dict[str, dict[str, list[Any]]], dict[str, str]]:
    """Run every way of every contestant of ``specs`` once per round, ``repeat`` rounds
    after a warm-up round that is not kept; the order of contestants and of their
    ways rotates from round to round.

    Returns the settings each contestant reported, its samples (what its ``run(way)``
    returned, with ``server_cpu_s``: the CPU seconds of the store's server processes
    meanwhile) by way, and why contestants failed.
    """
    remotes: list[Remote] = []
    failed: dict[str, str] = {}
    for spec in specs:
        print(f"  starting {spec['label']}", flush=True)
        try:
            remotes.append(Remote(spec, timeout))
        except (RuntimeError, OSError) as exc:
            failed[spec["key"]] = str(exc)
            print(f"  {exc}", file=sys.stderr, flush=True)
    samples: dict[str, dict[str, list[Any]]] = {r.key: {w: [] for w in r.ways} for r in remotes}
    try:
        for number in range(repeat + 1):
            began = time.perf_counter()
            for remote in _rotated(remotes, number):
                for way in _rotated(remote.ways, number):
                    if remote.key in failed:
                        break
                    server = server_cpu_seconds(store)
                    try:
                        sample = remote.call("run", way)
                    except RuntimeError as exc:
                        failed[remote.key] = str(exc)
                        print(f"  {exc}", file=sys.stderr, flush=True)
                        break
                    sample["server_cpu_s"] = server_cpu_seconds(store) - server
                    if number:
                        samples[remote.key][way].append(sample)
            label = f"round {number}/{repeat}" if number else "warm-up"
            print(f"  {label}: {time.perf_counter() - began:.1f} s", flush=True)
    finally:
        for remote in remotes:
            remote.close()
    settings = {r.key: r.settings for r in remotes if r.key not in failed}
    kept = {key: found for key, found in samples.items() if key not in failed}
    reasons = {key: why.strip().splitlines()[-1][:300] for key, why in failed.items()}
    return settings, kept, reasons


def _rotated(items: Sequence[Any], by: int) -> list[Any]:
    shift = by % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


# --- the machine -------------------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, all CPUs), from ``/proc/stat``."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(store: str) -> float:
    """User + system CPU seconds of the store's server processes on this machine, from
    ``/proc``, with those of their children that ended (a PostgreSQL backend whose
    connection was closed counts in its postmaster's); 0 for SQLite and memory."""
    names = SERVER_PROCESSES.get(store, ())
    if not names:
        return 0.0
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name, _, rest = text.partition("(")[2].rpartition(")")
        if name in names:
            fields = rest.split()  # utime, stime, cutime, cstime at 11-14
            ticks += sum(int(field) for field in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_load() -> str:
    """The 1-minute load average and the CPU and I/O pressure (Linux PSI), when available."""
    parts = [f"load {os.getloadavg()[0]:.1f}"]
    for kind in ("cpu", "io"):
        with suppress(OSError, ValueError, IndexError):
            some = Path(f"/proc/pressure/{kind}").read_text().splitlines()[0]
            parts.append(f"{kind} pressure {some.split()[2].split('=')[1]}%")
    return ", ".join(parts)


# --- where the data lives ----------------------------------------------------------------------


@contextmanager
def place(store: str, directory: str, synchronous: str = "full") -> Iterator[dict[str, str]]:
    """Where each contestant keeps its data on ``store``: a URL by contestant (``flowkit``,
    ``baseline`` — a second flowkit —, ``dbos``, ``langgraph``: those that run there),
    and the two flowkits' table or key prefixes (``flowkit_prefix``,
    ``baseline_prefix``). The flowkits' SQLite files get ``synchronous``; PostgreSQL gets
    a scratch database, dropped afterwards."""
    run = uuid.uuid4().hex[:8]
    if store == "memory":
        yield {"flowkit": "memory://", "baseline": "memory://", "langgraph": "memory://"}
    elif store == "sqlite":
        yield {
            "flowkit": f"sqlite:///{directory}/flowkit_{run}.db?synchronous={synchronous}",
            "baseline": f"sqlite:///{directory}/baseline_{run}.db?synchronous={synchronous}",
            "dbos": f"sqlite:///{directory}/dbos_{run}.sqlite",
            "langgraph": f"sqlite:///{directory}/langgraph_{run}.sqlite",
        }
    elif store == "postgresql":
        from peers import scratch_database

        with scratch_database() as url:
            yield {
                "flowkit": url,
                "baseline": url,
                "dbos": url,
                "langgraph": url,
                "flowkit_prefix": f"fkb_{run}_",
                "baseline_prefix": f"fkb_{run}b_",
            }
    else:
        url = MYSQL_URL if store == "mariadb" else REDIS_URL
        end = "_" if store == "mariadb" else ":"
        yield {
            "flowkit": url,
            "baseline": url,
            "flowkit_prefix": f"fkb_{run}{end}",
            "baseline_prefix": f"fkb_{run}b{end}",
        }


def store_title(document: dict[str, Any], store: str) -> str:
    """``store``'s heading in a report of ``document``."""
    synchronous = document.get("sqlite_synchronous", "full").upper()
    return TITLES[store].format(synchronous=synchronous)


def unavailable(store: str) -> str:
    """Why flowkit cannot run on ``store`` here ('' when it can)."""
    try:
        if store == "redis":
            if importlib.util.find_spec("flowkit.backends.redis") is None:
                return "this flowkit has no Redis store"
            import redis

            redis.Redis.from_url(REDIS_URL).ping()
        elif store == "mariadb":
            import pymysql
            from sqlalchemy.engine import make_url

            url = make_url(MYSQL_URL)
            pymysql.connect(
                host=url.host, port=url.port or 3306, user=url.username, database=url.database
            ).close()
        elif store == "postgresql":
            import psycopg
            from peers import ADMIN_URL

            psycopg.connect(ADMIN_URL).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


# --- the peers ---------------------------------------------------------------------------------


def find_peers_python(given: str) -> str | None:
    """The interpreter for the peers: ``given``, $FLOWKIT_BENCH_PEERS_PYTHON, or this one
    when it has LangGraph or DBOS; None for no peers (also when ``given`` is 'none')."""
    if given:
        return None if given == "none" else given
    if os.environ.get("FLOWKIT_BENCH_PEERS_PYTHON"):
        return os.environ["FLOWKIT_BENCH_PEERS_PYTHON"]
    if importlib.util.find_spec("langgraph") or importlib.util.find_spec("dbos"):
        return sys.executable
    return None


def python_packages(python: str, names: Sequence[str]) -> dict[str, str]:
    """The versions of ``names`` installed for ``python`` (the missing ones left out)."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(found))"
    )
    done = subprocess.run(
        [python, "-c", script, *names], capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python} cannot run: {done.stderr.strip()[-300:]}")
    return dict(json.loads(done.stdout))


def sqlite_settings(connection: Any) -> dict[str, Any]:
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    (synchronous,) = connection.execute("PRAGMA synchronous").fetchone()
    (journal,) = connection.execute("PRAGMA journal_mode").fetchone()
    return {"synchronous": names.get(synchronous, synchronous), "journal_mode": journal.upper()}


def langgraph_saver(url: str, pool_size: int) -> tuple[Any, dict[str, Any], Callable[[], None]]:
    """A LangGraph checkpointer for ``url``, opened as peers.py opens it (SQLite: the
    connection ``SqliteSaver.from_conn_string`` makes, synchronous=FULL explicit;
    PostgreSQL: a psycopg pool of ``pool_size`` connections, as its docs show for
    concurrent use; memory: InMemorySaver). Returns (saver, settings, close)."""
    if url == "memory://":
        from langgraph.checkpoint.memory import InMemorySaver

        return InMemorySaver(), {}, lambda: None
    if url.startswith("sqlite:///"):
        from langgraph.checkpoint.sqlite import SqliteSaver

        connection = sqlite3.connect(url.removeprefix("sqlite:///"), check_same_thread=False)
        connection.execute("PRAGMA synchronous=FULL")
        saver = SqliteSaver(connection)
        saver.setup()
        return saver, sqlite_settings(connection), connection.close
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        url,
        min_size=pool_size,
        max_size=pool_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
    )
    saver = PostgresSaver(pool)  # type: ignore[arg-type]
    saver.setup()
    with pool.connection() as connection:
        row = connection.execute("SHOW synchronous_commit").fetchone()
    return saver, {"synchronous_commit": next(iter(row.values())), "pool": pool_size}, pool.close


def dbos_launch(url: str) -> tuple[Any, dict[str, Any]]:
    """DBOS configured and launched on ``url`` (call it after declaring the workflows);
    a SQLite file is put in WAL first, as peers.py's faster DBOS row has it.
    Returns (DBOS, settings)."""
    import importlib.metadata

    from dbos import DBOS, DBOSConfig

    if url.startswith("sqlite:///"):
        # WAL is a property of the database file: set it before DBOS opens it.
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    config: DBOSConfig = {
        "name": "flowkit-bench",
        "system_database_url": url,
        "log_level": "WARNING",
        "run_admin_server": False,
    }
    DBOS(config=config)
    DBOS.launch()
    import dbos._dbos as internals

    engine = internals._dbos_global_instance._sys_db.engine  # type: ignore[union-attr]
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            settings = sqlite_settings(connection.connection.dbapi_connection)
        else:
            value = connection.exec_driver_sql("SHOW synchronous_commit").scalar()
            settings = {"synchronous_commit": value}
    return DBOS, {"dbos": importlib.metadata.version("dbos"), **settings}


# --- the run -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options concurrency.py and datasize.py share."""
    parser.add_argument("--repeat", type=int, default=5, help="rounds kept (≥ 3)")
    parser.add_argument("--only", default="", help=f"comma-separated: {','.join(STORES)}")
    parser.add_argument(
        "--peers-python",
        default="",
        help="a Python with dbos and langgraph ('none': no peers; default: "
        "$FLOWKIT_BENCH_PEERS_PYTHON, or this one if it has them)",
    )
    parser.add_argument(
        "--baseline-python",
        default="",
        help="a Python whose flowkit runs next to this one's, in the same rounds (e.g. a "
        "worktree's at an earlier commit): the rows 'flowkit, baseline'",
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=SYNCHRONOUS,
        default="full",
        help="PRAGMA synchronous of flowkit's SQLite file (the goals are for 'full'; 'off' "
        "shows what a step costs without fsync); the peers keep their own",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per command at most")
    parser.add_argument("--label", default="", help="names the run and its result files")
    parser.add_argument("--out", default=str(RESULTS), help="directory for the results")
    parser.add_argument("--from-json", metavar="PATH", help="only write the .md of a .json")


def flowkit_specs(
    script: str,
    where: dict[str, str],
    args: argparse.Namespace,
    params: dict[str, Any],
    ways: list[str],
) -> list[dict[str, Any]]:
    """flowkit, with this interpreter, and the baseline's if ``--baseline-python``."""
    pythons = {"flowkit": sys.executable}
    if args.baseline_python:
        pythons["baseline"] = args.baseline_python
    return [
        {
            "key": key,
            "label": "flowkit" if key == "flowkit" else "flowkit, baseline",
            "python": python,
            "script": script,
            "factory": "flowkit",
            "params": {"url": where[key], "prefix": where.get(f"{key}_prefix", ""), **params},
            "ways": ways,
        }
        for key, python in pythons.items()
    ]


def peer_specs(
    script: str,
    store: str,
    where: dict[str, str],
    peers: dict[str, Any],
    params: dict[str, Any],
    ways: list[str],
) -> list[dict[str, Any]]:
    """DBOS and LangGraph on ``store``, where they run and are installed."""
    labels = {
        "dbos": "DBOS Transact" + (" (file in WAL)" if store == "sqlite" else ""),
        "langgraph": 'LangGraph {}, durability="sync"'.format(
            {"memory": "InMemorySaver", "sqlite": "SqliteSaver"}.get(store, "PostgresSaver")
        ),
    }
    return [
        {
            "key": key,
            "label": label,
            "python": peers["python"],
            "script": script,
            "factory": key,
            "params": {"url": where[key], **params},
            "ways": ways,
        }
        for key, label in labels.items()
        if peers.get("python") and key in where and key in peers["packages"]
    ]


def run(
    args: argparse.Namespace,
    contestants: Callable[[str, dict[str, str], dict[str, Any]], list[dict[str, Any]]],
) -> dict[str, Any]:
    """Every store of ``--only``, one after the other: ``rounds`` of the contestants that
    ``contestants(store, where, peers)`` gives. Returns the results' document, with per
    store ``rows`` (by contestant: ``label``, ``settings``, ``samples`` by way),
    ``failed`` and ``load``."""
    from _common import provenance

    flowkit = provenance()
    peers: dict[str, Any] = {"python": find_peers_python(args.peers_python)}
    if peers["python"]:
        peers["packages"] = python_packages(peers["python"], PEER_PACKAGES)
    print(f"flowkit: {flowkit}\npeers: {peers}", flush=True)
    began = time.perf_counter()
    stores: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="flowkit_bench_") as directory:
        for store in [name for name in args.only.split(",") if name] or STORES:
            print(f"{store}:", flush=True)
            why = unavailable(store)
            if why:
                skipped[store] = why
                print(f"  skipped: {why}", flush=True)
                continue
            load = machine_load()
            with place(store, directory, args.sqlite_synchronous) as where:
                specs = contestants(store, where, peers)
                settings, samples, failed = rounds(store, specs, args.repeat, args.timeout)
            stores[store] = {
                "rows": {
                    spec["key"]: {
                        "label": spec["label"],
                        "settings": settings[spec["key"]],
                        "samples": samples[spec["key"]],
                    }
                    for spec in specs
                    if spec["key"] in samples
                },
                "failed": failed,
                "load": f"before {load}; after {machine_load()}",
            }
    return {
        "label": args.label,
        "flowkit": flowkit,
        "python": sys.version,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "peers": peers,
        "repeat": args.repeat,
        "sqlite_synchronous": args.sqlite_synchronous,
        "elapsed_s": time.perf_counter() - began,
        "skipped": skipped,
        "stores": stores,
    }


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what :func:`run` cannot do."""
    if args.repeat < 3:
        parser.error("--repeat must be 3 or more")
    unknown = {name for name in args.only.split(",") if name} - set(STORES)
    if unknown:
        parser.error(f"unknown store(s): {', '.join(sorted(unknown))}")


def write(
    name: str, args: argparse.Namespace, document: dict[str, Any], report: Callable[..., str]
) -> None:
    """``NAME[.LABEL].json`` and ``.md`` in ``--out``; the report printed too."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = str(out / (f"{name}.{args.label}" if args.label else name))
    Path(f"{stem}.json").write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    markdown = report(document)
    Path(f"{stem}.md").write_text(markdown)
    print(f"\n{markdown}\nwrote {stem}.json and .md")


def rewrite(path: str, report: Callable[..., str]) -> None:
    """The ``.md`` of a results ``.json`` again (``--from-json``)."""
    found = Path(path)
    found.with_suffix(".md").write_text(report(json.loads(found.read_text())))


# --- the report --------------------------------------------------------------------------------


def which(found: dict[str, Any]) -> str:
    """A flowkit's provenance (from ``_common.provenance``), in words."""
    text = f"{found['flowkit_version']} from `{found['flowkit_file']}`"
    if found.get("git_commit"):
        changed = found.get("git_changed_under_flowkit", [])
        text += f", commit {found['git_commit'][:10]} ({found['git_subject']}), " + (
            f"{len(changed)} changed file(s) under flowkit/" if changed else "clean"
        )
    return text


def header(document: dict[str, Any], title: str, command: str) -> list[str]:
    """The report's title and the lines that say what ran where."""
    flowkits = f"flowkit {which(document['flowkit'])}"
    changed = {
        store: which(result["rows"]["flowkit"]["settings"]["flowkit"])
        for store, result in document["stores"].items()
        if "flowkit" in result["rows"]
    }
    if set(changed.values()) - {which(document["flowkit"])}:
        flowkits += (
            " (changed during the run: "
            + "; ".join(f"{store}: {text}" for store, text in changed.items())
            + ")"
        )
    for result in document["stores"].values():
        if "baseline" in result["rows"]:
            flowkits += (
                f"; baseline: flowkit {which(result['rows']['baseline']['settings']['flowkit'])}"
            )
            break
    peers = document.get("peers") or {}
    packages = ", ".join(f"{k} {v}" for k, v in (peers.get("packages") or {}).items())
    label = f" — {document['label']}" if document.get("label") else ""
    return [
        f"# {title}{label}",
        "",
        f"`{command} --repeat {document['repeat']}`; {flowkits}. "
        f"Python {document['python'].split()[0]}, {document['machine']}. "
        + (f"Peers (`{peers['python']}`): {packages}." if peers.get("python") else "No peers.")
        + f" Whole run: {document['elapsed_s']:.0f} s, ending {document['when']}.",
        "",
    ]


def settings_text(result: dict[str, Any]) -> str:
    """The settings each contestant on one store read back (its flowkit's provenance aside)."""
    found = {
        row["label"]: ", ".join(f"{k}={v}" for k, v in row["settings"].items() if k != "flowkit")
        for row in result["rows"].values()
    }
    return "; ".join(f"{label}: {text}" for label, text in found.items() if text)


def spread(values: Sequence[float]) -> dict[str, float]:
    """The min, median and max of a measurement's repeats."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}

"""Developer tasks: `nox -s tests lint typecheck docs`."""

import json
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite against every real store (pass pytest args after --)."""
    session.install("-e", ".[all,dev]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
@nox.parametrize("backend", ["memory", "sqlite", "postgresql", "mysql", "redis"])
def backend(session: nox.Session, backend: str) -> None:
    """The store conformance suite and store tests against one backend."""
    session.install("-e", ".[all,dev]")
    session.run("pytest", "tests/backends", "-m", backend, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, and the import contracts of its layers."""
    session.install("-e", ".[all,dev]")
    session.run("mypy", "--strict", "flowkit")
    session.run("lint-imports", "--no-cache")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation strictly."""
    session.install("-e", ".[all,dev]")
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp())


#: The peers the benchmarks compare flowkit with: never flowkit dependencies, installed
#: into the bench sessions' own virtualenvs only.
PEERS = (
    "dbos>=3,<4",
    "langgraph>=1,<2",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "psycopg[binary]",
)


@nox.session(python=PYTHON)
def bench_peers(session: nox.Session) -> None:
    """flowkit next to DBOS Transact and LangGraph on SQLite, PostgreSQL and Redis.

    The peers are installed into this session's virtualenv only (never flowkit
    dependencies). Writes bench/results/peers.json and peers.md; pass
    bench/peers.py's options after --, e.g. ``nox -s bench_peers -- --only sqlite``.
    """
    session.install(".[redis,postgres]", *PEERS)
    session.run("python", "bench/peers.py", "--profile", *session.posargs)


#: Every benchmark in bench/, in the order ``nox -s bench`` runs them.
BENCHES = ("engine", "stores", "peers", "concurrency", "datasize", "distributed", "telemetry")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Every benchmark with its default options, next to the peers (results in bench/results/).

    Needs PostgreSQL, MariaDB and Redis on 127.0.0.1 (see bench/README.md); each script
    takes a few minutes. ``nox -s bench -- concurrency datasize`` runs only the ones
    named; run a script by hand for its options.
    """
    unknown = set(session.posargs) - set(BENCHES)
    if unknown:
        session.error(f"unknown bench(es): {', '.join(sorted(unknown))}; choose from {BENCHES}")
    session.install("-e", ".[all]", "opentelemetry-sdk", *PEERS)
    for name in BENCHES:
        if name in session.posargs or not session.posargs:
            session.run("python", f"bench/{name}.py")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The README's demo: an order halts for approval and another process resumes it."""
    session.install("-e", ".")
    session.run("python", "examples/demo.py")


# --- lowest: every lower bound in pyproject.toml, tested --------------------------------------

#: The tests that need no server-backed extra (the core dependencies alone).
CORE_TESTS = [
    "tests",
    "examples/tests",
    "--ignore=tests/ai",
    "--ignore=tests/distributed",
    "--ignore=tests/dashboard",
    "--ignore=tests/telemetry",
    "--ignore=tests/backends/test_redis.py",
    "-m",
    "not (postgresql or mysql or redis)",
]
#: Per extra ("core": the dependencies alone): the tests that exercise it, and what those
#: tests need beside it (installed at their newest versions, like pytest and hypothesis).
LOWEST = {
    "core": (CORE_TESTS, []),
    "testing": (CORE_TESTS, []),
    "redis": (["tests/backends", "-m", "redis"], []),
    "postgres": (
        ["tests/backends", "-m", "postgresql", "--ignore=tests/backends/test_redis.py"],
        [],
    ),
    "mysql": (["tests/backends", "-m", "mysql", "--ignore=tests/backends/test_redis.py"], []),
    "dramatiq": (["tests/distributed"], ["psycopg[binary]"]),  # its store is PostgreSQL
    "ai": (["tests/ai"], []),
    "dashboard": (
        ["tests/dashboard", "-m", "not (postgresql or mysql or redis)"],
        ["httpx", "selenium"],  # the test client and the browser test
    ),
    "otel": (
        [
            "tests/telemetry",
            "--ignore=tests/telemetry/test_dramatiq.py",
            "--ignore=tests/telemetry/test_worker_logs.py",
            "-m",
            "not (postgresql or mysql or redis)",
        ],
        ["opentelemetry-sdk"],
    ),
}
_VERSIONS = (
    "import importlib.metadata as m, json, sys; "
    "print(json.dumps({name: m.version(name) for name in sys.argv[1:]}))"
)


def _floors(extra: str) -> dict[str, Version]:
    """The ``>=`` lower bound of each direct requirement of ``extra`` (and of the core)."""
    project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    if extra != "core":
        requirements += project["optional-dependencies"][extra]
    floors: dict[str, Version] = {}
    for text in requirements:
        requirement = Requirement(text)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                floors[canonicalize_name(requirement.name)] = Version(spec.version)
    return floors


@nox.session(python=PYTHON, venv_backend="uv", reuse_venv=False, default=False)
@nox.parametrize("extra", list(LOWEST))
def lowest(session: nox.Session, extra: str) -> None:
    """One extra alone at the lowest versions pyproject.toml allows, and the tests that use it.

    Manual or periodic, not part of the default sessions or of CI: ``nox -s lowest`` checks
    every extra, ``nox -s "lowest(extra='redis')"`` one (needs uv: ``pip install 'nox[uv]'``,
    and the servers the tests use). Fails when a lower bound cannot be installed (a newer
    version was picked) or does not work; pytest arguments go after ``--``.
    """
    tests, helpers = LOWEST[extra]
    target = "." if extra == "core" else f".[{extra}]"
    session.install("--resolution", "lowest-direct", "-e", target)
    # The test tools at their newest versions; uv leaves what is installed as it is.
    session.install("pytest", "pytest-timeout", "hypothesis", *helpers)
    floors = _floors(extra)
    output = session.run("python", "-c", _VERSIONS, *floors, silent=True)
    installed = {name: Version(v) for name, v in json.loads(str(output).splitlines()[-1]).items()}
    session.log("installed: " + ", ".join(f"{name} {installed[name]}" for name in sorted(floors)))
    above = [
        f"{name} {installed[name]} (lower bound {floor})"
        for name, floor in sorted(floors.items())
        if installed[name] != floor
    ]
    if above:
        session.error(f"newer than the lower bound (is it installable?): {', '.join(above)}")
    session.run("pytest", *tests, *session.posargs)

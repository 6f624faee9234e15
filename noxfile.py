"""Developer tasks: `nox -s tests lint typecheck docs`."""

import nox

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


@nox.session(python=PYTHON)
def bench_peers(session: nox.Session) -> None:
    """flowkit next to DBOS Transact and LangGraph on SQLite, PostgreSQL and Redis.

    The peers are installed into this session's virtualenv only (never flowkit
    dependencies). Writes bench/results/peers.json and peers.md; pass
    bench/peers.py's options after --, e.g. ``nox -s bench_peers -- --only sqlite``.
    """
    session.install(
        ".[redis,postgres]",
        "dbos>=3,<4",
        "langgraph>=1,<2",
        "langgraph-checkpoint-sqlite",
        "langgraph-checkpoint-postgres",
        "psycopg[binary]",
    )
    session.run("python", "bench/peers.py", "--profile", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The engine and store benchmarks (results in bench/results/)."""
    session.install("-e", ".[all]")
    session.run("python", "bench/engine.py", *session.posargs)
    session.run("python", "bench/stores.py", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The README's demo: an order halts for approval and another process resumes it."""
    session.install("-e", ".")
    session.run("python", "examples/demo.py")

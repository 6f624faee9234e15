"""What only the SQL store has: schema and migrations, URLs and pools, processes, faults, plans.

Every test runs against a SQLite file, the PostgreSQL server and the MariaDB
(or MySQL) server, each marked with its backend's marker, unless it is about
one database only. Server tests use a fresh table prefix and drop their tables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import flowkit
from flowkit import ConfigError, FlowkitError, Status, StoreUnavailableError
from flowkit.backends.sqlalchemy import SCHEMA_VERSION, SQLStore
from flowkit.cli import main as cli
from flowkit.records import ENTRY_FIELDS, EXECUTION_FIELDS
from flowkit.testing.conformance import make_entry, make_execution, next_checkpoint

from . import sql_helpers
from .sql_helpers import (
    BLOCKING,
    MYSQL_URL,
    POSTGRESQL_URL,
    WORK_DIR,
    drop_tables,
    unique_prefix,
    with_prefix,
)

# The fixtures every test_sql*.py module shares.
sql_url = sql_helpers.sql_url
open_store = sql_helpers.open_store

ROOT = Path(__file__).resolve().parents[2]
FLOWKIT = str(Path(sys.executable).parent / "flowkit")


def _tables(store: SQLStore) -> set[str]:
    return set(sa.inspect(store.engine).get_table_names())


def _env(work: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env[WORK_DIR] = str(work)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _helper(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backends.sql_helpers", *args],
        cwd=ROOT,
        env=env or _env(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _assert_consistent(store: SQLStore, execution_id: str) -> list[flowkit.Entry]:
    """The record and its log agree: seqs 1…n without gaps, and the record's seq is n."""
    record = store.load(execution_id)
    assert record is not None
    entries = store.entries(execution_id)
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert record.seq == len(entries)
    return entries


# --- schema and migrations -----------------------------------------------------------------------


def test_schema_is_created_on_first_use(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    prefix = store.prefix
    tables = ("executions", "entries", "ctx_values", "signals", "schedules", "schema_version")
    assert {f"{prefix}{name}" for name in tables} <= _tables(store)
    inspector = sa.inspect(store.engine)
    indexes = {index["name"] for index in inspector.get_indexes(f"{prefix}executions")}
    assert indexes == {
        f"{prefix}executions_{name}"
        for name in ("updated", "workflow_updated", "status_updated", "wake", "lease")
    }
    signal_indexes = {
        index["name"]: index["unique"] for index in inspector.get_indexes(f"{prefix}signals")
    }
    assert signal_indexes == {f"{prefix}signals_key": True, f"{prefix}signals_pending": False}
    assert store.schema_version() == SCHEMA_VERSION
    # Opening again changes nothing.
    assert open_store().upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            f"SELECT version, description FROM {prefix}schema_version"
        ).all()
    assert [row[0] for row in rows] == list(range(1, SCHEMA_VERSION + 1))


def test_tables_have_a_column_for_each_record_field(open_store: Callable[..., SQLStore]) -> None:
    # The migrations spell the tables out; the records declare the fields. They must agree.
    store = open_store()
    inspector = sa.inspect(store.engine)
    columns = [column["name"] for column in inspector.get_columns(f"{store.prefix}executions")]
    assert columns == [name for name in EXECUTION_FIELDS if name != "ctx"]  # ctx: ctx_values
    columns = [column["name"] for column in inspector.get_columns(f"{store.prefix}ctx_values")]
    assert columns == ["execution_id", "name", "position", "value", "full_name"]
    columns = [column["name"] for column in inspector.get_columns(f"{store.prefix}entries")]
    assert columns == [name for name in ENTRY_FIELDS if name != "id"]
    columns = [column["name"] for column in inspector.get_columns(f"{store.prefix}signals")]
    assert columns == [field.name for field in attrs.fields(flowkit.records.Signal)]
    columns = [column["name"] for column in inspector.get_columns(f"{store.prefix}schedules")]
    assert columns == [field.name for field in attrs.fields(flowkit.records.Schedule)]


def test_flowkit_db_upgrade_creates_the_schema(
    sql_url: str, open_store: Callable[..., SQLStore]
) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "current", "--store", sql_url])
    assert result.exit_code == 0, result.output
    assert "at version 0" in result.output
    assert "flowkit db upgrade" in result.output

    unmigrated = open_store(create_schema=False)
    with pytest.raises(ConfigError, match="flowkit db upgrade"):
        unmigrated.find()

    result = runner.invoke(cli, ["db", "upgrade", "--store", sql_url])
    assert result.exit_code == 0, result.output
    assert f"from version 0 to {SCHEMA_VERSION}" in result.output
    result = runner.invoke(cli, ["db", "upgrade", "--store", sql_url, "--json"])
    assert json.loads(result.output) == {"before": SCHEMA_VERSION, "after": SCHEMA_VERSION}
    result = runner.invoke(cli, ["db", "current", "--store", sql_url, "--json"])
    assert json.loads(result.output) == {"version": SCHEMA_VERSION, "latest": SCHEMA_VERSION}

    store = open_store(create_schema=False)
    assert store.find() == []
    assert unmigrated.find() == []  # checks again, and now passes


@pytest.mark.sqlite
def test_flowkit_db_refuses_stores_without_schema() -> None:
    result = CliRunner().invoke(cli, ["db", "upgrade", "--store", "redis://127.0.0.1:6379/0"])
    assert result.exit_code == 1
    assert "redis:// stores have no schema to manage" in result.output


def test_schema_newer_than_this_flowkit_is_refused(
    sql_url: str, open_store: Callable[..., SQLStore]
) -> None:
    store = open_store()
    with store.engine.begin() as connection:
        connection.execute(
            store.schema.versions.insert(),
            {
                "version": SCHEMA_VERSION + 1,
                "description": "future",
                "applied_at": datetime.now(UTC),
            },
        )
    with pytest.raises(ConfigError, match=f"version {SCHEMA_VERSION + 1}, newer than"):
        SQLStore(sql_url)


@pytest.mark.timeout(180)
def test_processes_starting_at_once_all_succeed(
    sql_url: str, open_store: Callable[..., SQLStore]
) -> None:
    start_at = str(time.time() + 2.0)  # after every interpreter has started
    processes = [_helper("open", sql_url, start_at) for _ in range(3)]
    assert [_finish(p)["version"] for p in processes] == [SCHEMA_VERSION] * 3
    store = open_store(create_schema=False)
    with store.engine.connect() as connection:
        count = connection.exec_driver_sql(
            f"SELECT COUNT(*) FROM {store.prefix}schema_version"
        ).scalar()
    assert count == SCHEMA_VERSION  # each migration recorded once


# --- concurrency across processes ----------------------------------------------------------------


@pytest.mark.timeout(240)
def test_two_processes_checkpointing_one_execution_one_wins(
    sql_url: str, open_store: Callable[..., SQLStore]
) -> None:
    store = open_store()
    execution = make_execution()
    store.create(execution)
    expected_entries = 0
    for round_number in range(2):
        start_at = str(time.time() + 2.0)
        tags = [f"r{round_number}-a", f"r{round_number}-b"]
        version = str(execution.version + round_number)
        processes = [
            _helper("checkpoint", sql_url, execution.id, version, start_at, tag) for tag in tags
        ]
        outcomes = {r["tag"]: r["outcome"] for r in (_finish(p) for p in processes)}
        assert sorted(outcomes.values()) == ["conflict", "ok"], outcomes
        (winner,) = [tag for tag, outcome in outcomes.items() if outcome == "ok"]
        expected_entries += 2
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.ctx == {"writer": winner}
        assert loaded.version == execution.version + round_number + 1
        entries = _assert_consistent(store, execution.id)
        assert len(entries) == expected_entries
        assert [e.output for e in entries[-2:]] == [{"writer": winner}] * 2


@pytest.mark.timeout(240)
def test_processes_advance_workflows_on_one_database(
    sql_url: str, open_store: Callable[..., SQLStore], tmp_path: Path
) -> None:
    store = open_store()
    env = _env(tmp_path)
    start_at = str(time.time() + 2.0)
    processes = [_helper("advance", sql_url, start_at, "4", env=env) for _ in range(3)]
    for process in processes:
        assert _finish(process)["statuses"] == ["completed"] * 4
    found = store.find(workflow_id="sql_chain")
    assert len(found) == 12
    for execution in found:
        assert len(_assert_consistent(store, execution.id)) == 21  # start + 20 steps


# --- crashes and recovery ------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_sigkilled_process_is_recovered_from_its_last_checkpoint(
    sql_url: str, open_store: Callable[..., SQLStore], tmp_path: Path
) -> None:
    store = open_store()
    work = tmp_path / "work"
    work.mkdir()
    env = _env(work, FLOWKIT_LEASE_SECONDS="1")
    execution_id = f"ex-{uuid.uuid4().hex[:12]}"
    process = _helper("run", sql_url, BLOCKING.id, execution_id, env=env)
    try:

        def inside_block() -> bool:
            record = store.load(execution_id)
            return (
                record is not None
                and record.current_step == "block"
                and (work / "blocked").exists()
            )

        _wait_for(inside_block, 60, "the workflow to enter its blocking step")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL

    record = store.load(execution_id)
    assert record is not None
    assert record.status is Status.RUNNING
    assert [e.step_id for e in _assert_consistent(store, execution_id)] == ["start", "one", "two"]

    # Its lease runs out (FLOWKIT_LEASE_SECONDS=1): then it is stale.
    _wait_for(
        lambda: execution_id in [e.id for e in store.stale(datetime.now(UTC))],
        30,
        "the killed execution's lease to expire",
    )
    (work / "release").touch()
    recovered = subprocess.run(
        [FLOWKIT, "recover", "--store", sql_url, "-m", "tests.backends.sql_helpers", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert recovered.returncode == 0, recovered.stderr
    assert {"execution_id": execution_id, "status": "completed", "error": None} in json.loads(
        recovered.stdout
    )
    final = store.load(execution_id)
    assert final is not None
    assert final.status is Status.COMPLETED
    steps = [e.step_id for e in _assert_consistent(store, execution_id)]
    assert steps == ["start", "one", "two", "block", "three"]
    # Steps before the last checkpoint ran once; the step in flight ran again.
    calls = (work / "calls.log").read_text().split()
    assert calls == ["one", "two", "block", "block", "three"]


@pytest.mark.timeout(180)
def test_halted_in_one_process_resumed_in_another(
    sql_url: str, open_store: Callable[..., SQLStore]
) -> None:
    example = str(ROOT / "examples" / "expense_approval.yml")
    env = _env(ROOT)
    started = subprocess.run(
        [
            FLOWKIT,
            "run",
            example,
            "--store",
            sql_url,
            "--json",
            "-i",
            "amount=250",
            "-i",
            "employee=ada",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    halted = json.loads(started.stdout)
    assert halted["status"] == "halted"
    execution_id = halted["execution_id"]

    resumed = subprocess.run(
        [
            FLOWKIT,
            "resume",
            execution_id,
            "--approve",
            "--by",
            "alice",
            "--response",
            '{"comment": "fine"}',
            "--workflow",
            example,
            "--store",
            sql_url,
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    done = json.loads(resumed.stdout)
    assert done["status"] == "completed"
    assert done["output"] == {
        "status": "approved",
        "employee": "ada",
        "amount": 250,
        "comment": "fine",
    }
    store = open_store()
    final = store.load(execution_id)
    assert final is not None
    assert final.status is Status.COMPLETED
    actions = [e.action.value for e in _assert_consistent(store, execution_id)]
    assert "halted" in actions
    assert "resumed" in actions


# --- PostgreSQL connections killed mid-run -------------------------------------------------------


def _kill_backends(application_name: str) -> int:
    import psycopg

    url = sa.engine.make_url(POSTGRESQL_URL)
    with psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        dbname=url.database,
        autocommit=True,
    ) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


@pytest.fixture
def pg_store() -> Iterator[tuple[SQLStore, str]]:
    """A PostgreSQL store whose connections carry a unique application_name."""
    name = f"flowkit-test-{uuid.uuid4().hex[:8]}"
    url = with_prefix(POSTGRESQL_URL, unique_prefix(), application_name=name)
    store = SQLStore(url)
    yield store, name
    drop_tables(store.engine, store.prefix)
    store.close()


def _chain(n: int, kill_at: set[int]) -> flowkit.WorkflowDef:
    steps: list[dict[str, Any]] = [{"id": "start", "type": "start", "next": "s0"}]
    for i in range(n):
        step: dict[str, Any] = {
            "id": f"s{i}",
            "type": "call",
            "service": "Pg",
            "method": "kill" if i in kill_at else "work",
            "input": {"i": i},
            "output": f"s{i}",
        }
        if i + 1 < n:
            step["next"] = f"s{i + 1}"
        steps.append(step)
    return flowkit.load({"id": f"pg_chain_{uuid.uuid4().hex[:6]}", "steps": steps})


@pytest.mark.postgresql
@pytest.mark.timeout(120)
def test_connection_killed_between_steps_run_continues(pg_store: tuple[SQLStore, str]) -> None:
    store, name = pg_store
    kills: list[int] = []
    services = flowkit.ServiceRegistry()
    services.register(
        "Pg",
        {"work": lambda i: i, "kill": lambda i: kills.append(_kill_backends(name)) or i},
    )
    engine = flowkit.Engine(store=store, services=services)
    result = engine.run(_chain(12, {3, 7, 8}))
    engine.close()
    assert result.completed, result.error
    assert len(kills) == 3
    assert all(count >= 1 for count in kills), kills
    entries = _assert_consistent(store, result.execution_id)
    assert [e.step_id for e in entries] == ["start", *[f"s{i}" for i in range(12)]]


@pytest.mark.postgresql
@pytest.mark.timeout(120)
def test_idle_connection_killed_is_replaced_before_use(pg_store: tuple[SQLStore, str]) -> None:
    store, name = pg_store
    execution = make_execution()
    store.create(execution)
    assert _kill_backends(name) >= 1
    assert store.load(execution.id) is not None  # the dead connection is replaced
    time.sleep(0.01)
    assert _kill_backends(name) >= 1
    store.checkpoint(*next_checkpoint(execution, 1), execution.version)  # and here too
    _assert_consistent(store, execution.id)


@pytest.mark.postgresql
@pytest.mark.timeout(180)
def test_connections_killed_during_a_run_leave_nothing_half_written(
    pg_store: tuple[SQLStore, str],
) -> None:
    store, name = pg_store
    stop = threading.Event()

    def killer() -> None:
        while not stop.wait(0.015):
            _kill_backends(name)

    services = flowkit.ServiceRegistry()
    services.register("Pg", {"work": lambda i: i})
    engine = flowkit.Engine(store=store, services=services)
    wf = _chain(150, set())
    thread = threading.Thread(target=killer)
    thread.start()
    outcomes: list[str] = []
    try:
        for _ in range(3):
            try:
                result = engine.run(wf)
            except FlowkitError as exc:  # failing cleanly is allowed; half-writing is not
                outcomes.append(f"{type(exc).__name__}: {exc}")
            else:
                outcomes.append(result.status.value)
    finally:
        stop.set()
        thread.join()
        engine.close()
    for line in outcomes:
        assert line == "completed" or line.startswith("StoreUnavailableError: "), line
    for execution in store.find(limit=10):
        entries = _assert_consistent(store, execution.id)
        if execution.status is Status.COMPLETED:
            assert len(entries) == 151


@pytest.mark.postgresql
@pytest.mark.timeout(240)
def test_connections_killed_during_group_commits_lose_and_duplicate_nothing(
    pg_store: tuple[SQLStore, str],
) -> None:
    # Eight threads checkpoint at once (their checkpoints share transactions) while
    # their connections are killed, some during a commit. A checkpoint reported written
    # must be in the log exactly as written; one that failed is read back and built on.
    store, name = pg_store
    store = SQLStore(store.engine, prefix=store.prefix, group_commit=True)
    executions = [make_execution(id=f"ex-{n}") for n in range(8)]
    for execution in executions:
        store.create(execution)
    confirmed: dict[str, dict[int, int]] = {execution.id: {} for execution in executions}
    failures: list[str] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.wait(0.01):
            _kill_backends(name)

    def read_back(execution_id: str) -> flowkit.Execution:
        while True:
            try:
                found = store.load(execution_id)
            except StoreUnavailableError:
                continue  # the killer got this connection too: ask again
            assert found is not None
            return found

    def advance(execution: flowkit.Execution) -> None:
        current = execution
        for step in range(40):
            record, entries = next_checkpoint(current, 1, ctx={**current.ctx, "step": step})
            entries = [attrs.evolve(entry, output={"step": step}) for entry in entries]
            try:
                store.checkpoint(record, entries, current.version, changed=("step",))
            except (StoreUnavailableError, flowkit.ConflictError) as exc:
                failures.append(type(exc).__name__)
                current = read_back(execution.id)
                continue
            confirmed[execution.id][record.seq] = step
            current = record

    thread = threading.Thread(target=killer)
    thread.start()
    writers = [threading.Thread(target=advance, args=(e,)) for e in executions]
    try:
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(200)
    finally:
        stop.set()
        thread.join()
    assert failures  # the killer did get in the way
    for execution in executions:
        entries = _assert_consistent(store, execution.id)
        loaded = store.load(execution.id)
        assert loaded is not None
        assert loaded.version == 1 + len(entries)
        assert loaded.ctx == {"step": entries[-1].output["step"]}
        for seq, step in confirmed[execution.id].items():
            assert entries[seq - 1].output == {"step": step}
        steps = [entry.output["step"] for entry in entries]
        assert steps == sorted(set(steps))  # no step written twice


# --- query plans ---------------------------------------------------------------------------------


def _populate(store: SQLStore) -> datetime:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    for n in range(3000):
        status = Status.COMPLETED
        wake = lease = None
        if n % 100 == 1:
            status, wake = Status.HALTED, now - timedelta(minutes=n % 7)
        elif n % 100 == 2:
            status, lease = Status.RUNNING, now - timedelta(minutes=n % 5)
        store.create(
            make_execution(
                id=f"ex-{n:05d}",
                workflow_id=f"wf-{n % 60}",
                status=status,
                wake_at=wake,
                lease_expires_at=lease,
                updated_at=now - timedelta(seconds=n),
            )
        )
    return now


@pytest.mark.timeout(300)
def test_queries_use_the_indexes(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    now = _populate(store)
    sql, dialect, prefix = store._sql, store.engine.dialect.name, store.prefix
    at = sql.time_in(now)
    queries = {
        "find by workflow": (
            sql.find[(True, False, False)],
            ("wf-7", 100),
            "executions_workflow_updated",
        ),
        "find by status": (
            sql.find[(False, True, False)],
            ("halted", 100),
            "executions_status_updated",
        ),
        "due": (sql.due, (at, 100), "executions_wake"),
        "stale": (sql.stale, (at, 100), "executions_lease"),
    }
    explain = {"sqlite": "EXPLAIN QUERY PLAN", "postgresql": "EXPLAIN"}.get(dialect, "EXPLAIN")
    fairy = store.engine.raw_connection()
    try:
        cursor = fairy.cursor()
        if dialect == "postgresql":
            cursor.execute(f"ANALYZE {prefix}executions")
        elif dialect != "sqlite":
            cursor.execute(f"ANALYZE TABLE {prefix}executions")
            cursor.fetchall()
        plans = {}
        for name, (statement, params, index) in queries.items():
            cursor.execute(f"{explain} {statement}", params)
            plan = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
            plans[name] = plan
            # find by status may as well use the other index that starts with status.
            wanted = (
                ("executions_status_updated", "executions_lease")
                if index == "executions_status_updated"
                else (index,)
            )
            assert any(f"{prefix}{w}" in plan for w in wanted), f"{name}: no index used:\n{plan}"
            assert "Seq Scan" not in plan
        fairy.rollback()
    finally:
        fairy.close()
    # And the answers are right.
    assert len(store.find(workflow_id="wf-7")) == 50
    assert len(store.due(now)) == 30
    assert len(store.stale(now)) == 30


@pytest.mark.timeout(600)
def test_a_deep_page_of_find_starts_with_an_index_range(
    open_store: Callable[..., SQLStore],
) -> None:
    store = open_store()
    sql, dialect, prefix = store._sql, store.engine.dialect.name, store.prefix
    now = datetime(2024, 6, 1, tzinfo=UTC)
    executions = [
        make_execution(
            id=f"ex-{n:06d}",
            workflow_id=f"wf-{n % 60}",
            status=Status.HALTED if n % 10 == 0 else Status.COMPLETED,
            updated_at=now - timedelta(seconds=n // 3),  # threes share a time: ties by id
        )
        for n in range(100_000)
    ]
    # In bulk, with the store's own statement and row encoder (private: creating 100,000
    # executions one call each takes minutes).
    rows = [store._execution_row(execution) for execution in executions]
    fairy = store.engine.raw_connection()
    try:
        cursor = fairy.cursor()
        for start in range(0, len(rows), 5_000):
            cursor.executemany(sql.insert_execution, rows[start : start + 5_000])
        fairy.commit()
        if dialect == "postgresql":
            cursor.execute(f"ANALYZE {prefix}executions")
        elif dialect != "sqlite":
            cursor.execute(f"ANALYZE TABLE {prefix}executions")
            cursor.fetchall()
        fairy.commit()
    finally:
        fairy.close()
    order = sorted(executions, key=lambda e: (e.updated_at, e.id), reverse=True)
    last = order[90_000]  # the last execution of page 901 of 100
    after = (last.updated_at, last.id)
    explain = "EXPLAIN QUERY PLAN" if dialect == "sqlite" else "EXPLAIN"
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({}, ("executions_updated",)),
        ({"workflow_id": "wf-7"}, ("executions_workflow_updated",)),
        ({"status": "halted"}, ("executions_status_updated",)),
        # Both: either index, the other filter checked row by row.
        (
            {"workflow_id": "wf-7", "status": "halted"},
            ("executions_workflow_updated", "executions_status_updated"),
        ),
    ]
    fairy = store.engine.raw_connection()
    try:
        cursor = fairy.cursor()
        for filters, indexes in cases:
            statement = sql.find[("workflow_id" in filters, "status" in filters, True)]
            params = [*filters.values(), *sql.after_params(sql.time_in(after[0]), after[1]), 100]
            cursor.execute(f"{explain} {statement}", params)
            plan = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
            assert any(f"{prefix}{index}" in plan for index in indexes), f"{filters}:\n{plan}"
            assert "Seq Scan" not in plan
            assert "ALL" not in plan.split()  # MySQL's full table scan
            if len(filters) < 2:  # read in the index's order: nothing sorted
                assert "Sort" not in plan
                assert "filesort" not in plan
                assert "TEMP B-TREE" not in plan
        fairy.rollback()
    finally:
        fairy.close()
    for filters, _ in cases:
        wanted = [
            e.id
            for e in order
            if (e.updated_at, e.id) < after
            and e.workflow_id == filters.get("workflow_id", e.workflow_id)
            and e.status == filters.get("status", e.status)
        ][:100]
        found = store.find(**filters, after=after, limit=100)
        assert [execution.id for execution in found] == wanted, filters


# --- URLs, options and connections ---------------------------------------------------------------


@pytest.mark.sqlite
def test_sqlite_wal_and_synchronous(tmp_path: Path) -> None:
    def pragmas(store: SQLStore) -> tuple[str, int, int]:
        with store.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = connection.exec_driver_sql("PRAGMA synchronous").scalar()
            busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        return str(mode), int(sync or 0), int(busy or 0)

    default = SQLStore(f"sqlite:///{tmp_path}/a.db")
    normal = SQLStore(f"sqlite:///{tmp_path}/b.db?synchronous=normal&busy_timeout=2.5")
    try:
        assert pragmas(default) == ("wal", 2, 30_000)  # FULL, 30 s
        assert pragmas(normal) == ("wal", 1, 2_500)  # NORMAL
        assert "synchronous" not in normal.engine.url.query
    finally:
        default.close()
        normal.close()


def test_pool_options_from_the_url(sql_url: str, open_store: Callable[..., SQLStore]) -> None:
    url = with_prefix(sql_url, unique_prefix(), pool_size=3, max_overflow=2, pool_recycle=60)
    store = SQLStore(url)
    try:
        pool = store.engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.size() == 3
        assert pool._max_overflow == 2
        assert pool._recycle == 60
        assert not {"prefix", "pool_size", "max_overflow", "pool_recycle"} & set(
            store.engine.url.query
        )
        store.create(make_execution())
    finally:
        if store.engine.dialect.name != "sqlite":
            drop_tables(store.engine, store.prefix)
        store.close()


@pytest.mark.sqlite
def test_options_and_urls_are_checked(tmp_path: Path) -> None:
    base = f"sqlite:///{tmp_path}/x.db"
    with pytest.raises(ConfigError, match="'pool_size' must be an integer"):
        SQLStore(f"{base}?pool_size=many")
    with pytest.raises(ConfigError, match="'synchronous' must be one of off, normal, full"):
        SQLStore(f"{base}?synchronous=sometimes")
    with pytest.raises(ConfigError, match="table prefix 'Bad-Prefix'"):
        SQLStore(base, prefix="Bad-Prefix")
    with pytest.raises(ConfigError, match="'create_schema' must be true or false"):
        SQLStore(f"{base}?create_schema=perhaps")


@pytest.mark.postgresql
def test_postgresql_urls_default_to_psycopg() -> None:
    for scheme in ("postgresql", "postgres"):
        url = with_prefix(POSTGRESQL_URL.replace("postgresql", scheme, 1), unique_prefix())
        store = SQLStore(url, create_schema=False)
        try:
            assert store.engine.url.drivername == "postgresql+psycopg"
            assert store.engine.dialect.driver == "psycopg"
        finally:
            store.close()
    with pytest.raises(ConfigError, match="'synchronous' is for SQLite only"):
        SQLStore(f"{POSTGRESQL_URL}?synchronous=normal")


@pytest.mark.mysql
def test_mysql_and_mariadb_urls_default_to_pymysql() -> None:
    for scheme in ("mysql", "mariadb"):
        url = with_prefix(MYSQL_URL.replace("mysql", scheme, 1), unique_prefix())
        store = SQLStore(url, create_schema=False)
        try:
            assert store.engine.url.drivername == f"{scheme}+pymysql"
        finally:
            store.close()


def test_a_ready_engine_is_used_and_never_disposed(sql_url: str) -> None:
    opened = SQLStore(sql_url, create_schema=False)
    url, prefix = opened.engine.url, opened.prefix
    opened.close()
    engine = sa.create_engine(url)
    try:
        store = SQLStore(engine, prefix=prefix)
        execution = make_execution()
        store.create(execution)
        assert store.load(execution.id) is not None
        store.close()
        with pytest.raises(FlowkitError, match="closed"):
            store.load(execution.id)
        assert engine.pool.checkedin() >= 1  # dispose() would have emptied the pool
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
        with pytest.raises(ConfigError, match="cannot be applied to a ready Engine"):
            SQLStore(engine, prefix=prefix, pool_size=3)
    finally:
        if engine.dialect.name != "sqlite":
            drop_tables(engine, prefix)
        engine.dispose()


def test_close_disposes_the_engine_it_created(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    store.create(make_execution())
    assert store.engine.pool.checkedin() >= 1
    store.close()
    assert store.engine.pool.checkedin() == 0


@pytest.mark.sqlite
def test_sqlite_in_memory_is_shared_by_threads() -> None:
    store = SQLStore("sqlite://")
    try:
        executions = [make_execution() for _ in range(4)]

        def advance(execution: flowkit.Execution) -> None:
            store.create(execution)
            current = execution
            for _ in range(10):
                record, entries = next_checkpoint(current, 1)
                store.checkpoint(record, entries, current.version)
                current = record

        threads = [threading.Thread(target=advance, args=(e,)) for e in executions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for execution in executions:
            assert len(_assert_consistent(store, execution.id)) == 10
    finally:
        store.close()


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [
        pytest.param("psycopg", POSTGRESQL_URL, "postgres", marks=pytest.mark.postgresql),
        pytest.param("pymysql", MYSQL_URL, "mysql", marks=pytest.mark.mysql),
        pytest.param(
            "pymysql", MYSQL_URL.replace("mysql", "mariadb", 1), "mysql", marks=pytest.mark.mysql
        ),
    ],
)
def test_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, url: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as raised:
        SQLStore(url)
    assert f"pip install 'flowkit-workflows[{extra}]'" in str(raised.value)
    assert f"'{module}'" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            "postgresql://postgres@127.0.0.1:1/test",
            "cannot connect to the store postgresql+psycopg://postgres@127.0.0.1:1/test: ",
            marks=pytest.mark.postgresql,
        ),
        pytest.param(
            "mysql://root:secret@127.0.0.1:1/test",
            "cannot connect to the store mysql+pymysql://root:***@127.0.0.1:1/test: ",
            marks=pytest.mark.mysql,
        ),
        pytest.param(
            "sqlite:////nonexistent-flowkit-dir/x.db",
            "cannot open the store sqlite:////nonexistent-flowkit-dir/x.db: unable to open "
            "database file (does its directory exist",
            marks=pytest.mark.sqlite,
        ),
    ],
)
def test_unreachable_database_is_one_clear_line(url: str, message: str) -> None:
    with pytest.raises(StoreUnavailableError) as raised:
        SQLStore(url)
    text = str(raised.value)
    assert text.startswith(message), text
    assert "\n" not in text
    assert "secret" not in text
    assert isinstance(raised.value, ConnectionError)
    result = CliRunner().invoke(cli, ["list", "--store", url])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {text}"]


def test_nul_characters(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    nul = {"ke\x00y": "val\x00ue", "list": ["\x00"]}
    execution = make_execution(ctx=nul, input=nul)
    store.create(execution)
    record, entries = next_checkpoint(execution, 1, ctx={"after": nul}, error="Bad\x00Error: x")
    entry = attrs.evolve(entries[0], output=nul, error="Bad\x00Error: x")
    store.checkpoint(record, [entry], execution.version)
    loaded = store.load(execution.id)
    assert loaded is not None
    assert loaded.input == nul  # JSON keeps NUL everywhere (PostgreSQL: json, not jsonb)
    assert loaded.ctx == {"after": nul}
    (stored,) = store.entries(execution.id)
    assert stored.output == nul
    # Plain text columns: NUL is escaped on every database (PostgreSQL text cannot hold it).
    expected = "Bad\\x00Error: x"
    assert loaded.error == expected
    assert stored.error == expected
    with pytest.raises(ValueError, match="NUL"):
        store.create(make_execution(id="ex-\x00"))
    assert store.load("ex-\x00") is None
    assert store.entries("ex-\x00") == []
    assert store.delete("ex-\x00") is False


def test_ids_longer_than_255_characters_are_refused(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    with pytest.raises(ValueError, match="longer than 255"):
        store.create(make_execution(id="x" * 256))
    execution = make_execution(id="x" * 255)
    store.create(execution)
    store.checkpoint(*next_checkpoint(execution, 1), execution.version)
    assert [e.id for e in store.entries(execution.id)] == [f"{'x' * 255}:1"]


def test_ids_are_compared_exactly(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    for execution_id in ("ex-a", "ex-A", "ex-a ", "ex-ä"):
        store.create(make_execution(id=execution_id))
        store.checkpoint(*next_checkpoint(make_execution(id=execution_id), 1), 1)
    assert [e.execution_id for e in store.entries("ex-a")] == ["ex-a"]
    assert [e.id for e in store.find(limit=10)] == ["ex-ä", "ex-a ", "ex-a", "ex-A"]


def test_many_entries_in_one_checkpoint(open_store: Callable[..., SQLStore]) -> None:
    store = open_store()
    execution = make_execution()
    store.create(execution)
    record, entries = next_checkpoint(execution, 450)
    store.checkpoint(record, entries, execution.version)
    assert len(_assert_consistent(store, execution.id)) == 450
    stale, more = next_checkpoint(execution, 450)
    with pytest.raises(flowkit.ConflictError):
        store.checkpoint(stale, more, execution.version)
    assert len(_assert_consistent(store, execution.id)) == 450
    assert make_entry(execution, 1).id == f"{execution.id}:1"

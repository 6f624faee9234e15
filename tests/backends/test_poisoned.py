"""Poisoned data and poisoned executions, on every store (issue #14, SPEC §7 and §19).

What a step produces that no store can keep fails that step, naming the path of
the bad value; input and resume data past the limits is refused before anything
is stored; error texts are made storable and stripped of credentials; and one
execution that cannot be recovered never blocks the recovery of the others.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import invoke

import flowkit
from flowkit import Action, Status, Store
from flowkit.definitions import WorkflowRegistry
from flowkit.limits import MAX_CHARS, MAX_DEPTH
from flowkit.redaction import REDACTED
from flowkit.testing.conformance import snapshot

from .poison_flows import CRASH_EXIT_CODE, CRASHING, FINE
from .redis_helpers import REDIS_URL, with_options
from .redis_helpers import scratch_store as redis_scratch
from .redis_helpers import unique_prefix as redis_prefix
from .sql_helpers import MYSQL_URL, POSTGRESQL_URL, scratch_store, unique_prefix, with_prefix

ROOT = Path(__file__).parents[2]
FLOWKIT = str(Path(sys.executable).with_name("flowkit"))

StoreFactory = Callable[[], Store]


def _nested(depth: int) -> Any:
    return functools.reduce(lambda inner, _: [inner], range(depth), "bottom")


def _returns(value: Any) -> Callable[[], Any]:
    return lambda: value


def _raises(message: str) -> Callable[[], Any]:
    def fail() -> Any:
        raise RuntimeError(message)

    return fail


def _calling(on_error: bool = False) -> flowkit.WorkflowDef:
    step: dict[str, Any] = {"id": "call", "type": "call", "service": "Poison", "method": "make"}
    step["output"] = "made"
    step["next"] = "done"
    steps: list[dict[str, Any]] = [
        {"id": "start", "type": "start", "next": "call"},
        step,
        {"id": "done", "type": "end", "result": "$made"},
    ]
    if on_error:
        step["on_error"] = "handle"
        steps.append({"id": "handle", "type": "end", "result": "$_last_error"})
    return flowkit.load({"id": "poisoned", "steps": steps})


@pytest.fixture
def engine_for(
    store_factory: StoreFactory,
) -> Callable[[Callable[[], Any]], flowkit.Engine]:
    """An engine on a fresh store whose service ``Poison.make`` is ``make``."""

    def make_engine(make: Callable[[], Any]) -> flowkit.Engine:
        services = flowkit.ServiceRegistry()
        services.register("Poison", {"make": make})
        return flowkit.Engine(
            store=store_factory(), services=services, workflows=WorkflowRegistry()
        )

    return make_engine


# --- item 1: what a step produces that cannot be stored -------------------------------------------

UNSTORABLE_OUTPUTS = {
    "lone-surrogate": (
        "bad\ud800",
        "output holds a lone surrogate ('\\ud800' at position 3) (UTF-8 cannot encode it; "
        "decode bytes with errors='replace', or drop the character)",
    ),
    "lone-surrogate-in-a-key": (
        {"rows": [{"k\udc80": 1}]},
        "output.rows[0] has a key with a lone surrogate ('\\udc80' at position 1 of "
        "'k\\udc80') (UTF-8 cannot encode it; decode bytes with errors='replace', or drop "
        "the character)",
    ),
    "huge-integer": (
        {"n": 10**5000},
        "output.n is an integer of 5001 digits, more than the 4300 a value may have (store "
        "such a number as a string)",
    ),
    "too-deep": (
        {"tree": _nested(MAX_DEPTH + 50)},
        "output.tree[0][0][0][0][0][0][0][0][0][0]…[0] nests deeper than 100 levels of lists "
        "and mappings (flatten the data)",
    ),
    "too-large": (
        ["x" * (MAX_CHARS // 2)] * 3,
        f"output is larger than {MAX_CHARS} characters of JSON (keep large data in a file or a "
        "bucket and pass a reference to it)",
    ),
}


@pytest.mark.parametrize(
    ("value", "problem"), list(UNSTORABLE_OUTPUTS.values()), ids=list(UNSTORABLE_OUTPUTS)
)
def test_an_output_no_store_can_keep_fails_its_step(
    engine_for: Callable[[Callable[[], Any]], flowkit.Engine], value: Any, problem: str
) -> None:
    engine = engine_for(_returns(value))
    result = engine.run(_calling())
    error = f"ExecutionError: step 'call': {problem}"
    assert result.status is Status.FAILED
    assert result.error == error
    stored = engine.store.load(result.execution_id)
    assert stored is not None
    assert (stored.status, stored.error, stored.ctx) == (Status.FAILED, error, {})
    last = engine.store.entries(result.execution_id)[-1]
    assert (last.step_id, last.action, last.output, last.error) == (
        "call",
        Action.FAILED,
        None,
        error,
    )
    # Nothing is left for recovery to run again.
    assert engine.store.stale(stored.updated_at + timedelta(days=1)) == []


def test_an_unstorable_output_takes_on_error(
    engine_for: Callable[[Callable[[], Any]], flowkit.Engine],
) -> None:
    engine = engine_for(_returns({"n": 10**5000}))
    result = engine.run(_calling(on_error=True))
    assert result.status is Status.COMPLETED
    assert result.output == {
        "step": "call",
        "type": "ExecutionError",
        "message": "step 'call': " + UNSTORABLE_OUTPUTS["huge-integer"][1],
    }


def test_an_unstorable_output_is_retried_like_any_failure(
    engine_for: Callable[[Callable[[], Any]], flowkit.Engine],
) -> None:
    answers = iter(["bad\ud800", "good"])
    engine = engine_for(lambda: next(answers))
    wf = flowkit.load(
        {
            "id": "retried",
            "steps": [
                {
                    "id": "call",
                    "type": "call",
                    "service": "Poison",
                    "method": "make",
                    "output": "made",
                    "retries": 1,
                    "retry_delay": 0,
                }
            ],
        }
    )
    result = engine.run(wf)
    assert result.status is Status.COMPLETED
    stored = engine.store.load(result.execution_id)
    assert stored is not None
    assert stored.ctx == {"made": "good"}
    actions = [(e.action, e.attempt) for e in engine.store.entries(result.execution_id)]
    assert actions == [(Action.RETRIED, 1), (Action.COMPLETED, 2)]


def test_a_checkpoint_the_store_refuses_fails_the_execution(
    engine_for: Callable[[Callable[[], Any]], flowkit.Engine],
) -> None:
    # An application may lower Python's limit on integer digits (as its docs advise):
    # the value passes flowkit's own limit, and then no store can encode it.
    engine = engine_for(_returns({"n": 10**2000}))
    default = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(1000)
    try:
        result = engine.run(_calling())
    finally:
        sys.set_int_max_str_digits(default)
    assert result.status is Status.FAILED
    assert result.error is not None
    assert result.error.startswith(
        "ExecutionError: the checkpoint after step 'call' could not be stored, so the "
        "execution failed: ValueError: Exceeds the limit (1000 digits) for integer string "
        "conversion"
    )
    stored = engine.store.load(result.execution_id)
    assert stored is not None
    assert (stored.status, stored.error, stored.ctx, stored.lease_owner) == (
        Status.FAILED,
        result.error,
        {},
        None,
    )
    entries = engine.store.entries(result.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [
        ("start", Action.COMPLETED),
        ("call", Action.FAILED),
    ]
    assert entries[-1].error == result.error


ERROR_TEXTS = {
    "lone-surrogate": ("bad \ud800 text", "RuntimeError: bad \\ud800 text"),
    "nul": ("bad \x00 text", "RuntimeError: bad \\x00 text"),
    "both-and-a-backslash": ("\x00\udfff\\x00", "RuntimeError: \\x00\\udfff\\x00"),
}


@pytest.mark.parametrize(("message", "stored"), list(ERROR_TEXTS.values()), ids=list(ERROR_TEXTS))
def test_error_texts_are_stored_alike_on_every_store(
    engine_for: Callable[[Callable[[], Any]], flowkit.Engine], message: str, stored: str
) -> None:
    engine = engine_for(_raises(message))
    events: list[flowkit.Event] = []
    engine.events.subscribe(events.append, ["step.failed", "workflow.failed"])
    result = engine.run(_calling(on_error=True))
    assert result.output == {"step": "call", "type": "RuntimeError", "message": stored[14:]}
    entries = engine.store.entries(result.execution_id)
    assert [e.error for e in entries if e.action is Action.FAILED] == [stored]
    assert [event.payload["error"] for event in events] == [stored]

    result = engine_for(_raises(message)).run(_calling())
    assert result.error == stored


# --- item 2: input that cannot be handled ---------------------------------------------------

BAD_INPUTS = {
    "huge-integer": (
        {"n": 10**5000},
        "input.n is an integer of 5001 digits, more than the 4300 a value may have (store such "
        "a number as a string)",
    ),
    "nested-800-deep": (
        {"n": 1, "tree": _nested(800)},
        "input.tree[0][0][0][0][0][0][0][0][0][0]…[0] nests deeper than 100 levels of lists and "
        "mappings (flatten the data)",
    ),
    "too-large": (
        {"n": 1, "text": "x" * MAX_CHARS},
        f"input is larger than {MAX_CHARS} characters of JSON (keep large data in a file or a "
        "bucket and pass a reference to it)",
    ),
    "lone-surrogate": (
        {"n": 1, "name": "\ud83d"},
        "input.name holds a lone surrogate ('\\ud83d' at position 0) (UTF-8 cannot encode it; "
        "decode bytes with errors='replace', or drop the character)",
    ),
    "not-json": (
        {"n": 1, "when": object()},
        "input.when is an object, which is not JSON data (use strings, numbers, booleans, "
        "null, lists and mappings with string keys)",
    ),
}


@pytest.mark.parametrize("checked", [True, False], ids=["declared", "validate_input-false"])
@pytest.mark.parametrize(("data", "problem"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_input_past_the_limits_is_refused_and_nothing_is_stored(
    engine_for: Callable[[Callable[[], Any]], flowkit.Engine],
    data: dict[str, Any],
    problem: str,
    checked: bool,
) -> None:
    engine = engine_for(_returns(1))
    wf = FINE
    if not checked:
        source = flowkit.to_dict(FINE)
        source["steps"][0]["validate_input"] = False
        wf = flowkit.load(source)
    with pytest.raises(flowkit.ValidationError) as raised:
        engine.run(wf, data)
    assert raised.value.problems == [problem]
    assert str(raised.value).startswith("invalid input for workflow 'fine'")
    assert engine.store.find() == []


def test_a_resume_response_past_the_limits_is_refused_and_changes_nothing(
    engine_for: Callable[[Callable[[], Any]], flowkit.Engine],
) -> None:
    engine = engine_for(_returns(1))
    wf = flowkit.load(
        {
            "id": "asks",
            "steps": [
                {"id": "ask", "type": "halt", "reason": "tell me", "next": "done"},
                {"id": "done", "type": "end", "result": "$response"},
            ],
        }
    )
    halted = engine.run(wf)
    assert halted.status is Status.HALTED
    before = snapshot(engine.store, halted.execution_id)
    with pytest.raises(flowkit.ValidationError) as raised:
        engine.resume(halted.execution_id, response={"deep": _nested(MAX_DEPTH + 1)})
    assert raised.value.problems == [
        "response.deep[0][0][0][0][0][0][0][0][0][0]…[0] nests deeper than 100 levels of lists "
        "and mappings (flatten the data)"
    ]
    with pytest.raises(flowkit.ValidationError) as raised:
        engine.resume(halted.execution_id, response="\udc00", by="\ud800")
    assert len(raised.value.problems) == 2
    assert snapshot(engine.store, halted.execution_id) == before
    assert engine.resume(halted.execution_id, response={"ok": 1}).output == {"ok": 1}


# --- item 7: credentials in error texts ---------------------------------------------------------


def test_credentials_are_redacted_from_stored_and_emitted_errors(
    engine_for: Callable[[Callable[[], Any]], flowkit.Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENTS_API_KEY", "pay-4f9a8b7c6d5e")
    flowkit.add_secret("configured-secret-value")
    message = (
        "gateway said 401 for key pay-4f9a8b7c6d5e; sent headers {'Authorization': "
        "'Bearer tok-abcdef123456'} api_key=k-998877665544 and sk-proj-a1b2c3d4e5f6g7 via "
        "postgresql://app:hunter2hunter2@db.internal/app (configured-secret-value)"
    )
    engine = engine_for(_raises(message))
    events: list[flowkit.Event] = []
    engine.events.subscribe(events.append)
    result = engine.run(_calling())
    expected = (
        f"RuntimeError: gateway said 401 for key {REDACTED}; sent headers {{'Authorization': "
        f"'{REDACTED}'}} api_key={REDACTED} and {REDACTED} via postgresql://app:{REDACTED}"
        f"@db.internal/app ({REDACTED})"
    )
    assert result.error == expected
    stored = engine.store.load(result.execution_id)
    assert stored is not None
    texts = [stored.error, *(e.error for e in engine.store.entries(result.execution_id))]
    texts += [str(event.payload) for event in events]
    for secret in (
        "pay-4f9a8b7c6d5e",
        "tok-abcdef123456",
        "k-998877665544",
        "a1b2c3d4e5f6g7",
        "hunter2hunter2",
        "configured-secret-value",
    ):
        assert not any(secret in (text or "") for text in texts), secret
    assert expected in texts


# --- item 1: recovery isolates executions --------------------------------------------------------


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh store that two processes can share (not memory://)."""
    name = request.param
    if name == "sqlite":
        yield f"sqlite:///{tmp_path}/poisoned.db"
        return
    if name == "redis":
        prefix = redis_prefix()
        yield with_options(REDIS_URL, prefix=prefix)
        redis_scratch(REDIS_URL, prefix=prefix).close()  # deletes what the prefix holds
        return
    base = POSTGRESQL_URL if name == "postgresql" else MYSQL_URL
    prefix = unique_prefix()
    yield with_prefix(base, prefix)
    scratch_store(base, prefix=prefix).close()  # drops the prefix's tables


SHARED_STORES = [
    pytest.param(name, marks=getattr(pytest.mark, name), id=name)
    for name in ("sqlite", "postgresql", "mysql", "redis")
]


def _stale(engine: flowkit.Engine, wf: flowkit.WorkflowDef, data: dict[str, Any] | None) -> str:
    """An execution left running by a process that died: its lease is long gone."""
    execution = engine.create(wf, data)
    return execution.id


def _recover_in_a_child(url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FLOWKIT_LEASE_SECONDS": "0.001",  # its own leases are stale as soon as it dies
        "FLOWKIT_MAX_RECOVERIES": "2",
    }
    return subprocess.run(
        [
            FLOWKIT,
            "recover",
            "-m",
            "tests.backends.poison_flows",
            "--store",
            url,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("store_url", SHARED_STORES, indirect=True)
def test_an_execution_that_kills_its_process_fails_after_max_recoveries(store_url: str) -> None:
    engine = flowkit.Engine(store=store_url, lease_seconds=0.001, workflows=WorkflowRegistry())
    try:
        poisoned = _stale(engine, CRASHING, None)  # the oldest: recovered first
        fine = [_stale(engine, FINE, {"n": n}) for n in (1, 2)]

        # The child dies in the poisoned step; its takeover moved the poisoned
        # execution behind the others, so the next child recovers them first.
        child = _recover_in_a_child(store_url)
        assert child.returncode == CRASH_EXIT_CODE, child.stderr
        assert engine.load(poisoned).cursor == {"recoveries": 1}
        assert [engine.load(i).status for i in fine] == [Status.RUNNING] * 2

        child = _recover_in_a_child(store_url)
        assert child.returncode == CRASH_EXIT_CODE, child.stderr
        assert engine.load(poisoned).cursor == {"recoveries": 2}
        assert [engine.load(i).result for i in fine] == [2, 4]

        child = _recover_in_a_child(store_url)
        assert child.returncode == 0, child.stderr
        assert child.stdout.splitlines() == ["1 execution recovered", f"  {poisoned}  failed"]
        record = engine.load(poisoned)
        assert record.status is Status.FAILED
        assert record.error == (
            f"ExecutionError: recovery gave up on execution '{poisoned}' after 2 attempts: "
            "step 'crash' never reached its next checkpoint (each time, the process running it "
            "died or could not write it; see that process's logs). Fix the cause, then retry "
            f"it: flowkit retry {poisoned} (max_recoveries=2)"
        )
        assert (record.cursor, record.lease_owner) == ({}, None)
        last = engine.store.entries(poisoned)[-1]
        assert (last.step_id, last.step_type, last.action, last.error) == (
            "crash",
            "call",
            Action.FAILED,
            record.error,
        )
    finally:
        engine.close()


@pytest.mark.parametrize("store_url", SHARED_STORES, indirect=True)
def test_recover_goes_on_past_an_execution_it_cannot_recover(store_url: str) -> None:
    unknown = flowkit.load({"id": "only_here", "steps": [{"id": "start", "type": "start"}]})
    engine = flowkit.Engine(store=store_url, lease_seconds=0.001, workflows=WorkflowRegistry())
    try:
        lost = _stale(engine, unknown, None)  # the oldest, and no other process knows it
        fine = _stale(engine, FINE, {"n": 21})
        result = invoke("recover", "-m", "tests.backends.poison_flows", "--store", store_url)
        assert result.exit_code == 1
        assert result.stdout.splitlines() == ["1 execution recovered", f"  {fine}  completed"]
        # The log has the same line, with a time: what a cron job's log file wants.
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            f"error: execution {lost} could not be recovered: NotFoundError: workflow "
            "'only_here' is not known in this process: on the command line pass --workflow "
            "FILE|MODULE:ATTR or -m MODULE (a module that defines it); in Python call "
            "flowkit.register(wf) or pass workflow=...; or list its file or module under "
            "'workflows' in [tool.flowkit] / flowkit.toml"
        ]
        assert engine.load(fine).result == 42
        assert engine.load(lost).status is Status.RUNNING  # untouched: another process may know it
    finally:
        engine.close()

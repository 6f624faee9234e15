"""The JSON API (SPEC §17) against every real store: reading, authentication, actions."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

import flowkit
from flowkit.dashboard.actions import Actions, Done

from .conftest import PAUSE, WAITER, Shop, basic, halted


def test_pages_follow_each_other_without_gaps_or_repeats(
    client: TestClient, engine: flowkit.Engine
) -> None:
    started = [engine.run(PAUSE).execution_id for _ in range(7)]

    seen: list[str] = []
    url: str | None = "/api/executions?limit=3"
    while url is not None:
        page = client.get(url, headers=basic("bob")).json()
        assert len(page["executions"]) <= 3
        seen.extend(item["id"] for item in page["executions"])
        url = f"/api/executions?limit=3&cursor={page['next']}" if page["next"] else None

    assert sorted(seen) == sorted(started)
    assert seen == [execution.id for execution in engine.store.find(limit=100)]


def test_lists_executions_newest_first_with_filters(
    client: TestClient, engine: flowkit.Engine
) -> None:
    first = halted(engine, 10)
    paused = engine.run(PAUSE).execution_id
    last = halted(engine, 30)

    listed = client.get("/api/executions", headers=basic("bob"))

    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["executions"]] == [last, paused, first]
    assert listed.json()["next"] is None
    by_workflow = client.get("/api/executions?workflow=pause", headers=basic("bob")).json()
    assert [item["id"] for item in by_workflow["executions"]] == [paused]
    by_status = client.get("/api/executions?status=completed", headers=basic("bob")).json()
    assert by_status["executions"] == []
    by_id = client.get(f"/api/executions?id={first}", headers=basic("bob")).json()
    assert [item["id"] for item in by_id["executions"]] == [first]
    assert client.get("/api/executions?id=nope", headers=basic("bob")).json()["executions"] == []


def test_one_execution_with_its_entries(client: TestClient, engine: flowkit.Engine) -> None:
    execution_id = halted(engine, 42, note="taxi")

    found = client.get(f"/api/executions/{execution_id}", headers=basic("bob"))

    assert found.status_code == 200
    body = found.json()
    assert body["execution"]["status"] == "halted"
    assert body["execution"]["ctx"]["note"] == "taxi"
    assert body["execution"]["halt_data"]["prompt"] == "Approve 42?"
    assert [(e["step_id"], e["action"]) for e in body["entries"]] == [
        ("start", "completed"),
        ("remember", "completed"),
        ("ask", "halted"),
    ]
    later = client.get(f"/api/executions/{execution_id}?after=2", headers=basic("bob")).json()
    assert [e["seq"] for e in later["entries"]] == [3]
    bad = client.get(f"/api/executions/{execution_id}?after=-1", headers=basic("bob"))
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "after must be an entry's seq (0 or more), got '-1'"},
    )
    missing = client.get("/api/executions/nope", headers=basic("bob"))
    assert missing.status_code == 404
    assert missing.json() == {"error": "no execution 'nope' in the store"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=finished", "unknown status 'finished' (use one of: pending, running,"),
        ("cursor=bm9wZQ", "cursor 'bm9wZQ' is not one this dashboard handed out"),
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("limit=ten", "limit must be a whole number from 1 to 500"),
    ],
)
def test_bad_queries_say_what_is_wrong(client: TestClient, query: str, message: str) -> None:
    answer = client.get(f"/api/executions?{query}", headers=basic("bob"))
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(message)


def test_reading_needs_a_user_when_there_are_users(
    client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = halted(engine)
    for path in ("/api/executions", f"/api/executions/{execution_id}", "/api/events"):
        anonymous = client.get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["www-authenticate"].startswith("Basic ")
        assert client.get(path, headers=basic("bob", "wrong")).status_code == 401, path
        assert client.get(path, headers=basic("mallory", "mallory-pw")).status_code == 401


def test_without_users_it_reads_but_refuses_every_action(
    read_only_client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = halted(engine)

    assert read_only_client.get("/api/executions").status_code == 200
    for action in ("resume", "cancel", "retry", "signal"):
        refused = read_only_client.post(
            f"/api/executions/{execution_id}/{action}", json={"approved": True}
        )
        assert refused.status_code == 403
        assert refused.json()["error"].startswith("the dashboard is read-only: it has no users")
    assert engine.load(execution_id).status is flowkit.Status.HALTED


def test_an_approver_approves_as_themself_whatever_the_body_says(
    client: TestClient, engine: flowkit.Engine, shop: Shop
) -> None:
    execution_id = halted(engine)

    answer = client.post(
        f"/api/executions/{execution_id}/resume",
        json={"approved": True, "response": {"ok": "fine"}, "by": "carol"},
        headers=basic("alice"),
    )

    assert answer.status_code == 200
    assert answer.json()["execution"]["status"] == "completed"
    assert answer.json()["execution"]["result"] == {"approved": True}
    decided = [e for e in engine.store.entries(execution_id) if e.action.value == "resumed"]
    assert decided[0].output == {"approved": True, "by": "alice", "response": {"ok": "fine"}}
    assert shop.shipped == 1


def test_someone_else_is_refused_even_naming_an_approver(
    client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = halted(engine)

    refused = client.post(
        f"/api/executions/{execution_id}/resume",
        json={"approved": True, "by": "alice"},
        headers=basic("bob"),
    )

    assert refused.status_code == 403
    assert refused.json()["error"] == (
        f"execution '{execution_id}' waits for a decision by alice, carol; 'bob' is not one of them"
    )
    assert engine.load(execution_id).status is flowkit.Status.HALTED


def test_posting_needs_http_basic_and_json(client: TestClient, engine: flowkit.Engine) -> None:
    execution_id = halted(engine)
    url = f"/api/executions/{execution_id}/resume"

    assert client.post(url, json={"approved": True}).status_code == 401
    assert client.post(url, json={"approved": True}, headers=basic("alice", "x")).status_code == 401
    as_form = client.post(url, data={"approved": "true"}, headers=basic("alice"))
    assert as_form.status_code == 415
    not_an_object = client.post(url, json=[True], headers=basic("alice"))
    assert (not_an_object.status_code, not_an_object.json()) == (
        400,
        {"error": "the body must be a JSON object"},
    )
    bad_decision = client.post(url, json={"approved": "yes"}, headers=basic("alice"))
    assert bad_decision.status_code == 400
    assert bad_decision.json()["error"] == "'approved' must be true, false or null, got 'yes'"
    unknown = client.post(
        f"/api/executions/{execution_id}/approve", json={}, headers=basic("alice")
    )
    assert unknown.status_code == 404
    assert engine.load(execution_id).status is flowkit.Status.HALTED


def test_reject_takes_the_on_reject_path(client: TestClient, engine: flowkit.Engine) -> None:
    execution_id = halted(engine)

    answer = client.post(
        f"/api/executions/{execution_id}/resume",
        json={"approved": False, "response": "too much"},
        headers=basic("carol"),
    )

    assert answer.status_code == 200
    assert answer.json()["execution"]["result"] == {"approved": False}
    assert answer.json()["execution"]["ctx"]["response"] == "too much"


def test_a_halt_without_approvers_is_resumed_by_anyone_signed_in(
    client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = engine.run(PAUSE).execution_id

    answer = client.post(f"/api/executions/{execution_id}/resume", json={}, headers=basic("bob"))

    assert answer.status_code == 200
    assert answer.json()["execution"]["status"] == "completed"


def test_cancel_records_the_signed_in_user(client: TestClient, engine: flowkit.Engine) -> None:
    execution_id = halted(engine)

    answer = client.post(
        f"/api/executions/{execution_id}/cancel",
        json={"reason": "duplicate", "by": "someone else"},
        headers=basic("bob"),
    )

    assert answer.status_code == 200
    assert answer.json()["execution"]["status"] == "cancelled"
    cancelled = engine.store.entries(execution_id)[-1]
    assert cancelled.action is flowkit.Action.CANCELLED
    assert cancelled.input == {"reason": "duplicate", "by": "bob"}
    again = client.post(f"/api/executions/{execution_id}/cancel", json={}, headers=basic("bob"))
    assert again.status_code == 409
    assert "cancelled" in again.json()["error"]


def test_retry_continues_a_failed_execution(
    client: TestClient, engine: flowkit.Engine, shop: Shop
) -> None:
    execution_id = halted(engine)
    shop.broken = True
    assert engine.resume(execution_id, approved=True, by="alice").failed
    shop.broken = False

    answer = client.post(f"/api/executions/{execution_id}/retry", json={}, headers=basic("bob"))

    assert answer.status_code == 200
    assert answer.json()["execution"]["status"] == "completed"
    assert shop.shipped == 1
    refused = client.post(f"/api/executions/{execution_id}/retry", json={}, headers=basic("bob"))
    assert refused.status_code == 409


def test_a_signal_moves_a_waiting_execution_on_once_per_key(
    client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = engine.run(WAITER).execution_id
    assert engine.load(execution_id).status is flowkit.Status.WAITING
    url = f"/api/executions/{execution_id}/signal"

    sent = client.post(
        url, json={"name": "go", "payload": {"n": 1}, "key": "k1"}, headers=basic("bob")
    )

    assert sent.status_code == 200
    assert sent.json()["sent"] is True
    assert engine.wait(execution_id, timeout=10).output == {"n": 1}
    again = client.post(url, json={"name": "go", "key": "k1"}, headers=basic("bob"))
    assert again.status_code == 409  # finished now: nothing may be sent to it
    assert "completed" in again.json()["error"]
    nameless = client.post(url, json={"payload": 1}, headers=basic("bob"))
    assert (nameless.status_code, nameless.json()) == (400, {"error": "'name' is required"})


def test_a_repeated_signal_key_is_dropped(client: TestClient, engine: flowkit.Engine) -> None:
    execution_id = engine.run(PAUSE).execution_id  # halted: signals wait in its mailbox
    url = f"/api/executions/{execution_id}/signal"

    first = client.post(url, json={"name": "later", "key": "once"}, headers=basic("bob"))
    second = client.post(url, json={"name": "later", "key": "once"}, headers=basic("bob"))

    assert (first.status_code, first.json()["sent"]) == (200, True)
    assert (second.status_code, second.json()["sent"]) == (200, False)
    assert [signal.name for signal in engine.store.signals(execution_id)] == ["later"]


def test_actions_on_a_missing_execution_are_404(client: TestClient) -> None:
    actions = (
        ("resume", {"approved": True}),
        ("cancel", {}),
        ("retry", {}),
    )
    for action, body in actions:
        answer = client.post(f"/api/executions/nope/{action}", json=body, headers=basic("alice"))
        assert answer.status_code == 404, action
        assert answer.json() == {"error": "no execution 'nope' in the store"}


def test_an_action_that_runs_on_answers_with_the_record_as_it_is(
    engine: flowkit.Engine, shop: Shop
) -> None:
    execution_id = halted(engine)
    shop.gate.clear()  # ship() blocks until the gate opens
    actions = Actions(engine, wait_seconds=1.0)  # long enough to reach ship(), which blocks

    async def approve_then_open_the_gate() -> Done:
        try:
            return await actions.perform(execution_id, "resume", "alice", {"approved": True})
        finally:
            shop.gate.set()

    done = asyncio.run(approve_then_open_the_gate())

    assert not done.settled
    assert done.execution.status is flowkit.Status.RUNNING
    assert engine.wait(execution_id, timeout=10).completed

"""The pages: sign-in, CSRF, escaping, the halt prompt and its actions, workflows, schedules."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

import flowkit
from flowkit.dashboard import create_app
from flowkit.definitions import WorkflowRegistry
from flowkit.records import Schedule

from .conftest import USERS, basic, halted

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, name: str) -> None:
    token = csrf_of(client.get("/login").text)
    signed = client.post(
        "/login",
        data={"name": name, "password": f"{name}-pw", "csrf": token},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text


def test_pages_send_nobody_to_the_sign_in_form_and_back(
    client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = halted(engine)
    page = f"/executions/{execution_id}"

    sent = client.get(page, follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/login?next=%2Fexecutions%2F{execution_id}"
    form = client.get(sent.headers["location"])
    wrong = client.post(
        sent.headers["location"],
        data={"name": "alice", "password": "nope", "csrf": csrf_of(form.text)},
    )
    assert wrong.status_code == 401
    assert "Wrong name or password" in wrong.text
    signed = client.post(
        sent.headers["location"],
        data={"name": "alice", "password": "alice-pw", "csrf": csrf_of(wrong.text)},
        follow_redirects=False,
    )
    assert (signed.status_code, signed.headers["location"]) == (303, page)
    assert 'signed in as <strong id="user">alice</strong>' in client.get(page).text


def test_sign_in_without_the_form_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    forged = client.post("/login", data={"name": "alice", "password": "alice-pw", "csrf": "x"})
    assert forged.status_code == 403
    assert client.get("/executions", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example/", "https://evil.example/"])
def test_sign_in_never_sends_anyone_off_the_site(client: TestClient, target: str) -> None:
    token = csrf_of(client.get("/login").text)
    signed = client.post(
        "/login",
        params={"next": target},
        data={"name": "bob", "password": "bob-pw", "csrf": token},
        follow_redirects=False,
    )
    assert signed.headers["location"] == "/executions"


def test_links_stay_under_the_proxy_prefix(engine: flowkit.Engine) -> None:
    with TestClient(create_app(engine), root_path="/flowkit") as client:
        page = client.get("/executions").text
    links = re.findall(r'(?:href|src|action|data-events)="([^"]+)"', page)
    assert links
    assert all(link.startswith("/flowkit/") for link in links), links


def test_ctx_cannot_inject_markup_or_script(client: TestClient, engine: flowkit.Engine) -> None:
    hostile = '<script>alert("ctx")</script><img src=x onerror=alert(1)>'
    execution_id = halted(engine, note=hostile)
    sign_in(client, "bob")

    for path in (f"/executions/{execution_id}", "/executions"):
        page = client.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
    detail = client.get(f"/executions/{execution_id}").text
    assert "&lt;script&gt;alert(\\&#34;ctx\\&#34;)&lt;/script&gt;" in detail  # as JSON text
    assert detail.count("<script") == 1  # the dashboard's own script, from /static


def test_the_execution_page_shows_the_record_graph_and_prompt(
    client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = halted(engine, 75, note="hotel")
    sign_in(client, "alice")

    page = client.get(f"/executions/{execution_id}").text

    assert 'id="status">halted<' in page
    assert 'id="prompt">Approve 75?<' in page
    assert "Approvers: <strong>alice</strong>, <strong>carol</strong>" in page
    assert 'id="approve"' in page
    assert 'id="reject"' in page
    assert re.search(r'class="step shape-wait current" data-step="ask"', page)
    for done in ("start", "remember"):
        assert re.search(rf'class="step shape-\w+ done" data-step="{done}"', page), done
    assert re.search(r'class="step shape-\w+" data-step="ship"', page)
    assert page.count('<tr class="action-') == 3  # the timeline
    assert f"since={engine.load(execution_id).version}" in page  # live from this version on


def test_an_approver_approves_from_the_page(client: TestClient, engine: flowkit.Engine) -> None:
    execution_id = halted(engine)
    sign_in(client, "carol")
    page = client.get(f"/executions/{execution_id}")

    approved = client.post(
        f"/executions/{execution_id}/resume",
        data={"csrf": csrf_of(page.text), "decision": "approve", "response": '{"note": "ok"}'},
    )

    assert approved.status_code == 200
    assert 'id="notice">Approved.<' in approved.text
    assert 'id="status">completed<' in approved.text
    record = engine.load(execution_id)
    assert record.status is flowkit.Status.COMPLETED
    assert record.ctx["response"] == {"note": "ok"}


def test_another_user_is_refused_on_the_page(client: TestClient, engine: flowkit.Engine) -> None:
    execution_id = halted(engine)
    sign_in(client, "bob")
    page = client.get(f"/executions/{execution_id}")

    refused = client.post(
        f"/executions/{execution_id}/resume",
        data={"csrf": csrf_of(page.text), "decision": "approve"},
    )

    assert refused.status_code == 403
    assert "&#39;bob&#39; is not one of them" in refused.text
    assert engine.load(execution_id).status is flowkit.Status.HALTED


def test_a_form_without_its_token_changes_nothing(
    client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = halted(engine)
    sign_in(client, "alice")

    forged = client.post(
        f"/executions/{execution_id}/cancel", data={"csrf": "guessed", "reason": "x"}
    )

    assert forged.status_code == 403
    assert "The form expired or did not come from this dashboard" in forged.text
    assert engine.load(execution_id).status is flowkit.Status.HALTED


def test_cancel_from_the_page(client: TestClient, engine: flowkit.Engine) -> None:
    execution_id = halted(engine)
    sign_in(client, "bob")
    token = csrf_of(client.get(f"/executions/{execution_id}").text)

    cancelled = client.post(
        f"/executions/{execution_id}/cancel", data={"csrf": token, "reason": "typo"}
    )

    assert 'id="notice">Cancel requested.<' in cancelled.text
    assert 'id="status">cancelled<' in cancelled.text
    assert engine.load(execution_id).error == "typo"


def test_read_only_pages_show_no_forms(
    read_only_client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = halted(engine)

    page = read_only_client.get(f"/executions/{execution_id}").text

    assert "read-only" in page
    assert '<form method="post"' not in page
    listed = read_only_client.get("/executions").text
    assert f'href="/executions/{execution_id}"' in listed


def test_the_list_filters_and_rejects_an_unknown_status(
    client: TestClient, engine: flowkit.Engine
) -> None:
    expense = halted(engine)
    paused = engine.run(flowkit.load({"id": "pause2", "steps": [{"id": "h", "type": "halt"}]}))
    sign_in(client, "bob")

    by_id = client.get(f"/executions?id={expense}").text
    assert f'data-execution="{expense}"' in by_id
    assert f'data-execution="{paused.execution_id}"' not in by_id
    by_workflow = client.get("/executions?workflow=pause2").text
    assert f'data-execution="{paused.execution_id}"' in by_workflow
    assert f'data-execution="{expense}"' not in by_workflow
    assert "No executions match these filters." in client.get("/executions?status=failed").text
    bad = client.get("/executions?status=done")
    assert bad.status_code == 400
    assert "unknown status &#39;done&#39;" in bad.text


def test_workflows_page_draws_every_registered_workflow(client: TestClient) -> None:
    sign_in(client, "bob")

    page = client.get("/workflows").text

    for workflow_id in ("expense", "pause", "waiter"):
        assert f'id="workflow-{workflow_id}"' in page
    assert page.count("<svg") == 3
    assert ">on_reject</text>" in page


def test_schedules_page_lists_schedules_or_says_there_are_none(
    client: TestClient, engine: flowkit.Engine
) -> None:
    sign_in(client, "bob")
    assert 'id="no-schedules"' in client.get("/schedules").text

    engine.store.save_schedule(
        Schedule(
            name="nightly",
            workflow_id="pause",
            cron="0 3 * * *",
            timezone="Europe/Paris",
            created_at=datetime(2030, 1, 1, tzinfo=UTC),
        )
    )

    page = client.get("/schedules").text
    assert "<td>nightly</td>" in page
    assert "<code>0 3 * * *</code>" in page
    assert "Europe/Paris" in page


@pytest.mark.parametrize("path", ["/executions/nope", "/executions/nope/resume"])
def test_unknown_executions_are_404(client: TestClient, path: str) -> None:
    sign_in(client, "alice")
    if path.endswith("resume"):
        token = csrf_of(client.get("/executions").text)
        answer = client.post(path, data={"csrf": token, "decision": "approve"})
    else:
        answer = client.get(path)
    assert answer.status_code == 404
    assert "no execution &#39;nope&#39; in the store" in answer.text


def test_static_assets_ship_in_the_package(client: TestClient) -> None:
    script = client.get("/static/dashboard.js")
    assert script.status_code == 200
    assert "EventSource" in script.text
    assert client.get("/static/dashboard.css").status_code == 200


def test_a_long_log_lists_its_latest_entries(
    client: TestClient, engine: flowkit.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flowkit.dashboard.queries.TIMELINE_ROWS", 2)
    execution_id = halted(engine)
    sign_in(client, "bob")

    page = client.get(f"/executions/{execution_id}").text

    assert page.count('<tr class="action-') == 2
    assert "The latest 2 of 3 entries" in page
    assert len(client.get(f"/api/executions/{execution_id}").json()["entries"]) == 3


def test_an_unknown_workflow_is_shown_without_its_graph(
    engine: flowkit.Engine, store: flowkit.Store
) -> None:
    execution_id = halted(engine)
    stranger = flowkit.Engine(store=store, executor="inline", workflows=WorkflowRegistry())
    with TestClient(create_app(stranger, users=USERS)) as client:
        sign_in(client, "alice")
        page = client.get(f"/executions/{execution_id}").text
        assert "is not known to this dashboard: start it with <code>-m MODULE</code>" in page
        assert "<svg" not in page
        refused = client.post(
            f"/api/executions/{execution_id}/resume",
            json={"approved": True},
            headers=basic("alice"),
        )
    assert refused.status_code == 404
    assert refused.json()["error"].startswith("workflow 'expense' is not known in this process")
    assert engine.load(execution_id).status is flowkit.Status.HALTED


def test_the_session_cookie_is_signed_http_only_and_same_site(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    signed = client.post(
        "/login",
        data={"name": "bob", "password": "bob-pw", "csrf": token},
        follow_redirects=False,
    )
    cookie = signed.headers["set-cookie"].lower()
    assert cookie.startswith("flowkit_dashboard=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    client.cookies.clear()
    client.cookies.set("flowkit_dashboard", "eyJ1c2VyIjogImFsaWNlIn0=.forged.sig")
    assert client.get("/executions", follow_redirects=False).status_code == 303


def test_a_refused_action_page_refreshes_from_the_execution_page(
    client: TestClient, engine: flowkit.Engine
) -> None:
    execution_id = halted(engine)
    sign_in(client, "bob")
    token = csrf_of(client.get(f"/executions/{execution_id}").text)

    refused = client.post(
        f"/executions/{execution_id}/resume", data={"csrf": token, "decision": "approve"}
    )

    assert f'data-refresh="/executions/{execution_id}"' in refused.text

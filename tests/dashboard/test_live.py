"""Live updates over Server-Sent Events, from a real server: a change in the store is pushed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

import flowkit
from flowkit.dashboard import create_app

from .conftest import USERS, basic, halted
from .server import serving


def _first_event(
    response: httpx.Response, wanted: Callable[[dict[str, Any]], bool]
) -> tuple[str, dict[str, Any]]:
    """The first SSE message whose data is ``wanted`` (earlier ones may show steps between)."""
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
            if wanted(data):
                return name, data
    raise AssertionError("the stream ended without the event")


def test_an_execution_page_hears_of_a_change_another_process_makes(
    engine: flowkit.Engine,
) -> None:
    execution_id = halted(engine)
    since = engine.load(execution_id).version
    app = create_app(engine, users=USERS, poll_seconds=0.05)

    with (
        serving(app) as base,
        httpx.Client(base_url=base, headers=basic("bob"), timeout=30) as http,
        http.stream("GET", f"/api/events?execution={execution_id}&since={since}") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        # The worker is someone else: the engine decides directly, not through the dashboard.
        assert engine.resume(execution_id, approved=True, by="carol").completed
        name, data = _first_event(stream, lambda data: data["status"] != "running")

    assert name == "execution"
    assert data["execution_id"] == execution_id
    assert data["status"] == "completed"
    assert data["version"] == engine.load(execution_id).version


def test_the_list_hears_of_a_new_execution(engine: flowkit.Engine) -> None:
    halted(engine)
    app = create_app(engine, users=USERS, poll_seconds=0.05)

    with (
        serving(app) as base,
        httpx.Client(base_url=base, headers=basic("bob"), timeout=30) as http,
    ):
        listed = http.get("/executions", headers={"accept": "text/html"})
        marked = listed.text.split('data-events="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        with http.stream("GET", marked) as stream:
            new = halted(engine, 5)
            name, data = _first_event(
                stream, lambda data: data["executions"][0]["status"] == "halted"
            )

    assert name == "executions"
    assert data["executions"][0] == {
        "id": new,
        "status": "halted",
        "version": engine.load(new).version,
    }

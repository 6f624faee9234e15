"""The dashboard's Starlette application: pages, the JSON API, live updates (SPEC §17).

Pages are rendered on the server from Jinja2 templates (every value escaped);
a small script of the package's own follows ``/api/events`` (Server-Sent
Events) and refreshes the parts of a page that changed. The dashboard runs
in a process of its own, so it learns of changes by reading the store, once
per ``poll_seconds``, only for what a connected page shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine import Engine
from ..errors import NotFoundError
from ..records import Status, entry_to_dict, execution_to_dict
from . import auth
from .actions import Actions, Done, Refused
from .layout import BOX_HEIGHT, BOX_WIDTH, layout
from .queries import (
    BadRequest,
    Filters,
    find_page,
    list_mark,
    view_execution,
)
from .users import USERS_ENV, Users

__all__ = ["SECRET_ENV", "create_app", "end_live_updates"]

SECRET_ENV = "FLOWKIT_DASHBOARD_SECRET"
"""The environment variable with the key that signs session cookies (else a random one)."""

_HERE = Path(__file__).parent
_PAGE_SIZE = 50
_MAX_LIMIT = 500
_KEEPALIVE_SECONDS = 15.0
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        b"form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class _SecurityHeaders:
    """Adds a strict Content-Security-Policy (no inline script) and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _pretty(value: Any) -> str:
    """JSON data as indented text (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _form_value(text: str) -> Any:
    """A form field as JSON data when it parses as JSON, else as the text typed."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class Dashboard:
    """The endpoints, sharing the engine, the users and the templates."""

    def __init__(self, engine: Engine, users: Users, poll_seconds: float) -> None:
        self.engine = engine
        self.users = users
        self.poll_seconds = poll_seconds
        self.actions = Actions(engine)
        self.stopping = asyncio.Event()  # set when the server shuts down: streams end
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["pretty"] = _pretty
        self.templates.globals.update(
            statuses=[status.value for status in Status],
            box_width=BOX_WIDTH,
            box_height=BOX_HEIGHT,
        )

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def href(
        request: Request, name: str, query: Mapping[str, Any] | None = None, **params: Any
    ) -> str:
        """The path of a route, under the proxy's root path, with a query string."""
        path = request.scope.get("root_path", "") + str(request.app.url_path_for(name, **params))
        pairs = {key: value for key, value in (query or {}).items() if value not in (None, "")}
        return f"{path}?{urlencode(pairs)}" if pairs else path

    async def who(self, request: Request) -> str | None:
        """Who makes the request (:func:`~flowkit.dashboard.auth.request_user`), found once
        per request and off the event loop: checking a password takes a while, on purpose."""
        if not hasattr(request.state, "user"):
            request.state.user = await asyncio.to_thread(auth.request_user, request, self.users)
        user: str | None = request.state.user
        return user

    async def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        user = await self.who(request)
        html = self.templates.get_template(template).render(
            request=request,
            href=functools.partial(self.href, request),
            user=user,
            read_only=not self.users,
            csrf=auth.csrf_token(request),
            notice=request.session.pop("notice", None),
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    async def page_user(self, request: Request) -> tuple[str | None, Response | None]:
        """Who looks at a page; with users, the sign-in redirect for nobody."""
        user = await self.who(request)
        if self.users and user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = self.href(request, "login", {"next": target})
            return None, RedirectResponse(login, status_code=303)
        return user, None

    async def api_denied(self, request: Request) -> Response | None:
        """401 for API reads by nobody, when there are users."""
        if self.users and await self.who(request) is None:
            return _unauthorized("sign in: send HTTP Basic credentials of a dashboard user")
        return None

    # --- pages ------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse(self.href(request, "executions"), status_code=303)

    async def executions(self, request: Request) -> Response:
        _, redirect = await self.page_user(request)
        if redirect is not None:
            return redirect
        query = request.query_params
        try:
            filters = Filters.parse(query.get("status"), query.get("workflow"), query.get("id"))
            page = await asyncio.to_thread(
                find_page,
                self.engine.store,
                filters,
                limit=_PAGE_SIZE,
                cursor=query.get("cursor"),
            )
        except BadRequest as exc:
            return await self.render(
                request, "error.html", 400, title="Bad request", message=str(exc)
            )
        events = self.href(
            request, "api_events", {**dict(query), "since": list_mark(page.executions)}
        )
        return await self.render(
            request,
            "executions.html",
            filters=filters,
            page=page,
            query=query,
            events=events,
            refresh=self.href(request, "executions", dict(query)),
        )

    async def execution(self, request: Request) -> Response:
        _, redirect = await self.page_user(request)
        if redirect is not None:
            return redirect
        return await self.execution_page(request)

    async def execution_page(
        self, request: Request, status_code: int = 200, error: str | None = None
    ) -> Response:
        """An execution's page; ``error`` says why an action on it was refused."""
        execution_id = request.path_params["execution_id"]
        try:
            view = await asyncio.to_thread(view_execution, self.engine, execution_id)
        except NotFoundError as exc:
            return await self.render(
                request, "error.html", 404, title="Not found", message=str(exc)
            )
        graph = None
        if view.definition is not None:
            graph = layout(view.definition, current=view.execution.current_step, done=view.done)
        events = self.href(
            request,
            "api_events",
            {"execution": execution_id, "since": str(view.execution.version)},
        )
        return await self.render(
            request,
            "execution.html",
            status_code,
            view=view,
            execution=view.execution,
            graph=graph,
            events=events,
            refresh=self.href(request, "execution", execution_id=execution_id),
            error=error,
        )

    async def execution_action(self, request: Request) -> Response:
        execution_id = request.path_params["execution_id"]
        action = request.path_params["action"]
        user, redirect = await self.page_user(request)
        if redirect is not None:
            return redirect
        form = await request.form()
        if not auth.valid_csrf(request, form.get("csrf")):
            return await self.render(
                request,
                "error.html",
                403,
                title="Expired form",
                message="The form expired or did not come from this dashboard; reload the page "
                "and send it again.",
            )
        if user is None:
            return await self.execution_page(request, 403, _READ_ONLY)
        data: dict[str, Any] = {
            "approved": {"approve": True, "reject": False}.get(str(form.get("decision"))),
            "response": _form_value(str(form.get("response", ""))),
            "reason": str(form.get("reason", "")) or None,
            "name": str(form.get("name", "")) or None,
            "payload": _form_value(str(form.get("payload", ""))),
            "key": str(form.get("key", "")) or None,
        }
        try:
            done = await self.actions.perform(execution_id, action, user, data)
        except Refused as refused:
            return await self.execution_page(request, refused.status_code, refused.message)
        request.session["notice"] = _notice(action, data, done)
        return RedirectResponse(
            self.href(request, "execution", execution_id=execution_id), status_code=303
        )

    async def workflows(self, request: Request) -> Response:
        _, redirect = await self.page_user(request)
        if redirect is not None:
            return redirect
        definitions = await asyncio.to_thread(self.engine.workflows.definitions)
        drawn = [(wf, layout(wf)) for wf in definitions]
        return await self.render(request, "workflows.html", workflows=drawn)

    async def schedules(self, request: Request) -> Response:
        _, redirect = await self.page_user(request)
        if redirect is not None:
            return redirect
        schedules = await asyncio.to_thread(self.engine.store.schedules)
        return await self.render(request, "schedules.html", schedules=schedules)

    async def login(self, request: Request) -> Response:
        target = request.query_params.get("next", "")
        if not target.startswith("/") or target[1:2] in ("/", "\\"):
            target = self.href(request, "executions")  # never off this site (//host, /\\host)
        if request.method == "GET":
            return await self.render(request, "login.html", target=target, failed=False)
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        if not auth.valid_csrf(request, form.get("csrf")):
            return await self.render(request, "login.html", 403, target=target, failed=True)
        if not await asyncio.to_thread(self.users.check, name, password):
            return await self.render(request, "login.html", 401, target=target, failed=True)
        auth.sign_in(request, name)
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if auth.valid_csrf(request, form.get("csrf")):
            auth.sign_out(request)
        return RedirectResponse(self.href(request, "executions"), status_code=303)

    # --- the JSON API -----------------------------------------------------------------------

    async def api_executions(self, request: Request) -> Response:
        denied = await self.api_denied(request)
        if denied is not None:
            return denied
        query = request.query_params
        try:
            limit = int(query.get("limit", _PAGE_SIZE))
            if not 1 <= limit <= _MAX_LIMIT:
                raise ValueError
        except ValueError:
            return _error(400, f"limit must be a whole number from 1 to {_MAX_LIMIT}")
        try:
            filters = Filters.parse(query.get("status"), query.get("workflow"), query.get("id"))
            page = await asyncio.to_thread(
                find_page, self.engine.store, filters, limit=limit, cursor=query.get("cursor")
            )
        except BadRequest as exc:
            return _error(400, str(exc))
        return JSONResponse(
            {
                "executions": [execution_to_dict(execution) for execution in page.executions],
                "next": page.next,
            }
        )

    async def api_execution(self, request: Request) -> Response:
        denied = await self.api_denied(request)
        if denied is not None:
            return denied
        execution_id = request.path_params["execution_id"]
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            return _error(400, f"after must be an entry's seq (0 or more), got '{after}'")
        try:
            execution = await asyncio.to_thread(self.engine.load, execution_id)
        except NotFoundError as exc:
            return _error(404, str(exc))
        entries = await asyncio.to_thread(self.engine.store.entries, execution_id, after=int(after))
        return JSONResponse(
            {
                "execution": execution_to_dict(execution),
                "entries": [entry_to_dict(entry) for entry in entries],
            }
        )

    async def api_action(self, request: Request) -> Response:
        if not self.users:
            return _error(403, _READ_ONLY)
        user = await asyncio.to_thread(auth.basic_user, request, self.users)
        if user is None:
            return _unauthorized("send HTTP Basic credentials of a dashboard user")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send the body as JSON (Content-Type: application/json)")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        body.pop("by", None)  # a decision is made as the signed-in user, never as the body says
        try:
            done = await self.actions.perform(
                request.path_params["execution_id"], request.path_params["action"], user, body
            )
        except Refused as refused:
            return _error(refused.status_code, refused.message)
        content: dict[str, Any] = {"execution": execution_to_dict(done.execution)}
        if done.sent is not None:
            content["sent"] = done.sent
        return JSONResponse(content, status_code=200 if done.settled else 202)

    async def api_events(self, request: Request) -> Response:
        denied = await self.api_denied(request)
        if denied is not None:
            return denied
        query = request.query_params
        execution_id = query.get("execution")
        try:
            filters = Filters.parse(query.get("status"), query.get("workflow"), query.get("id"))
        except BadRequest as exc:
            return _error(400, str(exc))
        if execution_id:
            look = _execution_look(self.engine, execution_id)
        else:
            look = _list_look(self.engine, filters, query.get("cursor"))
        stream = self._changes(request, look, query.get("since"))
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    async def _changes(
        self,
        request: Request,
        look: Look,
        since: str | None,
    ) -> AsyncIterator[str]:
        """One SSE message per change of what ``look`` reads (its mark differs from the last)."""
        last = since
        quiet = 0.0
        yield "retry: 2000\n\n"
        while not self.stopping.is_set() and not await request.is_disconnected():
            try:
                mark, event, data = await asyncio.to_thread(look)
            except (BadRequest, NotFoundError) as exc:
                yield f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n"
                return
            if mark != last:
                last, quiet = mark, 0.0
                yield f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
            elif quiet >= _KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.poll_seconds)
            quiet += self.poll_seconds


Look = Callable[[], tuple[str, str, dict[str, Any]]]
"""Reads what a page shows: ``(mark, event name, event data)``; the mark changes with it."""


def _execution_look(engine: Engine, execution_id: str) -> Look:
    def look() -> tuple[str, str, dict[str, Any]]:
        execution = engine.load(execution_id)
        data = {
            "execution_id": execution.id,
            "status": execution.status.value,
            "version": execution.version,
            "current_step": execution.current_step,
            "updated_at": execution.updated_at.isoformat(),
        }
        return str(execution.version), "execution", data

    return look


def _list_look(engine: Engine, filters: Filters, cursor: str | None) -> Look:
    def look() -> tuple[str, str, dict[str, Any]]:
        page = find_page(engine.store, filters, limit=_PAGE_SIZE, cursor=cursor)
        mark = list_mark(page.executions)
        shown = [
            {"id": execution.id, "status": execution.status.value, "version": execution.version}
            for execution in page.executions
        ]
        return mark, "executions", {"mark": mark, "executions": shown}

    return look


_READ_ONLY = (
    f"the dashboard is read-only: it has no users (set {USERS_ENV} or the "
    "dashboard_users setting, then restart it)"
)


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def _unauthorized(message: str) -> JSONResponse:
    response = _error(401, message)
    response.headers["www-authenticate"] = 'Basic realm="flowkit dashboard", charset="UTF-8"'
    return response


def _notice(action: str, data: Mapping[str, Any], done: Done) -> str:
    """What the page says after an action (the status on the page follows by itself)."""
    if action == "signal":
        return "Signal sent." if done.sent else "Signal not sent: its key was used before."
    if action == "resume":
        approved = data.get("approved")
        return "Approved." if approved is True else "Rejected." if approved is False else "Resumed."
    return {"cancel": "Cancel requested.", "retry": "Retry started."}.get(action, "Done.")


def create_app(
    engine: Engine,
    *,
    users: Users | None = None,
    secret_key: str | None = None,
    poll_seconds: float = 1.0,
    https_only: bool = False,
) -> Starlette:
    """The dashboard as an ASGI application, on ``engine``'s store.

    Args:
        engine: reads the store, and carries out actions (resume, cancel, retry,
            signal) with its executor.
        users: who may sign in (see :class:`~flowkit.dashboard.Users`); none
            makes the dashboard read-only, open to anyone who reaches it.
        secret_key: signs the session cookies (default: ``FLOWKIT_DASHBOARD_SECRET``,
            else random: sessions then end when the process does).
        poll_seconds: how often live pages read the store for changes.
        https_only: send the session cookie over HTTPS only (behind a TLS proxy).
    """
    dashboard = Dashboard(engine, users if users is not None else Users(), poll_seconds)
    key = secret_key or os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)
    routes = [
        Route("/", dashboard.home, name="home"),
        Route("/executions", dashboard.executions, name="executions"),
        Route("/executions/{execution_id}", dashboard.execution, name="execution"),
        Route(
            "/executions/{execution_id}/{action}",
            dashboard.execution_action,
            methods=["POST"],
            name="execution_action",
        ),
        Route("/workflows", dashboard.workflows, name="workflows"),
        Route("/schedules", dashboard.schedules, name="schedules"),
        Route("/login", dashboard.login, methods=["GET", "POST"], name="login"),
        Route("/logout", dashboard.logout, methods=["POST"], name="logout"),
        Route("/api/executions", dashboard.api_executions, name="api_executions"),
        Route("/api/executions/{execution_id}", dashboard.api_execution, name="api_execution"),
        Route(
            "/api/executions/{execution_id}/{action}",
            dashboard.api_action,
            methods=["POST"],
            name="api_action",
        ),
        Route("/api/events", dashboard.api_events, name="api_events"),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=key,
            session_cookie="flowkit_dashboard",
            max_age=12 * 3600,
            same_site="lax",  # links from elsewhere open pages signed in; forms carry CSRF tokens
            https_only=https_only,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.dashboard = dashboard
    return app


def end_live_updates(app: Starlette) -> None:
    """End the event streams of a :func:`create_app` app (a server calls it as it stops)."""
    app.state.dashboard.stopping.set()

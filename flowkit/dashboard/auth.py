"""Signing in: HTTP Basic for the API, a session cookie for pages, CSRF tokens for forms.

The session cookie is signed by Starlette's ``SessionMiddleware``; it holds
the signed-in name and the session's CSRF token. Every form carries that
token and every form post is checked against it in constant time. API posts
authenticate with HTTP Basic and must send JSON, which a cross-site form
cannot, so they need no token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

from starlette.requests import Request

from .users import Users

__all__ = ["basic_user", "csrf_token", "request_user", "sign_in", "sign_out", "valid_csrf"]

_USER = "user"
_CSRF = "csrf"


def basic_user(request: Request, users: Users) -> str | None:
    """The user named by valid HTTP Basic credentials, else None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        name, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return name if sep and users.check(name, password) else None


def request_user(request: Request, users: Users) -> str | None:
    """Who makes the request: the session's user, else HTTP Basic's, else None.

    A session naming someone who is no longer a user counts for nobody.
    """
    name = request.session.get(_USER)
    if isinstance(name, str) and name in users.hashes:
        return name
    return basic_user(request, users)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get(_CSRF)
    if not isinstance(token, str):
        token = request.session[_CSRF] = secrets.token_urlsafe(32)
    return token


def valid_csrf(request: Request, submitted: object) -> bool:
    """Whether a form's token is the session's (constant-time compare)."""
    expected = request.session.get(_CSRF)
    if not isinstance(expected, str) or not isinstance(submitted, str):
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def sign_in(request: Request, name: str) -> None:
    """Start a fresh session for ``name`` (a new CSRF token: no fixation)."""
    request.session.clear()
    request.session[_USER] = name
    request.session[_CSRF] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    """End the session."""
    request.session.clear()

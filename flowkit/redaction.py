"""Credentials taken out of error texts before they are stored or emitted (SPEC §13).

A service or a model provider that fails may echo what it was sent: an API key,
an ``Authorization`` header, a database URL with its password. Every error text
an execution keeps (its error, its entries' errors, ``_last_error``) and every
event that carries one goes through :func:`redact` first, which replaces:

- every value given to :func:`add_secret` (the AI extension adds its API key);
- the values of environment variables whose names end in ``KEY``, ``TOKEN``,
  ``SECRET``, ``PASSWORD`` or ``CREDENTIALS`` (``OPENAI_API_KEY``, ``STRIPE_SECRET``…);
- what follows ``Authorization:``, ``Bearer`` or ``Basic``, ``api_key=``,
  ``password=`` and the like, and keys shaped like ``sk-…``;
- the password of a URL (``postgresql://user:…@host``).

This module imports nothing from flowkit.
"""

from __future__ import annotations

import os
import re
import threading

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "add_secret", "redact"]

REDACTED = "[redacted]"
"""What a credential is replaced with."""
MIN_SECRET_LENGTH = 8
"""Shorter values are not treated as secrets: they would redact ordinary words."""

_secrets: set[str] = set()
_lock = threading.Lock()

_SECRET_VARIABLE = re.compile(r"(?:^|_)(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.I)
_PATTERNS = (
    # Authorization: <scheme> <credentials>, as a header line or a JSON/dict entry
    re.compile(
        r"""(?P<keep>\b(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?)(?P<secret>[^"'\r\n,}]+)""",
        re.I,
    ),
    re.compile(r"(?P<keep>\b(?:bearer|basic)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})", re.I),
    re.compile(
        r"""(?P<keep>\b(?:api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret"""
        r"""|secret[_-]?key|password|passwd)\b["']?\s*[:=]\s*["']?)(?P<secret>[^\s"'&,;}]+)""",
        re.I,
    ),
    re.compile(r"(?P<keep>)(?P<secret>\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,})"),
    re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<secret>[^\s@/]+)(?=@)", re.I),
)


def add_secret(value: str) -> None:
    """Redact ``value`` from every error text flowkit stores or emits from now on.

    Values shorter than :data:`MIN_SECRET_LENGTH` characters are ignored.
    """
    if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every credential it holds replaced by :data:`REDACTED`."""
    secrets = _known_secrets()
    for secret in sorted(secrets, key=len, reverse=True):  # a longer one may contain another
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(_replace, text)
    return text


def _known_secrets() -> set[str]:
    with _lock:
        found = set(_secrets)
    for name, value in os.environ.items():
        if len(value) >= MIN_SECRET_LENGTH and _SECRET_VARIABLE.search(name):
            found.add(value)
    return found


def _replace(match: re.Match[str]) -> str:
    if match.group("secret") == REDACTED or match.group("secret").startswith(REDACTED):
        return match.group(0)
    return match.group("keep") + REDACTED

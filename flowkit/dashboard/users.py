"""Who may sign in to the dashboard: names with salted scrypt password hashes.

Users come from ``FLOWKIT_DASHBOARD_USERS`` (``"alice:password,bob:password"``;
the passwords are hashed when read) or from the file the ``dashboard_users``
setting names, one ``name:hash`` line each (lines from :func:`hash_password`;
``#`` starts a comment). Passwords are checked with :func:`hashlib.scrypt`
and compared in constant time; an unknown name costs as much as a known one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from ..errors import ConfigError

__all__ = ["USERS_ENV", "Users", "hash_password", "verify_password"]

USERS_ENV = "FLOWKIT_DASHBOARD_USERS"
"""The environment variable that lists users as ``name:password`` pairs."""

_SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1  # the parameters OWASP recommends for interactive logins
_MAX_MEMORY = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEMORY, dklen=32)


def hash_password(password: str) -> str:
    """A salted hash of ``password``: ``scrypt$N$r$p$salt$hash`` (URL-safe base64)."""
    salt = os.urandom(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _parse_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    """The parameters, salt and digest of a :func:`hash_password` value.

    Raises:
        ValueError: it is not one.
    """
    scheme, n, r, p, salt, digest = text.split("$")
    if scheme != _SCHEME:
        raise ValueError(f"unknown scheme {scheme!r}")
    return int(n), int(r), int(p), _unb64(salt), _unb64(digest)


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` value (constant-time compare)."""
    try:
        n, r, p, salt, digest = _parse_hash(hashed)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), digest)


_DECOY = hash_password(os.urandom(16).hex())  # checked for unknown names, so they take as long


@attrs.frozen
class Users:
    """The dashboard's users: name → password hash. Empty means read-only, no sign-in."""

    hashes: Mapping[str, str] = attrs.field(factory=dict)

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def check(self, name: str, password: str) -> bool:
        """Whether ``name`` is a user and ``password`` is theirs."""
        hashed = self.hashes.get(name)
        matches = verify_password(password, hashed if hashed is not None else _DECOY)
        return matches and hashed is not None

    @classmethod
    def from_env_text(cls, text: str) -> Users:
        """Users from ``"alice:password,bob:password"`` (the passwords get hashed).

        Raises:
            ConfigError: a pair has no name or no password.
        """
        hashes: dict[str, str] = {}
        for pair in filter(None, (part.strip() for part in text.split(","))):
            name, sep, password = pair.partition(":")
            if not sep or not name.strip() or not password:
                raise ConfigError(
                    f"{USERS_ENV}: expected name:password pairs separated by commas "
                    f"(e.g. 'alice:s3cret,bob:hunter2'), got an entry without "
                    f"{'a password' if name.strip() else 'a name'}"
                )
            hashes[name.strip()] = hash_password(password)
        return cls(hashes)

    @classmethod
    def from_file(cls, path: str | Path) -> Users:
        """Users from a file of ``name:hash`` lines (see :func:`hash_password`).

        Raises:
            ConfigError: the file cannot be read, or a line is not ``name:hash``.
        """
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"dashboard_users: cannot read {path}: {exc.strerror}") from None
        hashes: dict[str, str] = {}
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, hashed = line.partition(":")
            try:
                _parse_hash(hashed)
            except ValueError:
                raise ConfigError(
                    f"{path}:{number}: expected 'name:scrypt$…' (make a line with "
                    "'flowkit dashboard --hash-password NAME')"
                ) from None
            hashes[name.strip()] = hashed
        return cls(hashes)

    @classmethod
    def configured(cls, env: Mapping[str, str], users_file: str | None) -> Users:
        """Users from ``FLOWKIT_DASHBOARD_USERS`` when set, else from ``users_file``, else none.

        Raises:
            ConfigError: the variable or the file is malformed.
        """
        text = env.get(USERS_ENV, "")
        if text.strip():
            return cls.from_env_text(text)
        if users_file:
            return cls.from_file(users_file)
        return cls()

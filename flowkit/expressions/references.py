"""References: ``$name.path`` strings that read ctx, resolved on the engine's hot path.

``$input.items.0.price`` reads ctx, ``${name.path}`` is the braced form for use next to
other characters, ``$$`` is a literal ``$``, and ``$now``/``$history`` are special roots.
A string that is exactly one reference resolves to the raw value; references inside
text are interpolated. Parsed strings are cached, and strings without ``$`` are returned
as they are.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from ..frozen import FrozenDict

__all__ = [
    "SPECIAL_ROOTS",
    "Reference",
    "Scope",
    "has_references",
    "is_reference",
    "lookup",
    "parse_path",
    "plain",
    "references",
    "resolve",
    "walk",
]

SPECIAL_ROOTS = frozenset({"now", "history"})

_BODY = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[^.}]+)*"
_TOKEN = re.compile(
    r"\$(?:(?P<escape>\$)"
    rf"|\{{(?P<braced>{_BODY})\}}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*))"
)
_PATH = re.compile(_BODY)
_TEMPLATE_CACHE_SIZE = 4096
# Exact-type fast paths; subclasses still go through isinstance().
_LEAF_TYPES = frozenset({int, float, bool, type(None)})
_MAPPING_TYPES = frozenset({dict, FrozenDict})


@attrs.frozen
class Reference:
    """One reference: ``$order.items.0`` is root ``order``, path ``("items", "0")``.

    ``text`` is the reference as written (``$order.items.0``, ``${order.items.0}`` or, for
    :func:`parse_path`, the bare path).
    """

    root: str
    path: tuple[str, ...]
    text: str


_Template = Reference | tuple[str | Reference, ...]


class Scope:
    """What references read: loop locals, then ``now`` and ``history``, then ctx.

    Args:
        ctx: the execution's ctx (plain JSON data).
        history: ids of the steps run so far, read by ``$history``.
        now: clock read by ``$now``; defaults to ``datetime.now(UTC)``. A naive result is
            taken to be UTC.
        local: names layered on top of everything else (loop variables).
        input: the execution's input, read by ``$input`` (the engine keeps it
            out of ctx so that checkpoints never rewrite it); when None,
            ``$input`` reads ctx like any other name.
    """

    __slots__ = ("_now", "ctx", "history", "input", "local")

    def __init__(
        self,
        ctx: Mapping[str, Any],
        *,
        history: Sequence[str] = (),
        now: Callable[[], datetime] | None = None,
        local: Mapping[str, Any] | None = None,
        input: Any = None,
    ) -> None:
        self.ctx = ctx
        self.history = history
        self.local = local
        self.input = input
        self._now = now

    def root(self, name: str) -> Any:
        """Return the value named ``name`` (shared, not copied), or None when missing."""
        local = self.local
        if local is not None and name in local:
            return local[name]
        if name == "now":
            return self._timestamp()
        if name == "history":
            return list(self.history)
        if name == "input" and self.input is not None:
            return self.input
        return self.ctx.get(name)

    def with_ctx(self, ctx: Mapping[str, Any]) -> Scope:
        """Return a scope that reads ``ctx`` instead of this one's, keeping everything else."""
        return Scope(ctx, history=self.history, now=self._now, local=self.local, input=self.input)

    def child(self, local: Mapping[str, Any]) -> Scope:
        """Return a scope that sees ``local`` names on top of this one's."""
        layered = {**self.local, **local} if self.local else local
        return Scope(self.ctx, history=self.history, now=self._now, local=layered, input=self.input)

    def _timestamp(self) -> str:
        moment = self._now() if self._now is not None else datetime.now(UTC)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()


@functools.lru_cache(maxsize=_TEMPLATE_CACHE_SIZE)
def _template(text: str) -> _Template:
    parts: list[str | Reference] = []
    literal = ""
    start = 0
    for match in _TOKEN.finditer(text):
        literal += text[start : match.start()]
        start = match.end()
        if match["escape"]:
            literal += "$"
            continue
        if literal:
            parts.append(literal)
            literal = ""
        root, *path = (match["braced"] or match["bare"]).split(".")
        parts.append(Reference(root, tuple(path), match[0]))
    literal += text[start:]
    if literal:
        parts.append(literal)
    if len(parts) == 1 and isinstance(parts[0], Reference):
        return parts[0]
    return tuple(parts)


def _segment(value: Any, key: str) -> Any:
    if type(value) in _MAPPING_TYPES or isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, (list, tuple)) and key.isascii() and key.isdigit():
        index = int(key)
        return value[index] if index < len(value) else None
    return None


def _walk(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if value is None:
            return None
        value = _segment(value, key)
    return value


def plain(value: Any) -> Any:
    """Return a plain ``dict``/``list`` copy of JSON data (frozen or not); scalars as is."""
    cls = type(value)
    if cls in _LEAF_TYPES or cls is str:
        return value
    if cls in _MAPPING_TYPES or isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} value is not JSON data")


def _render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _read(ref: Reference, scope: Scope) -> Any:
    return _walk(scope.root(ref.root), ref.path)


def _resolve_text(text: str, scope: Scope) -> Any:
    template = _template(text)
    if isinstance(template, Reference):
        return plain(_read(template, scope))
    return "".join(
        part if isinstance(part, str) else _render(_read(part, scope)) for part in template
    )


def resolve(value: Any, scope: Scope) -> Any:
    """Resolve every reference inside ``value``; return new plain JSON data.

    Mapping keys are not resolved. A string that is exactly one reference becomes the raw
    value (a copy the caller may change); references inside text are interpolated. Missing
    paths resolve to None; values that are not strings or containers come back unchanged.
    """
    cls = type(value)
    if cls in _LEAF_TYPES:
        return value
    if isinstance(value, str):
        return _resolve_text(value, scope) if "$" in value else value
    if cls in _MAPPING_TYPES or isinstance(value, Mapping):
        return {key: resolve(item, scope) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve(item, scope) for item in value]
    return value


@functools.lru_cache(maxsize=_TEMPLATE_CACHE_SIZE)
def parse_path(path: str) -> Reference | None:
    """Parse a bare path such as ``order.items.0`` (a leading ``$`` is tolerated).

    Without ``$`` the path follows the braced grammar: an identifier, then ``.segment``
    parts that may hold any character except ``.`` and ``}``. With ``$`` it must be exactly
    one reference. Returns None when the path is not valid.
    """
    if path.startswith("$"):
        template = _template(path)
        return template if isinstance(template, Reference) else None
    if _PATH.fullmatch(path) is None:
        return None
    root, *rest = path.split(".")
    return Reference(root, tuple(rest), path)


def lookup(path: str | Sequence[str], scope: Scope) -> Any:
    """Read a path such as ``"validation.total"`` or ``("items", "0")``; a plain copy.

    Returns None when the path is missing or not valid (see :func:`parse_path`).
    """
    if isinstance(path, str):
        ref = parse_path(path)
        return None if ref is None else plain(_read(ref, scope))
    if not path:
        return None
    return plain(_walk(scope.root(path[0]), path[1:]))


def walk(value: Any, path: str) -> Any:
    """Read a dotted ``path`` relative to ``value`` (not copied); ``""`` or ``"."`` is itself.

    Numeric segments index lists; a missing key or index gives None.
    """
    if path in ("", "."):
        return value
    return _walk(value, path.split("."))


def references(value: Any) -> Iterator[Reference]:
    """Yield every reference inside ``value`` (frozen or plain), in order."""
    if isinstance(value, str):
        if "$" in value:
            template = _template(value)
            if isinstance(template, Reference):
                yield template
            else:
                yield from (part for part in template if isinstance(part, Reference))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from references(item)


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a string that is exactly one reference, such as ``"$a.b"``."""
    return isinstance(value, str) and "$" in value and isinstance(_template(value), Reference)


def has_references(value: Any) -> bool:
    """Whether ``value`` holds at least one reference (a ``$$`` escape is not one)."""
    return next(references(value), None) is not None

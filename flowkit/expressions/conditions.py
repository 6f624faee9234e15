"""Conditions ``{field, op, value}``: comparisons of JSON data that never evaluate code.

``matches`` patterns (and every other regular expression a user writes) run on
RE2, which searches in time linear in the text: no pattern can hang a step.
"""

from __future__ import annotations

import difflib
import functools
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints

from ..errors import FlowkitError
from .references import Scope, is_reference, lookup, references, resolve

__all__ = [
    "CONDITION_OPS",
    "MAX_PATTERN_LENGTH",
    "ConditionError",
    "check_condition",
    "compare",
    "describe",
    "evaluate",
    "json_equal",
    "pattern_error",
    "search_pattern",
    "unknown_op",
]

MAX_PATTERN_LENGTH = 1000
_PATTERN_CACHE_SIZE = 256
_NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})


class ConditionError(FlowkitError):
    """A condition could not be evaluated; the message names the op and the operand types.

    Attributes:
        op: the condition's op.
    """

    def __init__(self, op: str, message: str) -> None:
        self.op = op
        super().__init__(message)


def describe(value: Any) -> str:
    """Name the JSON type of ``value`` for messages: null, a bool, an int, a str, a dict…"""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        name = "dict"
    elif isinstance(value, tuple):
        name = "list"
    else:
        name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def unknown_op(kind: str, op: str, known: Iterable[str]) -> str:
    """Describe an unknown op, suggesting the closest known one."""
    close = difflib.get_close_matches(op, sorted(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "expected one of " + ", ".join(sorted(known))
    return f"unknown {kind} op {op!r} ({hint})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but booleans never equal numbers, recursively."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, str) or isinstance(right, str):
        return bool(left == right)
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return len(left) == len(right) and all(
            key in right and json_equal(item, right[key]) for key, item in left.items()
        )
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return left is None and right is None


def _member(item: Any, container: Any, op: str, side: str) -> bool:
    if isinstance(container, (list, tuple)):
        return any(json_equal(item, element) for element in container)
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    raise ConditionError(
        op, f"{op}: cannot look inside {describe(container)} ({side}); use a list, str or dict"
    )


class _Pattern(Protocol):
    def search(self, text: bytes) -> object | None: ...


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error goes to the user, not to stderr
_RE2_HINT = (
    "patterns use RE2 syntax, which has no backreferences or lookaround and writes \\Z as \\z; "
    "see https://github.com/google/re2/wiki/Syntax"
)


def _utf8(text: str) -> bytes:
    # Lone surrogates become bytes RE2 reads as invalid UTF-8, instead of an encoding error.
    return text.encode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=_PATTERN_CACHE_SIZE)
def _compile(pattern: str) -> _Pattern:
    compiled: _Pattern = re2.compile(_utf8(pattern), _RE2_OPTIONS)
    return compiled


def _python_error(pattern: str) -> str | None:
    """Python's message (it gives the position) when ``pattern`` is no Python regex either."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. FutureWarning: possible nested set
        try:
            re.compile(pattern)  # compiled only, never run on any text
        except re.error as exc:
            return str(exc)
        except RecursionError:  # too deeply nested for Python's parser: RE2's message stands
            return None
    return None


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` cannot be searched for, or None when it can.

    Patterns run on RE2, which takes time linear in the text; Python syntax that
    RE2 lacks (backreferences, lookaround) is refused with a hint saying so.
    """
    try:
        _compile(pattern)
    except re2.error as exc:
        reason = exc.args[0]
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return _python_error(pattern) or f"{reason} ({_RE2_HINT})"
    return None


def search_pattern(pattern: str, text: str) -> bool:
    """Whether ``pattern`` is found anywhere in ``text``, in time linear in the text.

    Raises:
        ValueError: the pattern cannot be searched for (see :func:`pattern_error`).
    """
    try:
        compiled = _compile(pattern)
    except re2.error:
        raise ValueError(pattern_error(pattern)) from None
    return compiled.search(_utf8(text)) is not None


def _pattern_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return f"matches: pattern must be a str, got {describe(pattern)}"
    if len(pattern) > MAX_PATTERN_LENGTH:
        return (
            f"matches: pattern is too long ({len(pattern)} characters, "
            f"at most {MAX_PATTERN_LENGTH})"
        )
    error = pattern_error(pattern)
    if error is not None:
        return f"matches: pattern {pattern!r} does not compile: {error}"
    return None


def _matches(left: Any, right: Any) -> bool:
    problem = _pattern_problem(right)
    if problem is not None:
        raise ConditionError("matches", problem)
    return isinstance(left, str) and search_pattern(right, left)


def _contains(left: Any, right: Any) -> bool:
    return left is not None and _member(right, left, "contains", "left operand")


def _in(left: Any, right: Any) -> bool:
    return _member(left, right, "in", "right operand")


def _not_in(left: Any, right: Any) -> bool:
    return not _member(left, right, "not_in", "right operand")


def _empty(left: Any, _right: Any) -> bool:
    if left is None:
        return True
    return isinstance(left, (str, list, tuple, Mapping)) and len(left) == 0


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": json_equal,
    "neq": lambda left, right: not json_equal(left, right),
    "gt": lambda left, right: _is_number(left) and _is_number(right) and left > right,
    "gte": lambda left, right: _is_number(left) and _is_number(right) and left >= right,
    "lt": lambda left, right: _is_number(left) and _is_number(right) and left < right,
    "lte": lambda left, right: _is_number(left) and _is_number(right) and left <= right,
    "contains": _contains,
    "starts_with": lambda left, right: (
        isinstance(left, str) and isinstance(right, str) and left.startswith(right)
    ),
    "ends_with": lambda left, right: (
        isinstance(left, str) and isinstance(right, str) and left.endswith(right)
    ),
    "matches": _matches,
    "in": _in,
    "not_in": _not_in,
    "exists": lambda left, _right: left is not None,
    "empty": _empty,
    "truthy": lambda left, _right: bool(left),
    "falsy": lambda left, _right: not left,
}

CONDITION_OPS: frozenset[str] = frozenset(_COMPARE)


def compare(op: str, left: Any, right: Any) -> bool:
    """Apply condition ``op`` to ``left`` (the field's value) and ``right`` (the value).

    Raises:
        ConditionError: the op is unknown, or the operands cannot be compared with it
            (``contains`` on a number, ``in`` with a null value, a bad ``matches`` pattern).
    """
    function = _COMPARE.get(op)
    if function is None:
        raise ConditionError(op, unknown_op("condition", op, CONDITION_OPS))
    return function(left, right)


def evaluate(field: str, op: str, value: Any, scope: Scope) -> bool:
    """Whether the condition ``{field, op, value}`` holds in ``scope``.

    Raises:
        ConditionError: the condition cannot be evaluated (see :func:`compare`).
    """
    return compare(op, lookup(field, scope), resolve(value, scope))


def check_condition(op: str, value: Any) -> list[str]:
    """Return the problems visible before running a condition with ``op`` and ``value``.

    Only literal values are checked; a value holding references is checked when it runs.
    """
    if op not in CONDITION_OPS:
        return [unknown_op("condition", op, CONDITION_OPS)]
    if op == "matches":
        if next(references(value), None) is not None:
            return []
        problem = _pattern_problem(value)
        return [] if problem is None else [problem]
    if op in ("in", "not_in"):
        if isinstance(value, (str, list, tuple, Mapping)):
            return []
        return [f"{op}: value must be a list, str or dict, got {describe(value)}"]
    if op in _NUMERIC_OPS and not _is_number(value) and not is_reference(value):
        return [f"{op}: value must be a number or a reference, got {describe(value)}"]
    return []

"""The limits on JSON data flowkit takes in and keeps (SPEC §7).

One set of limits holds for every value that enters an execution: its input,
each step's output and the variables it sets, a resume's response. A value
past a limit is refused with its path (``input.items[3]``) before anything is
stored, so every store can keep whatever flowkit accepts:

- nesting: at most :data:`MAX_DEPTH` levels of lists and mappings (MySQL's
  own limit for JSON documents, and far more than any real document needs);
- size: at most :data:`MAX_CHARS` characters of JSON text (4 MiB of ASCII);
- integers: at most :data:`MAX_INT_DIGITS` digits (Python's limit for turning
  an integer into text, which JSON needs);
- text: no lone surrogates (``"\\ud800"``), which UTF-8 cannot encode;
- floats: finite (JSON has no NaN or infinity).

This module imports nothing from flowkit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["MAX_CHARS", "MAX_DEPTH", "MAX_INT_DIGITS", "format_path", "problem_in", "storable_text"]

MAX_DEPTH = 100
"""How deep lists and mappings may nest in one value."""
MAX_CHARS = 4 * 1024 * 1024
"""How many characters of (compact) JSON text one value may take."""
MAX_INT_DIGITS = 4300
"""How many decimal digits an integer may have."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_SIMPLE_KEY = re.compile(r"[A-Za-z_][\w-]*")
_SHOWN_PARTS = 12  # a longer path is shown as its start and its last part


def format_path(root: str, parts: Sequence[str | int]) -> str:
    """A path into a value as messages write it: ``output.items[2]['a b']``."""
    text = root
    for part in parts:
        text += _step(part, bool(text))
    return text


def _step(part: str | int, dotted: bool) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    if _SIMPLE_KEY.fullmatch(part):
        return f".{part}" if dotted else part
    return f"[{part!r}]"


def problem_in(value: Any, root: str) -> str | None:
    """What keeps ``value`` from being stored, with its path under ``root``; None if nothing.

    Reads lists, tuples and mappings without recursion, so any depth is
    reported rather than overflowing the stack; values of any other type are
    not JSON data.
    """
    if 0 <= _plain_size(value, 0) <= MAX_CHARS:
        return None  # the common case, checked fast
    return _find_problem(value, root)


# Integers strictly between -_SMALL_INT and _SMALL_INT have fewer than MAX_INT_DIGITS
# digits; longer ones are counted.
_SMALL_INT = 10 ** (MAX_INT_DIGITS - 1)
_isfinite = math.isfinite


def _plain_size(value: Any, depth: int) -> int:
    """About how many characters of JSON plain, storable ``value`` takes; -1 when it
    may not be (another type, a long integer, non-ASCII text): ask ``_find_problem``.

    Called for every step's output, so scalars inside containers are handled inline.
    """
    kind = type(value)
    if kind is dict:
        if depth == MAX_DEPTH:
            return -1
        size = 2
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return -1
            size += len(key) + 4
            kind = type(item)
            if kind is str:
                if not item.isascii():
                    return -1
                size += len(item) + 2
            elif kind is int or kind is bool or item is None:
                if kind is int and not -_SMALL_INT < item < _SMALL_INT:
                    return -1
                size += 24
            elif kind is float:
                if not _isfinite(item):
                    return -1
                size += 24
            else:
                inner = _plain_size(item, depth + 1)
                if inner < 0:
                    return -1
                size += inner
        return size
    if kind is list:
        if depth == MAX_DEPTH:
            return -1
        size = 2
        for item in value:
            kind = type(item)
            if kind is str:
                if not item.isascii():
                    return -1
                size += len(item) + 3
            elif kind is int or kind is bool or item is None:
                if kind is int and not -_SMALL_INT < item < _SMALL_INT:
                    return -1
                size += 24
            elif kind is float:
                if not _isfinite(item):
                    return -1
                size += 24
            else:
                inner = _plain_size(item, depth + 1)
                if inner < 0:
                    return -1
                size += inner + 1
        return size
    if kind is str:
        return len(value) + 2 if value.isascii() else -1
    if kind is int:
        return 24 if -_SMALL_INT < value < _SMALL_INT else -1
    if kind is bool or value is None:
        return 5
    return -1  # floats (NaN?), tuples, other mappings: the full check decides


def _find_problem(value: Any, root: str) -> str | None:
    size = 0
    path: list[Any] = []  # the key of the item being read, in each open container
    open_items: list[Iterator[tuple[Any, Any]]] = []
    item = value
    while True:
        if isinstance(item, str):
            size += len(item) + 2
            if not item.isascii() and _SURROGATE.search(item):
                return _at(root, path, f"holds a lone surrogate ({_surrogate(item)})", _TEXT_HINT)
        elif item is None or isinstance(item, bool):
            size += 5
        elif isinstance(item, int):
            if not -_SMALL_INT < item < _SMALL_INT:
                digits = _digits(item)
                if digits > MAX_INT_DIGITS:
                    return _at(
                        root,
                        path,
                        f"is an integer of {digits if digits < 10**6 else 'over a million'} "
                        f"digits, more than the {MAX_INT_DIGITS} a value may have",
                        "store such a number as a string",
                    )
                size += digits
            else:
                size += 20
        elif isinstance(item, float):
            if not math.isfinite(item):
                return _at(root, path, f"is the float {item!r}", "JSON has no NaN or infinity")
            size += 24
        elif isinstance(item, (Mapping, list, tuple)):
            if len(open_items) >= MAX_DEPTH:
                return _at(
                    root,
                    path,
                    f"nests deeper than {MAX_DEPTH} levels of lists and mappings",
                    "flatten the data",
                )
            if isinstance(item, Mapping):
                size += 2
                for key in item:
                    if not isinstance(key, str):
                        return _at(
                            root,
                            path,
                            f"has the key {key!r} ({_a(type(key).__name__)}), "
                            "which is not JSON data",
                            "mapping keys must be strings",
                        )
                    size += len(key) + 4
                    if not key.isascii() and _SURROGATE.search(key):
                        return _at(
                            root,
                            path,
                            f"has a key with a lone surrogate ({_surrogate(key)} of {key!r})",
                            _TEXT_HINT,
                        )
                open_items.append(iter(item.items()))
            else:
                size += 2 + len(item)
                open_items.append(enumerate(item))
            path.append(None)
        else:
            return _at(
                root,
                path,
                f"is {_a(type(item).__qualname__)}, which is not JSON data",
                "use strings, numbers, booleans, null, lists and mappings with string keys",
            )
        if size > MAX_CHARS:
            return _at(
                root,
                (),
                f"is larger than {MAX_CHARS} characters of JSON",
                "keep large data in a file or a bucket and pass a reference to it",
            )
        while open_items:
            following = next(open_items[-1], None)
            if following is not None:
                path[-1], item = following
                break
            open_items.pop()
            path.pop()
        else:
            return None


_TEXT_HINT = "UTF-8 cannot encode it; decode bytes with errors='replace', or drop the character"


def _a(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _digits(number: int) -> int:
    try:
        return len(str(abs(number)))
    except ValueError:  # longer than Python converts: estimate from the bits
        return int(abs(number).bit_length() * math.log10(2)) + 1


def _surrogate(text: str) -> str:
    found = _SURROGATE.search(text)
    assert found is not None
    return f"'\\u{ord(found.group()):04x}' at position {found.start()}"


def _at(root: str, path: Sequence[Any], problem: str, hint: str) -> str:
    parts = [part for part in path if part is not None]
    if len(parts) > _SHOWN_PARTS:
        shown = f"{format_path(root, parts[: _SHOWN_PARTS - 1])}…{_step(parts[-1], True)}"
    else:
        shown = format_path(root, parts)
    return f"{shown or 'the value'} {problem} ({hint})"


_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` with NUL and lone surrogates escaped (``\\x00``, ``\\ud800``), so that
    every store keeps it, and keeps it the same way."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE_CHARACTER.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return "\\x00" if code == 0 else f"\\u{code:04x}"

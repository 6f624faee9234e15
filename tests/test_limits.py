"""The limits on JSON data, storable text and credential redaction, on their own.

The engine's use of them, on every store, is tested in ``tests/backends/test_poisoned.py``.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowkit.limits import MAX_CHARS, MAX_DEPTH, MAX_INT_DIGITS, problem_in, storable_text
from flowkit.records import decode_json, encode_json
from flowkit.redaction import REDACTED, add_secret, redact


def _nested(depth: int, leaf: Any = 0) -> Any:
    return functools.reduce(lambda inner, _: [inner], range(depth), leaf)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


# Any text, lone surrogates included; integers of any size up to well past the limit.
_TEXT = st.text(st.characters(codec=None), max_size=8)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([MAX_INT_DIGITS - 1, MAX_INT_DIGITS, 6000]).map(lambda n: -(10**n))
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_TEXT, children, max_size=3),
    max_leaves=12,
)


@given(_JSON)
def test_what_the_limits_accept_every_store_can_encode_and_read_back(value: Any) -> None:
    problem = problem_in(value, "v")
    try:
        text = encode_json(value)
        decode_json(text)
    except (ValueError, UnicodeEncodeError):
        assert problem is not None  # the limits refuse all the encoder cannot take…
        return
    if problem is None:
        assert decode_json(text) == value
    else:  # …and what it takes they refuse only for a reason
        assert "lone surrogate" not in problem
        assert "digits" not in problem


@given(_TEXT)
def test_a_lone_surrogate_anywhere_is_refused(text: str) -> None:
    has_surrogate = any(0xD800 <= ord(char) <= 0xDFFF for char in text)
    for value in (text, [text], {"k": text}, {text: 1}):
        problem = problem_in(value, "v")
        assert (problem is not None and "lone surrogate" in problem) is has_surrogate


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 800, 100_000])
def test_nesting_is_limited_at_any_depth_without_recursion(depth: int) -> None:
    problem = problem_in({"tree": _nested(depth - 1)}, "v")
    assert (problem is None) is (depth <= MAX_DEPTH)
    if depth <= 200:
        assert _depth({"tree": _nested(depth - 1)}) == depth


def test_integers_are_limited_by_their_digits() -> None:
    assert problem_in(10 ** (MAX_INT_DIGITS - 1), "n") is None  # 4300 digits
    assert problem_in(-(10 ** (MAX_INT_DIGITS - 1)), "n") is None
    assert problem_in(10**MAX_INT_DIGITS, "n") == (
        "n is an integer of 4301 digits, more than the 4300 a value may have "
        "(store such a number as a string)"
    )
    assert "of over a million digits" in (problem_in(10**1_000_001, "n") or "")


def test_size_counts_the_json_text() -> None:
    assert problem_in("x" * (MAX_CHARS - 2), "v") is None  # with its quotes: MAX_CHARS
    assert problem_in("x" * (MAX_CHARS - 1), "v") is not None
    assert problem_in({"k": ["x" * (MAX_CHARS // 4)] * 3}, "v") is None
    assert problem_in({"k": ["x" * (MAX_CHARS // 4)] * 5}, "v") == (
        f"v is larger than {MAX_CHARS} characters of JSON (keep large data in a file or a "
        "bucket and pass a reference to it)"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            {"a": [1, {"b c": math.inf}]},
            "v.a[1]['b c'] is the float inf (JSON has no NaN or infinity)",
        ),
        (
            {1: "x"},
            "v has the key 1 (an int), which is not JSON data (mapping keys must be strings)",
        ),
        (
            {"s": {1, 2}},
            "v.s is a set, which is not JSON data (use strings, numbers, booleans, "
            "null, lists and mappings with string keys)",
        ),
        (
            b"raw",
            "v is a bytes, which is not JSON data (use strings, numbers, booleans, null, "
            "lists and mappings with string keys)",
        ),
    ],
)
def test_values_that_are_not_json_data(value: Any, problem: str) -> None:
    assert problem_in(value, "v") == problem


@given(st.text(st.characters(codec=None)))
def test_storable_text_encodes_and_keeps_the_rest(text: str) -> None:
    stored = storable_text(text)
    stored.encode("utf-8")  # never raises
    assert "\x00" not in stored
    if not any(char == "\x00" or 0xD800 <= ord(char) <= 0xDFFF for char in text):
        assert stored == text
    assert storable_text(stored) == stored


def test_storable_text_escapes_like_repr() -> None:
    assert storable_text("a\x00b\ud800c\udfff") == "a\\x00b\\ud800c\\udfff"


# --- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Authorization: Bearer abc.def-123", f"Authorization: {REDACTED}"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', f'{{"authorization": "{REDACTED}"}}'),
        ("got bearer abcdefgh12345678 from", f"got bearer {REDACTED} from"),
        ("api_key=abcd1234efgh&x=1", f"api_key={REDACTED}&x=1"),
        ("'password': 'hunter22'", f"'password': '{REDACTED}'"),
        ("key sk-proj-AbCdEf123456 rejected", f"key {REDACTED} rejected"),
        ("redis://:s3cretpass@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0"),
        ("mysql://root:pw12345678@db/x", f"mysql://root:{REDACTED}@db/x"),
        ("no credentials here: max_tokens=4096, tokens used 12", None),
        ("Bearer short", None),  # too short to be a token
    ],
)
def test_credential_patterns(text: str, redacted: str | None) -> None:
    assert redact(text) == (text if redacted is None else redacted)


def test_added_secrets_and_secret_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_API_TOKEN", "tok-0123456789")
    monkeypatch.setenv("SHOP_COLOR", "blue-green-red")  # not a secret's name
    monkeypatch.setenv("SHOP_PASSWORD", "short")  # too short to redact
    add_secret("a-configured-secret")
    add_secret("tiny")  # ignored
    text = "tok-0123456789 a-configured-secret blue-green-red short tiny"
    assert redact(text) == f"{REDACTED} {REDACTED} blue-green-red short tiny"
    assert redact(redact(text)) == redact(text)


def test_a_redacted_error_is_still_json_readable() -> None:
    text = redact(json.dumps({"error": "Authorization: Bearer abcdefgh12345678"}))
    assert json.loads(text) == {"error": f"Authorization: {REDACTED}"}

"""References: parsing, resolution, lookup and the scope they read."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.expressions.references import (
    SPECIAL_ROOTS,
    Reference,
    Scope,
    has_references,
    is_reference,
    lookup,
    parse_path,
    plain,
    references,
    resolve,
    walk,
)
from flowkit.frozen import FrozenDict, freeze

CTX: dict[str, Any] = {
    "input": {"amount": 120, "name": "Ada", "items": [{"price": 3}, {"price": 4.5}]},
    "order": {"first-name": "Grace", "tags": ["a", "b"], "0": "zero-key"},
    "flag": True,
    "off": False,
    "nothing": None,
    "count": 0,
    "ratio": 0.25,
    "text": "héllo",
    "now": "ctx-now",
}

FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def scope(**local: Any) -> Scope:
    return Scope(CTX, history=("start", "charge"), now=lambda: FIXED, local=local or None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("$input.amount", 120, id="bare-number"),
        pytest.param("$input", CTX["input"], id="bare-dict-stays-dict"),
        pytest.param("$input.items", CTX["input"]["items"], id="bare-list-stays-list"),
        pytest.param("$input.items.1.price", 4.5, id="numeric-segment-indexes-list"),
        pytest.param("$input.items.9.price", None, id="index-out-of-range"),
        pytest.param("$order.0", "zero-key", id="numeric-segment-on-mapping-is-key"),
        pytest.param("$order.tags.x", None, id="word-segment-on-list"),
        pytest.param("$input.amount.deeper", None, id="path-through-scalar"),
        pytest.param("$missing", None, id="missing-root"),
        pytest.param("$input.missing.deeper", None, id="missing-path"),
        pytest.param("$flag", True, id="bool"),
        pytest.param("$nothing", None, id="null"),
        pytest.param("${input.amount}", 120, id="braced"),
        pytest.param("${order.first-name}", "Grace", id="braced-any-segment-chars"),
        pytest.param("${input}", CTX["input"], id="braced-dict-stays-dict"),
        pytest.param("$history", ["start", "charge"], id="history"),
        pytest.param("$now", "2024-05-06T07:08:09+00:00", id="now-shadows-ctx"),
        pytest.param("$_x1", None, id="underscore-name"),
    ],
)
def test_exact_reference_resolves_to_raw_value(text: str, expected: Any) -> None:
    assert resolve(text, scope()) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Total: $input.amount.", "Total: 120.", id="trailing-dot-is-literal"),
        pytest.param("${input.amount}px", "120px", id="braced-next-to-text"),
        pytest.param("[$input.amountpx]", "[]", id="bare-swallows-word-chars"),
        pytest.param("a $$ b", "a $ b", id="double-dollar-escape"),
        pytest.param("$$input.amount", "$input.amount", id="escaped-reference"),
        pytest.param("$$$input.amount", "$120", id="escape-then-reference"),
        pytest.param("costs $5", "costs $5", id="dollar-digit-literal"),
        pytest.param("a $ b", "a $ b", id="lone-dollar-literal"),
        pytest.param("end $", "end $", id="trailing-dollar-literal"),
        pytest.param("${} and ${1x}", "${} and ${1x}", id="bad-braced-literal"),
        pytest.param("${input.amount", "${input.amount", id="unclosed-brace-literal"),
        pytest.param("${input..amount}", "${input..amount}", id="empty-braced-segment"),
        pytest.param("[$nothing]", "[]", id="null-is-empty"),
        pytest.param("$flag/$off", "true/false", id="bools-lowercase"),
        pytest.param("n=$count r=$ratio", "n=0 r=0.25", id="numbers"),
        pytest.param("tags=$order.tags", 'tags=["a", "b"]', id="list-as-json"),
        pytest.param("i=$input.items.0", 'i={"price": 3}', id="dict-as-json"),
        pytest.param("<$text>", "<héllo>", id="str-as-is"),
        pytest.param("$missing!", "!", id="missing-is-empty"),
        pytest.param("at $now", "at 2024-05-06T07:08:09+00:00", id="now"),
        pytest.param("$input.name$input.amount", "Ada120", id="adjacent-references"),
    ],
)
def test_embedded_references_are_interpolated(text: str, expected: str) -> None:
    assert resolve(text, scope()) == expected


def test_interpolated_json_keeps_non_ascii() -> None:
    ctx = {"data": {"name": "José"}}
    assert resolve("d=$data", Scope(ctx)) == 'd={"name": "José"}'


def test_interpolated_frozen_value_is_json() -> None:
    ctx = {"data": freeze({"a": [1, {"b": None}]})}
    assert resolve("d=$data", Scope(ctx)) == 'd={"a": [1, {"b": null}]}'


def test_resolve_recurses_without_resolving_keys() -> None:
    value = freeze({"$input.name": ["$input.amount", {"n": "${input.name}!"}], "k": 7})
    assert resolve(value, scope()) == {"$input.name": [120, {"n": "Ada!"}], "k": 7}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param((1, (2, 3)), [1, [2, 3]], id="tuples-become-lists"),
        pytest.param(FrozenDict({"a": FrozenDict()}), {"a": {}}, id="frozen-dicts-become-dicts"),
        pytest.param(5, 5, id="int"),
        pytest.param(None, None, id="none"),
        pytest.param(False, False, id="bool"),
        pytest.param("plain", "plain", id="plain-str"),
    ],
)
def test_resolve_returns_plain_json(value: Any, expected: Any) -> None:
    result = resolve(value, scope())
    assert result == expected
    assert type(result) is type(expected)


def test_raw_reference_to_frozen_data_is_thawed() -> None:
    result = resolve("$data", Scope({"data": freeze({"a": [1, 2]})}))
    assert result == {"a": [1, 2]}
    assert type(result) is dict
    assert type(result["a"]) is list


def test_raw_reference_result_is_a_copy() -> None:
    ctx = {"data": {"a": [1]}}
    result = resolve("$data", Scope(ctx))
    result["a"].append(2)
    assert ctx == {"data": {"a": [1]}}


def test_history_result_is_a_copy() -> None:
    history = ["start"]
    result = resolve("$history", Scope({}, history=history))
    result.append("x")
    assert history == ["start"]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(FIXED, "2024-05-06T07:08:09+00:00", id="utc"),
        pytest.param(
            datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-06T07:08:09+00:00",
            id="other-zone-converted",
        ),
        pytest.param(datetime(2024, 5, 6, 7, 8, 9), "2024-05-06T07:08:09+00:00", id="naive-is-utc"),
    ],
)
def test_now_is_iso_utc(moment: datetime, expected: str) -> None:
    assert resolve("$now", Scope({}, now=lambda: moment)) == expected


def test_now_defaults_to_the_current_time() -> None:
    before = datetime.now(UTC)
    value = datetime.fromisoformat(resolve("$now", Scope({})))
    assert before <= value <= datetime.now(UTC)


def test_now_is_read_only_when_referenced() -> None:
    calls: list[int] = []

    def clock() -> datetime:
        calls.append(1)
        return FIXED

    local_scope = Scope(CTX, now=clock)
    resolve({"a": "$input.amount", "b": ["text", 3]}, local_scope)
    assert calls == []
    resolve("$now", local_scope)
    assert calls == [1]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("item", "local", id="local-first"),
        pytest.param("now", "local-now", id="local-shadows-special"),
        pytest.param("history", ["start", "charge"], id="special-history"),
        pytest.param("flag", True, id="ctx"),
        pytest.param("absent", None, id="missing"),
    ],
)
def test_root_lookup_order(name: str, expected: Any) -> None:
    assert scope(item="local", now="local-now").root(name) == expected


def test_child_layers_locals() -> None:
    parent = scope(item=1, index=0)
    child = parent.child({"item": 2}).child(FrozenDict({"inner": 3}))
    assert [child.root(name) for name in ("item", "index", "inner", "flag")] == [2, 0, 3, True]
    assert child.root("now") == "2024-05-06T07:08:09+00:00"
    assert child.root("history") == ["start", "charge"]
    assert parent.root("item") == 1
    assert parent.root("inner") is None


def test_special_roots() -> None:
    assert frozenset({"now", "history"}) == SPECIAL_ROOTS


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("input.amount", 120, id="dotted"),
        pytest.param("$input.amount", 120, id="leading-dollar"),
        pytest.param("${order.first-name}", "Grace", id="braced"),
        pytest.param("input.items.0.price", 3, id="index"),
        pytest.param("order.first-name", "Grace", id="bare-any-segment-chars"),
        pytest.param("input.nope", None, id="missing"),
        pytest.param("input.", None, id="invalid-trailing-dot"),
        pytest.param("", None, id="empty"),
        pytest.param(("input", "items", "1", "price"), 4.5, id="sequence"),
        pytest.param(("order", "first-name"), "Grace", id="sequence-any-chars"),
        pytest.param((), None, id="empty-sequence"),
        pytest.param("history", ["start", "charge"], id="special"),
    ],
)
def test_lookup(path: Any, expected: Any) -> None:
    assert lookup(path, scope()) == expected


def test_lookup_returns_a_copy() -> None:
    ctx = {"a": {"b": [1]}}
    lookup("a.b", Scope(ctx)).append(2)
    assert ctx == {"a": {"b": [1]}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("a", Reference("a", (), "a"), id="root-only"),
        pytest.param("a.b.0", Reference("a", ("b", "0"), "a.b.0"), id="dotted"),
        pytest.param("$a.b", Reference("a", ("b",), "$a.b"), id="leading-dollar"),
        pytest.param("${a.x y}", Reference("a", ("x y",), "${a.x y}"), id="braced"),
        pytest.param("a.first-name", Reference("a", ("first-name",), "a.first-name"), id="dash"),
        pytest.param("a.b.", None, id="trailing-dot"),
        pytest.param("a..b", None, id="empty-segment"),
        pytest.param("1a", None, id="digit-root"),
        pytest.param("", None, id="empty"),
        pytest.param("$", None, id="dollar-only"),
        pytest.param("$a.b c", None, id="reference-with-text"),
        pytest.param("a.b}", None, id="closing-brace"),
        pytest.param("$$a", None, id="escape"),
    ],
)
def test_parse_path(path: str, expected: Reference | None) -> None:
    assert parse_path(path) == expected


def test_references_walks_frozen_and_plain_values() -> None:
    value = freeze({"$k": ["x $a.b y ${c.d-e}", {"n": "$$no $f"}], "g": "$g.0", "n": 3})
    found = list(references(value)) + list(references([{"z": "$z"}]))
    assert found == [
        Reference("a", ("b",), "$a.b"),
        Reference("c", ("d-e",), "${c.d-e}"),
        Reference("f", (), "$f"),
        Reference("g", ("0",), "$g.0"),
        Reference("z", (), "$z"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("$a", True, id="reference"),
        pytest.param("x ${a}", True, id="embedded"),
        pytest.param("costs $5 and $$", False, id="only-literal-dollars"),
        pytest.param("plain", False, id="plain"),
        pytest.param(freeze({"k": ["$a"]}), True, id="nested-frozen"),
        pytest.param({"$a": 1}, False, id="keys-ignored"),
        pytest.param(12, False, id="number"),
    ],
)
def test_has_references(value: Any, expected: bool) -> None:
    assert has_references(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("$a.b", True, id="bare"),
        pytest.param("${a.b}", True, id="braced"),
        pytest.param("$a.b!", False, id="with-text"),
        pytest.param("a.b", False, id="no-dollar"),
        pytest.param(["$a"], False, id="not-a-string"),
    ],
)
def test_is_reference(value: Any, expected: bool) -> None:
    assert is_reference(value) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("", {"a": [{"b": 1}]}, id="empty-is-self"),
        pytest.param(".", {"a": [{"b": 1}]}, id="dot-is-self"),
        pytest.param("a.0.b", 1, id="nested"),
        pytest.param("a.1.b", None, id="missing"),
    ],
)
def test_walk(path: str, expected: Any) -> None:
    assert walk({"a": [{"b": 1}]}, path) == expected


def test_plain_copies_containers() -> None:
    original = {"a": [1, {"b": 2}]}
    copied = plain(original)
    copied["a"][1]["b"] = 3
    assert original == {"a": [1, {"b": 2}]}


# --- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in SPECIAL_ROOTS
)
fast = settings(max_examples=75, deadline=None)


@fast
@given(name=names, value=json_values)
def test_exact_reference_returns_the_stored_value(name: str, value: Any) -> None:
    result = resolve("$" + name, Scope({name: value}))
    assert json.dumps(result) == json.dumps(value)


@fast
@given(text=st.text().filter(lambda text: "$" not in text))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert resolve(text, Scope(CTX)) is text


@fast
@given(text=st.text(alphabet=st.sampled_from("$ab{}._0 ."), max_size=20))
def test_escaping_every_dollar_never_makes_a_reference(text: str) -> None:
    escaped = text.replace("$", "$$")
    assert not has_references(escaped)
    assert resolve(escaped, Scope(CTX)) == text


@fast
@given(ctx_value=json_values, extra=json_values)
def test_resolve_never_mutates_and_results_are_independent(ctx_value: Any, extra: Any) -> None:
    ctx = {"v": ctx_value}
    value = {"raw": "$v", "text": "v=$v", "extra": [extra]}
    ctx_before, value_before = copy.deepcopy(ctx), copy.deepcopy(value)
    result = resolve(value, Scope(ctx))
    assert json.dumps(ctx) == json.dumps(ctx_before)
    assert json.dumps(value) == json.dumps(value_before)
    scramble(resolve("$v", Scope(ctx)))
    scramble(result)
    assert json.dumps(ctx) == json.dumps(ctx_before)


def scramble(value: Any) -> None:
    """Change every container inside ``value``, innermost first."""
    if isinstance(value, dict):
        for item in value.values():
            scramble(item)
        value["__new__"] = 1
    elif isinstance(value, list):
        for item in value:
            scramble(item)
        value.append(1)

"""Transform ops: results, input/argument errors and static checks."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.expressions.conditions import json_equal
from flowkit.expressions.references import Scope
from flowkit.expressions.transforms import TRANSFORM_OPS, TransformError, apply, check_transform
from flowkit.frozen import FrozenDict, freeze

SCOPE = Scope(
    {"currency": "EUR", "limit": 10, "extra": {"source": "web"}, "skus": ["a", "c"]},
    local={"rate": 2},
)
ITEMS = [
    {"sku": "a", "price": 5, "qty": 2, "tags": ["x"]},
    {"sku": "b", "price": 20, "qty": 1, "tags": []},
    {"sku": "c", "price": 12.5, "qty": None},
]


def run(data: Any, *ops: tuple[str, Any]) -> Any:
    return apply(data, ops, SCOPE)


def test_the_eighteen_ops() -> None:
    assert (
        frozenset(
            {
                "map",
                "select",
                "reject",
                "pluck",
                "first",
                "last",
                "flatten",
                "compact",
                "uniq",
                "reverse",
                "sort",
                "count",
                "sum",
                "keys",
                "values",
                "pick",
                "omit",
                "merge",
            }
        )
        == TRANSFORM_OPS
    )


@pytest.mark.parametrize(
    ("data", "op", "arg", "expected"),
    [
        # map
        pytest.param(
            ITEMS,
            "map",
            {"id": "sku", "first_tag": "tags.0", "cur": "$currency", "label": "in $currency"},
            [
                {"id": "a", "first_tag": "x", "cur": "EUR", "label": "in EUR"},
                {"id": "b", "first_tag": None, "cur": "EUR", "label": "in EUR"},
                {"id": "c", "first_tag": None, "cur": "EUR", "label": "in EUR"},
            ],
            id="map",
        ),
        pytest.param(
            [1, 2], "map", {"n": "", "m": "."}, [{"n": 1, "m": 1}, {"n": 2, "m": 2}], id="map-self"
        ),
        pytest.param([], "map", {"n": "x"}, [], id="map-empty"),
        pytest.param([None], "map", {"n": "x"}, [{"n": None}], id="map-none-element"),
        pytest.param([{}], "map", {"r": "$rate"}, [{"r": 2}], id="map-local-reference"),
        pytest.param(ITEMS, "map", "sku", ["a", "b", "c"], id="map-path"),
        pytest.param(ITEMS, "map", "tags.0", ["x", None, None], id="map-path-missing"),
        # select / reject
        pytest.param(
            ITEMS,
            "select",
            {"field": "price", "op": "gt", "value": "$limit"},
            [ITEMS[1], ITEMS[2]],
            id="select-reference",
        ),
        pytest.param(
            ITEMS,
            "select",
            {"field": "sku", "op": "in", "value": "$skus"},
            [ITEMS[0], ITEMS[2]],
            id="select-in",
        ),
        pytest.param(
            ITEMS,
            "select",
            {"field": "qty", "op": "exists"},
            ITEMS[:2],
            id="select-exists-no-value",
        ),
        pytest.param(
            ITEMS,
            "select",
            {"field": "qty", "op": "contains", "value": 1},
            [],
            id="select-error-does-not-hold",
        ),
        pytest.param(
            ["ab", "b", 3],
            "select",
            {"field": "", "op": "starts_with", "value": "a"},
            ["ab"],
            id="select-self",
        ),
        pytest.param([], "select", {"field": "x", "op": "eq", "value": 1}, [], id="select-empty"),
        pytest.param(
            ITEMS, "reject", {"field": "price", "op": "gt", "value": 10}, [ITEMS[0]], id="reject"
        ),
        pytest.param(
            ITEMS,
            "reject",
            {"field": "qty", "op": "contains", "value": 1},
            ITEMS,
            id="reject-error-does-not-hold",
        ),
        # select / reject, the gem's mapping form: every path equals its value
        pytest.param(ITEMS, "select", {"sku": "a"}, [ITEMS[0]], id="select-equal"),
        pytest.param(
            ITEMS, "select", {"price": 20, "qty": 1}, [ITEMS[1]], id="select-equal-all-keys"
        ),
        pytest.param(ITEMS, "select", {"price": 20, "qty": 2}, [], id="select-equal-one-differs"),
        pytest.param(ITEMS, "select", {"tags.0": "x"}, [ITEMS[0]], id="select-equal-path"),
        pytest.param(ITEMS, "select", {"price": 5.0}, [ITEMS[0]], id="select-equal-json"),
        pytest.param(ITEMS, "select", {"qty": True}, [], id="select-equal-bool-is-not-1"),
        pytest.param(ITEMS, "select", {"qty": None}, [ITEMS[2]], id="select-equal-null"),
        pytest.param(
            [{"cur": "EUR"}, {"cur": "USD"}],
            "select",
            {"cur": "$currency"},
            [{"cur": "EUR"}],
            id="select-equal-reference",
        ),
        pytest.param(
            ITEMS,
            "select",
            {"value": 5},
            [],
            id="select-equal-key-named-value",
        ),
        pytest.param(ITEMS, "reject", {"sku": "b"}, [ITEMS[0], ITEMS[2]], id="reject-equal"),
        pytest.param(
            ITEMS, "reject", {"price": 20, "qty": 2}, ITEMS, id="reject-equal-one-differs"
        ),
        # pluck
        pytest.param(ITEMS, "pluck", "sku", ["a", "b", "c"], id="pluck"),
        pytest.param(ITEMS, "pluck", "tags.0", ["x", None, None], id="pluck-missing"),
        pytest.param([[1, 2], [3]], "pluck", "1", [2, None], id="pluck-index"),
        pytest.param([], "pluck", "a", [], id="pluck-empty"),
        # first / last
        pytest.param([1, 2, 3], "first", None, 1, id="first"),
        pytest.param([1, 2, 3], "first", True, 1, id="first-true"),
        pytest.param([], "first", None, None, id="first-empty"),
        pytest.param([1, 2, 3], "first", 2, [1, 2], id="first-n"),
        pytest.param([1, 2, 3], "first", 0, [], id="first-zero"),
        pytest.param([1], "first", 5, [1], id="first-more-than-length"),
        pytest.param([1, 2, 3], "last", None, 3, id="last"),
        pytest.param([], "last", True, None, id="last-empty"),
        pytest.param([1, 2, 3], "last", 2, [2, 3], id="last-n"),
        pytest.param([1, 2, 3], "last", 0, [], id="last-zero"),
        pytest.param([1, 2], "last", 5, [1, 2], id="last-more-than-length"),
        # flatten
        pytest.param(
            [[1, [2]], 3, [], [[[4]]]], "flatten", None, [1, [2], 3, [[4]]], id="flatten-one-level"
        ),
        pytest.param([[1, [2]], 3, [[[4]]]], "flatten", 2, [1, 2, 3, [4]], id="flatten-depth"),
        pytest.param(
            [[1, [2]], {"a": [1]}], "flatten", True, [1, [2], {"a": [1]}], id="flatten-keeps-dicts"
        ),
        pytest.param([], "flatten", None, [], id="flatten-empty"),
        # compact
        pytest.param(
            [1, None, 0, "", None, False], "compact", None, [1, 0, "", False], id="compact-list"
        ),
        pytest.param(
            {"a": None, "b": 0, "c": []}, "compact", True, {"b": 0, "c": []}, id="compact-dict"
        ),
        # uniq
        pytest.param(
            [1, 1.0, True, "1", 1, True, None, None],
            "uniq",
            None,
            [1, True, "1", None],
            id="uniq-json-equality",
        ),
        pytest.param(
            [{"a": [1]}, {"a": [1]}, {"a": [2]}],
            "uniq",
            None,
            [{"a": [1]}, {"a": [2]}],
            id="uniq-dicts",
        ),
        pytest.param([*ITEMS, {"sku": "a", "price": 0}], "uniq", "sku", ITEMS, id="uniq-by-field"),
        pytest.param(
            [{"a": 1}, {}, {"b": 2}], "uniq", "a", [{"a": 1}, {}], id="uniq-missing-field"
        ),
        pytest.param([], "uniq", None, [], id="uniq-empty"),
        # reverse
        pytest.param([1, 2, 3], "reverse", None, [3, 2, 1], id="reverse-list"),
        pytest.param("abc", "reverse", True, "cba", id="reverse-str"),
        pytest.param([], "reverse", None, [], id="reverse-empty"),
        # sort
        pytest.param([3, 1, 2], "sort", None, [1, 2, 3], id="sort"),
        pytest.param(["b", "a", "C"], "sort", True, ["C", "a", "b"], id="sort-str"),
        pytest.param([2, None, 1.5, None], "sort", None, [1.5, 2, None, None], id="sort-none-last"),
        pytest.param([True, False], "sort", None, [False, True], id="sort-bools"),
        pytest.param(ITEMS, "sort", "price", [ITEMS[0], ITEMS[2], ITEMS[1]], id="sort-by-field"),
        pytest.param(
            ITEMS,
            "sort",
            {"by": "price", "order": "desc"},
            [ITEMS[1], ITEMS[2], ITEMS[0]],
            id="sort-desc",
        ),
        pytest.param(
            ITEMS, "sort", {"by": "qty", "order": "desc"}, ITEMS, id="sort-desc-none-last"
        ),
        pytest.param(
            [{"k": 1, "i": 0}, {"k": 0, "i": 1}, {"k": 1, "i": 2}],
            "sort",
            "k",
            [{"k": 0, "i": 1}, {"k": 1, "i": 0}, {"k": 1, "i": 2}],
            id="sort-stable",
        ),
        pytest.param(
            [{"k": 1, "i": 0}, {"k": 0, "i": 1}, {"k": 1, "i": 2}],
            "sort",
            {"by": "k", "order": "desc"},
            [{"k": 1, "i": 0}, {"k": 1, "i": 2}, {"k": 0, "i": 1}],
            id="sort-desc-stable",
        ),
        pytest.param([2, 1], "sort", {"order": "asc"}, [1, 2], id="sort-mapping-without-by"),
        pytest.param([], "sort", None, [], id="sort-empty"),
        # count
        pytest.param(ITEMS, "count", None, 3, id="count-list"),
        pytest.param({"a": 1}, "count", True, 1, id="count-dict"),
        pytest.param("héllo", "count", None, 5, id="count-str"),
        pytest.param([], "count", None, 0, id="count-empty"),
        pytest.param(
            ITEMS,
            "count",
            {"field": "price", "op": "lt", "value": "$limit"},
            1,
            id="count-condition",
        ),
        pytest.param(ITEMS, "count", {"qty": None}, 1, id="count-equal"),
        # sum
        pytest.param([1, 2.5, -1], "sum", None, 2.5, id="sum"),
        pytest.param([1, 2], "sum", True, 3, id="sum-ints-stay-int"),
        pytest.param([], "sum", None, 0, id="sum-empty"),
        pytest.param(ITEMS, "sum", "price", 37.5, id="sum-by-field"),
        # keys / values
        pytest.param({"a": 1, "b": [2]}, "keys", None, ["a", "b"], id="keys"),
        pytest.param({"a": 1, "b": [2]}, "values", True, [1, [2]], id="values"),
        pytest.param({}, "keys", None, [], id="keys-empty"),
        # pick / omit
        pytest.param(
            {"a": 1, "b": 2, "c": 3}, "pick", ["c", "a", "z"], {"c": 3, "a": 1}, id="pick-arg-order"
        ),
        pytest.param({"a": 1, "b": 2}, "pick", "a", {"a": 1}, id="pick-one-key"),
        pytest.param(
            ITEMS, "pick", ["sku"], [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}], id="pick-each"
        ),
        pytest.param({"a": 1, "b": 2, "c": 3}, "omit", ["a", "z"], {"b": 2, "c": 3}, id="omit"),
        pytest.param([{"a": 1, "b": 2}], "omit", "a", [{"b": 2}], id="omit-each"),
        pytest.param([], "omit", "a", [], id="omit-empty-list"),
        # merge
        pytest.param(
            {"a": 1, "b": 2},
            "merge",
            {"b": "$limit", "c": "${currency}!"},
            {"a": 1, "b": 10, "c": "EUR!"},
            id="merge-mapping",
        ),
        pytest.param({"a": 1}, "merge", "$extra", {"a": 1, "source": "web"}, id="merge-reference"),
        pytest.param(
            [{"a": 1, "b": 1}, {"b": 2}, {}], "merge", None, {"a": 1, "b": 2}, id="merge-list"
        ),
        pytest.param([], "merge", None, {}, id="merge-empty-list"),
    ],
)
def test_op(data: Any, op: str, arg: Any, expected: Any) -> None:
    result = run(data, (op, arg))
    assert result == expected
    assert json.dumps(result) == json.dumps(expected)


def test_ops_apply_in_order() -> None:
    ops = (
        ("select", {"field": "qty", "op": "exists"}),
        ("sort", {"by": "price", "order": "desc"}),
        ("pluck", "sku"),
        ("first", 1),
    )
    assert run(ITEMS, *ops) == ["b"]


def test_no_ops_returns_a_plain_copy() -> None:
    data = freeze({"a": [1]})
    result = apply(data, (), SCOPE)
    assert result == {"a": [1]}
    assert type(result) is dict
    assert type(result["a"]) is list


def test_frozen_input_and_arguments() -> None:
    ops = (
        ("select", freeze({"field": "sku", "op": "in", "value": ["a", "b"]})),
        ("map", freeze({"s": "sku", "t": "tags"})),
    )
    result = apply(freeze(ITEMS), ops, SCOPE)
    assert result == [{"s": "a", "t": ["x"]}, {"s": "b", "t": []}]
    assert type(result[0]["t"]) is list


def test_result_is_independent_of_the_input() -> None:
    data = copy.deepcopy(ITEMS)
    result = run(data, ("select", {"field": "price", "op": "gt", "value": 0}))
    result[0]["tags"].append("changed")
    result[0]["sku"] = "changed"
    assert data == ITEMS


@pytest.mark.parametrize(
    ("data", "op", "arg", "message"),
    [
        pytest.param(
            [],
            "explode",
            None,
            "unknown transform op 'explode' (expected one of compact, count, first, "
            "flatten, keys, last, map, merge, omit, pick, pluck, reject, reverse, "
            "select, sort, sum, uniq, values)",
            id="unknown",
        ),
        pytest.param(
            [],
            "revers",
            None,
            "unknown transform op 'revers' (did you mean 'reverse'?)",
            id="unknown-typo",
        ),
        pytest.param(
            {"a": 1}, "map", {"x": "a"}, "map: expected a list, got a dict", id="map-dict"
        ),
        pytest.param(
            None,
            "select",
            {"field": "a", "op": "eq"},
            "select: expected a list, got null",
            id="select-none",
        ),
        pytest.param(
            "ab",
            "reject",
            {"field": "a", "op": "eq"},
            "reject: expected a list, got a str",
            id="reject-str",
        ),
        pytest.param({"a": 1}, "pluck", "a", "pluck: expected a list, got a dict", id="pluck-dict"),
        pytest.param("abc", "first", None, "first: expected a list, got a str", id="first-str"),
        pytest.param(3, "last", 1, "last: expected a list, got an int", id="last-int"),
        pytest.param(
            {"a": [1]}, "flatten", None, "flatten: expected a list, got a dict", id="flatten-dict"
        ),
        pytest.param(
            "a b", "compact", None, "compact: expected a list or dict, got a str", id="compact-str"
        ),
        pytest.param({"a": 1}, "uniq", None, "uniq: expected a list, got a dict", id="uniq-dict"),
        pytest.param(
            {"a": 1},
            "reverse",
            None,
            "reverse: expected a list or str, got a dict",
            id="reverse-dict",
        ),
        pytest.param(None, "sort", None, "sort: expected a list, got null", id="sort-none"),
        pytest.param(
            [1, "a"],
            "sort",
            None,
            "sort: cannot order number and str values together",
            id="sort-mixed",
        ),
        pytest.param(
            [1, True],
            "sort",
            None,
            "sort: cannot order bool and number values together",
            id="sort-bool-number",
        ),
        pytest.param([[1], [0]], "sort", None, "sort: cannot order a list", id="sort-lists"),
        pytest.param([{"k": {}}], "sort", "k", "sort: cannot order a dict", id="sort-by-dict"),
        pytest.param(
            5, "count", None, "count: expected a list, dict or str, got an int", id="count-int"
        ),
        pytest.param(
            {"a": 1},
            "count",
            {"field": "a", "op": "eq"},
            "count: expected a list, got a dict",
            id="count-condition-dict",
        ),
        pytest.param(
            [1, 2, "3"], "sum", None, "sum: element 2 is a str, not a number", id="sum-str"
        ),
        pytest.param([True], "sum", None, "sum: element 0 is a bool, not a number", id="sum-bool"),
        pytest.param(
            [{"p": 1}, {}],
            "sum",
            "p",
            "sum: element 1 field 'p' is null, not a number",
            id="sum-missing-field",
        ),
        pytest.param({"a": 1}, "sum", None, "sum: expected a list, got a dict", id="sum-dict"),
        pytest.param([1], "keys", None, "keys: expected a dict, got a list", id="keys-list"),
        pytest.param(None, "values", None, "values: expected a dict, got null", id="values-none"),
        pytest.param(
            "s", "pick", "a", "pick: expected a dict or a list of dicts, got a str", id="pick-str"
        ),
        pytest.param(
            [{"a": 1}, 2],
            "omit",
            "a",
            "omit: element 1 is an int, not a dict",
            id="omit-non-dict-element",
        ),
        pytest.param(
            [{"a": 1}],
            "merge",
            {"b": 1},
            "merge: expected a dict, got a list",
            id="merge-list-with-arg",
        ),
        pytest.param(
            {"a": 1},
            "merge",
            None,
            "merge: expected a list of dicts, got a dict",
            id="merge-dict-without-arg",
        ),
        pytest.param(
            [{}, [1]],
            "merge",
            None,
            "merge: element 1 is a list, not a dict",
            id="merge-non-dict-element",
        ),
        pytest.param(
            {},
            "merge",
            "$currency",
            "merge: '$currency' resolved to a str, not a dict",
            id="merge-reference-not-dict",
        ),
        pytest.param(
            {},
            "merge",
            "$missing",
            "merge: '$missing' resolved to null, not a dict",
            id="merge-reference-missing",
        ),
        pytest.param(
            [1],
            "first",
            -1,
            "first: needs null, true or a whole number of at least 0, got -1",
            id="argument-checked-at-runtime",
        ),
    ],
)
def test_op_errors(data: Any, op: str, arg: Any, message: str) -> None:
    with pytest.raises(TransformError) as info:
        run(data, (op, arg))
    assert str(info.value) == message
    assert info.value.op == op


def test_error_names_the_failing_op_in_a_chain() -> None:
    with pytest.raises(TransformError, match=r"^sum: element 0 is a str") as info:
        run(ITEMS, ("pluck", "sku"), ("sum", None))
    assert info.value.op == "sum"


@pytest.mark.parametrize(
    ("op", "arg", "problems"),
    [
        pytest.param("map", {"a": "b", "c": "$d"}, [], id="map-ok"),
        pytest.param("map", FrozenDict({"a": "b"}), [], id="map-frozen-ok"),
        pytest.param("map", "tags.0", [], id="map-path-ok"),
        pytest.param(
            "map",
            3,
            ["map: needs a field path or a mapping of output keys to field paths, got an int"],
            id="map-number",
        ),
        pytest.param(
            "map",
            {},
            [
                "map: needs a field path or a mapping of output keys to field paths, "
                "got an empty mapping"
            ],
            id="map-empty",
        ),
        pytest.param(
            "map",
            "$sku",
            ["map: field path '$sku' is relative to each element; write it without '$'"],
            id="map-dollar-path",
        ),
        pytest.param(
            "map",
            {"a": 1},
            ["map: value for 'a' must be a field path or a reference, got 1"],
            id="map-number-value",
        ),
        pytest.param("select", {"field": "a", "op": "eq", "value": "$x"}, [], id="select-ok"),
        pytest.param(
            "reject", freeze({"field": "a", "op": "in", "value": [1]}), [], id="reject-frozen-ok"
        ),
        pytest.param(
            "select",
            "a",
            [
                "select: needs a condition {field, op, value} or a mapping of field paths "
                "to values, got a str"
            ],
            id="select-not-mapping",
        ),
        pytest.param(
            "reject",
            {},
            [
                "reject: needs a condition {field, op, value} or a mapping of field paths "
                "to values, got an empty mapping"
            ],
            id="reject-empty-mapping",
        ),
        pytest.param("select", {"status": "paid", "total": "$min"}, [], id="select-equal-ok"),
        pytest.param("reject", freeze({"customer.tier": "gold"}), [], id="reject-equal-frozen-ok"),
        pytest.param(
            "select",
            {"$status": "paid"},
            ["select: field path '$status' is relative to each element; write it without '$'"],
            id="select-equal-dollar-key",
        ),
        pytest.param(
            "select",
            {1: "paid"},
            ["select: key 1 must be a field path (a string)"],
            id="select-equal-number-key",
        ),
        pytest.param(
            "select",
            {"field": "a", "status": "paid"},
            ["select: unknown condition key 'status' (expected field, op, value)"],
            id="select-field-key-means-condition",
        ),
        pytest.param(
            "select",
            {"op": "eq"},
            ["select: condition 'field' must be a field path, got null"],
            id="select-missing-field",
        ),
        pytest.param(
            "reject",
            {"field": "a"},
            ["reject: condition 'op' must be a condition op name, got null"],
            id="reject-missing-op",
        ),
        pytest.param(
            "select",
            {"field": "a", "op": "eqq"},
            ["select: unknown condition op 'eqq' (did you mean 'eq'?)"],
            id="select-unknown-op",
        ),
        pytest.param(
            "select",
            {"field": "a", "op": "eq", "vlaue": 1},
            ["select: unknown condition key 'vlaue' (expected field, op, value)"],
            id="select-unknown-key",
        ),
        pytest.param(
            "select",
            {"field": "$a", "op": "exists"},
            ["select: condition field '$a' is relative to each element; write it without '$'"],
            id="select-dollar-field",
        ),
        pytest.param(
            "count",
            {"field": "a", "op": "matches", "value": "("},
            [
                "count: matches: pattern '(' does not compile: "
                "missing ), unterminated subpattern at position 0"
            ],
            id="count-bad-pattern",
        ),
        pytest.param("count", None, [], id="count-ok"),
        pytest.param(
            "count",
            3,
            [
                "count: needs a condition {field, op, value} or a mapping of field paths "
                "to values, got an int"
            ],
            id="count-number",
        ),
        pytest.param("pluck", "a.b", [], id="pluck-ok"),
        pytest.param("pluck", None, ["pluck: needs a field path, got null"], id="pluck-none"),
        pytest.param(
            "pluck",
            "$a",
            ["pluck: field path '$a' is relative to each element; write it without '$'"],
            id="pluck-dollar",
        ),
        pytest.param("first", 3, [], id="first-ok"),
        pytest.param(
            "first",
            -1,
            ["first: needs null, true or a whole number of at least 0, got -1"],
            id="first-negative",
        ),
        pytest.param(
            "last",
            False,
            ["last: needs null, true or a whole number of at least 0, got False"],
            id="last-false",
        ),
        pytest.param(
            "last",
            1.5,
            ["last: needs null, true or a whole number of at least 0, got 1.5"],
            id="last-float",
        ),
        pytest.param(
            "flatten",
            0,
            ["flatten: needs null, true or a whole number of at least 1, got 0"],
            id="flatten-zero",
        ),
        pytest.param("compact", None, [], id="compact-ok"),
        pytest.param(
            "compact",
            "x",
            ["compact: takes no argument (null or true), got a str"],
            id="compact-arg",
        ),
        pytest.param(
            "reverse",
            1,
            ["reverse: takes no argument (null or true), got an int"],
            id="reverse-arg",
        ),
        pytest.param(
            "keys", False, ["keys: takes no argument (null or true), got a bool"], id="keys-false"
        ),
        pytest.param(
            "values", [], ["values: takes no argument (null or true), got a list"], id="values-arg"
        ),
        pytest.param("uniq", "sku", [], id="uniq-ok"),
        pytest.param("uniq", 1, ["uniq: needs a field path, got an int"], id="uniq-number"),
        pytest.param("sort", {"by": "a", "order": "desc"}, [], id="sort-ok"),
        pytest.param(
            "sort",
            {"by": "a", "order": "down"},
            ["sort: unknown order 'down' (expected 'asc' or 'desc')"],
            id="sort-unknown-order",
        ),
        pytest.param(
            "sort",
            {"field": "a"},
            ["sort: unknown key 'field' (expected by, order)"],
            id="sort-unknown-key",
        ),
        pytest.param(
            "sort", {"by": 3}, ["sort: needs a field path, got an int"], id="sort-by-number"
        ),
        pytest.param("sort", [1], ["sort: needs a field path, got a list"], id="sort-list"),
        pytest.param("sum", "price", [], id="sum-ok"),
        pytest.param("sum", {"by": "p"}, ["sum: needs a field path, got a dict"], id="sum-dict"),
        pytest.param("pick", ("a", "b"), [], id="pick-ok"),
        pytest.param(
            "pick", 3, ["pick: needs a key or a list of keys, got an int"], id="pick-number"
        ),
        pytest.param(
            "omit",
            ["a", 1],
            ["omit: needs a key or a list of keys, got a list"],
            id="omit-mixed-list",
        ),
        pytest.param("merge", None, [], id="merge-none-ok"),
        pytest.param("merge", {"a": "$b"}, [], id="merge-mapping-ok"),
        pytest.param("merge", "${extra}", [], id="merge-reference-ok"),
        pytest.param(
            "merge",
            "extra",
            ["merge: needs a mapping or a reference to one, got 'extra'"],
            id="merge-plain-str",
        ),
        pytest.param(
            "merge",
            "x $extra",
            ["merge: needs a mapping or a reference to one, got 'x $extra'"],
            id="merge-interpolated-str",
        ),
        pytest.param(
            "merge", [1], ["merge: needs a mapping or a reference to one, got [1]"], id="merge-list"
        ),
        pytest.param(
            "srot", None, ["unknown transform op 'srot' (did you mean 'sort'?)"], id="unknown-typo"
        ),
    ],
)
def test_check_transform(op: str, arg: Any, problems: list[str]) -> None:
    assert check_transform(op, arg) == problems


# --- properties --------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-5, max_value=5)
    | st.floats(min_value=-5, max_value=5, allow_nan=False)
    | st.text(alphabet="ab", max_size=2)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet="ab", max_size=2), children, max_size=3)
    ),
    max_leaves=8,
)
fast = settings(max_examples=100, deadline=None)


@fast
@given(items=st.lists(json_values, max_size=8))
def test_reverse_twice_is_identity(items: list[Any]) -> None:
    before = copy.deepcopy(items)
    assert run(items, ("reverse", None), ("reverse", None)) == items
    assert json.dumps(items) == json.dumps(before)


@fast
@given(items=st.lists(json_values, max_size=8))
def test_uniq_is_idempotent_and_keeps_no_json_equal_pair(items: list[Any]) -> None:
    once = run(items, ("uniq", None))
    assert json.dumps(run(once, ("uniq", None))) == json.dumps(once)
    assert not any(json_equal(a, b) for i, a in enumerate(once) for b in once[i + 1 :])
    assert all(any(json_equal(item, kept) for kept in once) for item in items)


@fast
@given(
    items=st.lists(st.integers(-50, 50) | st.floats(-50, 50) | st.none(), max_size=12)
    | st.lists(st.text(max_size=3) | st.none(), max_size=12)
)
def test_sort_yields_a_sorted_permutation(items: list[Any]) -> None:
    result = run(items, ("sort", None))
    present = [item for item in result if item is not None]
    assert present == sorted(item for item in items if item is not None)
    assert result[len(present) :] == [None] * (len(items) - len(present))
    descending = run(items, ("sort", {"order": "desc"}))
    assert [item for item in descending if item is not None] == present[::-1]

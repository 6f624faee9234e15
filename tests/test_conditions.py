"""Condition ops: comparisons, errors and static checks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.expressions.conditions import (
    CONDITION_OPS,
    MAX_PATTERN_LENGTH,
    ConditionError,
    check_condition,
    compare,
    describe,
    evaluate,
    json_equal,
)
from flowkit.expressions.references import Scope
from flowkit.frozen import FrozenDict, freeze

LONG_PATTERN = "a" * (MAX_PATTERN_LENGTH + 1)
RE2_HINT = (
    "patterns use RE2 syntax, which has no backreferences or lookaround and writes \\Z as \\z; "
    "see https://github.com/google/re2/wiki/Syntax"
)


def test_the_sixteen_ops() -> None:
    assert (
        frozenset(
            {
                "eq",
                "neq",
                "gt",
                "gte",
                "lt",
                "lte",
                "contains",
                "starts_with",
                "ends_with",
                "matches",
                "in",
                "not_in",
                "exists",
                "empty",
                "truthy",
                "falsy",
            }
        )
        == CONDITION_OPS
    )


@pytest.mark.parametrize(
    ("op", "left", "right", "expected"),
    [
        # eq / neq: JSON equality
        pytest.param("eq", 1, 1, True, id="eq-int"),
        pytest.param("eq", 1, 1.0, True, id="eq-int-float"),
        pytest.param("eq", 1, True, False, id="eq-int-bool"),
        pytest.param("eq", 0, False, False, id="eq-zero-false"),
        pytest.param("eq", True, True, True, id="eq-bools"),
        pytest.param("eq", "1", 1, False, id="eq-str-int"),
        pytest.param("eq", None, None, True, id="eq-nones"),
        pytest.param("eq", None, 0, False, id="eq-none-zero"),
        pytest.param("eq", [1, True], (1.0, True), True, id="eq-list-tuple"),
        pytest.param("eq", [1], [True], False, id="eq-list-bool-inside"),
        pytest.param("eq", [1, 2], [1], False, id="eq-list-lengths"),
        pytest.param("eq", {"a": [1]}, FrozenDict({"a": (1,)}), True, id="eq-dict-frozen"),
        pytest.param("eq", {"a": 1}, {"a": True}, False, id="eq-dict-bool-inside"),
        pytest.param("eq", {"a": 1}, {"b": 1}, False, id="eq-dict-keys"),
        pytest.param("eq", {"a": 1}, [1], False, id="eq-dict-list"),
        pytest.param("neq", 1, True, True, id="neq-int-bool"),
        pytest.param("neq", "a", "a", False, id="neq-same"),
        pytest.param("neq", None, "x", True, id="neq-none"),
        # numeric
        pytest.param("gt", 2, 1, True, id="gt"),
        pytest.param("gt", 1, 1, False, id="gt-equal"),
        pytest.param("gt", 1.5, 1, True, id="gt-float-int"),
        pytest.param("gt", "2", 1, False, id="gt-str-left"),
        pytest.param("gt", 2, "1", False, id="gt-str-right"),
        pytest.param("gt", True, 0, False, id="gt-bool-not-number"),
        pytest.param("gt", None, 0, False, id="gt-none"),
        pytest.param("gte", 1, 1.0, True, id="gte-equal"),
        pytest.param("gte", 0, 1, False, id="gte-less"),
        pytest.param("gte", [1], 1, False, id="gte-list"),
        pytest.param("lt", 1, 2, True, id="lt"),
        pytest.param("lt", 2, 2, False, id="lt-equal"),
        pytest.param("lt", 1, None, False, id="lt-none"),
        pytest.param("lte", 2, 2, True, id="lte-equal"),
        pytest.param("lte", 3, 2, False, id="lte-greater"),
        pytest.param("lte", False, 1, False, id="lte-bool"),
        # contains
        pytest.param("contains", "hello", "ell", True, id="contains-substring"),
        pytest.param("contains", "hello", "xyz", False, id="contains-no-substring"),
        pytest.param("contains", "h1", 1, False, id="contains-str-non-str"),
        pytest.param("contains", [1, 2], 2.0, True, id="contains-list-number"),
        pytest.param("contains", [1, 2], True, False, id="contains-list-bool-vs-int"),
        pytest.param("contains", ({"a": 1},), {"a": 1}, True, id="contains-frozen-list-dict"),
        pytest.param("contains", [], None, False, id="contains-empty-list"),
        pytest.param("contains", {"a": 1}, "a", True, id="contains-dict-key"),
        pytest.param("contains", FrozenDict({"a": 1}), "b", False, id="contains-frozen-no-key"),
        pytest.param("contains", {"a": 1}, ["a"], False, id="contains-dict-unhashable"),
        pytest.param("contains", None, "a", False, id="contains-none"),
        # starts_with / ends_with
        pytest.param("starts_with", "hello", "he", True, id="starts-with"),
        pytest.param("starts_with", "hello", "lo", False, id="starts-with-no"),
        pytest.param("starts_with", ["he"], "he", False, id="starts-with-list"),
        pytest.param("starts_with", "1x", 1, False, id="starts-with-int"),
        pytest.param("starts_with", None, "", False, id="starts-with-none"),
        pytest.param("ends_with", "hello", "lo", True, id="ends-with"),
        pytest.param("ends_with", "hello", "he", False, id="ends-with-no"),
        pytest.param("ends_with", 10, "0", False, id="ends-with-int"),
        # matches
        pytest.param("matches", "order-42", r"\d+", True, id="matches-search"),
        pytest.param("matches", "order-42", r"^\d+$", False, id="matches-anchored"),
        pytest.param("matches", 42, r"\d+", False, id="matches-non-str"),
        pytest.param("matches", None, r".*", False, id="matches-none"),
        pytest.param("matches", "a" * 40 + "!", r"(a+)+$", False, id="matches-no-backtracking"),
        pytest.param("matches", "aaaa", r"(a+)+$", True, id="matches-nested-repeat"),
        pytest.param("matches", "end", r"end\z", True, id="matches-re2-end-of-text"),
        pytest.param("matches", "Ωμέγα", r"^\p{Greek}+$", True, id="matches-re2-class"),
        pytest.param("matches", "a\ud800b", r"a.b", True, id="matches-lone-surrogate"),
        # in / not_in
        pytest.param("in", 2, [1, 2], True, id="in-list"),
        pytest.param("in", 2, (1.0, 2.0), True, id="in-frozen-list-float"),
        pytest.param("in", True, [1], False, id="in-list-bool-vs-int"),
        pytest.param("in", {"a": 1}, [{"a": 1}], True, id="in-list-dicts"),
        pytest.param("in", None, [None], True, id="in-list-none"),
        pytest.param("in", "ell", "hello", True, id="in-substring"),
        pytest.param("in", 1, "1", False, id="in-str-non-str"),
        pytest.param("in", "a", {"a": 1}, True, id="in-dict-key"),
        pytest.param("in", "b", FrozenDict({"a": 1}), False, id="in-frozen-no-key"),
        pytest.param("in", 1, {"1": 1}, False, id="in-dict-non-str"),
        pytest.param("not_in", 3, [1, 2], True, id="not-in-list"),
        pytest.param("not_in", 1, [1, 2], False, id="not-in-member"),
        pytest.param("not_in", 1, [True], True, id="not-in-bool-vs-int"),
        pytest.param("not_in", "z", "abc", True, id="not-in-str"),
        # exists / empty / truthy / falsy
        pytest.param("exists", 0, None, True, id="exists-zero"),
        pytest.param("exists", False, None, True, id="exists-false"),
        pytest.param("exists", None, None, False, id="exists-none"),
        pytest.param("empty", None, None, True, id="empty-none"),
        pytest.param("empty", "", None, True, id="empty-str"),
        pytest.param("empty", [], None, True, id="empty-list"),
        pytest.param("empty", (), None, True, id="empty-tuple"),
        pytest.param("empty", {}, None, True, id="empty-dict"),
        pytest.param("empty", FrozenDict(), None, True, id="empty-frozen-dict"),
        pytest.param("empty", 0, None, False, id="empty-zero"),
        pytest.param("empty", False, None, False, id="empty-false"),
        pytest.param("empty", " ", None, False, id="empty-space"),
        pytest.param("truthy", 1, None, True, id="truthy-one"),
        pytest.param("truthy", "0", None, True, id="truthy-str-zero"),
        pytest.param("truthy", [], None, False, id="truthy-empty-list"),
        pytest.param("truthy", None, None, False, id="truthy-none"),
        pytest.param("falsy", 0, None, True, id="falsy-zero"),
        pytest.param("falsy", 0.0, None, True, id="falsy-float-zero"),
        pytest.param("falsy", FrozenDict(), None, True, id="falsy-frozen-empty"),
        pytest.param("falsy", "x", None, False, id="falsy-str"),
    ],
)
def test_compare(op: str, left: Any, right: Any, expected: bool) -> None:
    assert compare(op, left, right) is expected


@pytest.mark.parametrize(
    ("op", "left", "right", "message"),
    [
        pytest.param(
            "contains",
            5,
            5,
            "contains: cannot look inside an int (left operand); use a list, str or dict",
            id="contains-int",
        ),
        pytest.param(
            "contains",
            True,
            "t",
            "contains: cannot look inside a bool (left operand); use a list, str or dict",
            id="contains-bool",
        ),
        pytest.param(
            "in",
            1,
            None,
            "in: cannot look inside null (right operand); use a list, str or dict",
            id="in-none",
        ),
        pytest.param(
            "not_in",
            1,
            2.5,
            "not_in: cannot look inside a float (right operand); use a list, str or dict",
            id="not-in-float",
        ),
        pytest.param(
            "matches", "x", None, "matches: pattern must be a str, got null", id="matches-none"
        ),
        pytest.param(
            "matches", 5, 5, "matches: pattern must be a str, got an int", id="matches-int"
        ),
        pytest.param(
            "matches",
            "x",
            "(",
            "matches: pattern '(' does not compile: "
            "missing ), unterminated subpattern at position 0",
            id="matches-invalid",
        ),
        pytest.param(
            "matches",
            "x",
            LONG_PATTERN,
            f"matches: pattern is too long (1001 characters, at most {MAX_PATTERN_LENGTH})",
            id="matches-too-long",
        ),
        pytest.param("gtt", 1, 1, "unknown condition op 'gtt' (did you mean 'gt'?)", id="unknown"),
    ],
)
def test_compare_errors(op: str, left: Any, right: Any, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        compare(op, left, right)
    assert str(info.value) == message
    assert info.value.op == op


SCOPE = Scope(
    {
        "order": {"total": 120, "status": "paid", "items": [{"sku": "a"}], "tags": ["x"]},
        "limit": 100,
        "allowed": ["paid", "sent"],
    },
    local={"item": {"sku": "a"}},
)


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        pytest.param("order.total", "gt", "$limit", True, id="reference-value"),
        pytest.param("$order.total", "gt", 100, True, id="leading-dollar-field"),
        pytest.param("order.status", "in", "$allowed", True, id="in-reference-list"),
        pytest.param("order.status", "in", ("paid",), True, id="frozen-list-value"),
        pytest.param("order.items.0.sku", "eq", "$item.sku", True, id="index-and-local"),
        pytest.param("order.missing", "exists", None, False, id="missing-field"),
        pytest.param("order.missing", "gt", 1, False, id="missing-field-numeric"),
        pytest.param("order.missing", "empty", None, True, id="missing-field-empty"),
        pytest.param("order.status", "eq", "${order.status}", True, id="braced-value"),
        pytest.param("order.status", "eq", "is $order.status", False, id="interpolated-value"),
        pytest.param("order.tags", "eq", freeze(["x"]), True, id="frozen-value"),
        pytest.param("order.status", "matches", "^p", True, id="matches"),
    ],
)
def test_evaluate(field: str, op: str, value: Any, expected: bool) -> None:
    assert evaluate(field, op, value, SCOPE) is expected


def test_evaluate_raises_when_the_condition_cannot_be_evaluated() -> None:
    with pytest.raises(ConditionError, match=r"^contains: cannot look inside an int"):
        evaluate("order.total", "contains", 1, SCOPE)


def test_a_referenced_pattern_re2_cannot_compile_cannot_be_evaluated() -> None:
    scope = Scope({"text": "aa", "pattern": r"(a)\1"})
    with pytest.raises(ConditionError) as info:
        evaluate("text", "matches", "$pattern", scope)
    assert str(info.value) == (
        f"matches: pattern '(a)\\\\1' does not compile: invalid escape sequence: \\1 ({RE2_HINT})"
    )


@pytest.mark.parametrize(
    ("op", "value", "problems"),
    [
        pytest.param("eq", "$a", [], id="ok"),
        pytest.param("eqq", 1, ["unknown condition op 'eqq' (did you mean 'eq'?)"], id="typo"),
        pytest.param(
            "startswith",
            "x",
            ["unknown condition op 'startswith' (did you mean 'starts_with'?)"],
            id="typo-underscore",
        ),
        pytest.param(
            "zzz",
            1,
            [
                "unknown condition op 'zzz' (expected one of contains, empty, ends_with, eq, "
                "exists, falsy, gt, gte, in, lt, lte, matches, neq, not_in, starts_with, truthy)"
            ],
            id="unknown-no-suggestion",
        ),
        pytest.param("matches", r"^\d+$", [], id="matches-ok"),
        pytest.param("matches", "$pattern", [], id="matches-reference"),
        pytest.param("matches", "(${x}", [], id="matches-with-reference-not-checked"),
        pytest.param(
            "matches",
            "([a-z]",
            [
                "matches: pattern '([a-z]' does not compile: "
                "missing ), unterminated subpattern at position 0"
            ],
            id="matches-invalid",
        ),
        pytest.param(
            "matches",
            LONG_PATTERN,
            ["matches: pattern is too long (1001 characters, at most 1000)"],
            id="matches-too-long",
        ),
        pytest.param(
            "matches", 12, ["matches: pattern must be a str, got an int"], id="matches-int"
        ),
        pytest.param(
            "matches",
            r"(a)\1",
            [
                "matches: pattern '(a)\\\\1' does not compile: invalid escape sequence: \\1 "
                f"({RE2_HINT})"
            ],
            id="matches-backreference",
        ),
        pytest.param(
            "matches",
            r"^(?!test)",
            [
                "matches: pattern '^(?!test)' does not compile: invalid perl operator: (?! "
                f"({RE2_HINT})"
            ],
            id="matches-lookahead",
        ),
        pytest.param(
            "matches",
            r"done\Z",
            [
                "matches: pattern 'done\\\\Z' does not compile: invalid escape sequence: \\Z "
                f"({RE2_HINT})"
            ],
            id="matches-python-end-of-text",
        ),
        pytest.param("matches", r"done\z", [], id="matches-re2-end-of-text"),
        pytest.param("in", ("a", "b"), [], id="in-frozen-list"),
        pytest.param("in", "abc", [], id="in-str"),
        pytest.param("not_in", FrozenDict({"a": 1}), [], id="not-in-frozen-dict"),
        pytest.param("in", "$allowed", [], id="in-reference"),
        pytest.param(
            "in", 5, ["in: value must be a list, str or dict, got an int"], id="in-number"
        ),
        pytest.param(
            "not_in",
            None,
            ["not_in: value must be a list, str or dict, got null"],
            id="not-in-none",
        ),
        pytest.param("gt", 1.5, [], id="gt-number"),
        pytest.param("lte", "$limit", [], id="lte-reference"),
        pytest.param("gte", "${limit}", [], id="gte-braced-reference"),
        pytest.param(
            "gt", "10", ["gt: value must be a number or a reference, got a str"], id="gt-str"
        ),
        pytest.param(
            "lt", True, ["lt: value must be a number or a reference, got a bool"], id="lt-bool"
        ),
        pytest.param(
            "gte", None, ["gte: value must be a number or a reference, got null"], id="gte-none"
        ),
        pytest.param(
            "lte",
            "$a items",
            ["lte: value must be a number or a reference, got a str"],
            id="lte-interpolated",
        ),
        pytest.param("exists", None, [], id="exists"),
        pytest.param("contains", freeze({"a": 1}), [], id="contains-frozen"),
    ],
)
def test_check_condition(op: str, value: Any, problems: list[str]) -> None:
    assert check_condition(op, value) == problems


def test_a_pattern_nested_too_deep_for_python_gets_the_re2_message() -> None:
    [problem] = check_condition("matches", "(" * 498 + "a" + ")" * 498 + r"\1")
    assert problem.endswith(f"does not compile: invalid escape sequence: \\1 ({RE2_HINT})")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, "null", id="null"),
        pytest.param(True, "a bool", id="bool"),
        pytest.param(3, "an int", id="int"),
        pytest.param(3.5, "a float", id="float"),
        pytest.param("s", "a str", id="str"),
        pytest.param((1,), "a list", id="tuple-is-list"),
        pytest.param(FrozenDict(), "a dict", id="frozen-dict-is-dict"),
    ],
)
def test_describe(value: Any, expected: str) -> None:
    assert describe(value) == expected


# --- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.floats(min_value=-3, max_value=3, allow_nan=False)
    | st.text(alphabet="ab", max_size=2),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet="ab", max_size=2), children, max_size=3)
    ),
    max_leaves=8,
)
numbers = st.integers(min_value=-1000, max_value=1000) | st.floats(
    allow_nan=False, allow_infinity=False
)
fast = settings(max_examples=100, deadline=None)


@fast
@given(left=json_values, right=json_values)
def test_eq_and_neq_are_complements(left: Any, right: Any) -> None:
    assert compare("eq", left, right) is not compare("neq", left, right)
    assert compare("eq", left, right) is compare("eq", right, left)
    assert json_equal(left, freeze(left))


@fast
@given(left=numbers, right=numbers)
def test_gt_and_lte_are_complements_for_numbers(left: float, right: float) -> None:
    assert compare("gt", left, right) is not compare("lte", left, right)
    assert compare("lt", left, right) is not compare("gte", left, right)


@fast
@given(item=json_values, items=st.lists(json_values, max_size=5))
def test_in_agrees_with_list_membership(item: Any, items: list[Any]) -> None:
    expected = any(json_equal(item, element) for element in items)
    assert compare("in", item, items) is expected
    assert compare("in", item, freeze(items)) is expected
    assert compare("not_in", item, items) is not expected
    assert compare("contains", items, item) is expected
    if items:
        assert compare("in", items[-1], items)

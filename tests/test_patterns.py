"""``matches`` patterns run on RE2 (SPEC §19): no pattern, written or from ctx, hangs a step."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import flowkit
from flowkit.backends.memory import MemoryStore

# Python's re backtracks 2**40 times to find that "(a+)+$" is not in this text.
EVIL_TEXT = "a" * 40 + "!"


def router(pattern: str, *, default: bool = True) -> dict[str, Any]:
    """A workflow routing ``input.text`` on ``pattern`` to 'matched' or (by default) 'unmatched'."""
    when = {"field": "input.text", "op": "matches", "value": pattern}
    steps: list[dict[str, Any]] = [
        {"id": "start", "type": "start", "next": "route"},
        {"id": "route", "type": "router", "routes": [{"when": when, "then": "matched"}]},
        {"id": "matched", "type": "end", "result": "matched"},
    ]
    if default:
        steps[1]["default"] = "unmatched"
        steps.append({"id": "unmatched", "type": "end", "result": "unmatched"})
    inputs = {"text": {"type": "string"}, "pattern": {"type": "string", "required": False}}
    return {"id": "patterns", "inputs": inputs, "steps": steps}


@pytest.fixture
def engine() -> Iterator[flowkit.Engine]:
    with flowkit.Engine(store=MemoryStore(warn=False), executor="inline") as engine:
        yield engine


@pytest.mark.parametrize(
    ("pattern", "given"),
    [
        pytest.param("(a+)+$", None, id="written"),
        pytest.param("$input.pattern", "(a+)+$", id="from-a-reference"),
    ],
)
@pytest.mark.parametrize(("text", "route"), [(EVIL_TEXT, "unmatched"), ("aaaa", "matched")])
def test_a_catastrophic_pattern_routes_without_hanging(
    engine: flowkit.Engine, pattern: str, given: str | None, text: str, route: str
) -> None:
    values = {"text": text} if given is None else {"text": text, "pattern": given}
    result = engine.run(router(pattern), values)
    assert result.completed
    assert result.output == route


def test_a_referenced_pattern_re2_cannot_compile_is_a_condition_error(
    engine: flowkit.Engine,
) -> None:
    result = engine.run(
        router("$input.pattern", default=False), {"text": "aa", "pattern": "(a)\\1"}
    )
    assert result.failed
    assert result.error == (
        "ExecutionError: router 'route': no route matched and there is no default "
        "(conditions that could not be evaluated: input.text matches: matches: pattern "
        "'(a)\\\\1' does not compile: invalid escape sequence: \\1 (patterns use RE2 syntax, "
        "which has no backreferences or lookaround and writes \\Z as \\z; "
        "see https://github.com/google/re2/wiki/Syntax))"
    )


def test_with_a_default_the_router_takes_it_past_a_pattern_that_cannot_compile(
    engine: flowkit.Engine,
) -> None:
    result = engine.run(router("$input.pattern"), {"text": "aa", "pattern": "(?=a)"})
    assert result.output == "unmatched"


def test_a_written_pattern_re2_cannot_compile_is_refused_before_anything_runs(
    engine: flowkit.Engine,
) -> None:
    with pytest.raises(flowkit.ValidationError) as info:
        engine.run(router("(a)\\1"), {"text": "aa"})
    [problem] = info.value.problems
    assert problem.step_id == "route"
    assert problem.message.startswith(
        "condition on 'input.text': matches: pattern '(a)\\\\1' does not compile: "
        "invalid escape sequence: \\1 (patterns use RE2 syntax"
    )

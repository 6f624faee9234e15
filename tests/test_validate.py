"""Validation (SPEC §9): one test per rule, every problem naming workflow and step."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

import flowkit
from flowkit import Problem, ValidationError
from flowkit.abc import step_types


def check(text: str) -> list[str]:
    """Problems of a workflow written in YAML, read as a plain dict (so without lines)."""
    return flowkit.check(yaml.safe_load(textwrap.dedent(text)))


def steps(body: str, *, inputs: str = "") -> str:
    """Workflow 'w' with a start step going to the first of ``body``'s steps."""
    body = textwrap.dedent(body)
    first = yaml.safe_load(body)[0]["id"]
    head = (
        f"id: w\n{textwrap.dedent(inputs)}steps:\n  - {{id: start, type: start, next: {first}}}\n"
    )
    return head + textwrap.indent(body, "  ")


def problem(step: str, message: str) -> str:
    return f"workflow 'w' step '{step}': {message}"


RE2_HINT = (
    "patterns use RE2 syntax, which has no backreferences or lookaround and writes \\Z as \\z; "
    "see https://github.com/google/re2/wiki/Syntax"
)


# --- valid workflows ------------------------------------------------------------------------

VALID = [
    pytest.param(
        """
        - id: r
          type: router
          routes: [{when: {field: input.n, op: gt, value: 1}, then: big}]
          default: small
        - {id: big, type: assign, set: {label: big}, next: join}
        - {id: small, type: assign, set: {label: small}, next: join}
        - {id: join, type: end, result: $label}
        """,
        id="a-name-set-on-both-branches-is-defined-after-the-join",
    ),
    pytest.param(
        """
        - id: r
          type: router
          routes:
            - {when: {field: maybe, op: exists}, then: e}
            - {when: {field: maybe, op: empty}, then: e}
            - {when: {field: maybe, op: truthy}, then: e}
            - {when: {field: maybe, op: falsy}, then: e}
          default: m
        - {id: m, type: assign, set: {maybe: 1}, next: r}
        - {id: e, type: end}
        """,
        id="exists-empty-truthy-falsy-may-test-names-set-on-some-paths",
    ),
    pytest.param(
        """
        - {id: a, type: assign, set: {x: 1, y: $x, z: "${y}!"}}
        """,
        id="assign-keys-see-earlier-keys-of-the-same-set",
    ),
    pytest.param(
        """
        - {id: c, type: call, service: S, method: m, output: out, on_error: handle, next: done}
        - {id: handle, type: assign, set: {out: $_last_error.message}, next: done}
        - {id: done, type: end, result: $out}
        """,
        id="last-error-after-on-error",
    ),
    pytest.param(
        """
        - {id: ask, type: approval, prompt: 'ok?', on_reject: refused, next: accepted}
        - {id: refused, type: end, result: $response}
        - {id: accepted, type: halt, reason: wait, resume_step: after}
        - {id: after, type: end, result: $response.comment}
        """,
        id="response-after-approval-next-on-reject-and-halt-resume-step",
    ),
    pytest.param(
        """
        - id: each
          type: loop
          over: $input.items
          as: it
          output: results
          do:
            - {id: inner, type: assign, set: {v: $it, i: $index}}
            - id: nested
              type: loop
              while: {field: k, op: lt, value: 3}
              index_as: k
              do:
                - {id: deep, type: assign, set: {w: "$it $k $index $v"}}
          next: done
        - {id: done, type: end, result: $results}
        """,
        id="loop-variables-inside-bodies-nested-and-in-while",
    ),
    pytest.param(
        """
        - id: fan
          type: parallel
          output: outs
          branches:
            - {id: b1, type: call, service: S, method: m, output: o1, input: $input}
            - {id: b2, type: assign, set: {o2: 1}}
          next: done
        - {id: done, type: end, result: [$outs, $o1, $o2]}
        """,
        id="parallel-wait-all-defines-what-its-branches-set",
    ),
    pytest.param(
        """
        - id: c
          type: call
          service: S
          method: m
          output:
            key: v
            schema:
              type: object
              properties:
                total: {type: number}
                lines: {type: array, items: {type: object, properties: {sku: {type: string}}}}
          next: done
        - {id: done, type: end, result: ["$v.total", "${v.lines.0.sku}", "$v"]}
        """,
        id="references-into-a-schema-that-has-them",
    ),
    pytest.param(
        """
        - {id: a, type: assign, set: {x: 1}, next: r}
        - id: r
          type: router
          routes: [{when: {field: x, op: lt, value: 3}, then: a}]
          default: done
        - {id: done, type: end, result: "$now $history $$literal"}
        """,
        id="a-cycle-with-a-way-out-and-special-roots",
    ),
    pytest.param(
        """
        - {id: a, type: call, service: S, method: m, next: a, on_error: done}
        - {id: done, type: end}
        """,
        id="a-self-loop-left-through-on-error",
    ),
]


@pytest.mark.parametrize("body", VALID)
def test_valid_workflows_have_no_problems(body: str) -> None:
    assert check(steps(body, inputs="inputs: {n: {type: number}, items: {type: array}}\n")) == []


def test_the_gem_workflow_is_valid(gem_workflow: flowkit.WorkflowDef) -> None:
    assert flowkit.check(gem_workflow) == []


# --- one rule at a time -----------------------------------------------------------------------

RULES = [
    # ids
    pytest.param(
        "- {id: a, type: assign, set: {x: 1}, next: b}\n"
        "- {id: b, type: end}\n"
        "- {id: a, type: end}\n",
        [problem("a", "duplicate step id 'a' (step ids must be unique)")],
        id="duplicate-id",
    ),
    pytest.param(
        "- id: l\n  type: loop\n  over: [1]\n  do:\n"
        "    - {id: x, type: assign, set: {v: 1}, next: y}\n"
        "    - {id: x, type: assign, set: {v: 2}}\n"
        "    - {id: y, type: assign, set: {v: 1}}\n",
        [problem("l:x", "duplicate step id 'x' (step ids must be unique)")],
        id="duplicate-id-in-a-loop-body",
    ),
    pytest.param(
        "- {id: 'a:b', type: end}\n",
        [problem("a:b", "step ids may not contain ':' (it separates nested step ids)")],
        id="colon-in-id",
    ),
    # dangling targets
    pytest.param(
        "- {id: a, type: assign, set: {x: 1}, next: bb}\n- {id: b, type: end}\n",
        # 'b' is unreachable only because of the typo: not a mistake of its own
        [problem("a", "next: no step 'bb' (did you mean 'b'?)")],
        id="dangling-next",
    ),
    pytest.param(
        "- {id: a, type: call, service: S, method: m, on_error: handel}\n",
        [problem("a", "on_error: no step 'handel'")],
        id="dangling-on-error",
    ),
    pytest.param(
        "- id: r\n  type: router\n  routes: [{when: {field: input, op: exists}, then: dne}]\n"
        "  default: done\n- {id: done, type: end}\n",
        [problem("r", "routes[].then: no step 'dne' (did you mean 'done'?)")],
        id="dangling-route-then",
    ),
    pytest.param(
        "- {id: r, type: router, default: nowhere}\n",
        [problem("r", "default: no step 'nowhere'")],
        id="dangling-default",
    ),
    pytest.param(
        "- {id: ap, type: approval, on_reject: rejectd, on_timeout: late, timeout: 5}\n"
        "- {id: rejected, type: end}\n",
        [
            problem("ap", "on_reject: no step 'rejectd' (did you mean 'rejected'?)"),
            problem("ap", "on_timeout: no step 'late'"),
        ],
        id="dangling-on-reject-and-on-timeout",
    ),
    pytest.param(
        "- {id: l, type: loop, over: [1], on_exhausted: tooo_many, do: [{id: x, type: assign, "
        "set: {a: 1}}], next: too_many}\n- {id: too_many, type: end}\n",
        [problem("l", "on_exhausted: no step 'tooo_many' (did you mean 'too_many'?)")],
        id="dangling-on-exhausted",
    ),
    pytest.param(
        "- {id: h, type: halt, resume_step: aftr}\n- {id: after, type: end}\n",
        [problem("h", "resume_step: no step 'aftr' (did you mean 'after'?)")],
        id="dangling-resume-step",
    ),
    pytest.param(
        "- id: l\n  type: loop\n  over: [1]\n  do: [{id: x, type: assign, set: {a: 1}, next: "
        "done}]\n  next: done\n- {id: done, type: end}\n",
        [
            problem(
                "l:x", "next: no step 'done' (a loop body can only go to steps of the same body)"
            )
        ],
        id="loop-body-pointing-outside",
    ),
    # references: path-sensitive definedness
    pytest.param(
        "- id: r\n  type: router\n  routes: [{when: {field: input, op: exists}, then: big}]\n"
        "  default: small\n"
        "- {id: big, type: assign, set: {label: big, only_big: 1}, next: join}\n"
        "- {id: small, type: assign, set: {label: small}, next: join}\n"
        "- {id: join, type: end, result: [$label, $only_big]}\n",
        [
            problem(
                "join",
                "'$only_big' reads 'only_big', which is not set on every path to this "
                "step (set by 'big'); set it on every path, e.g. with an assign step earlier",
            ),
        ],
        id="set-on-one-branch-only-is-undefined-after-the-join",
    ),
    pytest.param(
        "- {id: a, type: assign, set: {x: $totl}, next: b}\n"
        "- {id: b, type: assign, set: {total: 1}}\n",
        [problem("a", "'$totl' reads 'totl', which no step sets (did you mean 'total'?)")],
        id="set-by-no-step",
    ),
    pytest.param(
        "- {id: a, type: assign, set: {x: $later}, next: b}\n"
        "- {id: b, type: assign, set: {later: 1}}\n",
        [
            problem(
                "a",
                "'$later' reads 'later', which is not set on every path to this step "
                "(set by 'b'); set it on every path, e.g. with an assign step earlier",
            )
        ],
        id="set-only-later",
    ),
    pytest.param(
        "- {id: a, type: assign, set: {a: $b, b: 1}}\n",
        [
            problem(
                "a",
                "'$b' reads 'b', which is not set on every path to this step (set by "
                "'a'); set it on every path, e.g. with an assign step earlier",
            )
        ],
        id="assign-key-used-before-it-is-set",
    ),
    pytest.param(
        "- {id: l, type: loop, over: [1, 2], do: [{id: x, type: assign, set: {v: $item}}], "
        "next: done}\n- {id: done, type: end, result: [$item, $index]}\n",
        [
            problem(
                "done",
                "'$item' reads 'item', the loop variable of loop 'l'; it exists only "
                "inside that loop's body",
            ),
            problem(
                "done",
                "'$index' reads 'index', the loop variable of loop 'l'; it exists "
                "only inside that loop's body",
            ),
        ],
        id="loop-variable-outside-its-loop",
    ),
    pytest.param(
        "- id: fan\n  type: parallel\n  branches: [{id: b, type: assign, set: {v: $item}}]\n"
        "  next: l\n"
        "- {id: l, type: loop, over: [1], do: [{id: x, type: assign, set: {v: 1}}]}\n",
        [
            problem(
                "fan:b",
                "'$item' reads 'item', the loop variable of loop 'l'; it exists only "
                "inside that loop's body",
            )
        ],
        id="loop-variable-in-another-steps-branch",
    ),
    pytest.param(
        "- {id: a, type: end, result: $_last_error.message}\n",
        [
            problem(
                "a", "'$_last_error.message' is only set on paths entered through an on_error edge"
            )
        ],
        id="last-error-without-on-error",
    ),
    pytest.param(
        "- {id: c, type: call, service: S, method: m, on_error: h, next: h}\n"
        "- {id: h, type: end, result: $_last_error}\n",
        [problem("h", "'$_last_error' is only set on paths entered through an on_error edge")],
        id="last-error-also-reached-through-next",
    ),
    pytest.param(
        "- {id: a, type: end, result: $response}\n",
        [problem("a", "'$response' is only set after a halt or approval step is resumed")],
        id="response-without-halt",
    ),
    pytest.param(
        "- {id: ap, type: approval, timeout: 60, on_timeout: late, next: ok}\n"
        "- {id: late, type: end, result: $response}\n"
        "- {id: ok, type: end, result: $response}\n",
        [problem("late", "'$response' is only set after a halt or approval step is resumed")],
        id="response-not-after-a-timeout",
    ),
    pytest.param(
        "- {id: a, type: end, result: [$input.nme, $input.name]}\n",
        [
            problem(
                "a", "'$input.nme' reads input 'nme', which is not declared (did you mean 'name'?)"
            )
        ],
        id="undeclared-input",
    ),
    pytest.param(
        "- {id: r, type: router, routes: [{when: {field: input.zzz, op: exists}, then: e}], "
        "default: e}\n- {id: e, type: end}\n",
        [problem("r", "'input.zzz' reads input 'zzz', which is not declared (declared: name)")],
        id="undeclared-input-in-a-condition-field",
    ),
    pytest.param(
        "- id: c\n  type: call\n  service: S\n  method: m\n"
        "  output: {key: validation, schema: {type: object, properties: {total: {type: number}}}}\n"
        "  next: e\n"
        "- {id: e, type: end, result: $validation.totl}\n",
        [
            problem(
                "e",
                "'$validation.totl': the output schema has no property 'totl' (did you "
                "mean 'total'?)",
            )
        ],
        id="schema-path",
    ),
    pytest.param(
        "- id: c\n  type: call\n  service: S\n  method: m\n"
        "  output: {key: v, schema: {type: array, items: {type: object, properties: {sku: {}}}}}\n"
        "  next: e\n"
        "- {id: e, type: end, result: $v.0.skus}\n",
        [
            problem(
                "e", "'$v.0.skus': the output schema has no property 'skus' (did you mean 'sku'?)"
            )
        ],
        id="schema-path-through-items",
    ),
    pytest.param(
        "- {id: r, type: router, routes: [{when: {field: maybe, op: eq, value: 1}, then: e}], "
        "default: m}\n- {id: m, type: assign, set: {maybe: 1}, next: e}\n- {id: e, type: end}\n",
        [
            problem(
                "r",
                "'maybe' reads 'maybe', which is not set on every path to this step (set "
                "by 'm'); set it on every path, e.g. with an assign step earlier",
            )
        ],
        id="eq-is-not-relaxed",
    ),
    pytest.param(
        "- {id: r, type: router, routes: [{when: {field: nobody, op: exists}, then: e}], "
        "default: e}\n- {id: e, type: end}\n",
        [problem("r", "'nobody' reads 'nobody', which no step sets")],
        id="exists-on-a-name-no-step-sets",
    ),
    # graph
    pytest.param(
        "- {id: a, type: end}\n- {id: orphan, type: end}\n",
        [
            problem(
                "orphan",
                "unreachable: no path from the first step leads here (point a next, "
                "route or on_error at it, or remove it)",
            )
        ],
        id="unreachable",
    ),
    pytest.param(
        "- {id: a, type: assign, set: {x: 1}, next: b}\n"
        "- {id: b, type: assign, set: {y: 2}, next: a}\n",
        [
            problem(
                "a",
                "steps 'a', 'b' form a cycle that never reaches an end; give one of them "
                "a next or a router default that leads out",
            )
        ],
        id="inescapable-cycle",
    ),
    pytest.param(
        "- {id: r, type: router, routes: [{when: {field: input, op: exists}, then: r}], "
        "default: r}\n",
        [
            problem(
                "r",
                "step 'r' forms a cycle that never reaches an end; give one of them a next "
                "or a router default that leads out",
            )
        ],
        id="router-that-only-loops-to-itself",
    ),
    pytest.param(
        "- id: l\n  type: loop\n  over: [1]\n  do:\n"
        "    - {id: x, type: assign, set: {v: 1}, next: y}\n"
        "    - {id: y, type: assign, set: {v: 2}, next: x}\n",
        [
            problem(
                "l:x",
                "steps 'x', 'y' form a cycle that never reaches an end; give one of "
                "them a next or a router default that leads out",
            )
        ],
        id="inescapable-cycle-in-a-loop-body",
    ),
    # placement
    pytest.param(
        "- {id: e, type: end, next: start}\n",
        [problem("e", "an 'end' step finishes the workflow; remove 'next'")],
        id="end-with-next",
    ),
    pytest.param(
        "- {id: r, type: router}\n",
        [problem("r", "a router needs at least one route or a default")],
        id="router-without-routes-or-default",
    ),
    pytest.param(
        "- id: l\n  type: loop\n  over: [1]\n  do: [{id: s, type: start, next: e}, {id: e, "
        "type: end}]\n",
        [
            problem("l:s", "a 'start' step cannot be used inside a loop body"),
            problem("l:e", "an 'end' step cannot be used inside a loop body"),
        ],
        id="start-and-end-in-a-loop-body",
    ),
    pytest.param(
        "- {id: p, type: parallel, wait: 3, branches: [{id: a, type: assign, set: {x: 1}}]}\n",
        [problem("p", "wait: 3 branches cannot succeed; there are only 1")],
        id="wait-larger-than-the-branch-count",
    ),
    pytest.param(
        "- {id: p, type: parallel, branches: []}\n",
        [problem("p", "a parallel step needs at least one branch")],
        id="parallel-without-branches",
    ),
    pytest.param(
        "- id: p\n  type: parallel\n  branches:\n"
        "    - {id: b, type: call, service: S, method: m, next: p, on_error: p}\n"
        "    - {id: b, type: assign, set: {x: 1}}\n",
        [
            problem(
                "p:b",
                "a parallel branch is a single step and cannot have 'next' (use a "
                "workflow step for a multi-step branch)",
            ),
            problem(
                "p:b",
                "a parallel branch is a single step and cannot have 'on_error' (use a "
                "workflow step for a multi-step branch)",
            ),
            problem("p:b", "duplicate branch id 'b'"),
        ],
        id="next-on-error-and-duplicate-id-on-branches",
    ),
    pytest.param(
        "- {id: l, type: loop, over: [1], do: []}\n",
        [problem("l", "a loop needs at least one step in 'do'")],
        id="empty-loop-body",
    ),
    pytest.param(
        "- {id: l, type: loop, over: items, do: [{id: x, type: assign, set: {v: 1}}]}\n",
        [problem("l", "over: expected a reference such as '$items' or a list")],
        id="over-is-not-a-reference",
    ),
    pytest.param(
        "- {id: l, type: loop, over: [1], as: i, index_as: i, do: [{id: x, type: assign, "
        "set: {v: $i}}]}\n",
        [problem("l", "'as' and 'index_as' must be different names")],
        id="as-equals-index-as",
    ),
    # names
    pytest.param(
        "- {id: a, type: assign, set: {input: 1, now: 2, history: 3}}\n",
        [
            problem("a", "'input' is a reserved name; store the value under another"),
            problem("a", "'now' is a reserved name; store the value under another"),
            problem("a", "'history' is a reserved name; store the value under another"),
        ],
        id="reserved-names-in-set",
    ),
    pytest.param(
        "- {id: c, type: call, service: S, method: m, output: now}\n",
        [problem("c", "'now' is a reserved name; store the value under another")],
        id="reserved-output",
    ),
    pytest.param(
        "- {id: l, type: loop, over: [1], as: history, do: [{id: x, type: assign, set: {v: 1}}]}\n",
        [problem("l", "loop variable 'history' must be an identifier and not reserved")],
        id="reserved-loop-variable",
    ),
    pytest.param(
        "- {id: a, type: assign, set: {bad-name: 1}}\n",
        [
            problem(
                "a",
                "'bad-name' is not a valid name (use letters, digits and _, so that "
                "'$name' can read it)",
            )
        ],
        id="set-key-that-is-not-a-name",
    ),
    # values
    pytest.param(
        "- {id: c, type: call, service: S, method: m, output: {key: v, schema: {type: objekt}}}\n",
        [
            problem(
                "c",
                "output.schema is not a valid JSON Schema: 'objekt' is not valid under any "
                "of the given schemas",
            )
        ],
        id="invalid-json-schema",
    ),
    pytest.param(
        "- {id: r, type: router, routes: [{when: {field: input, op: greater, value: 1}, then: e}],"
        " default: e}\n- {id: e, type: end}\n",
        [
            problem(
                "r", "condition on 'input': unknown condition op 'greater' (did you mean 'gte'?)"
            )
        ],
        id="unknown-condition-op",
    ),
    pytest.param(
        "- {id: r, type: router, routes: [{when: {field: input.name, op: matches, "
        "value: '(\\w)\\1'}, then: e}], default: e}\n- {id: e, type: end}\n",
        [
            problem(
                "r",
                "condition on 'input.name': matches: pattern '(\\\\w)\\\\1' does not compile: "
                f"invalid escape sequence: \\1 ({RE2_HINT})",
            )
        ],
        id="matches-backreference",
    ),
    pytest.param(
        "- {id: t, type: transform, input: input.name, output: o, expression: "
        "{select: {field: name, op: matches, value: '(?<!x)y'}}}\n",
        [
            problem(
                "t",
                "expression: select: matches: pattern '(?<!x)y' does not compile: "
                f"invalid perl operator: (?<! ({RE2_HINT})",
            )
        ],
        id="matches-lookbehind-in-a-transform",
    ),
    pytest.param(
        "- {id: t, type: transform, input: input, expression: {plukc: a}, output: o}\n",
        [problem("t", "expression: unknown transform op 'plukc' (did you mean 'pluck'?)")],
        id="unknown-transform-op",
    ),
    pytest.param(
        "- {id: t, type: transform, input: '1x', expression: {count: null}, output: o}\n",
        [problem("t", "input: '1x' is not a valid path")],
        id="transform-input-not-a-path",
    ),
]


@pytest.mark.parametrize(("body", "expected"), RULES)
def test_each_rule(body: str, expected: list[str]) -> None:
    found = check(steps(body, inputs="inputs: {name: {type: string}}\n"))
    assert found == expected
    for item in found:
        assert isinstance(item, Problem)
        assert item.workflow_id == "w"
        assert item.step_id is not None
        assert str(item).endswith(item.message)


def test_input_names_must_be_identifiers() -> None:
    found = check(steps("- {id: e, type: end}\n", inputs="inputs: {a-b: {type: string}}\n"))
    assert found == ["workflow 'w': input name 'a-b' must be an identifier (letters, digits, _)"]


def test_input_is_readable_without_a_start_step() -> None:
    # The input lives in the execution record; a start step is not needed to read it.
    assert check("id: w\nsteps:\n  - {id: e, type: end, result: $input.a}\n") == []


def test_input_paths_are_free_when_no_inputs_are_declared() -> None:
    assert check(steps("- {id: e, type: end, result: $input.anything}\n")) == []


def test_parallel_wait_any_does_not_define_what_branches_set() -> None:
    found = check(
        steps(
            """
            - id: fan
              type: parallel
              wait: any
              output: outs
              branches:
                - {id: b1, type: call, service: S, method: m, output: o1}
              next: done
            - {id: done, type: end, result: [$outs, $o1]}
            """
        )
    )
    assert found == [
        problem(
            "done",
            "'$o1' reads 'o1', which is not set on every path to this step (set by "
            "'fan:b1'); set it on every path, e.g. with an assign step earlier",
        )
    ]


def test_names_set_in_a_loop_body_are_not_defined_after_the_loop() -> None:
    found = check(
        steps(
            """
            - id: l
              type: loop
              over: $input
              do: [{id: x, type: assign, set: {v: 1}}]
              next: done
            - {id: done, type: end, result: $v}
            """
        )
    )
    assert found == [
        problem(
            "done",
            "'$v' reads 'v', which is not set on every path to this step (set by "
            "'l:x'); set it on every path, e.g. with an assign step earlier",
        )
    ]


def test_definitions_built_in_python_are_checked_for_type_and_config() -> None:
    wf = flowkit.WorkflowDef(
        id="w",
        steps=(
            flowkit.StepDef(id="a", type="call", config=flowkit.StartConfig(), next="b"),
            flowkit.StepDef(id="b", type="nope", config=None),
        ),
    )
    assert flowkit.check(wf) == [
        problem("a", "config is a StartConfig, expected CallConfig"),
        problem("b", "unknown step type 'nope'"),
    ]


# --- regressions ----------------------------------------------------------------------------


def test_a_duplicate_id_does_not_hide_the_first_steps_edges() -> None:
    found = check(
        steps(
            """
            - {id: a, type: assign, set: {x: 1}, on_error: ghost, next: done}
            - {id: done, type: end}
            - {id: a, type: end}
            """
        )
    )
    assert problem("a", "on_error: no step 'ghost'") in found
    assert found.count(problem("a", "on_error: no step 'ghost'")) == 1


def test_loop_over_and_while_are_checked_once_with_the_index_in_scope() -> None:
    found = check(
        steps(
            """
            - {id: l1, type: loop, over: $nothing, do: [{id: x, type: assign, set: {v: 1}}],
               next: l2}
            - id: l2
              type: loop
              while: {field: i, op: lt, value: $limit}
              index_as: i
              do: [{id: y, type: assign, set: {v: $i}}]
            """
        )
    )
    assert found == [
        problem("l1", "'$nothing' reads 'nothing', which no step sets"),
        problem("l2", "'$limit' reads 'limit', which no step sets"),
    ]


def test_a_cycle_names_only_its_own_steps() -> None:
    found = check(
        steps(
            """
            - {id: lead_in, type: assign, set: {x: 1}, next: a}
            - {id: a, type: assign, set: {x: 1}, next: b}
            - {id: b, type: assign, set: {y: 2}, next: a}
            """
        )
    )
    assert found == [
        problem(
            "a",
            "steps 'a', 'b' form a cycle that never reaches an end; give one of them a "
            "next or a router default that leads out",
        )
    ]


# --- every problem at once, with locations ------------------------------------------------------

DOCS_EXAMPLE = """\
id: expenses
inputs:
  amount: {type: number}
steps:
  - id: start
    type: start
    next: check
  - id: check
    type: router
    routes:
      - when: {field: input.amont, op: greater, value: 100}
        then: ask
    default: done
  - id: ask
    type: approval
    prompt: "Approve $input.amount for $employee?"
    on_reject: rejectd
    next: done
  - id: charge
    type: call
    service: Payments
    method: charge
    retires: 3
  - id: done
    type: end
    result: {amount: "$input.amount", comment: "$response.comment"}
"""


def test_all_problems_at_once_sorted_by_line_with_file(tmp_path: Path) -> None:
    path = tmp_path / "expenses.yml"
    path.write_text(DOCS_EXAMPLE, encoding="utf-8")
    found = flowkit.check(path)
    at = f"workflow 'expenses' step '{{}}' ({path}:{{}})"
    assert found == [
        at.format("check", 8) + ": condition on 'input.amont': unknown condition op 'greater' "
        "(did you mean 'gte'?)",
        at.format("check", 8) + ": 'input.amont' reads input 'amont', which is not declared "
        "(did you mean 'amount'?)",
        at.format("ask", 14) + ": on_reject: no step 'rejectd'",
        at.format("ask", 14) + ": '$employee' reads 'employee', which no step sets",
        at.format("charge", 19) + ": unknown key 'retires' (did you mean 'retries'?)",
        at.format("charge", 19) + ": unreachable: no path from the first step leads here "
        "(point a next, route or on_error at it, or remove it)",
        at.format("done", 24) + ": '$response.comment' is only set after a halt or approval "
        "step is resumed",
    ]
    assert [(p.step_id, p.location.line) for p in found] == [  # type: ignore[attr-defined]
        ("check", 8),
        ("check", 8),
        ("ask", 14),
        ("ask", 14),
        ("charge", 19),
        ("charge", 19),
        ("done", 24),
    ]
    assert found[0].to_json() == {  # type: ignore[attr-defined]
        "severity": "error",
        "message": "condition on 'input.amont': unknown condition op 'greater' "
        "(did you mean 'gte'?)",
        "workflow": "expenses",
        "step": "check",
        "file": str(path),
        "line": 8,
        "column": None,
    }


def test_load_raises_validation_error_with_every_problem() -> None:
    with pytest.raises(ValidationError) as info:
        flowkit.load(DOCS_EXAMPLE)
    assert info.value.problems == flowkit.check(DOCS_EXAMPLE)
    assert len(info.value.problems) == 7
    message = str(info.value)
    assert message.startswith("invalid workflow 'expenses' (7 problems):\n")
    assert "  - workflow 'expenses' step 'ask' (line 14): on_reject: no step 'rejectd'" in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, flowkit.FlowkitError)


def test_check_reports_structure_problems_instead_of_raising() -> None:
    assert check("id: w\nsteps: [{id: a, type: cal}]\n") == [
        "workflow 'w' step 'a': unknown step type 'cal' (did you mean 'call'?)"
    ]


# --- past what cannot be read: the graph and references are still checked ----------------------

EVERY_KIND = """\
id: orders
inputs:
  amount: {type: number}
steps:
  - id: start
    type: start
    next: charge
  - id: charge
    type: call
    service: Payments
    method: charge
    retires: 3
    retries: two
    output: receipt
    next: notfy
  - id: notify
    type: call
    service: Mail
    method: send
    input: {receipt: $receipt, amount: $input.amount, note: $note}
    next: done
  - id: charge
    type: end
  - id: done
    type: end
"""


def test_unknown_keys_wrong_types_and_graph_problems_are_reported_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orders.yml"
    path.write_text(EVERY_KIND, encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        flowkit.load(path)
    at = f"workflow 'orders' step '{{}}' ({path}:{{}}): "
    assert info.value.problems == [
        at.format("charge", 8) + "retries: expected an integer, got a string 'two'",
        at.format("charge", 8) + "unknown key 'retires' (did you mean 'retries'?)",
        at.format("charge", 8) + "next: no step 'notfy' (did you mean 'notify'?)",
        at.format("notify", 16) + "'$note' reads 'note', which no step sets",
        at.format("charge", 22) + "duplicate step id 'charge' (step ids must be unique)",
    ]
    assert str(info.value).startswith("invalid workflow 'orders' (5 problems):\n")
    assert flowkit.check(path) == info.value.problems


def test_a_step_reached_only_through_a_misspelt_target_is_still_checked() -> None:
    found = check(
        steps(
            """
            - {id: a, type: assign, set: {x: 1}, next: bb}
            - {id: b, type: end, result: [$x, $nobody]}
            """
        )
    )
    assert found == [
        problem("a", "next: no step 'bb' (did you mean 'b'?)"),
        problem("b", "'$nobody' reads 'nobody', which no step sets"),
    ]


def test_a_step_no_target_leads_to_is_unreachable_beside_a_target_with_no_likely_step() -> None:
    found = check(
        steps(
            """
            - {id: a, type: assign, set: {x: 1}, next: elsewhere}
            - {id: b, type: end}
            """
        )
    )
    assert found == [
        problem("a", "next: no step 'elsewhere'"),
        problem(
            "b",
            "unreachable: no path from the first step leads here (point a next, route or "
            "on_error at it, or remove it)",
        ),
    ]


def test_a_misspelt_key_naming_a_step_may_lead_there() -> None:
    found = check(
        steps(
            """
            - id: r
              type: router
              defualt: done
            - {id: done, type: end, result: $nobody}
            """
        )
    )
    # not "a router needs at least one route or a default", nor 'done' unreachable
    assert found == [
        problem("r", "unknown key 'defualt' (did you mean 'default'?)"),
        problem("done", "'$nobody' reads 'nobody', which no step sets"),
    ]


def test_a_name_a_misspelt_key_would_set_is_no_mistake_of_its_own() -> None:
    found = check(
        steps(
            """
            - {id: c, type: call, service: S, method: m, ouptut: total, next: d}
            - {id: d, type: end, result: [$total, $totl]}
            """
        )
    )
    assert found == [
        problem("c", "unknown key 'ouptut' (did you mean 'output'?)"),
        problem("d", "'$totl' reads 'totl', which no step sets"),
    ]


def test_a_misspelt_type_is_checked_as_the_type_it_likely_names() -> None:
    found = check(
        steps(
            """
            - {id: c, type: cal, service: S, method: m, input: $missing, output: total, next: d}
            - {id: d, type: end, result: [$total, $nobody]}
            - {id: orphan, type: end}
            """
        )
    )
    # 'c' is read as a call: '$total' is defined after it, and what it reads is checked
    assert found == [
        problem("c", "unknown step type 'cal' (did you mean 'call'?)"),
        problem("c", "'$missing' reads 'missing', which no step sets"),
        problem("d", "'$nobody' reads 'nobody', which no step sets"),
        problem(
            "orphan",
            "unreachable: no path from the first step leads here (point a next, route or "
            "on_error at it, or remove it)",
        ),
    ]


def test_a_step_that_cannot_be_read_keeps_its_place_and_may_set_any_name() -> None:
    found = check(
        steps(
            """
            - {id: v, type: quorum, voters: [a, b], on_veto: held, next: done}
            - {id: done, type: end, result: [$votes, $x]}
            - {id: held, type: assign, set: {x: 1}}
            - {id: orphan, type: end}
            """
        )
    )
    # 'quorum' is not installed: 'held' may follow it (its keys name it), and it may
    # set '$votes'; '$x' is set by another step, but not on every path to 'done'
    known = ", ".join(sorted(step_types()))
    assert found == [
        problem("v", f"unknown step type 'quorum' (known types: {known})"),
        problem(
            "done",
            "'$x' reads 'x', which is not set on every path to this step (set by 'held'); "
            "set it on every path, e.g. with an assign step earlier",
        ),
        problem(
            "orphan",
            "unreachable: no path from the first step leads here (point a next, route or "
            "on_error at it, or remove it)",
        ),
    ]


def test_a_step_that_cannot_be_read_in_a_loop_body() -> None:
    found = check(
        steps(
            """
            - id: l
              type: loop
              over: [1]
              mx: 2
              do:
                - {id: x, type: asign, set: {v: 1}}
                - {id: y, type: assign, set: {w: $v}}
                - {id: z, type: assign, set: {u: $nobody}}
            """
        )
    )
    assert found == [
        problem("l", "unknown key 'mx' (did you mean 'max'?)"),
        problem("l:x", "unknown step type 'asign' (did you mean 'assign'?)"),
        problem("l:z", "'$nobody' reads 'nobody', which no step sets"),
    ]


def test_steps_without_an_id_or_not_a_mapping_keep_their_place() -> None:
    found = flowkit.check(
        {
            "steps": [
                {"id": "a", "type": "assign", "set": {"x": 1}, "next": "zz"},
                3,
                {"type": "end"},
            ]
        }
    )
    # nothing can lead to a step without an id: it is not called unreachable as well
    assert found == [
        "missing 'id' (a non-empty string naming the workflow)",
        "step '#2': a step must be a mapping with 'id' and 'type', got 3",
        "step '#3': every step needs an 'id' (a non-empty string)",
        "step 'a': next: no step 'zz'",
    ]


def test_extension_checks_wait_for_the_extension_keys_to_be_read() -> None:
    data = {
        "id": "w",
        "agents": 5,
        "steps": [{"id": "a", "type": "agent", "agent_id": "x", "prompt": "hi"}],
    }
    # not also "agent_id: no agent 'x'", which follows from 'agents' not being read
    assert flowkit.check(data) == ["workflow 'w': 'agents': expected a list of agents, got int"]


# --- warnings ---------------------------------------------------------------------------------

ROUTER_WITH_NEXT = """
- id: r
  type: router
  routes: [{when: {field: input.name, op: exists}, then: a}]
  default: b
  next: b
- {id: a, type: end}
- {id: b, type: end}
"""
NEXT_NEVER_USED = "'next' is never used: a 'router' step never continues to it; remove 'next'"


def test_next_beside_a_routers_routes_is_a_warning() -> None:
    text = steps(ROUTER_WITH_NEXT, inputs="inputs: {name: {type: string}}\n")
    assert check(text) == []
    [warning] = flowkit.check(yaml.safe_load(text), warnings=True)
    assert warning == problem("r", NEXT_NEVER_USED)
    assert isinstance(warning, Problem)
    assert warning.severity == "warning"
    assert warning.to_json()["severity"] == "warning"
    assert flowkit.load(text).step("r") is not None  # accepted, as the gem did


def test_warnings_are_listed_with_errors_by_line_but_never_raised() -> None:
    text = steps(ROUTER_WITH_NEXT + "- {id: c, type: end}\n")
    found = flowkit.check(text, warnings=True)
    unreachable = (
        "unreachable: no path from the first step leads here (point a next, route or "
        "on_error at it, or remove it)"
    )
    assert found == [
        f"workflow 'w' step 'r' (line 5): {NEXT_NEVER_USED}",
        f"workflow 'w' step 'c' (line 12): {unreachable}",
    ]
    assert [getattr(item, "severity", None) for item in found] == ["warning", "error"]
    with pytest.raises(ValidationError) as info:
        flowkit.load(text)
    assert info.value.problems == [found[1]]


def test_problems_are_errors_unless_they_say_otherwise() -> None:
    assert Problem("x").severity == "error"
    located = Problem("x", location=flowkit.SourceLocation(file="f.yml", line=3, column=7))
    assert located.to_json() == {
        "severity": "error",
        "message": "x",
        "workflow": None,
        "step": None,
        "file": "f.yml",
        "line": 3,
        "column": 7,
    }

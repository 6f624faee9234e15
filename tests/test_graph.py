"""Graph rendering: Mermaid and DOT for the gem's workflow and for loops and parallel steps."""

from __future__ import annotations

import re

import pytest

import flowkit
from flowkit import WorkflowDef

NESTED = flowkit.load(
    """\
id: nested
inputs: {items: {type: array}}
steps:
  - {id: start, type: start, next: each}
  - id: each
    type: loop
    over: $input.items
    do:
      - {id: charge, type: call, service: S, method: m, on_error: note}
      - {id: note, type: assign, set: {n: 1}}
    next: fan
  - id: fan
    type: parallel
    wait: 1
    branches:
      - {id: left, type: call, service: S, method: m}
      - {id: right, type: workflow, workflow_id: child}
    next: poll
  - id: poll
    type: loop
    while: {field: pending, op: truthy}
    do:
      - {id: ask, type: call, service: S, method: m, output: pending}
    next: done
  - {id: done, type: end}
"""
)


def mermaid_nodes(text: str) -> dict[str, str]:
    """Step id -> Mermaid node id (labels are ``id<br/>type`` or ``id``)."""
    found = re.findall(r'^\s*(s\d+)[\[({/]+"([^"<]+)(?:<br/>\w+)?"', text, flags=re.M)
    return {label: node for node, label in found}


def dot_nodes(text: str) -> dict[str, str]:
    found = re.findall(r'^\s*(s\d+) \[label="([^"\\]+)', text, flags=re.M)
    return {label: node for node, label in found}


def mermaid_links(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.search(r" (-->|-\.->|==>)", line)]


def block(text: str, opening: str, closing: str) -> list[str]:
    """The lines between ``opening`` (a substring) and the first ``closing`` line after it."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if opening in line)
    end = next(index for index in range(start + 1, len(lines)) if lines[index].strip() == closing)
    return [line.strip() for line in lines[start + 1 : end]]


# --- Mermaid --------------------------------------------------------------------------------


def test_mermaid_for_the_gem_workflow(gem_workflow: WorkflowDef) -> None:
    text = flowkit.graph(gem_workflow, "mermaid")
    assert text.startswith("flowchart TD\n")
    nodes = mermaid_nodes(text)
    assert set(nodes) == {step.id for step in gem_workflow.steps}
    assert len(set(nodes.values())) == len(gem_workflow.steps)
    n = nodes
    links = mermaid_links(text)
    # plain next edges
    assert f"{n['start']} --> {n['validate']}" in links
    # routes labelled with their condition; default edges labelled and dotted
    assert (
        f'{n["check_validation"]} -->|"validation.valid eq true"| {n["check_inventory"]}' in links
    )
    assert f'{n["check_approval"]} -->|"totals.total gt 1000"| {n["require_approval"]}' in links
    assert f'{n["check_validation"]} -.->|"default"| {n["failed"]}' in links
    assert f'{n["require_approval"]} -.->|"on_reject"| {n["rejected"]}' in links
    # on_error edges: labelled, and drawn in red through linkStyle (by link number)
    errors = [index for index, link in enumerate(links) if '"on_error"' in link]
    assert [links[index] for index in errors] == [
        f'{n["validate"]} -.->|"on_error"| {n["failed"]}',
        f'{n["process_payment"]} -.->|"on_error"| {n["payment_failed"]}',
    ]
    assert text.rstrip().splitlines()[-1].strip() == (
        f"linkStyle {','.join(map(str, errors))} stroke:red,color:red"
    )
    # shapes say what a step does
    assert f'{n["check_validation"]}{{"check_validation<br/>router"}}' in text
    assert f'{n["require_approval"]}{{{{"require_approval<br/>approval"}}}}' in text
    assert f'{n["start"]}(["start"])' in text


def test_mermaid_loop_bodies_and_parallel_branches_are_subgraphs() -> None:
    text = flowkit.graph(NESTED, "mermaid")
    n = mermaid_nodes(text)
    each = block(text, 'subgraph s1_g["for item in $input.items"]', "end")
    assert f'{n["charge"]}["charge<br/>call"]' in each
    assert f'{n["note"]}[/"note<br/>assign"/]' in each
    assert f"{n['charge']} --> {n['note']}" in each  # a body step continues with the next one
    assert f'{n["charge"]} -.->|"on_error"| {n["note"]}' in each
    fan = block(text, '["parallel (wait 1)"]', "end")
    assert fan == [f'{n["left"]}["left<br/>call"]', f'{n["right"]}[["right<br/>workflow"]]']
    poll = block(text, '["while pending truthy"]', "end")
    assert f'{n["ask"]}["ask<br/>call"]' in poll
    links = mermaid_links(text)
    assert f'{n["each"]} ==>|"each"| {n["charge"]}' in links
    assert f'{n["note"]} -.->|"next iteration"| {n["each"]}' in links
    assert f'{n["fan"]} ==>|"branch"| {n["left"]}' in links
    assert f'{n["fan"]} ==>|"branch"| {n["right"]}' in links
    errors = [index for index, link in enumerate(links) if '"on_error"' in link]
    assert f"linkStyle {','.join(map(str, errors))} stroke:red,color:red" in text


def test_mermaid_escapes_quotes_in_labels() -> None:
    wf = flowkit.parse(
        """\
id: q
steps:
  - id: r
    type: router
    routes: [{when: {field: name, op: eq, value: 'say "hi"'}, then: e}]
    default: e
  - {id: e, type: end}
"""
    )
    text = flowkit.graph(wf, "mermaid")
    assert '|"name eq #quot;say \\#quot;hi\\#quot;#quot;"|' in text
    assert text.count('"') % 2 == 0


def test_mermaid_without_errors_has_no_link_style() -> None:
    wf = flowkit.parse("id: w\nsteps: [{id: s, type: start, next: e}, {id: e, type: end}]\n")
    assert flowkit.graph(wf) == 'flowchart TD\n  s0(["s"])\n  s1(["e"])\n  s0 --> s1\n'


# --- DOT ------------------------------------------------------------------------------------


def test_dot_for_the_gem_workflow(gem_workflow: WorkflowDef) -> None:
    text = flowkit.graph(gem_workflow, "dot")
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == 'digraph "order_fulfillment" {'
    assert lines[-1] == "}"
    n = dot_nodes(text)
    assert set(n) == {step.id for step in gem_workflow.steps}
    assert f'{n["check_validation"]} [label="check_validation\\nrouter", shape=diamond];' in lines
    assert f'{n["end"]} [label="end", shape=doublecircle];' in lines
    assert f"{n['start']} -> {n['validate']};" in lines
    assert (
        f'{n["check_validation"]} -> {n["check_inventory"]} [label="validation.valid eq true"];'
        in lines
    )
    assert f'{n["check_validation"]} -> {n["failed"]} [label="default", style="dashed"];' in lines
    on_error = [line for line in lines if 'label="on_error"' in line]
    assert on_error == [
        f'{n["validate"]} -> {n["failed"]} [label="on_error", style="dashed", color="red", '
        'fontcolor="red"];',
        f'{n["process_payment"]} -> {n["payment_failed"]} [label="on_error", style="dashed", '
        'color="red", fontcolor="red"];',
    ]
    assert (
        f'{n["require_approval"]} -> {n["rejected"]} [label="on_reject", style="dashed", '
        'color="orange"];' in lines
    )


def test_dot_loop_bodies_and_parallel_branches_are_clusters() -> None:
    text = flowkit.graph(NESTED, "dot")
    n = dot_nodes(text)
    each = block(text, f"subgraph cluster_{n['each']} {{", "}")
    assert each[0] == 'label="for item in $input.items"; style="rounded,dashed";'
    assert f'{n["charge"]} [label="charge\\ncall", shape=box];' in each
    assert (
        f'{n["charge"]} -> {n["note"]} [label="on_error", style="dashed", color="red", '
        'fontcolor="red"];' in each
    )
    fan = block(text, f"subgraph cluster_{n['fan']} {{", "}")
    assert fan == [
        'label="parallel (wait 1)"; style="rounded,dashed";',
        f'{n["left"]} [label="left\\ncall", shape=box];',
        f'{n["right"]} [label="right\\nworkflow", shape=box3d];',
    ]
    lines = [line.strip() for line in text.splitlines()]
    assert f'{n["each"]} -> {n["charge"]} [label="each", penwidth=2];' in lines
    assert f'{n["note"]} -> {n["each"]} [label="next iteration", style="dotted"];' in lines
    assert f'{n["fan"]} -> {n["left"]} [label="branch", penwidth=2];' in lines
    assert f"{n['poll']} -> {n['done']};" in lines


def test_dot_escapes_quotes_and_backslashes() -> None:
    wf = flowkit.parse(
        {
            "id": 'say "hi"',
            "steps": [
                {
                    "id": "r",
                    "type": "router",
                    "routes": [{"when": {"field": "x", "op": "eq", "value": "a\\b"}, "then": "e"}],
                    "default": "e",
                },
                {"id": "e", "type": "end"},
            ],
        }
    )
    text = flowkit.graph(wf, "dot")
    assert text.startswith('digraph "say \\"hi\\"" {\n')
    assert '[label="x eq \\"a\\\\\\\\b\\""]' in text


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["svg", "Mermaid", "", "graphviz"])
def test_unknown_format_is_a_value_error(fmt: str, gem_workflow: WorkflowDef) -> None:
    with pytest.raises(ValueError, match=r"unknown graph format .* \(use 'mermaid' or 'dot'\)"):
        flowkit.graph(gem_workflow, fmt)


def test_mermaid_is_the_default(gem_workflow: WorkflowDef) -> None:
    assert flowkit.graph(gem_workflow) == flowkit.graph(gem_workflow, "mermaid")

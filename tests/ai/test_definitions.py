"""The AI extension's definitions: typed, round-tripping, validated with clear problems."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowkit
from flowkit.ai import (
    AgentConfig,
    AgentDef,
    FileSearchConfig,
    GuardrailCheck,
    GuardrailConfig,
    HandoffConfig,
    HandoffDef,
    MCPConfig,
    MCPServerDef,
    ToolDef,
    ToolParam,
    agents_of,
    mcp_servers_of,
    tools_of,
)

from .conftest import DATA


def test_importing_flowkit_does_not_import_the_ai_extension() -> None:
    code = "import sys, flowkit; print('flowkit.ai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_declaring_a_python_workflow_does_not_import_the_ai_extension() -> None:
    code = (
        "import sys, flowkit\n"
        "wf = flowkit.Workflow('w')\n"
        "wf.assign('a', set={'x': 1})\n"
        "print('flowkit.ai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_extension_is_loaded_through_its_entry_point_when_a_workflow_needs_it() -> None:
    code = (
        "import sys, flowkit\n"
        f"wf = flowkit.load({str(DATA / 'gem_support_agent.yml')!r})\n"
        "print('flowkit.ai' in sys.modules, type(wf.steps[2].config).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True AgentConfig"


# --- the gem's workflow ---------------------------------------------------------------------------


def test_the_gems_support_agent_loads_into_typed_definitions(
    gem_support_agent: flowkit.WorkflowDef,
) -> None:
    wf = gem_support_agent
    agents = agents_of(wf)
    assert list(agents) == ["triage", "billing", "technical"]
    billing = agents["billing"]
    assert billing == AgentDef(
        id="billing",
        name="Billing Agent",
        model="gpt-4o",
        instructions=billing.instructions,
        tools=("lookup_order", "refund_order", "create_ticket", "escalate"),
        handoffs=(
            HandoffDef(
                agent_id="technical",
                description="Transfer to technical support for product issues",
            ),
        ),
    )
    assert billing.max_turns == 10
    tools = tools_of(wf)
    assert tools["refund_order"].parameters[2] == ToolParam(
        name="amount",
        type="number",
        required=True,
        description="Partial refund amount (omit for full refund)",
    )
    # as in the gem, a parameter without `required: false` is required
    assert tools["lookup_order"].json_schema() == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "Order ID to look up"},
            "email": {"type": "string", "description": "Customer email to find orders"},
        },
        "required": ["order_id", "email"],
    }
    steps = {step.id: step for step in wf.steps}
    assert steps["moderate_input"].config == GuardrailConfig(
        content="$input.message",
        checks=(GuardrailCheck(type="moderation"), GuardrailCheck(type="prompt_injection")),
        on_fail="rejected",
    )
    assert isinstance(steps["triage"].config, AgentConfig)
    assert steps["handle_handoff"].config.agent == "$_handoff_to"
    assert flowkit.check(wf) == []


def test_the_gems_support_agent_round_trips(gem_support_agent: flowkit.WorkflowDef) -> None:
    wf = gem_support_agent
    assert flowkit.parse(flowkit.to_dict(wf)) == wf
    assert flowkit.parse(flowkit.to_yaml(wf)) == wf
    assert flowkit.to_yaml(flowkit.parse(flowkit.to_yaml(wf))) == flowkit.to_yaml(wf)


# --- every AI key and step type round-trips -------------------------------------------------------

FULL: dict[str, Any] = {
    "id": "everything",
    "inputs": {"question": {"type": "string"}, "paths": {"type": "array", "required": False}},
    "agents": [
        {
            "id": "writer",
            "name": "Writer",
            "model": "gpt-4o",
            "instructions": "Write.",
            "tools": ["search"],
            "handoffs": [{"agent_id": "editor"}],
            "max_turns": 4,
            "output_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
        {"id": "editor", "handoffs": [{"agent_id": "writer", "description": "Back"}]},
    ],
    "tools": [
        {
            "id": "search",
            "description": "Search",
            "parameters": [
                {"name": "q", "type": "string", "required": True},
                {"name": "kind", "enum": ["a", "b"]},
                {"name": "tags", "type": "array", "items": "string"},
            ],
            "service": "Search",
            "method": "run",
        }
    ],
    "mcp_servers": {
        "docs": {"url": "http://localhost:9/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
        "local": {"command": ["python", "-m", "server"], "env": {"ROOT": "/srv"}},
    },
    "steps": [
        {"id": "start", "type": "start", "next": "screen"},
        {
            "id": "screen",
            "type": "guardrail",
            "content": "$input.question",
            "checks": [
                {"type": "pii", "detect": ["email", "card"]},
                {"type": "regex", "pattern": "^\\w", "block_on_match": False},
                {"type": "length", "min": 1, "max": 500},
                {"type": "moderation", "fail_open": True},
            ],
            "on_fail": "refuse",
            "output": "screening",
            "next": "find",
        },
        {
            "id": "find",
            "type": "file_search",
            "query": "$input.question",
            "files": ["docs/*.md", "README.md"],
            "max_results": 3,
            "output": "hits",
            "next": "ask",
        },
        {
            "id": "ask",
            "type": "agent",
            "agent_id": "writer",
            "prompt": "Answer: $input.question",
            "context": {"hits": "$hits"},
            "output": "draft",
            "max_turns": 2,
            "next": "edit",
        },
        {
            "id": "edit",
            "type": "handoff",
            "to": "editor",
            "reason": "review",
            "context": {"draft": "$draft"},
            "output": "final",
            "next": "tool",
        },
        {
            "id": "tool",
            "type": "mcp",
            "server": "docs",
            "tool": "lookup",
            "arguments": {"q": "$input.question"},
            "output": "looked_up",
            "timeout": 5,
            "next": "done",
        },
        {
            "id": "refuse",
            "type": "assign",
            "set": {"why": "$_guardrail_failure.reason"},
            "next": "done",
        },
        {"id": "done", "type": "end"},
    ],
}


def test_every_ai_key_and_step_type_round_trips() -> None:
    wf = flowkit.load(FULL)
    assert flowkit.check(wf) == []
    assert flowkit.parse(flowkit.to_dict(wf)) == wf
    assert flowkit.parse(flowkit.to_yaml(wf)) == wf
    assert flowkit.to_dict(wf)["mcp_servers"] == {
        "docs": {
            "url": "http://localhost:9/mcp",
            "headers": {"Authorization": "Bearer ${TOKEN}"},
            "transport": "http",
        },
        "local": {
            "command": ["python", "-m", "server"],
            "env": {"ROOT": "/srv"},
            "transport": "stdio",
        },
    }
    servers = mcp_servers_of(wf)
    assert servers["local"] == MCPServerDef(
        id="local", command=("python", "-m", "server"), env={"ROOT": "/srv"}, transport="stdio"
    )
    steps = {step.id: step for step in wf.steps}
    assert steps["tool"].config == MCPConfig(
        server="docs",
        tool="lookup",
        arguments={"q": "$input.question"},
        output="looked_up",
        timeout=5,
    )
    assert steps["find"].config == FileSearchConfig(
        query="$input.question", files=("docs/*.md", "README.md"), max_results=3, output="hits"
    )
    assert steps["edit"].config == HandoffConfig(
        to="editor", reason="review", context={"draft": "$draft"}, output="final"
    )


def test_a_handoff_without_to_loads_and_reads_handoff_to_when_it_runs() -> None:
    data = {
        "id": "wf",
        "agents": [{"id": "expert"}],
        "steps": [
            {"id": "start", "type": "start", "next": "hand_over"},
            {"id": "hand_over", "type": "handoff", "output": "reply"},
        ],
    }
    wf = flowkit.load(data)  # no agent step sets `_handoff_to` on the way: not a problem
    config = wf.steps[1].config
    assert config == HandoffConfig(output="reply")
    assert (config.agent, config.target_key) == ("$_handoff_to", "_handoff_to")
    assert flowkit.to_dict(wf)["steps"][1] == data["steps"][1]
    assert flowkit.parse(flowkit.to_yaml(wf)) == wf


def test_mcp_headers_are_interpolated_from_the_environment_only_when_used() -> None:
    server = mcp_servers_of(flowkit.load(FULL))["docs"]
    assert server.headers["Authorization"] == "Bearer ${TOKEN}"
    assert server.resolved_headers({"TOKEN": "s3cret"}) == {"Authorization": "Bearer s3cret"}
    with pytest.raises(KeyError, match="environment variable 'TOKEN' is not set"):
        server.resolved_headers({})


def test_a_command_string_is_split_like_a_shell_would() -> None:
    data = {**FULL, "mcp_servers": {"local": {"command": "python -m 'my server'"}}}
    data["steps"] = [{"id": "start", "type": "start"}]
    server = mcp_servers_of(flowkit.load(data))["local"]
    assert server.command == ("python", "-m", "my server")
    assert server.transport == "stdio"


def test_a_tool_parameter_is_required_unless_it_says_required_false() -> None:
    parameters = [{"name": "q"}, {"name": "page", "type": "integer", "required": False}]
    tool = {"id": "search", "service": "Search", "method": "run", "parameters": parameters}
    wf = flowkit.load(_minimal(tools=[tool]))
    search = tools_of(wf)["search"]
    assert [param.required for param in search.parameters] == [True, False]
    assert search.json_schema()["required"] == ["q"]
    assert ToolParam(name="q").required is True
    # the default is left out of plain data, `required: false` is kept
    assert flowkit.to_dict(wf)["tools"][0]["parameters"] == parameters
    assert flowkit.parse(flowkit.to_yaml(wf)) == wf


_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)


@st.composite
def _tools(draw: st.DrawFn) -> ToolDef:
    names = draw(st.lists(_names, unique=True, max_size=4))
    params = tuple(
        ToolParam(
            name=name,
            type=draw(st.sampled_from(["string", "integer", "number", "boolean", "object"])),
            required=draw(st.booleans()),
            description=draw(st.none() | _text),
        )
        for name in names
    )
    return ToolDef(
        id=draw(_names),
        description=draw(st.none() | _text),
        parameters=params,
        service=draw(_names),
        method=draw(_names),
    )


@st.composite
def _agents(draw: st.DrawFn) -> AgentDef:
    return AgentDef(
        id=draw(_names),
        name=draw(st.none() | _text),
        model=draw(st.none() | _names),
        instructions=draw(st.none() | _text),
        tools=tuple(draw(st.lists(_names, max_size=3))),
        handoffs=tuple(
            HandoffDef(agent_id=name, description=draw(st.none() | _text))
            for name in draw(st.lists(_names, max_size=2))
        ),
        max_turns=draw(st.integers(1, 50)),
    )


@settings(max_examples=60, deadline=None)
@given(agents=st.lists(_agents(), max_size=3), tools=st.lists(_tools(), max_size=3))
def test_agents_and_tools_round_trip(agents: list[AgentDef], tools: list[ToolDef]) -> None:
    wf = flowkit.WorkflowDef(
        id="prop",
        steps=flowkit.parse({"id": "x", "steps": [{"id": "start", "type": "start"}]}).steps,
        extensions={"agents": tuple(agents), "tools": tuple(tools)},
    )
    assert flowkit.parse(flowkit.to_dict(wf)) == wf
    assert flowkit.parse(flowkit.to_yaml(wf)) == wf


# --- structural problems ---------------------------------------------------------------------


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(flowkit.ValidationError) as caught:
        flowkit.load(data)
    return [str(problem) for problem in caught.value.problems]


def _minimal(**extra: Any) -> dict[str, Any]:
    return {"id": "wf", "steps": [{"id": "start", "type": "start"}], **extra}


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            {"agents": [{"id": "a", "tools": ["t"], "max_turn": 3}]},
            "workflow 'wf': 'agents': [0] 'a': unknown key 'max_turn' (did you mean 'max_turns'?)",
        ),
        (
            {"agents": [{"name": "nameless"}]},
            "workflow 'wf': 'agents': [0]: missing required key 'id'",
        ),
        (
            {"agents": [{"id": "a", "max_turns": 0}]},
            "workflow 'wf': 'agents': [0] 'a': 'max_turns' must be a positive integer, got 0",
        ),
        (
            {"agents": {"a": {}}},
            "workflow 'wf': 'agents': expected a list of agents, got dict",
        ),
        (
            {"tools": [{"id": "t", "parameters": [{"name": "x", "type": "str"}]}]},
            "workflow 'wf': 'tools': [0] 't': parameters[0]: 'type' must be one of string, "
            "integer, number, boolean, array, object, got 'str'",
        ),
        (
            {"mcp_servers": {"s": {"transport": "tcp", "url": "http://x"}}},
            "workflow 'wf': 'mcp_servers': 's': 'transport' must be 'http' or 'stdio', got 'tcp'",
        ),
        (
            {"mcp_servers": {"s": {}}},
            "workflow 'wf': 'mcp_servers': 's': needs a 'url' (streamable HTTP) or a 'command' "
            "(stdio)",
        ),
        (
            {"mcp_servers": {"s": {"transport": "stdio", "url": "http://x"}}},
            "workflow 'wf': 'mcp_servers': 's': the stdio transport needs a 'command'",
        ),
    ],
)
def test_malformed_top_level_keys_are_reported(extra: dict[str, Any], problem: str) -> None:
    assert _problems(_minimal(**extra)) == [problem]


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        (
            {"type": "agent", "agent_id": "a", "promt": "hi"},
            "unknown key 'promt' (did you mean 'prompt'?)",
        ),
        ({"type": "agent", "agent_id": "a"}, "an agent step needs a 'prompt' (or a 'context')"),
        (
            {"type": "guardrail", "content": "x", "checks": [{"type": "toxicity"}]},
            "checks[0]: 'type' must be one of prompt_injection, pii, regex, length, "
            "moderation, got 'toxicity'",
        ),
        (
            {"type": "guardrail", "content": "x", "checks": [{"type": "regex"}]},
            "checks[0]: a regex check needs a 'pattern'",
        ),
        (
            {"type": "guardrail", "content": "x", "checks": [{"type": "regex", "pattern": "("}]},
            "checks[0]: 'pattern' is not a valid regular expression: missing ), unterminated "
            "subpattern at position 0",
        ),
        (
            {"type": "guardrail", "content": "x", "checks": [{"type": "length"}]},
            "checks[0]: a length check needs 'min', 'max' or both",
        ),
        (
            {
                "type": "guardrail",
                "content": "x",
                "checks": [{"type": "length", "min": 5, "max": 2}],
            },
            "checks[0]: 'min' (5) is greater than 'max' (2)",
        ),
        (
            {"type": "guardrail", "content": "x", "checks": [{"type": "pii", "detect": ["dna"]}]},
            "checks[0]: 'detect' must list some of email, phone, card, national_id, got 'dna'",
        ),
        (
            {"type": "handoff", "to": "a", "target_agent": "b"},
            "a handoff takes 'to' or 'target_agent', not both",
        ),
        ({"type": "file_search", "query": "x"}, "missing required key 'files'"),
        ({"type": "mcp", "server": "s"}, "missing required key 'tool'"),
    ],
)
def test_malformed_ai_steps_are_reported_naming_the_step(
    step: dict[str, Any], problem: str
) -> None:
    data = {
        "id": "wf",
        "steps": [{"id": "start", "type": "start", "next": "s1"}, {"id": "s1", **step}],
    }
    assert _problems(data) == [f"workflow 'wf' step 's1': {problem}"]


# --- references between definitions --------------------------------------------------------


def test_every_broken_reference_is_reported_at_once() -> None:
    data = {
        "id": "wf",
        "agents": [
            {
                "id": "triage",
                "tools": ["classify", "lookup_ordr"],
                "handoffs": [{"agent_id": "bill"}],
            },
            {"id": "triage"},
            {"id": "billing"},
        ],
        "tools": [
            {"id": "classify"},
            {"id": "lookup_order", "service": "Orders"},
            {"id": "lookup_order", "service": "Orders", "method": "find"},
        ],
        "mcp_servers": {"docs": {"url": "http://x"}},
        "steps": [
            {"id": "start", "type": "start", "next": "first"},
            {"id": "first", "type": "agent", "agent_id": "triag", "prompt": "hi", "next": "second"},
            {"id": "second", "type": "handoff", "to": "nobody", "next": "third"},
            {"id": "third", "type": "handoff", "to": "$somewhere", "next": "fourth"},
            {"id": "fourth", "type": "mcp", "server": "doc", "tool": "x"},
        ],
    }
    problems = flowkit.check(data)
    assert sorted(problems) == sorted(
        [
            "workflow 'wf': duplicate agent id 'triage' (agent ids must be unique)",
            "workflow 'wf': duplicate tool id 'lookup_order' (tool ids must be unique)",
            "workflow 'wf': tool 'classify' needs 'service' and 'method': the service method "
            "that runs it",
            "workflow 'wf': tool 'lookup_order' needs 'method': the service method that runs it",
            "workflow 'wf': agent 'triage': tools: no tool 'lookup_ordr' (did you mean "
            "'lookup_order'?)",
            "workflow 'wf': agent 'triage': handoffs: no agent 'bill' (did you mean 'billing'?)",
            "workflow 'wf' step 'first': agent_id: no agent 'triag' (did you mean 'triage'?)",
            "workflow 'wf' step 'second': to: no agent 'nobody' (declared: triage, triage, "
            "billing)",
            "workflow 'wf' step 'third': '$somewhere' reads 'somewhere', which no step sets",
            "workflow 'wf' step 'fourth': server: no MCP server 'doc' (did you mean 'docs'?)",
        ]
    )


def test_problems_name_the_line_of_the_step_in_yaml() -> None:
    text = (
        (DATA / "gem_support_agent.yml")
        .read_text()
        .replace("agent_id: billing\n    prompt", "agent_id: biling\n    prompt")
    )
    problems = flowkit.check(text)
    assert len(problems) == 1
    assert problems[0].startswith("workflow 'support_agent' step 'billing_agent' (line ")
    assert problems[0].endswith("agent_id: no agent 'biling' (did you mean 'billing'?)")


def test_an_output_schema_must_be_a_json_schema() -> None:
    data = _minimal(agents=[{"id": "a", "output_schema": {"type": "thing"}}])
    [problem] = flowkit.check(data)
    assert problem.startswith(
        "workflow 'wf': agent 'a': output_schema is not a valid JSON Schema: 'thing' is not valid"
    )


def test_guardrail_failure_is_defined_only_on_the_on_fail_path() -> None:
    data = {
        "id": "wf",
        "steps": [
            {"id": "start", "type": "start", "next": "check"},
            {
                "id": "check",
                "type": "guardrail",
                "content": "x",
                "checks": [{"type": "length", "max": 3}],
                "on_fail": "failed",
                "next": "ok",
            },
            {"id": "ok", "type": "assign", "set": {"why": "$_guardrail_failure.reason"}},
            {"id": "failed", "type": "assign", "set": {"why": "$_guardrail_failure.reason"}},
        ],
    }
    [problem] = flowkit.check(data)
    assert problem.startswith(
        "workflow 'wf' step 'ok': '$_guardrail_failure.reason' reads '_guardrail_failure'"
    )


def test_agents_cannot_be_parallel_branches() -> None:
    data = {
        "id": "wf",
        "agents": [{"id": "a"}],
        "steps": [
            {"id": "start", "type": "start", "next": "both"},
            {
                "id": "both",
                "type": "parallel",
                "branches": [
                    {"id": "one", "type": "agent", "agent_id": "a", "prompt": "1"},
                    {"id": "two", "type": "handoff", "to": "a"},
                ],
            },
        ],
    }
    assert flowkit.check(data) == [
        "workflow 'wf' step 'both:one': an 'agent' step cannot be a parallel branch (use a "
        "workflow step for a multi-step branch)",
        "workflow 'wf' step 'both:two': a 'handoff' step cannot be a parallel branch (use a "
        "workflow step for a multi-step branch)",
    ]

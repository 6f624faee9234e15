"""The AI extension in the Python DSL: tools from functions, agents, and the step builders."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pytest

import flowkit
import flowkit.ai as ai
from flowkit.ai import Agent, Handoff, ScriptedProvider, ToolParam, reply, tool_call
from flowkit.ai._dsl import parse_docstring, tool_from_function

EngineFactory = Callable[..., flowkit.Engine]


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


def create_ticket(
    subject: str,
    body: str,
    priority: Priority = Priority.LOW,
    tags: list[str] | None = None,
    channel: Literal["email", "chat"] = "email",
    amount: float | None = None,
    count: Annotated[int, "How many tickets"] = 1,
    urgent: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create a support ticket.

    Longer explanation that is not part of the summary.

    Args:
        subject: The ticket's subject line
        body (str): What happened, in
            several lines.
        priority: How urgent it is
        tags: Labels for the ticket

    Returns:
        The ticket.
    """
    return {"subject": subject}


def test_a_tools_schema_comes_from_its_type_hints_and_docstring() -> None:
    tool = tool_from_function(create_ticket, service="Tickets")
    assert tool.id == "create_ticket"
    assert (tool.service, tool.method) == ("Tickets", "create_ticket")
    assert tool.description == "Create a support ticket."
    assert tool.parameters == (
        ToolParam(name="subject", description="The ticket's subject line"),
        ToolParam(name="body", description="What happened, in several lines."),
        ToolParam(
            name="priority", required=False, enum=("low", "high"), description="How urgent it is"
        ),
        ToolParam(
            name="tags",
            type="array",
            required=False,
            items="string",
            description="Labels for the ticket",
        ),
        ToolParam(name="channel", required=False, enum=("email", "chat")),
        ToolParam(name="amount", type="number", required=False),
        ToolParam(name="count", type="integer", required=False, description="How many tickets"),
        ToolParam(name="urgent", type="boolean", required=False),
        ToolParam(name="extra", type="object", required=False),
    )
    schema = tool.json_schema()
    assert schema["required"] == ["subject", "body"]
    assert schema["properties"]["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "Labels for the ticket",
    }
    assert schema["properties"]["channel"] == {"type": "string", "enum": ["email", "chat"]}


def test_docstring_sections_end_at_the_next_heading() -> None:
    summary, params = parse_docstring(
        """Do it.

        Args:
            a: first
              continued
            b: second

        Raises:
            c: not a parameter
        """
    )
    assert summary == "Do it."
    assert params == {"a": "first continued", "b": "second"}
    assert parse_docstring(None) == (None, {})


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda x: x, "tool '<lambda>': parameter 'x' needs a type hint"),
    ],
)
def test_a_parameter_without_a_hint_is_an_error(fn: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        tool_from_function(fn, service="S")


def test_an_indescribable_hint_is_an_error() -> None:
    def bad(when: complex) -> None: ...

    with pytest.raises(TypeError) as caught:
        tool_from_function(bad, service="S")
    assert str(caught.value).startswith(
        "tool 'bad', parameter 'when': cannot describe <class 'complex'> to the model"
    )

    def mixed(value: int | str) -> None: ...

    with pytest.raises(TypeError, match="use a single type"):
        tool_from_function(mixed, service="S")


# --- the builders -------------------------------------------------------------------------


def test_wf_tool_registers_the_function_as_a_service_and_agents_can_use_it(
    make_engine: EngineFactory,
) -> None:
    wf = flowkit.Workflow("dsl_tools", inputs={"question": str})

    @wf.tool
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: The first number
            b: The second number
        """
        return a + b

    @wf.tool(id="times", description="Multiply")
    async def multiply(a: int, b: int) -> int:
        return a * b

    math = Agent("math", instructions="Compute.", tools=[add, multiply])
    wf.agent("solve", agent=math, prompt="$input.question", output="answer")
    definition = wf.definition
    tools = ai.tools_of(definition)
    assert list(tools) == ["add", "times"]
    assert tools["add"].service == "dsl_tools"
    assert tools["times"].method == "multiply"
    assert ai.agents_of(definition)["math"].tools == ("add", "times")

    provider = ScriptedProvider(
        [
            reply(tool_calls=[tool_call("add", a=2, b=3), tool_call("times", a=4, b=5)]),
            reply("5 and 20"),
        ]
    )
    engine = make_engine(provider)
    wf.register_services(engine.services)
    result = engine.run(wf, {"question": "2+3, 4*5?"})
    assert result.completed, result.error
    assert [m["content"] for m in provider.calls[1].messages if m["role"] == "tool"] == ["5", "20"]


def test_a_wrong_argument_type_from_the_model_is_told_back(make_engine: EngineFactory) -> None:
    wf = flowkit.Workflow("dsl_checked")

    @wf.tool
    def square(n: int) -> int:
        return n * n

    wf.agent("ask", agent=Agent("a", tools=[square]), prompt="go")
    provider = ScriptedProvider([reply(tool_calls=[tool_call("square", n="7")]), reply("done")])
    engine = make_engine(provider)
    wf.register_services(engine.services)
    engine.run(wf)
    told = provider.calls[1].messages[-1]["content"]
    assert "parameter 'n' expects int, got str '7'" in told


def test_every_builder_gives_the_yaml_definition() -> None:
    wf = flowkit.Workflow(
        "everything", inputs={"question": str, "paths": flowkit.Input(type=list, required=False)}
    )
    wf.tool(
        ai.ToolDef(
            id="search",
            description="Search",
            service="Search",
            method="run",
            parameters=(ToolParam(name="q", required=True),),
        )
    )
    editor = Agent("editor")
    writer = Agent(
        "writer", model="gpt-4o", tools=["search"], handoffs=[(editor, "For edits")], max_turns=4
    )
    wf.mcp_server("docs", url="http://localhost:9/mcp", headers={"Authorization": "Bearer ${T}"})
    wf.guardrail(
        "screen",
        content="$input.question",
        checks=["prompt_injection", {"type": "length", "max": 100}],
        on_fail="refuse",
    )
    wf.file_search(
        "find", query="$input.question", files=["docs/*.md"], max_results=3, output="hits"
    )
    wf.agent(
        "ask", agent=writer, prompt="$input.question", context={"hits": "$hits"}, output="draft"
    )
    wf.handoff("edit", to=editor, reason="review", output="final")
    wf.mcp(
        "lookup",
        server="docs",
        tool="find",
        arguments={"q": "$input.question"},
        output="found",
        next="done",
    )
    wf.assign("refuse", set={"why": "$_guardrail_failure.reason"})
    wf.end("done")
    yaml_text = """
id: everything
inputs:
  question: {type: string}
  paths: {type: array, required: false}
agents:
  - id: writer
    model: gpt-4o
    tools: [search]
    handoffs: [{agent_id: editor, description: For edits}]
    max_turns: 4
  - id: editor
tools:
  - id: search
    description: Search
    parameters: [{name: q, required: true}]
    service: Search
    method: run
mcp_servers:
  docs: {url: "http://localhost:9/mcp", headers: {Authorization: "Bearer ${T}"}}
steps:
  - {id: start, type: start, next: screen}
  - id: screen
    type: guardrail
    content: $input.question
    checks: [{type: prompt_injection}, {type: length, max: 100}]
    on_fail: refuse
    next: find
  - {id: find, type: file_search, query: $input.question, files: ["docs/*.md"], max_results: 3,
     output: hits, next: ask}
  - {id: ask, type: agent, agent_id: writer, prompt: $input.question, context: {hits: $hits},
     output: draft, next: edit}
  - {id: edit, type: handoff, to: editor, reason: review, output: final, next: lookup}
  - {id: lookup, type: mcp, server: docs, tool: find, arguments: {q: $input.question},
     output: found, next: done}
  - {id: refuse, type: assign, set: {why: $_guardrail_failure.reason}, next: done}
  - {id: done, type: end}
"""
    assert wf.definition == flowkit.load(yaml_text)
    assert flowkit.to_yaml(wf.definition) == flowkit.to_yaml(flowkit.load(yaml_text))


def test_builders_report_mistakes_at_the_calling_line() -> None:
    wf = flowkit.Workflow("mistakes")
    with pytest.raises(flowkit.ValidationError) as caught:
        wf.guardrail("screen", content="x", checks=[{"type": "regex"}])  # line A
    [problem] = caught.value.problems
    assert problem.message == "checks: a regex check needs a 'pattern'"
    assert problem.step_id == "screen"
    assert problem.location is not None
    assert problem.location.file == __file__

    with pytest.raises(flowkit.ValidationError) as caught:
        wf.agent("ask", agent="a")
    assert caught.value.problems[0].message == "an agent step needs a 'prompt' (or a 'context')"

    with pytest.raises(flowkit.ValidationError, match="two different agents have the id 'a'"):
        wf.agents(Agent("a", model="x"), Agent("a", model="y"))


def test_an_unknown_agent_id_is_reported_when_the_definition_is_built() -> None:
    wf = flowkit.Workflow("unknown_agent")
    wf.agents(Agent("known"))
    wf.agent("ask", agent="knwon", prompt="hi")
    with pytest.raises(flowkit.ValidationError) as caught:
        _ = wf.definition
    [problem] = caught.value.problems
    assert problem.message == "agent_id: no agent 'knwon' (did you mean 'known'?)"
    assert problem.location is not None
    assert problem.location.file == __file__


def test_handoff_targets_are_declared_with_the_agent() -> None:
    wf = flowkit.Workflow("handoff_targets")
    expert = Agent("expert")
    wf.agent("ask", agent=Agent("front", handoffs=[Handoff(expert, "Hard ones")]), prompt="p")
    assert list(ai.agents_of(wf.definition)) == ["front", "expert"]
    assert ai.agents_of(wf.definition)["front"].handoffs == (
        ai.HandoffDef(agent_id="expert", description="Hard ones"),
    )


def test_a_handoff_without_to_compiles_like_the_yaml_form() -> None:
    wf = flowkit.Workflow("implicit_handoff")
    wf.agents(Agent("expert"))
    wf.handoff("hand_over", output="reply", next=None)
    assert wf.definition == flowkit.load(
        {
            "id": "implicit_handoff",
            "agents": [{"id": "expert"}],
            "steps": [
                {"id": "start", "type": "start", "next": "hand_over"},
                {"id": "hand_over", "type": "handoff", "output": "reply"},
            ],
        }
    )

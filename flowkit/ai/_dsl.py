"""The AI extension in the Python DSL: agents, tools and the AI step builders.

``import flowkit.ai`` adds these to every :class:`flowkit.Workflow` (and to
loop bodies and parallel branches built from it)::

    wf.tool(fn)  /  @wf.tool  /  @wf.tool(service="Support")   # a tool from a function
    wf.agents(triage, billing)                                  # declare agents (in order)
    wf.mcp_server("docs", url=..., headers=...)                 # declare an MCP server
    wf.agent("triage", agent=triage, prompt="...", output="triage_result")
    wf.guardrail("screen", content="$input.message", checks=["pii"], on_fail="rejected")
    wf.handoff("handle", context={...}, output="reply")         # to the agent in $_handoff_to
    wf.file_search("find", query="$input.question", files=["docs/*.md"], output="hits")
    wf.mcp("lookup", server="docs", tool="search", arguments={...}, output="found")

Each compiles to exactly the definition the YAML form gives.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import re
import types
import typing
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from flowkit.abc import IMPLICIT, Builder
from flowkit.definitions import Duration, Problem, StepDef
from flowkit.dsl import caller, register_method
from flowkit.errors import ValidationError

from ._definitions import (
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
)

__all__ = [
    "Agent",
    "Handoff",
    "build_agent",
    "build_file_search",
    "build_guardrail",
    "build_handoff",
    "build_mcp",
    "tool_from_function",
]

# --- declaring agents in Python -----------------------------------------------------------------


@attrs.frozen
class Handoff:
    """A handoff target with a description: ``Handoff(technical, "For product issues")``."""

    agent: Agent | str
    description: str | None = None


@attrs.frozen
class Agent:
    """An agent declared in Python; compiles to the YAML ``agents`` entry.

    Args:
        id: what steps name (``wf.agent(..., agent=this)`` or ``agent_id``).
        name: a display name.
        model: the model name (default: the provider's configured model).
        instructions: the system message.
        tools: tool ids, or functions declared with ``@wf.tool``.
        handoffs: agents this one may transfer to: :class:`Agent` objects,
            ids, :class:`Handoff` values or ``(agent, description)`` pairs.
        max_turns: the most model calls one step makes.
        output_schema: a JSON Schema the final reply must match (as JSON).
    """

    id: str
    name: str | None = attrs.field(default=None, kw_only=True)
    model: str | None = attrs.field(default=None, kw_only=True)
    instructions: str | None = attrs.field(default=None, kw_only=True)
    tools: Sequence[Any] = attrs.field(default=(), kw_only=True, converter=tuple)
    handoffs: Sequence[Any] = attrs.field(default=(), kw_only=True, converter=tuple)
    max_turns: int = attrs.field(default=10, kw_only=True)
    output_schema: Mapping[str, Any] | None = attrs.field(default=None, kw_only=True, eq=False)

    def targets(self) -> list[Agent]:
        """The :class:`Agent` objects among the handoffs."""
        found = []
        for item in self.handoffs:
            target = item.agent if isinstance(item, Handoff) else item
            if isinstance(item, tuple):
                target = item[0]
            if isinstance(target, Agent):
                found.append(target)
        return found

    @property
    def definition(self) -> AgentDef:
        """The :class:`AgentDef`.

        Raises:
            TypeError: a tool or handoff is neither an id nor something naming one.
            ValueError: a field is invalid.
        """
        return AgentDef(
            id=self.id,
            name=self.name,
            model=self.model,
            instructions=self.instructions,
            tools=tuple(_tool_id(tool) for tool in self.tools),
            handoffs=tuple(_handoff(item) for item in self.handoffs),
            max_turns=self.max_turns,
            output_schema=self.output_schema,
        )


def _tool_id(tool: Any) -> str:
    if isinstance(tool, str):
        return tool
    if isinstance(tool, ToolDef):
        return tool.id
    marked = getattr(tool, "__flowkit_tool__", None)
    if isinstance(marked, str):
        return marked
    name = getattr(tool, "__name__", None)
    if callable(tool) and isinstance(name, str):
        return name
    raise TypeError(f"a tool must be a tool id or a function, got {tool!r}")


def _handoff(item: Any) -> HandoffDef:
    if isinstance(item, Handoff):
        target, description = item.agent, item.description
    elif isinstance(item, tuple) and len(item) == 2:
        target, description = item
    else:
        target, description = item, None
    if isinstance(target, Agent):
        target = target.id
    if not isinstance(target, str):
        raise TypeError(f"a handoff must name an agent (an Agent or its id), got {item!r}")
    return HandoffDef(agent_id=target, description=description)


# --- tools from functions -----------------------------------------------------------------------

_SIMPLE_TYPES: dict[Any, str] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    dict: "object",
    list: "array",
    tuple: "array",
    set: "array",
    frozenset: "array",
}
_SEQUENCES = (list, tuple, set, frozenset, Sequence, typing.Sequence)
_MAPPINGS = (dict, Mapping, typing.Mapping)


def _schema_of(hint: Any, where: str) -> dict[str, Any]:
    """``{"type", "items"?, "enum"?, "description"?}`` for a type hint.

    Raises:
        TypeError: the hint has no JSON Schema counterpart here.
    """
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(hint)
        found = _schema_of(base, where)
        texts = [item for item in extra if isinstance(item, str)]
        if texts:
            found["description"] = texts[0]
        return found
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(options) == 1:
            return _schema_of(options[0], where)
        raise TypeError(f"{where}: use a single type (or X | None), not {hint!r}")
    if origin is typing.Literal:
        values = typing.get_args(hint)
        return {"type": _value_type(values, where), "enum": list(values)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = tuple(member.value for member in hint)
        return {"type": _value_type(values, where), "enum": list(values)}
    if hint in _SIMPLE_TYPES:
        return {"type": _SIMPLE_TYPES[hint]}
    if origin in _SEQUENCES or hint in (Sequence, typing.Sequence):
        args = typing.get_args(hint)
        array: dict[str, Any] = {"type": "array"}
        if args and args[0] is not Ellipsis:
            item = _schema_of(args[0], where)
            if item["type"] in ("array", "object") or "enum" in item:
                raise TypeError(f"{where}: lists of {args[0]!r} are not supported; use list")
            array["items"] = item["type"]
        return array
    if origin in _MAPPINGS or hint in (Mapping, typing.Mapping) or typing.is_typeddict(hint):
        return {"type": "object"}
    raise TypeError(
        f"{where}: cannot describe {hint!r} to the model; use str, int, float, bool, list, "
        "dict, a Literal, an Enum, or X | None"
    )


def _value_type(values: Sequence[Any], where: str) -> str:
    kinds = {_SIMPLE_TYPES.get(type(value)) for value in values}
    if len(kinds) != 1 or None in kinds:
        raise TypeError(f"{where}: enum values must all be strings, or all numbers, or all bools")
    kind = kinds.pop()
    assert kind is not None
    return kind


_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params)\s*:\s*$")
_ENTRY = re.compile(r"^(\s*)\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """The summary (first paragraph) and the ``Args:`` descriptions of a Google-style docstring."""
    if not doc:
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    summary_lines: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary_lines.append(line.strip())
    summary = " ".join(summary_lines) or None
    params: dict[str, str] = {}
    inside = False
    header_indent = 0
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        section = _SECTION.match(line)
        if section:
            inside, header_indent, entry_indent, current = True, len(section.group(1)), None, None
            continue
        if not inside:
            continue
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= header_indent:
            inside = False
            continue
        entry = _ENTRY.match(line)
        if entry and (entry_indent is None or indent == entry_indent):
            entry_indent = indent
            current = entry.group(2)
            params[current] = entry.group(3).strip()
        elif current is not None:
            params[current] = f"{params[current]} {line.strip()}".strip()
    return summary, params


def tool_from_function(
    fn: Callable[..., Any],
    *,
    id: str | None = None,
    description: str | None = None,
    service: str,
    method: str | None = None,
) -> ToolDef:
    """A :class:`ToolDef` whose parameters come from ``fn``'s type hints and docstring.

    A parameter without a default is required; ``X | None`` means type X;
    the description of the tool is the docstring's first paragraph and each
    parameter's the docstring's ``Args:`` entry (or an ``Annotated[X, "..."]``
    string). ``self`` and ``cls`` are skipped, as are ``*args``/``**kwargs``.

    Raises:
        TypeError: a parameter has no type hint, or one that cannot be described.
    """
    name = fn.__name__
    where = f"tool '{id or name}'"
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise TypeError(f"{where}: cannot read the type hints ({exc})") from None
    summary, described = parse_docstring(inspect.getdoc(fn))
    params = []
    for index, parameter in enumerate(inspect.signature(fn).parameters.values()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if index == 0 and parameter.name in ("self", "cls"):
            continue
        if parameter.name not in hints:
            raise TypeError(f"{where}: parameter '{parameter.name}' needs a type hint")
        schema = _schema_of(hints[parameter.name], f"{where}, parameter '{parameter.name}'")
        params.append(
            ToolParam(
                name=parameter.name,
                type=schema["type"],
                required=parameter.default is parameter.empty,
                description=described.get(parameter.name) or schema.get("description"),
                enum=schema.get("enum"),
                items=schema.get("items"),
            )
        )
    return ToolDef(
        id=id or name,
        description=description or summary,
        parameters=tuple(params),
        service=service,
        method=method or name,
    )


# --- the workflow methods -----------------------------------------------------------------------


@attrs.define
class _AIState:
    agents: list[AgentDef] = attrs.Factory(list)
    tools: list[ToolDef] = attrs.Factory(list)
    servers: dict[str, MCPServerDef] = attrs.Factory(dict)


_states: weakref.WeakKeyDictionary[Any, _AIState] = weakref.WeakKeyDictionary()


def _state(graph: Any) -> _AIState:
    workflow = graph.workflow
    state = _states.get(workflow)
    if state is None:
        state = _states[workflow] = _AIState()
    return state


def _fail(graph: Any, message: str, step_id: str | None = None) -> ValidationError:
    workflow = graph.workflow
    return ValidationError(
        [Problem(message, workflow_id=workflow.id, step_id=step_id, location=caller())],
        subject=f"workflow '{workflow.id}'",
    )


def _message(exc: BaseException) -> str:
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _publish(graph: Any, key: str) -> None:
    state = _state(graph)
    value: Any = {
        "agents": tuple(state.agents),
        "tools": tuple(state.tools),
        "mcp_servers": dict(state.servers),
    }[key]
    graph.workflow.extension(key, value)


def _add_agent(graph: Any, agent: Agent | AgentDef) -> AgentDef:
    try:
        definition = agent.definition if isinstance(agent, Agent) else agent
    except (TypeError, ValueError) as exc:
        raise _fail(graph, f"agent '{agent.id}': {_message(exc)}") from None
    state = _state(graph)
    known = next((item for item in state.agents if item.id == definition.id), None)
    if known is None:
        state.agents.append(definition)
        _publish(graph, "agents")
    elif known != definition:
        raise _fail(graph, f"two different agents have the id '{definition.id}'")
    if isinstance(agent, Agent):
        for target in agent.targets():
            _add_agent(graph, target)
    return definition


def _agents(graph: Any, *agents: Agent | AgentDef) -> None:
    """Declare agents (``wf.agents(triage, billing)``), in the order given."""
    for agent in agents:
        _add_agent(graph, agent)


def _tool(
    graph: Any,
    fn: Any = None,
    /,
    *,
    id: str | None = None,
    description: str | None = None,
    service: str | None = None,
    method: str | None = None,
    register: bool | None = None,
) -> Any:
    """Declare a tool: ``@wf.tool``, ``@wf.tool(...)``, ``wf.tool(fn)`` or ``wf.tool(ToolDef)``.

    Without ``service`` the function is registered as a service (the
    workflow's id, the function's name), like ``@wf.step``. With ``service``
    the function only describes the tool, and the named service, registered
    elsewhere, runs it (``register=True`` registers the function under that
    name anyway).
    """
    if isinstance(fn, ToolDef):
        _append_tool(graph, fn)
        return fn

    def declare(function: Any) -> Any:
        workflow = graph.workflow
        owner = service or workflow.id
        name = method or function.__name__
        try:
            definition = tool_from_function(
                function, id=id, description=description, service=owner, method=name
            )
        except (TypeError, ValueError) as exc:
            raise _fail(graph, _message(exc)) from None
        _append_tool(graph, definition)
        if register if register is not None else service is None:
            workflow._add_service(owner, name, function)
        with contextlib.suppress(AttributeError, TypeError):  # a bound method or a builtin
            function.__flowkit_tool__ = definition.id
        return function

    if fn is not None:
        return declare(fn)
    return declare


def _append_tool(graph: Any, definition: ToolDef) -> None:
    state = _state(graph)
    known = next((item for item in state.tools if item.id == definition.id), None)
    if known is not None and known != definition:
        raise _fail(graph, f"two different tools have the id '{definition.id}'")
    if known is None:
        state.tools.append(definition)
        _publish(graph, "tools")


def _mcp_server(
    graph: Any,
    id: str,
    /,
    *,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    transport: str | None = None,
    command: Sequence[str] | str | None = None,
    env: Mapping[str, str] | None = None,
) -> MCPServerDef:
    """Declare an MCP server (an entry of top-level ``mcp_servers``)."""
    options: dict[str, Any] = {"id": id, "url": url, "headers": headers or {}, "env": env or {}}
    if command is not None:
        options["command"] = command
    if transport is not None:
        options["transport"] = transport
    try:
        server = MCPServerDef(**options)
    except (TypeError, ValueError) as exc:
        raise _fail(graph, f"MCP server '{id}': {_message(exc)}") from None
    _state(graph).servers[id] = server
    _publish(graph, "mcp_servers")
    return server


def _step(
    graph: Builder,
    kind: str,
    cls: type[Any],
    step_id: str,
    options: dict[str, Any],
    next: Any,
    on_error: str | None,
) -> StepDef:
    source = graph.caller()
    config = graph.config(cls, step_id, source, **options)
    return graph.add_step(step_id, kind, config, next, on_error, source)


def _agent_id(graph: Any, agent: Agent | AgentDef | str, step_id: str) -> str:
    if isinstance(agent, (Agent, AgentDef)):
        return _add_agent(graph, agent).id
    if isinstance(agent, str):
        return agent
    raise _fail(graph, f"'agent' must be an Agent or an agent id, got {agent!r}", step_id)


def build_agent(
    graph: Builder,
    id: str,
    /,
    *,
    agent: Agent | AgentDef | str,
    prompt: Any = None,
    context: Any = None,
    output: str | None = None,
    max_turns: int | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """An ``agent`` step; an :class:`Agent` given here is declared if it is not yet."""
    options = {
        "agent_id": _agent_id(graph, agent, id),
        "prompt": prompt,
        "context": context,
        "output": output,
        "max_turns": max_turns,
    }
    return _step(graph, "agent", AgentConfig, id, options, next, on_error)


def build_guardrail(
    graph: Builder,
    id: str,
    /,
    *,
    content: Any,
    checks: Sequence[str | Mapping[str, Any] | GuardrailCheck],
    on_fail: str | None = None,
    output: str | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``guardrail`` step; checks are names (``"pii"``), mappings or :class:`GuardrailCheck`."""
    built = []
    for check in checks:
        try:
            if isinstance(check, GuardrailCheck):
                built.append(check)
            elif isinstance(check, str):
                built.append(GuardrailCheck(type=check))
            else:
                built.append(GuardrailCheck(**dict(check)))
        except (TypeError, ValueError) as exc:
            raise _fail(graph, f"checks: {_message(exc)}", id) from None
    options = {"content": content, "checks": tuple(built), "on_fail": on_fail, "output": output}
    return _step(graph, "guardrail", GuardrailConfig, id, options, next, on_error)


def build_handoff(
    graph: Builder,
    id: str,
    /,
    *,
    to: Agent | AgentDef | str | None = None,
    target_agent: Agent | AgentDef | str | None = None,
    context: Any = None,
    reason: str | None = None,
    prompt: str | None = None,
    output: str | None = None,
    max_turns: int | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``handoff`` step to ``to`` (or the gem's ``target_agent``): an agent or a reference.

    Without either, the step hands over to the agent ctx ``_handoff_to`` names.
    """
    options = {
        "to": None if to is None else _agent_id(graph, to, id),
        "target_agent": None if target_agent is None else _agent_id(graph, target_agent, id),
        "context": context,
        "reason": reason,
        "prompt": prompt,
        "output": output,
        "max_turns": max_turns,
    }
    return _step(graph, "handoff", HandoffConfig, id, options, next, on_error)


def build_file_search(
    graph: Builder,
    id: str,
    /,
    *,
    query: Any,
    files: Any,
    max_results: int = 5,
    output: str | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """A ``file_search`` step over ``files`` (paths and globs, or a reference)."""
    if isinstance(files, (list, tuple)):
        files = tuple(files)
    options = {"query": query, "files": files, "max_results": max_results, "output": output}
    return _step(graph, "file_search", FileSearchConfig, id, options, next, on_error)


def build_mcp(
    graph: Builder,
    id: str,
    /,
    *,
    server: MCPServerDef | str,
    tool: str,
    arguments: Any = None,
    output: str | None = None,
    timeout: Duration | None = None,
    next: Any = IMPLICIT,
    on_error: str | None = None,
) -> StepDef:
    """An ``mcp`` step calling ``tool`` on MCP server ``server`` (an id or a declared server)."""
    if isinstance(server, MCPServerDef):
        state = _state(graph)
        if state.servers.get(server.id) != server:
            state.servers[server.id] = server
            _publish(graph, "mcp_servers")
        server = server.id
    options = {
        "server": server,
        "tool": tool,
        "arguments": arguments,
        "output": output,
        "timeout": timeout,
    }
    return _step(graph, "mcp", MCPConfig, id, options, next, on_error)


# Workflow methods that are not steps; each AI step type brings its builder (StepType.build).
_METHODS: dict[str, Callable[..., Any]] = {
    "agents": _agents,
    "tool": _tool,
    "mcp_server": _mcp_server,
}
for _name, _method in _METHODS.items():
    register_method(_name, _method)

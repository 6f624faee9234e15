"""Typed definitions of the AI extension (SPEC §13).

Top-level keys ``agents``, ``tools`` and ``mcp_servers`` become frozen attrs
classes stored in :attr:`flowkit.WorkflowDef.extensions`; the step types
``agent``, ``guardrail``, ``handoff``, ``file_search`` and ``mcp`` get one
config class each. Everything here round-trips through YAML and plain dicts.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from typing import Annotated, Any

import attrs

from flowkit.definitions import (
    EXPR,
    OUTPUT,
    SECONDS,
    converter,
    duration,
    error_messages,
    target,
)
from flowkit.expressions import pattern_error
from flowkit.frozen import FrozenDict, freeze

__all__ = [
    "PARAM_TYPES",
    "AgentConfig",
    "AgentDef",
    "FileSearchConfig",
    "GuardrailCheck",
    "GuardrailConfig",
    "HandoffConfig",
    "HandoffDef",
    "MCPConfig",
    "MCPServerDef",
    "ToolDef",
    "ToolParam",
    "interpolate_env",
]

PARAM_TYPES = ("string", "integer", "number", "boolean", "array", "object")
GUARDRAIL_CHECKS = ("prompt_injection", "pii", "regex", "length", "moderation")
PII_KINDS = ("email", "phone", "card", "national_id")

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{attribute.name}' must be a non-empty string, got {value!r}")


def _opt_non_empty(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _non_empty(inst, attribute, value)


def _str_mapping(value: Any) -> FrozenDict[str, str]:
    if value is None:
        return FrozenDict()
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping of names to strings, got {value!r}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if (
            not isinstance(key, str)
            or not isinstance(item, (str, int, float))
            or isinstance(item, bool)
        ):
            raise TypeError(f"expected a mapping of names to strings, got {key!r}: {item!r}")
        out[key] = str(item)
    return FrozenDict(out)


def _command(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(shlex.split(value))
    if isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
        return tuple(value)
    raise TypeError(f"'command' must be a list of strings (or one string), got {value!r}")


def interpolate_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${NAME}`` with the environment variable ``NAME``.

    Raises:
        KeyError: a named variable is not set (the message names it).
    """
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise KeyError(f"environment variable '{name}' is not set")
        return env[name]

    return _ENV.sub(sub, text)


@attrs.frozen(kw_only=True)
class MCPServerDef:
    """An MCP server a workflow talks to (one entry of top-level ``mcp_servers``).

    YAML::

        mcp_servers:
          docs:                       # the id steps name in `server:`
            url: http://localhost:8000/mcp
            headers: {Authorization: "Bearer ${DOCS_TOKEN}"}
          files:
            command: [python, -m, my_mcp_server]
            env: {ROOT: /srv/files}

    Attributes:
        id: the key under ``mcp_servers``.
        transport: ``http`` (streamable HTTP at ``url``) or ``stdio`` (a
            subprocess started from ``command``); inferred when omitted.
        url: the streamable-HTTP endpoint (``http`` transport).
        headers: HTTP headers; ``${ENV}`` is interpolated when the server is
            used (see :meth:`resolved_headers`), never when it is loaded.
        command: the program and its arguments (``stdio`` transport).
        env: extra environment variables for the subprocess, with ``${ENV}``
            interpolation at use time.
    """

    id: str = attrs.field(validator=_non_empty)
    url: str | None = attrs.field(default=None, validator=_opt_non_empty)
    headers: FrozenDict[str, str] = attrs.field(factory=FrozenDict, converter=_str_mapping)
    command: tuple[str, ...] = attrs.field(default=(), converter=_command)
    env: FrozenDict[str, str] = attrs.field(factory=FrozenDict, converter=_str_mapping)
    transport: str = attrs.field()

    @transport.default
    def _default_transport(self) -> str:
        return "stdio" if self.command and not self.url else "http"

    @transport.validator
    def _check_transport(self, _attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in ("http", "stdio"):
            raise ValueError(f"'transport' must be 'http' or 'stdio', got {value!r}")

    def __attrs_post_init__(self) -> None:
        if not self.url and not self.command:
            raise ValueError("needs a 'url' (streamable HTTP) or a 'command' (stdio)")
        if self.transport == "http" and not self.url:
            raise ValueError("the http transport needs a 'url'")
        if self.transport == "stdio" and not self.command:
            raise ValueError("the stdio transport needs a 'command'")

    def resolved_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers with ``${ENV}`` replaced.

        Raises:
            KeyError: a referenced environment variable is not set.
        """
        return {key: interpolate_env(value, environ) for key, value in self.headers.items()}

    def resolved_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The subprocess environment additions with ``${ENV}`` replaced.

        Raises:
            KeyError: a referenced environment variable is not set.
        """
        return {key: interpolate_env(value, environ) for key, value in self.env.items()}


@attrs.frozen(kw_only=True)
class MCPConfig:
    """``mcp``: calls ``tool`` on the MCP server ``server`` (an ``mcp_servers`` id).

    ``arguments`` may hold ``$references`` (resolved when the step runs); the
    tool's result is stored under ``output``; ``timeout`` bounds the call.
    """

    server: str = attrs.field(validator=_non_empty)
    tool: str = attrs.field(validator=_non_empty)
    arguments: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    output: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={OUTPUT: True}
    )
    timeout: Annotated[float | None, SECONDS] = duration(default=None, positive=True)


# --- agents and tools -------------------------------------------------------------------------


def _param_type(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in PARAM_TYPES:
        raise ValueError(f"'type' must be one of {', '.join(PARAM_TYPES)}, got {value!r}")


def _opt_str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"'{attribute.name}' must be a string, got {value!r}")


def _positive_int(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"'{attribute.name}' must be a positive integer, got {value!r}")


def _opt_positive_int(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive_int(inst, attribute, value)


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _opt_frozen_mapping(value: Any) -> FrozenDict[str, Any] | None:
    if value is None:
        return None
    frozen = freeze(value)
    if not isinstance(frozen, FrozenDict):
        raise TypeError(f"expected a mapping (a JSON Schema), got {value!r}")
    return frozen


def _opt_tuple(value: Any) -> tuple[Any, ...] | None:
    if value is None:
        return None
    frozen = freeze(value)
    if not isinstance(frozen, tuple):
        raise TypeError(f"expected a list, got {value!r}")
    return frozen


@attrs.frozen(kw_only=True)
class ToolParam:
    """One parameter of a tool, as the model sees it.

    Attributes:
        name: the argument name passed to the service method.
        type: ``string``, ``integer``, ``number``, ``boolean``, ``array`` or ``object``.
        required: whether the model must pass it (default true, as in the gem).
        description: what it means, shown to the model.
        enum: the allowed values, when limited.
        items: the element type of an ``array``.
    """

    name: str = attrs.field(validator=_non_empty)
    type: str = attrs.field(default="string", validator=_param_type)
    required: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    description: str | None = attrs.field(default=None, validator=_opt_str)
    enum: tuple[Any, ...] | None = attrs.field(default=None, converter=_opt_tuple)
    items: str | None = attrs.field(default=None, validator=attrs.validators.optional(_param_type))

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of this parameter."""
        out: dict[str, Any] = {"type": self.type}
        if self.description:
            out["description"] = self.description
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.type == "array":
            out["items"] = {"type": self.items} if self.items else {}
        return out


def _params(value: Any) -> tuple[ToolParam, ...]:
    return tuple(value or ())


@attrs.frozen(kw_only=True)
class ToolDef:
    """A tool agents may call (one entry of top-level ``tools``).

    The model calls it by ``id``; flowkit runs ``service.method`` from the
    service registry with the model's arguments as keywords.
    """

    id: str = attrs.field(validator=_non_empty)
    description: str | None = attrs.field(default=None, validator=_opt_str)
    parameters: tuple[ToolParam, ...] = attrs.field(default=(), converter=_params)
    service: str | None = attrs.field(default=None, validator=_opt_non_empty)
    method: str | None = attrs.field(default=None, validator=_opt_non_empty)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the tool's arguments (an object)."""
        return {
            "type": "object",
            "properties": {param.name: param.schema() for param in self.parameters},
            "required": [param.name for param in self.parameters if param.required],
        }


@attrs.frozen(kw_only=True)
class HandoffDef:
    """An agent another agent may transfer the conversation to."""

    agent_id: str = attrs.field(validator=_non_empty)
    description: str | None = attrs.field(default=None, validator=_opt_str)


def _handoffs(value: Any) -> tuple[HandoffDef, ...]:
    return tuple(value or ())


@attrs.frozen(kw_only=True)
class AgentDef:
    """An agent (one entry of top-level ``agents``).

    Attributes:
        id: what steps name in ``agent_id``.
        name: a display name.
        model: the model name sent to the provider (default: the configured one).
        instructions: the system message.
        tools: ids of entries of top-level ``tools``.
        handoffs: agents this one may transfer to; each becomes a
            ``transfer_to_<agent_id>`` tool.
        max_turns: the most model calls one step makes (default 10).
        output_schema: when set, the final reply must be JSON valid against it.
    """

    id: str = attrs.field(validator=_non_empty)
    name: str | None = attrs.field(default=None, validator=_opt_str)
    model: str | None = attrs.field(default=None, validator=_opt_non_empty)
    instructions: str | None = attrs.field(default=None, validator=_opt_str)
    tools: tuple[str, ...] = attrs.field(default=(), converter=_names)
    handoffs: tuple[HandoffDef, ...] = attrs.field(default=(), converter=_handoffs)
    max_turns: int = attrs.field(default=10, validator=_positive_int)
    output_schema: FrozenDict[str, Any] | None = attrs.field(
        default=None, converter=_opt_frozen_mapping
    )

    @property
    def title(self) -> str:
        """The display name: ``name`` if set, else ``id``."""
        return self.name or self.id


# --- step configs -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AgentConfig:
    """``agent``: runs agent ``agent_id`` on ``prompt`` until it replies.

    ``context`` (any JSON, references resolved) is appended to the prompt;
    the reply is stored under ``output``; ``max_turns`` overrides the agent's.
    """

    agent_id: str = attrs.field(validator=_non_empty)
    prompt: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    context: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    output: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={OUTPUT: True}
    )
    max_turns: int | None = attrs.field(default=None, validator=_opt_positive_int)

    def __attrs_post_init__(self) -> None:
        if self.prompt is None and self.context is None:
            raise ValueError("an agent step needs a 'prompt' (or a 'context')")


def _check_type(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in GUARDRAIL_CHECKS:
        raise ValueError(f"'type' must be one of {', '.join(GUARDRAIL_CHECKS)}, got {value!r}")


def _pii_kinds(value: Any) -> tuple[str, ...]:
    kinds = _names(value)
    for kind in kinds:
        if kind not in PII_KINDS:
            raise ValueError(f"'detect' must list some of {', '.join(PII_KINDS)}, got {kind!r}")
    return kinds


def _opt_non_negative_int(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{attribute.name}' must be a non-negative integer, got {value!r}")


@attrs.frozen(kw_only=True)
class GuardrailCheck:
    """One check of a ``guardrail`` step.

    Attributes:
        type: ``prompt_injection``, ``pii``, ``regex``, ``length`` or ``moderation``.
        pattern: ``regex``: the regular expression (searched).
        block_on_match: ``regex``: fail when it matches (default), or when it does not.
        min: ``length``: the fewest characters allowed.
        max: ``length``: the most characters allowed.
        detect: ``pii``: which kinds to look for (default all: email, phone,
            card, national_id).
        fail_open: ``moderation``: pass when the moderation call fails
            (default false: the check fails closed).
    """

    type: str = attrs.field(validator=_check_type)
    pattern: str | None = attrs.field(default=None, validator=_opt_non_empty)
    block_on_match: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    min: int | None = attrs.field(default=None, validator=_opt_non_negative_int)
    max: int | None = attrs.field(default=None, validator=_opt_non_negative_int)
    detect: tuple[str, ...] = attrs.field(default=(), converter=_pii_kinds)
    fail_open: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.type == "regex":
            if self.pattern is None:
                raise ValueError("a regex check needs a 'pattern'")
            error = pattern_error(self.pattern)
            if error is not None:
                raise ValueError(f"'pattern' is not a valid regular expression: {error}")
        elif self.pattern is not None:
            raise ValueError(f"'pattern' only applies to regex checks, not {self.type}")
        if self.type == "length" and self.min is None and self.max is None:
            raise ValueError("a length check needs 'min', 'max' or both")
        if self.type != "length" and (self.min is not None or self.max is not None):
            raise ValueError(f"'min' and 'max' only apply to length checks, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        if self.detect and self.type != "pii":
            raise ValueError(f"'detect' only applies to pii checks, not {self.type}")


def _checks(value: Any) -> tuple[GuardrailCheck, ...]:
    return tuple(value or ())


@attrs.frozen(kw_only=True)
class GuardrailConfig:
    """``guardrail``: runs ``checks`` on ``content``; the first failure goes to
    ``on_fail`` (with ``_guardrail_failure = {check, reason}``) or fails the step."""

    content: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    checks: tuple[GuardrailCheck, ...] = attrs.field(converter=_checks)
    on_fail: str | None = target()
    output: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={OUTPUT: True}
    )


@attrs.frozen(kw_only=True)
class HandoffConfig:
    """``handoff``: runs agent ``to`` (or the gem's ``target_agent``; references
    allowed; without either, the agent ctx ``_handoff_to`` names, as in the gem)
    with ``context`` and ``reason``, and stores its reply in ``output``."""

    to: str | None = attrs.field(default=None, validator=_opt_non_empty, metadata={EXPR: True})
    target_agent: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={EXPR: True}
    )
    context: Any = attrs.field(default=None, converter=freeze, metadata={EXPR: True})
    reason: str | None = attrs.field(default=None, validator=_opt_str, metadata={EXPR: True})
    prompt: str | None = attrs.field(default=None, validator=_opt_str, metadata={EXPR: True})
    output: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={OUTPUT: True}
    )
    max_turns: int | None = attrs.field(default=None, validator=_opt_positive_int)

    def __attrs_post_init__(self) -> None:
        if self.to is not None and self.target_agent is not None:
            raise ValueError("a handoff takes 'to' or 'target_agent', not both")

    @property
    def agent(self) -> str:
        """The target: ``to``, ``target_agent``, or else ``"$_handoff_to"`` (may be a reference)."""
        return self.to or self.target_agent or "$_handoff_to"

    @property
    def target_key(self) -> str:
        """The key the target comes from: ``to``, ``target_agent`` or ``_handoff_to``."""
        if self.to is not None:
            return "to"
        return "target_agent" if self.target_agent is not None else "_handoff_to"


def _files(value: Any) -> Any:
    if isinstance(value, str) and not value.startswith("$"):
        return (value,)
    return freeze(value)


@attrs.frozen(kw_only=True)
class FileSearchConfig:
    """``file_search``: ranked full-text search for ``query`` over ``files``.

    ``files`` lists paths and globs (or is a reference to such a list), relative
    to the step's root directory: the one given to
    ``flowkit.ai.configure_file_search(root=...)``, else the workflow file's
    directory, else the working directory. Absolute paths, ``~``, ``..`` and
    symbolic links out of the root are refused when the step runs.
    """

    query: Any = attrs.field(converter=freeze, metadata={EXPR: True})
    files: Any = attrs.field(converter=_files, metadata={EXPR: True})
    max_results: int = attrs.field(default=5, validator=_positive_int)
    output: str | None = attrs.field(
        default=None, validator=_opt_non_empty, metadata={OUTPUT: True}
    )


# --- top-level keys: structuring, unstructuring, checks ---------------------------------------


def _structure_list(raw: Any, cls: type[Any], key: str) -> tuple[Any, ...]:
    """A YAML list of mappings as a tuple of ``cls`` (errors name the entry)."""
    from cattrs.errors import ClassValidationError

    if isinstance(raw, tuple) and all(isinstance(item, cls) for item in raw):
        return raw
    if not isinstance(raw, (list, tuple)):
        raise TypeError(f"expected a list of {key}, got {type(raw).__name__}")
    items = []
    problems = []
    for index, item in enumerate(raw):
        if isinstance(item, cls):
            items.append(item)
            continue
        label = _label(item, index)
        if not isinstance(item, Mapping):
            problems.append(f"{label}: expected a mapping, got {item!r}")
            continue
        try:
            items.append(converter.structure(dict(item), cls))
        except ClassValidationError as exc:
            problems.extend(f"{label}: {message}" for message in error_messages(exc))
        except (ValueError, TypeError) as exc:
            problems.append(f"{label}: {_text(exc)}")
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(items)


def _label(item: Any, index: int) -> str:
    ident = item.get("id") if isinstance(item, Mapping) else None
    return f"[{index}] '{ident}'" if isinstance(ident, str) else f"[{index}]"


def _text(exc: BaseException) -> str:
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def structure_agents(raw: Any) -> tuple[AgentDef, ...]:
    """Top-level ``agents`` (a list of mappings) as :class:`AgentDef` values."""
    return _structure_list(raw, AgentDef, "agents")


def structure_tools(raw: Any) -> tuple[ToolDef, ...]:
    """Top-level ``tools`` (a list of mappings) as :class:`ToolDef` values."""
    return _structure_list(raw, ToolDef, "tools")


def structure_mcp_servers(raw: Any) -> FrozenDict[str, MCPServerDef]:
    """Top-level ``mcp_servers`` (id → settings) as :class:`MCPServerDef` values."""
    from cattrs.errors import ClassValidationError

    if isinstance(raw, FrozenDict) and all(isinstance(v, MCPServerDef) for v in raw.values()):
        return raw
    if not isinstance(raw, Mapping):
        raise TypeError(f"expected a mapping of server id to its settings, got {raw!r}")
    servers: dict[str, MCPServerDef] = {}
    problems = []
    for server_id, spec in raw.items():
        if isinstance(spec, MCPServerDef):
            servers[server_id] = spec
            continue
        if not isinstance(spec, Mapping):
            problems.append(f"'{server_id}': expected a mapping (url or command), got {spec!r}")
            continue
        spec = dict(spec)
        if isinstance(spec.get("command"), str):
            spec["command"] = list(_command(spec["command"]))
        try:
            servers[server_id] = converter.structure({"id": server_id, **spec}, MCPServerDef)
        except ClassValidationError as exc:
            problems.extend(f"'{server_id}': {message}" for message in error_messages(exc))
        except (ValueError, TypeError) as exc:
            problems.append(f"'{server_id}': {_text(exc)}")
    if problems:
        raise ValueError("; ".join(problems))
    return FrozenDict(servers)


def unstructure_list(items: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Plain data for ``agents`` or ``tools`` (defaults left out)."""

    return [converter.unstructure(item, type(item)) for item in items]


def unstructure_mcp_servers(servers: Mapping[str, MCPServerDef]) -> dict[str, Any]:
    """Plain data for ``mcp_servers`` (id → settings, defaults left out)."""

    out: dict[str, Any] = {}
    for server_id, server in servers.items():
        data = converter.unstructure(server, MCPServerDef)
        data.pop("id", None)
        data["transport"] = server.transport  # explicit: its default depends on other keys
        out[server_id] = data
    return out


def agents_of(wf: Any) -> dict[str, AgentDef]:
    """The agents of a workflow definition, by id (the first of duplicates wins)."""
    found: dict[str, AgentDef] = {}
    for agent in wf.extensions.get("agents", ()):
        found.setdefault(agent.id, agent)
    return found


def tools_of(wf: Any) -> dict[str, ToolDef]:
    """The tools of a workflow definition, by id (the first of duplicates wins)."""
    found: dict[str, ToolDef] = {}
    for tool in wf.extensions.get("tools", ()):
        found.setdefault(tool.id, tool)
    return found


def mcp_servers_of(wf: Any) -> Mapping[str, MCPServerDef]:
    """The MCP servers of a workflow definition, by id."""
    servers: Mapping[str, MCPServerDef] = wf.extensions.get("mcp_servers", FrozenDict())
    return servers


def check_workflow(wf: Any) -> list[str]:
    """Problems with the AI parts of a workflow: agents, tools, servers and the steps using them.

    Registered as the check of each AI top-level key; it runs once per
    workflow (for the first of ``agents``, ``tools``, ``mcp_servers`` present).
    """
    from flowkit.definitions import Problem, all_steps, did_you_mean

    problems: list[str] = []

    def report(message: str, step: Any = None, path: str | None = None) -> None:
        location = step.source if step is not None else wf.source
        problems.append(Problem(message, workflow_id=wf.id, step_id=path, location=location))

    agents: tuple[AgentDef, ...] = wf.extensions.get("agents", ())
    tools: tuple[ToolDef, ...] = wf.extensions.get("tools", ())
    servers = mcp_servers_of(wf)
    agent_ids = [agent.id for agent in agents]
    tool_ids = [tool.id for tool in tools]
    for kind, ids in (("agent", agent_ids), ("tool", tool_ids)):
        for ident in sorted({i for i in ids if ids.count(i) > 1}):
            report(f"duplicate {kind} id '{ident}' ({kind} ids must be unique)")
    for tool in tools:
        missing = [key for key in ("service", "method") if getattr(tool, key) is None]
        if missing:
            report(
                f"tool '{tool.id}' needs {' and '.join(repr(k) for k in missing)}: "
                "the service method that runs it"
            )
        names = [param.name for param in tool.parameters]
        for name in sorted({n for n in names if names.count(n) > 1}):
            report(f"tool '{tool.id}': duplicate parameter '{name}'")
    for agent in agents:
        for tool_id in agent.tools:
            if tool_id not in tool_ids:
                hint = did_you_mean(tool_id, tool_ids)
                report(f"agent '{agent.id}': tools: no tool '{tool_id}'{hint}")
        for handoff in agent.handoffs:
            if handoff.agent_id not in agent_ids:
                hint = did_you_mean(handoff.agent_id, agent_ids)
                report(f"agent '{agent.id}': handoffs: no agent '{handoff.agent_id}'{hint}")
        if agent.output_schema is not None:
            message = _schema_problem(agent.output_schema)
            if message:
                report(f"agent '{agent.id}': output_schema is not a valid JSON Schema: {message}")
    for path, step in all_steps(wf.steps):
        config = step.config
        if isinstance(config, AgentConfig) and config.agent_id not in agent_ids:
            hint = did_you_mean(config.agent_id, agent_ids) or _declared(agent_ids, "agents")
            report(f"agent_id: no agent '{config.agent_id}'{hint}", step, path)
        elif isinstance(config, HandoffConfig):
            target = config.agent
            if not target.startswith("$") and target not in agent_ids:
                hint = did_you_mean(target, agent_ids) or _declared(agent_ids, "agents")
                report(f"{config.target_key}: no agent '{target}'{hint}", step, path)
        elif isinstance(config, MCPConfig) and config.server not in servers:
            hint = did_you_mean(config.server, list(servers)) or _declared(
                list(servers), "mcp_servers"
            )
            report(f"server: no MCP server '{config.server}'{hint}", step, path)
    return problems


def _declared(ids: list[str], key: str) -> str:
    if ids:
        return f" (declared: {', '.join(ids)})"
    return f" (the workflow declares no top-level '{key}')"


def _schema_problem(schema: Mapping[str, Any]) -> str | None:
    import jsonschema

    from flowkit.frozen import thaw

    plain = thaw(schema)
    try:
        jsonschema.validators.validator_for(plain).check_schema(plain)
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    return None

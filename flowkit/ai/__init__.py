"""flowkit's AI extension (SPEC §13): agents, tools, guardrails, handoffs, file search, MCP.

Installed with the ``ai`` extra. The core never imports this package: it is
loaded through the ``flowkit.steps`` entry point the first time a workflow
uses one of its step types or top-level keys, or by ``import flowkit.ai``.

Public names::

    flowkit.ai.Agent              # an agent declared in Python (wf.agents(...), wf.agent(...))
    flowkit.ai.configure(...)     # the process-wide model provider / OpenAI-compatible settings
    flowkit.ai.configure_file_search(root=..., max_file_bytes=..., max_files=...)
                                  # where file_search steps may read, and how much
    flowkit.ai.OpenAIProvider     # chat completions over HTTP (any compatible server)
    flowkit.ai.ScriptedProvider   # replies from a script, for tests
    flowkit.ai.use_provider(...)  # a provider for one engine, or for a block of code
    flowkit.ai.tool_call / reply  # build scripted replies
"""

from __future__ import annotations

import threading

from flowkit.abc import Extension, register_check, register_extension, register_step_type

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
    agents_of,
    mcp_servers_of,
    tools_of,
)
from ._dsl import Agent, Handoff, tool_from_function
from ._file_search import configure_file_search
from ._providers import (
    ModelReply,
    Moderation,
    OpenAIProvider,
    Provider,
    ProviderError,
    ScriptedCall,
    ScriptedProvider,
    ToolCall,
    Usage,
    configure,
    provider_for,
    read_log,
    reply,
    set_provider,
    tool_call,
    use_provider,
)

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentDef",
    "FileSearchConfig",
    "GuardrailCheck",
    "GuardrailConfig",
    "Handoff",
    "HandoffConfig",
    "HandoffDef",
    "MCPConfig",
    "MCPServerDef",
    "ModelReply",
    "Moderation",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "ScriptedCall",
    "ScriptedProvider",
    "ToolCall",
    "ToolDef",
    "ToolParam",
    "Usage",
    "agents_of",
    "configure",
    "configure_file_search",
    "install",
    "mcp_servers_of",
    "provider_for",
    "read_log",
    "reply",
    "set_provider",
    "tool_call",
    "tool_from_function",
    "tools_of",
    "use_provider",
]

_installed = False
_lock = threading.RLock()


def install() -> None:
    """Register the AI step types (with their DSL builders), top-level keys and checks.

    Called by the ``flowkit.steps`` entry point and on ``import flowkit.ai``;
    calling it again does nothing.
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        from . import _definitions as d

        register_check(d.check_workflow)  # every workflow: also those with AI steps only

        register_extension(
            Extension(
                key="agents",
                structure=d.structure_agents,
                unstructure=d.unstructure_list,
            )
        )
        register_extension(
            Extension(
                key="tools",
                structure=d.structure_tools,
                unstructure=d.unstructure_list,
            )
        )
        register_extension(
            Extension(
                key="mcp_servers",
                structure=d.structure_mcp_servers,
                unstructure=d.unstructure_mcp_servers,
            )
        )
        from ._agent import AgentStep
        from ._file_search import FileSearchStep
        from ._guardrail import GuardrailStep
        from ._handoff import HandoffStep
        from ._mcp import MCPStep  # it imports the MCP SDK only when an mcp step runs

        for step in (AgentStep(), GuardrailStep(), HandoffStep(), FileSearchStep(), MCPStep()):
            register_step_type(step)


install()

"""The ``flowkit`` command line (SPEC §11): one module per group of commands.

- :mod:`~flowkit.cli.app` — the group, shared options, helpers for commands;
- :mod:`~flowkit.cli.definitions` — ``validate``, ``graph``, ``export``;
- :mod:`~flowkit.cli.running` — ``run``, ``resume``, ``recover``, ``wake``, ``worker``;
- :mod:`~flowkit.cli.inspecting` — ``list``, ``show``;
- :mod:`~flowkit.cli.db` — ``db upgrade``, ``db version`` (the SQL store's tables);
- :mod:`~flowkit.cli.operations` — ``schedule add|list|remove``, ``prune``;
- :mod:`~flowkit.cli.dashboard` — ``dashboard`` (the web dashboard, extra ``dashboard``);
- ``mcp`` — loaded from :mod:`flowkit.ai` only when it runs.
"""

from . import (  # noqa: F401  (they add their commands)
    dashboard,
    db,
    definitions,
    inspecting,
    operations,
    running,
)
from .app import (
    LazyCommand,
    echo_json,
    handles_errors,
    import_option,
    json_option,
    load_target,
    main,
    open_engine,
    store_option,
)

main.add_command(
    LazyCommand("mcp", "flowkit.ai._cli:mcp", help="Serve workflows to MCP clients (ai extra).")
)

__all__ = [
    "LazyCommand",
    "echo_json",
    "handles_errors",
    "import_option",
    "json_option",
    "load_target",
    "main",
    "open_engine",
    "store_option",
]

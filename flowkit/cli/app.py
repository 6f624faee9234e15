"""The ``flowkit`` command group, its shared options, and the helpers commands use.

Commands live in the modules next to this one, one per group of commands;
extensions add theirs with these same helpers (``flowkit mcp`` in
:mod:`flowkit.ai`): ``handles_errors``, ``store_option``, ``import_option``,
``json_option``, ``log_options``, ``open_engine``, ``load_target`` and ``echo_json``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from .._version import __version__
from ..adapters import connect
from ..config import settings
from ..definitions import WorkflowDef, parse
from ..definitions.workflows import import_module, import_workflows
from ..engine import Engine
from ..errors import ConfigError, FlowkitError, NotFoundError, ValidationError
from ..records import Status
from ..telemetry import LOG_LEVELS, configure_logging

__all__ = [
    "LazyCommand",
    "console",
    "echo_json",
    "fail",
    "handles_errors",
    "import_modules",
    "import_option",
    "json_option",
    "load_target",
    "log_format_option",
    "log_level_option",
    "log_options",
    "main",
    "open_engine",
    "open_store",
    "status_text",
    "store_option",
]

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> None:
    """Print one error line and exit with status 1."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn flowkit errors into one clear line on stderr and exit status 1."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ValidationError as exc:
            for problem in exc.problems:
                click.secho(f"error: {problem}", fg="red", err=True)
            sys.exit(1)
        except (FlowkitError, TimeoutError) as exc:
            fail(str(exc))
            raise  # unreachable: _fail exits

    return run


@click.group()
@click.version_option(version=__version__, prog_name="flowkit")
def main() -> None:
    """flowkit: durable workflows in YAML or plain Python."""


# --- shared options -------------------------------------------------------------------------------

store_option = click.option(
    "--store", "store_url", metavar="URL", help="Store URL (default: from configuration)."
)
import_option = click.option(
    "--import",
    "-m",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="Import a module first (it registers services and workflows). Repeatable.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Logs on stderr as text, or as one JSON object per line.",
)


def log_level_option(default: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """``--log-level``: the least severe flowkit log record printed."""
    return click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default=default,
        show_default=True,
        help="The least severe flowkit log record printed.",
    )


def log_options(default_level: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """``--log-format text|json`` and ``--log-level``, applied before the command runs: how
    a long-running command prints flowkit's logs (each step's start, finish, retry and
    failure) on stderr."""

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        @log_format_option
        @log_level_option(default_level)
        @wraps(command)
        def run(*args: Any, log_format: str, log_level: str, **kwargs: Any) -> R:
            configure_logging(log_format, log_level)
            return command(*args, **kwargs)

        return run

    return decorate


def import_modules(modules: Sequence[str]) -> None:
    """Import the configured ``imports`` and ``modules`` from the working directory:
    they register their services, and the workflows they define are registered."""
    _from_working_directory()
    import_workflows([*settings().imports, *modules])


def _from_working_directory() -> None:
    """Let ``-m`` and ``MODULE:ATTR`` name modules of the working directory, as ``python -m``."""
    here = str(Path.cwd())
    if here not in sys.path:
        sys.path.insert(0, here)


@contextmanager
def open_engine(store_url: str | None, imports: Sequence[str] = ()) -> Iterator[Engine]:
    """An engine on the store (``--store`` or the configured one), after ``-m`` imports."""
    import_modules(imports)
    engine = Engine(store=store_url)
    try:
        yield engine
    finally:
        engine.close()


def open_store(store_url: str | None) -> Any:
    """The store ``--store`` names, or the configured one."""
    config = settings()
    return connect(store_url or config.store, **dict(config.store_options))


def echo_json(data: Any) -> None:
    """Print data as indented JSON (the ``--json`` output of every command)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def load_target(target: str) -> Any:
    """A workflow from a YAML file or from ``module:attr``.

    Raises:
        NotFoundError: the file does not exist.
        ConfigError: the module cannot be imported, or the attribute is not a workflow.
    """
    path = Path(target)
    if path.suffix in (".yml", ".yaml", ".json") or path.is_file():
        if not path.is_file():
            raise NotFoundError(f"workflow file not found: {target}")
        return parse(path)
    module_name, sep, attr = target.partition(":")
    if not sep or not attr:
        raise ConfigError(
            f"'{target}' is neither a YAML file nor MODULE:ATTR (e.g. shop.flows:orders)"
        )
    _from_working_directory()
    module = import_module(module_name)
    try:
        workflow = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module '{module_name}' has no attribute '{attr}'") from None
    if not isinstance(getattr(workflow, "definition", workflow), WorkflowDef | dict):
        raise ConfigError(
            f"'{target}' is not a workflow (a flowkit.Workflow, WorkflowDef or dict), "
            f"got {type(workflow).__name__}"
        )
    return workflow


def console() -> Any:
    """A rich console for stdout. Into a pipe or a file, it is as wide as the terminal
    the command runs in (``$COLUMNS``, else the terminal of stderr or stdin), and
    when there is none, lines are not cut, so ids and values come out whole."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=_terminal_width() or _UNCUT)
    return console


_UNCUT = 10_000  # columns: wider than any line flowkit prints


def _terminal_width() -> int | None:
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for stream in (sys.stderr, sys.stdin):
        try:
            if stream.isatty():
                return os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # closed, or not a real file
            continue
    return None


def status_text(status: Status) -> str:
    """A status in its colour, as rich markup."""
    styles = {"completed": "green", "failed": "red", "cancelled": "red", "halted": "yellow"}
    style = styles.get(status.value, "cyan")
    return f"[{style}]{status.value}[/]"


class LazyCommand(click.Command):
    """A command imported only when it runs, so ``flowkit --help`` never imports it.

    ``flowkit mcp`` lives in the optional ``flowkit.ai`` package: listing it
    shows this stub's help; running it loads the real command from
    ``module:attr`` and hands it the arguments.
    """

    def __init__(self, name: str, target: str, help: str) -> None:
        super().__init__(name, help=help)
        self.target = target

    def load(self) -> click.Command:
        """The real command (exits with one clear line when the extra is missing)."""
        module_name, _, attr = self.target.partition(":")
        try:
            command: click.Command = getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            fail(
                f"'flowkit {self.name}' needs the ai extra ({exc}): pip install "
                "'flowkit-workflows[ai]' (or pip install -e '.[ai]' from the source tree)"
            )
            raise  # unreachable: _fail exits
        return command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self.load().make_context(info_name, args, parent=parent, **extra)

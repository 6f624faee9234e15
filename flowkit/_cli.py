"""The ``flowkit`` command line (SPEC §11)."""

from __future__ import annotations

import importlib
import json
import shlex
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from ._definitions import WorkflowDef
from ._graph import render
from ._parse import parse
from ._results import Result
from ._validate import check
from .errors import ConfigError, FlowkitError, NotFoundError, ValidationError
from .records import Entry, Execution, Status

P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str) -> None:
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
            _fail(str(exc))
            raise  # unreachable: _fail exits

    return run


def _version() -> str:
    from ._version import __version__

    return __version__


@click.group()
@click.version_option(version=_version(), prog_name="flowkit")
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


def _import_modules(modules: Sequence[str]) -> None:
    from ._config import settings

    sys.path.insert(0, str(Path.cwd()))
    for name in [*settings().imports, *modules]:
        _import(name)


def _import(name: str) -> Any:
    """Import a user's module; any failure becomes one ``ConfigError`` line."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{name}': {exc}") from exc
    except Exception as exc:  # the module itself raised: report it without a traceback
        raise ConfigError(f"cannot import module '{name}': {type(exc).__name__}: {exc}") from exc


@contextmanager
def _engine(store_url: str | None, imports: Sequence[str] = ()) -> Iterator[Any]:
    from ._engine import Engine

    _import_modules(imports)
    engine = Engine(store=store_url)
    try:
        yield engine
    finally:
        engine.close()


def _store(store_url: str | None) -> Any:
    from ._config import settings
    from ._store import connect

    config = settings()
    return connect(store_url or config.store, **dict(config.store_options))


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# --- static commands ------------------------------------------------------------------------------


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--services",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE and check that every call step's service and method exist.",
)
@json_option
@handles_errors
def validate(files: Sequence[str], services: Sequence[str], as_json: bool) -> None:
    """Check workflow FILES and print every problem (exit 1 if any)."""
    if services:
        _import_modules(services)
    report: dict[str, list[str]] = {}
    for file in files:
        try:
            problems = check(file)
        except FlowkitError as exc:
            problems = [str(exc) if file in str(exc) else f"{file}: {exc}"]
        if services and not problems:
            problems = _service_problems(file)
        report[file] = problems
    total = sum(len(problems) for problems in report.values())
    if as_json:
        _echo_json(
            {
                "valid": total == 0,
                "files": {
                    file: [_problem_json(problem) for problem in problems]
                    for file, problems in report.items()
                },
            }
        )
    else:
        for file, problems in report.items():
            if not problems:
                click.secho(f"{file}: ok", fg="green")
            for problem in problems:
                click.secho(f"error: {problem}", fg="red")
        if total:
            click.echo(f"{total} problem{'s' if total != 1 else ''} found", err=True)
    if total:
        sys.exit(1)


def _service_problems(file: str) -> list[str]:
    from ._definitions import CallConfig
    from ._problems import Problem
    from ._services import default_registry
    from ._validate import _all_steps

    wf = parse(file)
    problems: list[str] = []
    for path, step in _all_steps(wf.steps):
        if isinstance(step.config, CallConfig):
            try:
                default_registry.resolve(step.config.service, step.config.method)
            except FlowkitError as exc:
                problems.append(
                    Problem(str(exc), workflow_id=wf.id, step_id=path, location=step.source)
                )
    return problems


def _problem_json(problem: str) -> Any:
    to_json = getattr(problem, "to_json", None)
    return to_json() if callable(to_json) else {"message": problem}


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid flowchart or Graphviz DOT.",
)
@handles_errors
def graph(file: str, fmt: str) -> None:
    """Print the step graph of workflow FILE."""
    click.echo(render(parse(file), fmt), nl=False)


@main.command()
@click.argument("target", metavar="MODULE:ATTR")
@handles_errors
def export(target: str) -> None:
    """Print the YAML of a workflow written in Python."""
    from ._parse import to_yaml

    workflow = _load_target(target)
    definition = getattr(workflow, "definition", workflow)
    if not isinstance(definition, WorkflowDef):
        raise ConfigError(f"'{target}' is not a workflow (a flowkit.Workflow or WorkflowDef)")
    click.echo(to_yaml(definition), nl=False)


# --- running --------------------------------------------------------------------------------------


def _load_target(target: str) -> Any:
    """A workflow from a YAML file or from ``module:attr``."""
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
    sys.path.insert(0, str(Path.cwd()))
    module = _import(module_name)
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


def _parse_input(
    raw_json: str | None, pairs: Sequence[str], text_keys: Collection[str] = ()
) -> dict[str, Any]:
    """The input from ``--input`` and ``-i`` pairs; a pair's value is JSON when it parses,
    else text, and always text for the ``text_keys`` (inputs declared ``string``)."""
    data: dict[str, Any] = {}
    if raw_json is not None:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--input is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError("--input must be a JSON object, e.g. '{\"amount\": 250}'")
        data.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"-i expects key=value, got '{pair}'")
        if key in text_keys:
            data[key] = value
            continue
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    return data


def _text_inputs(workflow: Any) -> set[str]:
    """The names of the inputs a workflow declares as ``string``."""
    definition = getattr(workflow, "definition", workflow)
    if not isinstance(definition, WorkflowDef):
        return set()
    return {spec.name for spec in definition.inputs if spec.type == "string"}


def _resume_options(target: str | None, store_url: str | None, imports: Sequence[str]) -> str:
    """The options a ``flowkit resume`` in another process needs to find this execution."""
    parts = [f"-m {shlex.quote(name)}" for name in imports]
    if target is not None:
        parts.append(f"--workflow {shlex.quote(target)}")
    if store_url is not None:
        parts.append(f"--store {shlex.quote(store_url)}")
    return "".join(f" {part}" for part in parts)


def _print_result(result: Result, as_json: bool, resume_options: str = "") -> None:
    if as_json:
        _echo_json(
            {
                "execution_id": result.execution_id,
                "workflow_id": result.workflow_id,
                "status": result.status.value,
                "output": result.output,
                "error": result.error,
                "halt": None if result.halt is None else result.halt.data,
            }
        )
    else:
        colour = {"completed": "green", "halted": "yellow", "failed": "red"}.get(
            result.status.value, "white"
        )
        click.secho(f"{result.status.value}: {result.execution_id}", fg=colour, bold=True)
        if result.completed:
            click.echo(json.dumps(result.output, indent=2, ensure_ascii=False))
        elif result.failed:
            click.echo(f"error: {result.error}")
        elif result.halt is not None:
            if result.halt.prompt:
                click.echo(f"waiting: {result.halt.prompt}")
            command = f"flowkit resume {result.execution_id}"
            if "approvers" in result.halt.data:  # an approval: it needs a decision
                approvers = result.halt.data["approvers"] or []
                by = f" --by {shlex.quote(str(approvers[0]))}" if approvers else ""
                click.echo(
                    f"resume with: {command} --approve{by}{resume_options}   "
                    f"(or --reject; --response JSON adds data)"
                )
            else:
                click.echo(f"resume with: {command}{resume_options}   (--response JSON adds data)")
    if result.failed:
        sys.exit(1)


def _watch(engine: Any) -> Callable[[], None]:
    from rich.console import Console

    console = Console(stderr=True)
    styles = {"completed": "green", "failed": "red", "halted": "yellow", "retrying": "magenta"}

    def show(event: Any) -> None:
        kind = event.name.split(".", 1)[1]
        style = styles.get(kind, "cyan")
        where = event.step_id or event.workflow_id
        detail = event.payload.get("error") or ""
        stamp = event.timestamp.strftime("%H:%M:%S.%f")[:-3]
        console.print(f"[dim]{stamp}[/] [{style}]{event.name:<20}[/] {where} [red]{detail}[/]")

    unsubscribe: Callable[[], None] = engine.subscribe(show)
    return unsubscribe


@main.command()
@click.argument("target", metavar="FILE_OR_MODULE:ATTR")
@click.option("--input", "raw_input", metavar="JSON", help="The input as a JSON object.")
@click.option(
    "-i", "pairs", multiple=True, metavar="KEY=VALUE", help="One input value (JSON or text)."
)
@click.option("--watch", is_flag=True, help="Show each step live.")
@store_option
@import_option
@json_option
@handles_errors
def run(
    target: str,
    raw_input: str | None,
    pairs: Sequence[str],
    watch: bool,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """Run a workflow (a YAML file or a Python MODULE:ATTR) and print its result."""
    _parse_input(raw_input, pairs)  # a malformed --input or -i fails before anything opens
    with _engine(store_url, imports) as engine:
        workflow = _load_target(target)
        data = _parse_input(raw_input, pairs, _text_inputs(workflow))
        if watch:
            _watch(engine)
        result = engine.run(workflow, data)
    _print_result(result, as_json, _resume_options(target, store_url, imports))


@main.command()
@click.argument("execution_id")
@click.option("--approve/--reject", "approved", default=None, help="The approval decision.")
@click.option("--by", metavar="NAME", help="Who decides (must be a listed approver).")
@click.option("--response", "raw_response", metavar="JSON", help="Data stored as ctx 'response'.")
@click.option(
    "--workflow",
    "workflow_target",
    metavar="FILE_OR_MODULE:ATTR",
    help="The workflow's definition, when it is not configured.",
)
@click.option(
    "--allow-changed-definition", is_flag=True, help="Resume although the definition changed."
)
@click.option("--watch", is_flag=True, help="Show each step live.")
@store_option
@import_option
@json_option
@handles_errors
def resume(
    execution_id: str,
    approved: bool | None,
    by: str | None,
    raw_response: str | None,
    workflow_target: str | None,
    allow_changed_definition: bool,
    watch: bool,
    store_url: str | None,
    imports: Sequence[str],
    as_json: bool,
) -> None:
    """Resume a halted execution (answer its approval with --approve or --reject)."""
    response = None
    if raw_response is not None:
        try:
            response = json.loads(raw_response)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--response is not valid JSON: {exc}") from None
    with _engine(store_url, imports) as engine:
        workflow = _load_target(workflow_target) if workflow_target else None
        if watch:
            _watch(engine)
        result = engine.resume(
            execution_id,
            approved=approved,
            by=by,
            response=response,
            workflow=workflow,
            allow_changed_definition=allow_changed_definition,
        )
    _print_result(result, as_json, _resume_options(workflow_target, store_url, imports))


workflows_option = click.option(
    "--workflow",
    "workflow_targets",
    multiple=True,
    metavar="FILE_OR_MODULE:ATTR",
    help="A workflow definition the executions may need, when it is not configured. Repeatable.",
)


def _register(engine: Any, targets: Sequence[str]) -> None:
    for target in targets:
        engine.definition(_load_target(target))


@main.command()
@workflows_option
@store_option
@import_option
@json_option
@handles_errors
def recover(
    workflow_targets: Sequence[str], store_url: str | None, imports: Sequence[str], as_json: bool
) -> None:
    """Continue executions whose process died (their lease expired)."""
    with _engine(store_url, imports) as engine:
        _register(engine, workflow_targets)
        results = engine.recover()
    _print_results(results, "recovered", as_json)


@main.command()
@workflows_option
@store_option
@import_option
@json_option
@handles_errors
def wake(
    workflow_targets: Sequence[str], store_url: str | None, imports: Sequence[str], as_json: bool
) -> None:
    """Move on executions whose timers fired (approval timeouts)."""
    with _engine(store_url, imports) as engine:
        _register(engine, workflow_targets)
        results = engine.wake_due()
    _print_results(results, "woken", as_json)


def _print_results(results: Sequence[Result], verb: str, as_json: bool) -> None:
    if as_json:
        _echo_json(
            [
                {"execution_id": r.execution_id, "status": r.status.value, "error": r.error}
                for r in results
            ]
        )
        return
    click.echo(f"{len(results)} execution{'s' if len(results) != 1 else ''} {verb}")
    for result in results:
        click.echo(f"  {result.execution_id}  {result.status.value}")


@main.command()
@click.argument("modules", nargs=-1, metavar="MODULE…")
@click.option("--processes", default=1, show_default=True, help="Worker processes.")
@click.option("--threads", default=8, show_default=True, help="Threads per process.")
@click.option(
    "--queue", metavar="NAME", help="The queue to consume (default: FLOWKIT_QUEUE, else flowkit)."
)
@click.option("--broker", "broker_url", metavar="URL", help="Broker URL (redis:// or amqp://).")
@store_option
@handles_errors
def worker(
    modules: Sequence[str],
    processes: int,
    threads: int,
    queue: str | None,
    broker_url: str | None,
    store_url: str | None,
) -> None:
    """Run Dramatiq workers that import MODULEs (which register workflows and services).

    The workers also run recover() and wake_due() every few seconds (one
    worker at a time, under a lock in the broker).
    """
    import os

    from ._config import settings

    if broker_url:
        os.environ["FLOWKIT_BROKER"] = broker_url
    if store_url:
        os.environ["FLOWKIT_STORE"] = store_url
    os.environ["FLOWKIT_EXECUTOR"] = "dramatiq"
    from .backends.dramatiq import run_workers

    sys.exit(
        run_workers(
            [*settings().imports, *modules], processes=processes, threads=threads, queue=queue
        )
    )


# --- inspecting -----------------------------------------------------------------------------------


@main.command(name="list")
@click.option("--status", type=click.Choice([status.value for status in Status]))
@click.option("--workflow", "workflow_id", metavar="ID", help="Only this workflow's executions.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="How many to show."
)
@store_option
@json_option
@handles_errors
def list_(
    status: str | None, workflow_id: str | None, limit: int, store_url: str | None, as_json: bool
) -> None:
    """List executions, most recently updated first."""
    from .records import execution_to_dict

    store = _store(store_url)
    try:
        executions = store.find(workflow_id=workflow_id, status=status, limit=limit)
    finally:
        store.close()
    if as_json:
        _echo_json([execution_to_dict(execution) for execution in executions])
        return
    from rich.table import Table

    table = Table(box=None)
    # Never shorten an id: it is what `flowkit show` and `flowkit resume` take.
    width = max((len(execution.id) for execution in executions), default=2)
    table.add_column("id", no_wrap=True, min_width=width)
    for name in ("workflow", "status", "step", "updated"):
        table.add_column(name)
    for execution in executions:
        table.add_row(
            execution.id,
            execution.workflow_id,
            _status_text(execution.status),
            execution.current_step or "",
            execution.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    _console().print(table)


def _console() -> Any:
    """A rich console for stdout; when it is not a terminal (a pipe, a file), lines are
    not cut to a guessed 80 columns, so ids and values come out whole."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 1000))
    return console


def _status_text(status: Status) -> str:
    style = {"completed": "green", "failed": "red", "halted": "yellow"}.get(status.value, "cyan")
    return f"[{style}]{status.value}[/]"


@main.command()
@click.argument("execution_id")
@store_option
@json_option
@handles_errors
def show(execution_id: str, store_url: str | None, as_json: bool) -> None:
    """Show an execution: its record, cursor and entries."""
    from .records import entry_to_dict, execution_to_dict

    store = _store(store_url)
    try:
        execution = store.load(execution_id)
        if execution is None:
            raise NotFoundError(f"no execution '{execution_id}' in the store")
        entries = store.entries(execution_id)
    finally:
        store.close()
    if as_json:
        _echo_json(
            {
                "execution": execution_to_dict(execution),
                "entries": [entry_to_dict(entry) for entry in entries],
            }
        )
        return
    _show_rich(execution, entries)


def _show_rich(execution: Execution, entries: Sequence[Entry]) -> None:
    from rich.table import Table

    console = _console()
    record = Table(box=None, show_header=False)
    for key, value in (
        ("execution", execution.id),
        ("workflow", f"{execution.workflow_id} (version {execution.workflow_version})"),
        ("status", _status_text(execution.status)),
        ("step", execution.current_step or ""),
        ("parent", execution.parent_id or ""),
        ("created", execution.created_at.isoformat()),
        ("updated", execution.updated_at.isoformat()),
        ("error", execution.error or ""),
        ("halt", json.dumps(execution.halt_data) if execution.halt_data else ""),
        ("cursor", json.dumps(execution.cursor) if execution.cursor else ""),
        ("result", json.dumps(execution.result) if execution.result is not None else ""),
    ):
        if value:
            record.add_row(f"[bold]{key}[/]", str(value))
    console.print(record)
    table = Table("seq", "step", "type", "action", "try", "ms", "output / error")
    for entry in entries:
        detail = entry.error or json.dumps(entry.output, ensure_ascii=False)
        table.add_row(
            str(entry.seq),
            entry.step_id + (f" #{entry.iteration}" if entry.iteration is not None else ""),
            entry.step_type,
            _status_text(Status.FAILED) if entry.action.value == "failed" else entry.action.value,
            str(entry.attempt),
            f"{entry.duration_ms:.1f}",
            detail if len(detail) <= 80 else detail[:77] + "...",
        )
    console.print(table)


main.add_command(importlib.import_module("flowkit._cli_db").db)  # `flowkit db …` (SQL schema)


class _LazyCommand(click.Command):
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
            _fail(
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


main.add_command(
    _LazyCommand("mcp", "flowkit.ai._cli:mcp", help="Serve workflows to MCP clients (ai extra).")
)
